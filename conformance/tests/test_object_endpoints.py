"""Get an Object (§5.6), Delete an Object (§5.7), Get Object Versions (§5.8): T-170..T-195."""

import pytest

from support import stix
from support.taxii import TAXII_TS, assert_error, assert_ok, versions_of


def versioned(api, n=3, cid=None):
    """One indicator in n versions, each posted in its own request (distinct date_added)."""
    cid = cid or api.coll["read_write"]
    v1 = stix.indicator()
    versions = [v1] + [stix.new_version(v1, days=i, description=f"revision {i}") for i in range(1, n)]
    for v in versions:
        api.add(cid, [v])
    return versions


@pytest.fixture(scope="module")
def obj3(api):
    return versioned(api, 3)


def test_T170_get_object_returns_latest_version(api, obj3):
    r = api.get(api.object_url(api.coll["read_write"], obj3[0]["id"]))
    body = assert_ok(r)
    assert body.get("objects") == [obj3[-1]], "default must be the last version (T-214)"


def test_T170_get_object_all_versions(api, obj3):
    body = assert_ok(api.get(api.object_url(api.coll["read_write"], obj3[0]["id"]),
                             params={"match[version]": "all"}))
    assert body.get("objects") == obj3, "all versions, ascending by date_added (T-230)"


def test_T236_get_object_date_added_headers(api, obj3):
    rw = api.coll["read_write"]
    recs = api.manifest_records(rw, [obj3[0]["id"]])
    added = {r["version"]: r["date_added"] for r in recs}
    r = api.get(api.object_url(rw, obj3[0]["id"]), params={"match[version]": "all"})
    assert_ok(r)
    assert r.headers.get("X-TAXII-Date-Added-First") == added[obj3[0]["modified"]]
    assert r.headers.get("X-TAXII-Date-Added-Last") == added[obj3[-1]["modified"]]
    r = api.get(api.object_url(rw, obj3[0]["id"]), params={"match[version]": "first"})
    assert_ok(r)
    assert r.headers.get("X-TAXII-Date-Added-First") == r.headers.get("X-TAXII-Date-Added-Last") \
        == added[obj3[0]["modified"]]


def test_T172_get_object_match_version(api, obj3):
    body = assert_ok(api.get(api.object_url(api.coll["read_write"], obj3[0]["id"]),
                             params={"match[version]": obj3[1]["modified"]}))
    assert body.get("objects") == [obj3[1]]


def test_T172_get_object_limit_and_next(api, obj3):
    got = []
    for _, body in api.pages(api.object_url(api.coll["read_write"], obj3[0]["id"]),
                             [("match[version]", "all")], limit=2):
        assert len(body.get("objects", [])) <= 2
        got.extend(body.get("objects", []))
    assert got == obj3


def test_T173_unknown_object_404(api):
    assert_error(api.get(api.object_url(api.coll["read_write"], stix.sid("indicator"))), 404)


def test_T183_absent_version_of_an_object_is_404(api, obj3):
    """Concordia decision: Get an Object answers 404 when no version matches (T-173 allows 404),
    so a deleted version reads as 404 as T-183 requires (medallion answers 200 {}, A-9)."""
    assert_error(api.get(api.object_url(api.coll["read_write"], obj3[0]["id"]),
                         params={"match[version]": stix.ts(days=99)}), 404)


def test_T170_object_of_other_collection_404(api, obj3):
    """An object stored in one collection is not reachable through another."""
    assert_error(api.get(api.object_url(api.coll["hidden"], obj3[0]["id"])), 404)


def test_T190_versions_ok(api, obj3):
    r = api.get(api.versions_url(api.coll["read_write"], obj3[0]["id"]))
    body = assert_ok(r)
    assert sorted(body.get("versions", [])) == sorted(versions_of(obj3))


def test_T239_versions_ascending(api, obj3):
    """Concordia decision: versions listed ascending by date_added (medallion memory: descending)."""
    body = assert_ok(api.get(api.versions_url(api.coll["read_write"], obj3[0]["id"])))
    assert body.get("versions") == versions_of(obj3)


def test_T236_versions_date_added_headers(api, obj3):
    rw = api.coll["read_write"]
    recs = api.manifest_records(rw, [obj3[0]["id"]])
    added = sorted(r["date_added"] for r in recs)
    r = api.get(api.versions_url(rw, obj3[0]["id"]))
    assert_ok(r)
    for h in ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"):
        assert TAXII_TS.match(r.headers.get(h, "")), f"{h}: {r.headers.get(h)!r}"
    assert r.headers["X-TAXII-Date-Added-First"] == added[0]
    assert r.headers["X-TAXII-Date-Added-Last"] == added[-1]


def test_T191_versions_of_object_without_modified_use_created(api):
    md = stix.marking_definition()
    rw = api.coll["read_write"]
    api.add(rw, [md])
    body = assert_ok(api.get(api.versions_url(rw, md["id"])))
    assert body.get("versions") == [md["created"]]
    recs = api.manifest_records(rw, [md["id"]])
    assert [r["version"] for r in recs] == [md["created"]]


def test_T193_versions_match_spec_version(api, obj3):
    rw = api.coll["read_write"]
    body = assert_ok(api.get(api.versions_url(rw, obj3[0]["id"]), params={"match[spec_version]": "2.0"}))
    assert "versions" not in body
    body = assert_ok(api.get(api.versions_url(rw, obj3[0]["id"]), params={"match[spec_version]": "2.1"}))
    assert sorted(body.get("versions", [])) == sorted(versions_of(obj3))


def test_T194_versions_paging(api):
    objs = versioned(api, 5)
    got = []
    for _, body in api.pages(api.versions_url(api.coll["read_write"], objs[0]["id"]), limit=2):
        assert len(body.get("versions", [])) <= 2
        got.extend(body.get("versions", []))
    assert sorted(got) == sorted(versions_of(objs)) and len(got) == 5


def test_T195_versions_unknown_object_404(api):
    assert_error(api.get(api.versions_url(api.coll["read_write"], stix.sid("malware"))), 404)


def test_T180_delete_object(api):
    rw = api.coll["read_write"]
    obj = stix.malware()
    api.add(rw, [obj])
    r = api.delete(api.object_url(rw, obj["id"]))
    assert r.status_code == 200, r.text


def test_T183_deleted_object_gone_everywhere(api):
    rw = api.coll["read_write"]
    obj, other = stix.malware(), stix.identity()
    api.add(rw, [obj, other])
    assert api.delete(api.object_url(rw, obj["id"])).status_code == 200
    assert_error(api.get(api.object_url(rw, obj["id"])), 404)
    assert_error(api.get(api.versions_url(rw, obj["id"])), 404)
    listing = assert_ok(api.get(api.objects_url(rw), params={"match[id]": f"{obj['id']},{other['id']}"}))
    assert [o["id"] for o in listing.get("objects", [])] == [other["id"]]
    manifest = assert_ok(api.get(api.manifest_url(rw), params={"match[id]": obj["id"]}))
    assert "objects" not in manifest


def test_T183_bare_delete_removes_all_versions(api):
    """Concordia decision (A-14): DELETE without match[version] removes every version."""
    rw = api.coll["read_write"]
    objs = versioned(api, 3)
    assert api.delete(api.object_url(rw, objs[0]["id"])).status_code == 200
    assert_error(api.get(api.object_url(rw, objs[0]["id"]), params={"match[version]": "all"}), 404)
    assert "objects" not in assert_ok(api.get(api.manifest_url(rw), params={"match[id]": objs[0]["id"],
                                                                             "match[version]": "all"}))


def test_T181_delete_one_version(api):
    rw = api.coll["read_write"]
    objs = versioned(api, 3)
    r = api.delete(api.object_url(rw, objs[0]["id"]), params={"match[version]": objs[1]["modified"]})
    assert r.status_code == 200, r.text
    body = assert_ok(api.get(api.object_url(rw, objs[0]["id"]), params={"match[version]": "all"}))
    assert body.get("objects") == [objs[0], objs[2]]


def test_T181_delete_first_version(api):
    rw = api.coll["read_write"]
    objs = versioned(api, 2)
    r = api.delete(api.object_url(rw, objs[0]["id"]), params={"match[version]": "first"})
    assert r.status_code == 200, r.text
    body = assert_ok(api.get(api.versions_url(rw, objs[0]["id"])))
    assert body.get("versions") == [objs[1]["modified"]]


def test_T184_delete_unknown_object_404(api):
    assert_error(api.delete(api.object_url(api.coll["read_write"], stix.sid("indicator"))), 404)


def test_T184_delete_bad_filter_400(api):
    objs = versioned(api, 2)
    rw = api.coll["read_write"]
    r = api.delete(api.object_url(rw, objs[0]["id"]), params={"match[version]": "all,last"})
    assert_error(r, 400)
    body = assert_ok(api.get(api.versions_url(rw, objs[0]["id"])))
    assert len(body.get("versions", [])) == 2, "a refused DELETE removed versions"
