"""Add Objects (§5.5), Get Status (§4.3), Get Objects (§5.4) basics: T-100..T-107, T-140..T-160."""

import json

import pytest

from support import stix
from support.taxii import (TAXII_TS, assert_error, assert_ok, check_status_resource, ids_of)


@pytest.fixture(scope="module")
def posted(api):
    ind, mal, ident = stix.indicator(), stix.malware(), stix.identity()
    rel = stix.relationship(ind, mal)
    objs = [ind, mal, ident, rel]
    r = api.post(api.objects_url(api.coll["read_write"]), body={"objects": objs})
    return objs, r


def test_T151_add_objects_202_status(posted):
    objs, r = posted
    st = assert_ok(r, 202)
    check_status_resource(st)
    assert st["total_count"] == len(objs)
    assert st["success_count"] == len(objs), st
    assert st["failure_count"] == 0 and st["pending_count"] == 0


def test_T151_add_objects_is_synchronous(posted):
    """Concordia decision: the 202 status is already complete."""
    _, r = posted
    assert r.json()["status"] == "complete"


def test_T106_status_details_id_and_version(posted):
    objs, r = posted
    st = r.json()
    details = {d["id"]: d["version"] for d in st.get("successes", [])}
    if not details:
        pytest.skip("server omits the successes list")
    assert details == {o["id"]: o["modified"] for o in objs}


def test_T100_get_status(api, posted):
    _, r = posted
    st = r.json()
    got = assert_ok(api.get(api.status_url(st["id"])))
    check_status_resource(got)
    for key in ("id", "status", "total_count", "success_count", "failure_count", "pending_count"):
        assert got[key] == st[key], key


def test_T103_status_request_timestamp(posted):
    st = posted[1].json()
    if "request_timestamp" not in st:
        pytest.skip("no request_timestamp")
    assert TAXII_TS.match(st["request_timestamp"])


def test_T140_added_objects_returned_verbatim(api, posted):
    objs, _ = posted
    body = assert_ok(api.get(api.objects_url(api.coll["read_write"]),
                             params={"match[id]": ",".join(o["id"] for o in objs)}))
    got = {o["id"]: o for o in body.get("objects", [])}
    assert set(got) == {o["id"] for o in objs}
    for o in objs:
        assert got[o["id"]] == o, f"object changed on the way: {o['id']}"


def test_T071_unicode_round_trip(api):
    obj = stix.indicator(name="Ünïcødé 威胁情报 🚨 — \"quoted\" \\ back\\slash", description="tab\tnewline\n ✓")
    api.add(api.coll["read_write"], [obj])
    body = assert_ok(api.get(api.object_url(api.coll["read_write"], obj["id"])))
    assert body.get("objects") == [obj]


def test_T140_custom_properties_kept(api):
    obj = stix.indicator(x_conformance_score=87, x_conformance_tags=["a", "b"],
                         x_conformance_nested={"k": [1, 2.5, None, True]})
    api.add(api.coll["read_write"], [obj])
    body = assert_ok(api.get(api.object_url(api.coll["read_write"], obj["id"])))
    assert body.get("objects") == [obj]


def test_T143_no_match_is_empty_envelope(api):
    r = api.get(api.objects_url(api.coll["read_write"]), params={"match[id]": stix.sid("indicator")})
    body = assert_ok(r)
    assert "objects" not in body and not body.get("more", False), body


def test_T143_empty_result_is_empty_object(api):
    """Concordia decision: `{}` and no X-TAXII-Date-Added-* headers (T-237, medallion's choice)."""
    r = api.get(api.objects_url(api.coll["read_write"]), params={"match[id]": stix.sid("indicator")})
    assert assert_ok(r) == {}
    assert "X-TAXII-Date-Added-First" not in r.headers and "X-TAXII-Date-Added-Last" not in r.headers


def test_T153_duplicate_is_success(api):
    rw = api.coll["read_write"]
    obj = stix.indicator()
    api.add(rw, [obj])
    st = api.add(rw, [obj, stix.malware()])
    assert st["failure_count"] == 0 and st["success_count"] == 2, st
    body = assert_ok(api.get(api.objects_url(rw), params={"match[id]": obj["id"], "match[version]": "all"}))
    assert len(body["objects"]) == 1, "duplicate stored twice"


def test_T153_duplicate_within_one_envelope_is_success(api):
    obj = stix.indicator()
    st = api.add(api.coll["read_write"], [obj, dict(obj)])
    assert st["failure_count"] == 0 and st["success_count"] == 2, st


BAD_OBJECTS = {
    "missing-id": lambda: {k: v for k, v in stix.indicator().items() if k != "id"},
    "id-not-type-uuid": lambda: {**stix.indicator(), "id": "indicator--not-a-uuid"},
    "id-type-mismatch": lambda: {**stix.indicator(), "id": stix.sid("malware")},
    "bad-modified": lambda: {**stix.indicator(), "modified": "last tuesday"},
    "missing-type": lambda: {k: v for k, v in stix.indicator().items() if k != "type"},
}


# Invalid objects go to the writer-only collection: a server that stores them anyway must not
# break the tests that read the shared collection.

@pytest.mark.parametrize("kind", list(BAD_OBJECTS))
def test_T159_bad_object_reported_in_failures(api, kind):
    cid = api.coll["hidden"]
    good = stix.malware()
    bad = BAD_OBJECTS[kind]()
    r = api.post(api.objects_url(cid), body={"objects": [good, bad]})
    st = assert_ok(r, 202)
    check_status_resource(st)
    assert st["total_count"] == 2 and st["success_count"] == 1 and st["failure_count"] == 1, st
    if "failures" in st:
        assert len(st["failures"]) == 1
    if "successes" in st:
        assert [d["id"] for d in st["successes"]] == [good["id"]]
    body = assert_ok(api.get(api.objects_url(cid), params={"match[id]": good["id"]}))
    assert ids_of(body) == [good["id"]], "the good object of the envelope was not stored"


def test_T159_non_object_entry_rejected(api):
    """A non-object entry in `objects`: either its own failure (202) or the whole request (422)."""
    r = api.post(api.objects_url(api.coll["hidden"]), body={"objects": [stix.malware(), "indicator"]})
    if r.status_code == 202:
        st = assert_ok(r, 202)
        check_status_resource(st)
        assert st["success_count"] == 1 and st["failure_count"] == 1, st
    else:
        assert_error(r, 422)


def test_T159_failure_details_name_the_object(api):
    bad = {**stix.indicator(), "modified": "not-a-timestamp"}
    st = assert_ok(api.post(api.objects_url(api.coll["hidden"]), body={"objects": [bad]}), 202)
    assert st["failure_count"] == 1, st
    assert st["failures"][0]["id"] == bad["id"]
    assert isinstance(st["failures"][0].get("message", ""), str)


def test_T157_malformed_json_400(api):
    r = api.post(api.objects_url(api.coll["read_write"]), data=b'{"objects": [{"type": "indicator",')
    assert_error(r, 400)


def test_T157_empty_body_400(api):
    r = api.post(api.objects_url(api.coll["hidden"]), data=b"")
    assert_error(r, (400, 422))


def test_T157_invalid_utf8_400(api):
    r = api.post(api.objects_url(api.coll["hidden"]), data=b'{"objects": ["\xff\xfe"]}')
    assert_error(r, (400, 422))


NOT_ENVELOPES = {
    "bare-object": lambda: stix.indicator(),
    "json-array": lambda: [stix.indicator()],
    "json-string": lambda: "objects",
    "no-objects-key": lambda: {"more": False},
    "empty-objects": lambda: {"objects": []},
    "objects-not-a-list": lambda: {"objects": stix.indicator()},
    "objects-null": lambda: {"objects": None},
}


@pytest.mark.parametrize("kind", list(NOT_ENVELOPES))
def test_T157_not_an_envelope_422(api, kind):
    r = api.post(api.objects_url(api.coll["hidden"]), data=json.dumps(NOT_ENVELOPES[kind]()).encode())
    assert_error(r, 422)


def padded_envelope(size: int) -> bytes:
    """A valid one-object envelope of exactly `size` bytes."""
    obj = stix.indicator(description="")
    raw = json.dumps({"objects": [obj]}, separators=(",", ":")).encode()
    pad = size - len(raw)
    assert pad >= 0
    obj["description"] = "x" * pad
    raw = json.dumps({"objects": [obj]}, separators=(",", ":")).encode()
    assert len(raw) == size
    return raw


@pytest.fixture(scope="module")
def max_len(api):
    return assert_ok(api.get(api.root_url))["max_content_length"]


@pytest.mark.parametrize("delta", [0, -1], ids=["at-max", "one-below"])
def test_T095_no_413_at_or_below_max_content_length(api, max_len, delta):
    if max_len > 16 * 1024 * 1024:
        pytest.skip("max_content_length too large to test here")
    r = api.post(api.objects_url(api.coll["read_write"]), data=padded_envelope(max_len + delta))
    st = assert_ok(r, 202)
    assert st["success_count"] == 1


@pytest.mark.parametrize("delta", [1, 4096], ids=["one-above", "4k-above"])
def test_T155_above_max_content_length_413(api, max_len, delta):
    if max_len > 16 * 1024 * 1024:
        pytest.skip("max_content_length too large to test here")
    raw = padded_envelope(max_len + delta)
    oid = json.loads(raw)["objects"][0]["id"]
    r = api.post(api.objects_url(api.coll["read_write"]), data=raw)
    assert_error(r, 413)
    body = assert_ok(api.get(api.objects_url(api.coll["read_write"]), params={"match[id]": oid}))
    assert "objects" not in body, "object of a 413 request stored"


def test_T155_chunked_body_above_max_content_length_413(api, max_len):
    """Without Content-Length (chunked transfer) the limit still applies (derived)."""
    if max_len > 16 * 1024 * 1024:
        pytest.skip("max_content_length too large to test here")
    raw = padded_envelope(max_len + 1024)

    def chunks():
        for i in range(0, len(raw), 65536):
            yield raw[i:i + 65536]
    r = api.post(api.objects_url(api.coll["read_write"]), data=chunks())
    assert_error(r, 413)


def test_T160_date_added_is_taxii_timestamp(api, posted):
    objs, _ = posted
    recs = api.manifest_records(api.coll["read_write"], [o["id"] for o in objs])
    assert len(recs) == len(objs)
    for rec in recs:
        assert TAXII_TS.match(rec["date_added"]), f"date_added {rec['date_added']!r} (T-260)"


def test_T135_manifest_record_fields(api, posted):
    objs, _ = posted
    coll = assert_ok(api.get(api.coll_url(api.coll["read_write"])))
    media_types = coll.get("media_types", ["application/stix+json"])
    recs = api.manifest_records(api.coll["read_write"], [o["id"] for o in objs])
    by_id = {o["id"]: o for o in objs}
    for rec in recs:
        assert rec["version"] == by_id[rec["id"]]["modified"]
        if "media_type" in rec:
            assert rec["media_type"] in media_types, (rec["media_type"], media_types)
            assert rec["media_type"] == "application/stix+json;version=2.1"
