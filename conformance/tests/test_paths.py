"""Paths and methods: no trailing slash (T-060, derived: served identically, no redirect), unknown paths and
unsupported methods answered with a TAXII error resource (T-062)."""

import pytest

from support import stix
from support.taxii import assert_error, assert_ok


@pytest.fixture(scope="module")
def obj(api):
    o = stix.indicator()
    st = api.add(api.coll["read_write"], [o])
    return o, st


def urls(api, obj):
    o, st = obj
    rw = api.coll["read_write"]
    return {
        "discovery": api.discovery_url, "api-root": api.root_url, "collections": api.collections_url,
        "collection": api.coll_url(rw), "objects": api.objects_url(rw), "manifest": api.manifest_url(rw),
        "object": api.object_url(rw, o["id"]), "versions": api.versions_url(rw, o["id"]),
        "status": api.status_url(st["id"]),
    }


@pytest.mark.parametrize("endpoint", ["discovery", "api-root", "collections", "collection", "objects",
                                      "manifest", "object", "versions", "status"])
def test_T060_get_without_trailing_slash(api, obj, endpoint):
    url = urls(api, obj)[endpoint]
    with_slash = assert_ok(api.get(url))
    without = api.get(url.rstrip("/"))
    assert without.status_code == 200, f"{url.rstrip('/')} -> {without.status_code} (no redirect expected)"
    body = assert_ok(without)
    if endpoint not in ("objects", "manifest"):  # listings may have grown meanwhile
        assert body == with_slash


def test_T060_post_without_trailing_slash(api):
    o = stix.indicator()
    r = api.post(api.objects_url(api.coll["read_write"]).rstrip("/"), body={"objects": [o]})
    st = assert_ok(r, 202)
    assert st["success_count"] == 1


def test_T060_delete_without_trailing_slash(api):
    o = stix.indicator()
    rw = api.coll["read_write"]
    api.add(rw, [o])
    r = api.delete(api.object_url(rw, o["id"]).rstrip("/"))
    assert r.status_code == 200, r.text
    assert_error(api.get(api.object_url(rw, o["id"])), 404)


def test_T062_unknown_path_404_with_error_resource(api):
    assert_error(api.get(api.root_url + "no-such-endpoint/"), 404)


@pytest.mark.parametrize("method,endpoint", [("PUT", "objects"), ("DELETE", "collection"), ("POST", "manifest"),
                                             ("PATCH", "discovery")],
                         ids=["put-objects", "delete-collection", "post-manifest", "patch-discovery"])
def test_T062_unsupported_method_error_resource(api, obj, method, endpoint):
    url = urls(api, obj)[endpoint]
    r = api.request(method, url, body={"objects": [stix.indicator()]} if method in ("PUT", "POST", "PATCH") else None)
    assert_error(r, (404, 405))
