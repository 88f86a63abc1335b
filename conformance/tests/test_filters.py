"""Query parameters (§3.4): T-200..T-220, T-133, T-261, T-262 and malformed values -> 400."""

import pytest

from support import stix
from support.taxii import assert_error, assert_ok, ids_of


class Data:
    pass


@pytest.fixture(scope="module")
def d(api):
    """Objects of several types; A in 3 versions; E first as STIX 2.0 then as 2.1."""
    rw = api.coll["read_write"]
    x = Data()
    a1 = stix.indicator()
    x.A = [a1, stix.new_version(a1, 1, name="A v2"), stix.new_version(a1, 2, name="A v3")]
    x.B = stix.malware()
    x.C = stix.identity()
    x.D = stix.relationship(a1, x.B)
    x.F = stix.attack_pattern()
    e20 = stix.indicator_20()
    e21 = stix.new_version(e20, 3, spec_version="2.1", pattern_type="stix",
                           indicator_types=["malicious-activity"])
    e21.pop("labels")
    x.E = [e20, e21]
    api.add(rw, [x.A[0], x.B, x.C])
    api.add(rw, [x.A[1], x.D])
    api.add(rw, [x.E[0], x.F])
    api.add(rw, [x.A[2]])
    api.add(rw, [x.E[1]])
    x.ids = [a1["id"], x.B["id"], x.C["id"], x.D["id"], x.F["id"], e20["id"]]
    x.rw = rw
    x.url = api.objects_url(rw)
    recs = api.manifest_records(rw, x.ids)
    x.added = {(r["id"], r["version"]): r["date_added"] for r in recs}
    return x


def get(api, d, *params, ids=None, url=None):
    p = [("match[id]", ",".join(ids if ids is not None else d.ids)), *params]
    return assert_ok(api.get(url or d.url, params=p))


def key(o):
    return (o["id"], o.get("modified", o.get("created")))


def keys(body):
    return sorted(key(o) for o in body.get("objects", []))


def test_T201_no_filter_returns_latest_of_each(api, d):
    body = get(api, d)
    assert keys(body) == sorted(key(o) for o in [d.A[2], d.B, d.C, d.D, d.F, d.E[1]])


def test_T212_match_id_single(api, d):
    assert keys(get(api, d, ids=[d.B["id"]])) == [key(d.B)]


def test_T212_match_id_several_ored(api, d):
    assert keys(get(api, d, ids=[d.B["id"], d.C["id"]])) == sorted([key(d.B), key(d.C)])


def test_T213_match_type(api, d):
    assert keys(get(api, d, ("match[type]", "malware"))) == [key(d.B)]


def test_T210_match_type_several_ored(api, d):
    body = get(api, d, ("match[type]", "malware,identity"))
    assert keys(body) == sorted([key(d.B), key(d.C)])


def test_T213_match_type_without_match_is_empty(api, d):
    body = get(api, d, ("match[type]", "grouping"))
    assert "objects" not in body


def test_T209_different_fields_anded(api, d):
    body = get(api, d, ("match[type]", "indicator"), ids=[d.B["id"], d.A[0]["id"]])
    assert keys(body) == [key(d.A[2])]


def test_T214_default_is_last_version(api, d):
    assert get(api, d, ids=[d.A[0]["id"]]).get("objects") == [d.A[2]]


@pytest.mark.parametrize("value,expected", [
    ("first", [0]), ("last", [2]), ("all", [0, 1, 2]), ("v2", [1]), ("v1,v3", [0, 2]),
    ("first,last", [0, 2]), ("first,v2,last", [0, 1, 2]), ("first,v1", [0]), ("v2,last", [1, 2]),
], ids=["first", "last", "all", "explicit", "explicit-two", "first-last", "first-explicit-last",
        "first-overlapping-explicit", "explicit-last"])
def test_T215_match_version(api, d, value, expected):
    tokens = [d.A[int(t[1]) - 1]["modified"] if t.startswith("v") else t for t in value.split(",")]
    body = get(api, d, ("match[version]", ",".join(tokens)), ids=[d.A[0]["id"]])
    assert sorted(key(o) for o in body.get("objects", [])) == sorted(key(d.A[i]) for i in expected)
    assert len(body.get("objects", [])) == len(expected), "a version returned twice"


def test_T215_match_version_all_ascending_by_date_added(api, d):
    body = get(api, d, ("match[version]", "all"), ids=[d.A[0]["id"]])
    assert body.get("objects") == d.A


def test_T215_match_version_across_objects(api, d):
    body = get(api, d, ("match[version]", "first"), ids=[d.A[0]["id"], d.B["id"]])
    assert keys(body) == sorted([key(d.A[0]), key(d.B)])


def test_T215_match_version_unknown_timestamp_is_empty(api, d):
    body = get(api, d, ("match[version]", stix.ts(days=500)), ids=[d.A[0]["id"]])
    assert "objects" not in body


def test_T262_match_version_compared_as_instant(api, d):
    """`...T10:00:00.000Z` and `...T10:00:00Z` denote the same version."""
    v2 = d.A[1]["modified"]
    assert v2.endswith(".000Z")
    body = get(api, d, ("match[version]", v2.replace(".000Z", "Z")), ids=[d.A[0]["id"]])
    assert body.get("objects") == [d.A[1]]


def test_T219_default_latest_spec_version(api, d):
    body = get(api, d, ("match[version]", "all"), ids=[d.E[0]["id"]])
    assert body.get("objects") == [d.E[1]], "only the latest spec version by default"


def test_T218_match_spec_version_20(api, d):
    body = get(api, d, ("match[spec_version]", "2.0"))
    assert body.get("objects") == [d.E[0]], "only the STIX 2.0 version"


def test_T218_match_spec_version_21(api, d):
    body = get(api, d, ("match[spec_version]", "2.1"), ("match[version]", "all"), ids=[d.E[0]["id"], d.B["id"]])
    assert keys(body) == sorted([key(d.E[1]), key(d.B)])


def test_T218_match_spec_version_both_with_all(api, d):
    body = get(api, d, ("match[spec_version]", "2.0,2.1"), ("match[version]", "all"), ids=[d.E[0]["id"]])
    assert body.get("objects") == d.E


def test_T218_manifest_media_type_follows_spec_version(api, d):
    recs = api.manifest_records(d.rw, [d.E[0]["id"]])
    media = {r["version"]: r.get("media_type") for r in recs}
    assert media.get(d.E[0]["modified"]) in (None, "application/stix+json;version=2.0")
    assert media.get(d.E[1]["modified"]) in (None, "application/stix+json;version=2.1")


def test_T118_media_types_list_stix20_after_20_object(api, d):
    coll = assert_ok(api.get(api.coll_url(d.rw)))
    assert "application/stix+json;version=2.0" in coll.get("media_types", []), coll.get("media_types")


def test_T202_added_after_strictly_later(api, d):
    after = d.added[key(d.A[1])]
    body = get(api, d, ("added_after", after), ("match[version]", "all"), ids=[d.A[0]["id"]])
    assert body.get("objects") == [d.A[2]]


def test_T202_added_after_with_type(api, d):
    after = d.added[key(d.A[0])]
    body = get(api, d, ("added_after", after), ("match[type]", "indicator,relationship"),
               ("match[spec_version]", "2.0,2.1"), ("match[version]", "all"))
    assert keys(body) == sorted(key(o) for o in [d.A[1], d.D, d.E[0], d.A[2], d.E[1]])


@pytest.mark.parametrize("value", ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00.1Z", "2020-01-01T00:00:00.123Z",
                                   "2020-01-01T00:00:00.123456Z"],
                         ids=["no-fraction", "one-digit", "millis", "micros"])
def test_T261_added_after_formats(api, d, value):
    body = get(api, d, ("added_after", value))
    assert len(body.get("objects", [])) == 6


def test_T203_added_after_in_future_is_empty(api, d):
    body = get(api, d, ("added_after", "2999-01-01T00:00:00.000000Z"))
    assert "objects" not in body


def test_T133_manifest_filters_apply_to_objects(api, d):
    body = get(api, d, ("match[type]", "indicator"), ("match[version]", "all"), url=api.manifest_url(d.rw))
    got = sorted((r["id"], r["version"]) for r in body.get("objects", []))
    assert got == sorted(key(o) for o in [*d.A, d.E[1]])


def test_T133_manifest_match_version_first(api, d):
    body = get(api, d, ("match[version]", "first"), ids=[d.A[0]["id"]], url=api.manifest_url(d.rw))
    assert [(r["id"], r["version"]) for r in body.get("objects", [])] == [key(d.A[0])]


def test_T063_raw_brackets_and_commas_in_query(api, d):
    """Clients that do not percent-encode `[`, `]` and `,` (curl, hand-built URLs)."""
    url = f"{d.url}?match[id]={d.B['id']},{d.C['id']}&match[type]=malware,identity"
    body = assert_ok(api.get(url))
    assert keys(body) == sorted([key(d.B), key(d.C)])


def test_T207_limit_above_server_max_is_clamped(api, d):
    body = get(api, d, ("limit", "100000000"))
    assert len(body.get("objects", [])) == 6


def test_T211_unknown_match_field_ignored_or_refused(api, d):
    """T-211: a server MAY ignore a match field it does not know. Either it ignores it (every
    object), or it refuses it with a 400 error resource (Concordia: a consumer whose filter was
    silently dropped would load the whole collection); never a silently partial answer."""
    r = api.get(d.url, params=[("match[id]", ",".join(d.ids)), ("match[x_conformance_colour]", "red")])
    if r.status_code == 400:
        assert_error(r, 400)
    else:
        assert len(assert_ok(r).get("objects", [])) == 6


# ---- malformed parameters: 400 -------------------------------------------------------------

BAD_ADDED_AFTER = {
    "garbage": "yesterday", "date-only": "2024-01-01", "bad-month": "2024-13-01T00:00:00Z",
    "no-zone": "2024-01-01T00:00:00", "two-values": "2024-01-01T00:00:00Z,2024-01-02T00:00:00Z",
    "empty": "",
}


@pytest.mark.parametrize("value", list(BAD_ADDED_AFTER.values()), ids=list(BAD_ADDED_AFTER))
def test_T202_bad_added_after_400(api, value):
    assert_error(api.get(api.objects_url(api.coll["read_write"]), params={"added_after": value}), 400)


BAD_LIMIT = {"zero": "0", "negative": "-1", "text": "abc", "float": "1.5", "empty": "",
             "huge": "99999999999999999999999"}


@pytest.mark.parametrize("value", list(BAD_LIMIT.values()), ids=list(BAD_LIMIT))
def test_T204_bad_limit_400(api, value):
    if value == BAD_LIMIT["huge"]:
        r = api.get(api.objects_url(api.coll["read_write"]), params={"limit": value})
        if r.status_code == 200:  # clamping is acceptable too (T-207)
            assert_ok(r)
            return
    assert_error(api.get(api.objects_url(api.coll["read_write"]), params={"limit": value}), 400)


REPEATED = {
    "added_after": [("added_after", "2020-01-01T00:00:00Z"), ("added_after", "2021-01-01T00:00:00Z")],
    "limit": [("limit", "5"), ("limit", "6")],
    "match-type": [("match[type]", "indicator"), ("match[type]", "malware")],
    "match-id": [("match[id]", stix.sid("indicator")), ("match[id]", stix.sid("malware"))],
    "match-version": [("match[version]", "first"), ("match[version]", "last")],
    "match-spec_version": [("match[spec_version]", "2.0"), ("match[spec_version]", "2.1")],
    "same-value-twice": [("match[type]", "indicator"), ("match[type]", "indicator")],
}


@pytest.mark.parametrize("params", list(REPEATED.values()), ids=list(REPEATED))
def test_T209_repeated_parameter_400(api, params):
    assert_error(api.get(api.objects_url(api.coll["read_write"]), params=params), 400)


BAD_VERSION = {
    "all-and-last": "all,last", "first-and-all": "first,all", "all-and-timestamp": f"all,{stix.ts()}",
    "last-twice": "last,last", "timestamp-twice": f"{stix.ts()},{stix.ts()}", "not-a-keyword": "latest",
    "bad-timestamp": "2024-02-30T00:00:00.000Z", "empty-token": "first,",
}


@pytest.mark.parametrize("value", list(BAD_VERSION.values()), ids=list(BAD_VERSION))
def test_T216_bad_match_version_400(api, value):
    assert_error(api.get(api.objects_url(api.coll["read_write"]), params={"match[version]": value}), 400)


@pytest.mark.parametrize("endpoint", ["manifest", "object", "versions"])
@pytest.mark.parametrize("params", [{"added_after": "soon"}, {"limit": "0"}],
                         ids=["bad-added_after", "limit-zero"])
def test_T200_bad_filter_400_on_other_endpoints(api, d, endpoint, params):
    url = {"manifest": api.manifest_url(d.rw), "object": api.object_url(d.rw, d.A[0]["id"]),
           "versions": api.versions_url(d.rw, d.A[0]["id"])}[endpoint]
    assert_error(api.get(url, params=params), 400)


def test_T200_bad_match_version_on_get_object_400(api, d):
    r = api.get(api.object_url(d.rw, d.A[0]["id"]), params={"match[version]": "all,first"})
    assert_error(r, 400)
