"""Get Collections (§5.1) and Get a Collection (§5.2): T-110..T-119, T-070."""

import pytest

from support.taxii import PROPERTY_NAME, STIX21, UUID4, assert_error, assert_ok, random_uuid, require_role


def collections_of(api, role):
    body = assert_ok(api.get(api.collections_url, role=role))
    if "collections" in body:
        assert isinstance(body["collections"], list) and body["collections"], \
            "collections present but empty: omit the key (T-067, T-111)"
    return body.get("collections", [])


def by_id(colls):
    return {c["id"]: c for c in colls}


def test_T110_collections_ok(api):
    ids = by_id(collections_of(api, "writer"))
    for key in ("read_write", "read_only", "write_only", "hidden"):
        assert api.coll[key] in ids, f"writer does not see the {key} collection"


def test_T116_collection_fields(api):
    for c in collections_of(api, "writer"):
        assert isinstance(c.get("id"), str)
        assert isinstance(c.get("title"), str) and c["title"]
        for key in ("description", "alias"):
            if key in c:
                assert isinstance(c[key], str)
        assert isinstance(c.get("can_read"), bool), f"can_read {c.get('can_read')!r} (T-068)"
        assert isinstance(c.get("can_write"), bool), f"can_write {c.get('can_write')!r} (T-068)"
        if "media_types" in c:
            assert isinstance(c["media_types"], list) and c["media_types"], "(T-067)"
            assert all(isinstance(m, str) for m in c["media_types"])
        for key in c:
            assert PROPERTY_NAME.match(key), f"property {key!r} (T-065)"


def test_T070_collection_ids_are_uuid4(api):
    for c in collections_of(api, "writer"):
        assert UUID4.match(c["id"]), f"collection id {c['id']!r} is not a RFC 4122 v4 UUID"


def test_T112_collections_stable_order(api):
    orders = [[c["id"] for c in collections_of(api, "writer")] for _ in range(3)]
    assert orders[0] == orders[1] == orders[2]


def test_T112_collections_sorted_by_id(api):
    """Interop rule (medallion interop mode, Concordia): collections sorted by id."""
    ids = [c["id"] for c in collections_of(api, "writer")]
    assert ids == sorted(ids)


def test_T115_get_collection_matches_list(api):
    for c in collections_of(api, "writer"):
        one = assert_ok(api.get(api.coll_url(c["id"])))
        assert one == c, f"collection {c['id']} differs between list and single GET"


def test_T115_unknown_collection_404(api):
    assert_error(api.get(api.coll_url(random_uuid())), 404)


def test_T115_malformed_collection_id_404(api):
    assert_error(api.get(api.coll_url("not-a-uuid")), (400, 404))


def test_T118_media_types_list_stix21(api):
    c = by_id(collections_of(api, "writer"))[api.coll["read_write"]]
    assert STIX21 in c.get("media_types", [STIX21]), c.get("media_types")


def test_T119_aliases_unique(api):
    aliases = [c["alias"] for c in collections_of(api, "writer") if "alias" in c]
    assert len(aliases) == len(set(aliases))


def test_T117_writer_flags(api):
    colls = by_id(collections_of(api, "writer"))
    c = colls[api.coll["read_write"]]
    assert (c["can_read"], c["can_write"]) == (True, True)


def test_T117_reader_flags_and_visibility(api):
    colls = by_id(collections_of(api, "reader"))
    rw, ro = api.coll["read_write"], api.coll["read_only"]
    assert rw in colls and ro in colls, "reader must see the read-write and read-only collections"
    assert (colls[rw]["can_read"], colls[rw]["can_write"]) == (True, False), colls[rw]
    assert (colls[ro]["can_read"], colls[ro]["can_write"]) == (True, False), colls[ro]
    assert api.coll["hidden"] not in colls, "collection without any right listed to the reader"
    assert api.coll["write_only"] not in colls, "collection without any right listed to the reader"


def test_T117_writeonly_flags_and_visibility(api):
    require_role(api, "writeonly")
    colls = by_id(collections_of(api, "writeonly"))
    wo = api.coll["write_only"]
    assert wo in colls
    assert (colls[wo]["can_read"], colls[wo]["can_write"]) == (False, True), colls[wo]
    assert api.coll["hidden"] not in colls
    one = assert_ok(api.get(api.coll_url(wo), role="writeonly"))
    assert (one["can_read"], one["can_write"]) == (False, True)


@pytest.mark.parametrize("role", ["partner", "partner_basic"])
def test_T117_api_key_partner_flags(api, role):
    require_role(api, "partner")
    colls = by_id(collections_of(api, role))
    c = colls.get(api.coll["read_write"])
    assert c is not None, "API-key partner must see the read-write collection"
    assert (c["can_read"], c["can_write"]) == (True, True)
    assert api.coll["hidden"] not in colls
