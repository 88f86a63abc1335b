"""Authorization per partner: T-025, T-029, T-111, T-131, T-141, T-152, T-107, T-182."""

import json
import re

import pytest

from support import stix
from support.taxii import assert_error, assert_ok, random_uuid, require_role


def seed(api, key, n=1):
    """Objects put into collection `key` by the writer; [] when the writer may not write there."""
    objs = [stix.indicator() for _ in range(n)]
    r = api.post(api.objects_url(api.coll[key]), body={"objects": objs})
    if r.status_code != 202:
        return []
    return objs


def stored_ids(api, key, oid):
    """Versions of `oid` the writer finds in collection `key`; None when the writer may not read it."""
    r = api.get(api.objects_url(api.coll[key]), params={"match[id]": oid, "match[version]": "all"})
    if r.status_code == 403:
        return None
    return [o["id"] for o in assert_ok(r).get("objects", [])]


def normalized(r, *ids):
    text = r.text
    for i in ids:
        text = re.sub(rf"(?<![A-Za-z0-9_-]){re.escape(i)}(?![A-Za-z0-9_-])", "{ID}", text)
    body = json.loads(text)
    body.pop("error_id", None)  # per occurrence by definition (T-251)
    return body


def test_T025_outsider_sees_no_collections(api):
    r = api.get(api.collections_url, role="outsider")
    if r.status_code == 404:
        assert_error(r, 404)
        return
    body = assert_ok(r)
    assert "collections" not in body, f"outsider sees collections: {body}"


def test_T111_empty_collections_is_empty_object(api):
    r = api.get(api.collections_url, role="outsider")
    if r.status_code == 404:
        pytest.skip("server hides the API root from partners without collections")
    assert assert_ok(r) == {}, r.text


@pytest.mark.parametrize("suffix", ["", "collections/"], ids=["api-root", "collections"])
def test_T029_api_root_hidden_from_outsider_like_unknown(api, suffix):
    """Concordia decision: an API root without any collection for the caller answers like a missing one."""
    unknown = f"no-root-{random_uuid()[:8]}"
    r_root = api.get(api.root_url + suffix, role="outsider")
    r_unknown = api.get(f"{api.base_url}/{unknown}/{suffix}", role="outsider")
    assert_error(r_unknown, 404)
    assert_error(r_root, 404)
    root_name = api.profile.api_root_path.strip("/")
    assert normalized(r_root, root_name) == normalized(r_unknown, unknown)


SUFFIXES = {"collection": "", "objects": "objects/", "manifest": "manifest/",
            "object": "objects/{oid}/", "versions": "objects/{oid}/versions/"}


@pytest.mark.parametrize("what", list(SUFFIXES))
@pytest.mark.parametrize("role,key", [("reader", "hidden"), ("outsider", "read_write"),
                                      ("reader", "write_only")],
                         ids=["reader-hidden", "outsider-rw", "reader-writeonly"])
def test_T029_invisible_collection_404_like_unknown(api, what, role, key):
    """A collection the caller can neither read nor write is indistinguishable from a missing one."""
    oid = stix.sid("indicator")
    objs = seed(api, key)
    if objs and what in ("object", "versions"):
        oid = objs[0]["id"]
    hidden, unknown = api.coll[key], random_uuid()
    suffix = SUFFIXES[what].format(oid=oid)
    r_hidden = api.get(api.coll_url(hidden) + suffix, role=role)
    r_unknown = api.get(api.coll_url(unknown) + suffix, role=role)
    assert_error(r_unknown, 404)
    assert_error(r_hidden, 404)
    assert normalized(r_hidden, hidden, oid) == normalized(r_unknown, unknown, oid), \
        "404 body reveals that the collection exists (T-029)"


def test_T029_outsider_post_404_like_unknown(api):
    body = {"objects": [stix.indicator()]}
    rw, unknown = api.coll["read_write"], random_uuid()
    r1 = api.post(api.objects_url(rw), role="outsider", body=body)
    r2 = api.post(api.objects_url(unknown), role="outsider", body=body)
    assert_error(r2, 404)
    assert_error(r1, 404)
    assert normalized(r1, rw) == normalized(r2, unknown)


@pytest.mark.parametrize("key", ["read_only", "read_write"])
def test_T152_reader_post_403(api, key):
    obj = stix.indicator()
    r = api.post(api.objects_url(api.coll[key]), role="reader", body={"objects": [obj]})
    assert_error(r, 403)
    got = assert_ok(api.get(api.objects_url(api.coll[key]), params={"match[id]": obj["id"]}))
    assert "objects" not in got, "refused POST stored the object anyway"


def test_T117_reader_reads_read_only_collection(api):
    objs = seed(api, "read_only")
    body = assert_ok(api.get(api.objects_url(api.coll["read_only"]), role="reader",
                             params={"match[id]": objs[0]["id"]} if objs else None))
    if objs:
        assert [o["id"] for o in body.get("objects", [])] == [objs[0]["id"]]


@pytest.fixture(scope="module")
def wo_object(api):
    if not api.has_role("writeonly"):
        return None
    obj = stix.indicator()
    st = api.add(api.coll["write_only"], [obj], role="writeonly")
    return obj, st


def test_T151_writeonly_posts_and_reads_own_status(api, wo_object):
    require_role(api, "writeonly")
    obj, st = wo_object
    assert st["success_count"] == 1
    got = assert_ok(api.get(api.status_url(st["id"]), role="writeonly"))
    assert got["id"] == st["id"] and got["success_count"] == 1
    # the writer (reads the drop box, where it may) finds it
    assert stored_ids(api, "write_only", obj["id"]) in (None, [obj["id"]])


@pytest.mark.parametrize("what", ["objects", "manifest", "object", "versions"])
def test_T141_writeonly_cannot_read_403(api, wo_object, what):
    require_role(api, "writeonly")
    obj, _ = wo_object
    wo = api.coll["write_only"]
    url = {"objects": api.objects_url(wo), "manifest": api.manifest_url(wo),
           "object": api.object_url(wo, obj["id"]), "versions": api.versions_url(wo, obj["id"])}[what]
    assert_error(api.get(url, role="writeonly"), 403)


@pytest.mark.parametrize("role", ["reader", "writeonly", "outsider", "partner"])
def test_T107_status_of_other_partner_404(api, role):
    require_role(api, role)
    st = api.add(api.coll["read_write"], [stix.indicator()])
    r_other = api.get(api.status_url(st["id"]), role=role)
    r_unknown = api.get(api.status_url(random_uuid()), role=role)
    assert_error(r_unknown, 404)
    assert_error(r_other, 404, what="status created by another partner: ")
    assert normalized(r_other, st["id"]) == normalized(r_unknown, r_unknown.url.rstrip("/").rsplit("/", 1)[1])


def test_T102_unknown_status_404(api):
    assert_error(api.get(api.status_url(random_uuid())), 404)


DELETE_MATRIX = [
    # role, collection, expected status
    ("writer", "read_write", 200),       # read + write
    ("reader", "read_write", 403),       # read only
    ("reader", "read_only", 403),        # read only
    ("writeonly", "write_only", 403),    # write only
    ("reader", "hidden", 404),           # neither
    ("outsider", "read_write", 404),     # neither
    ("writeonly", "read_write", 404),    # neither
]


@pytest.mark.parametrize("role,key,expected", DELETE_MATRIX,
                         ids=[f"{r}-{k}-{e}" for r, k, e in DELETE_MATRIX])
def test_T182_delete_permission_matrix(api, role, key, expected):
    require_role(api, role)
    objs = seed(api, key)
    oid = objs[0]["id"] if objs else stix.sid("indicator")
    r = api.delete(api.object_url(api.coll[key], oid), role=role)
    if expected == 200:
        assert r.status_code == 200, r.text
    else:
        assert_error(r, expected)
    still = stored_ids(api, key, oid) if objs else None
    if still is not None:
        if expected == 200:
            assert still == [], "object still present after DELETE"
        else:
            assert still == [oid], "refused DELETE removed the object"
