"""Client flow 6: cytaxii2-style client (Cyware).

Sends `Content-Type: application/taxii+json;version=2.1` on GET requests too, and posts
STIX bundles instead of TAXII envelopes; both must be accepted.
"""

import pytest

from support import stix
from support.taxii import TAXII21, assert_ok, check_status_resource, ids_of

HEADERS = {"Content-Type": TAXII21}


def test_T150_cytaxii2_get_with_content_type(api):
    rw = api.coll["read_write"]
    for url in (api.discovery_url, api.root_url, api.collections_url, api.coll_url(rw), api.manifest_url(rw)):
        assert_ok(api.get(url, headers=HEADERS))
    assert_ok(api.get(api.objects_url(rw), headers=HEADERS, params={"limit": "1"}))


def test_T150_cytaxii2_posts_stix_bundle(api):
    rw = api.coll["read_write"]
    ind, mal = stix.indicator(), stix.malware()
    objs = [ind, mal, stix.relationship(ind, mal)]
    r = api.post(api.objects_url(rw), body=stix.bundle(objs))
    st = assert_ok(r, 202)
    check_status_resource(st)
    assert st["success_count"] == 3 and st["failure_count"] == 0, st
    body = assert_ok(api.get(api.objects_url(rw), headers=HEADERS,
                             params={"match[id]": ",".join(o["id"] for o in objs)}))
    assert sorted(ids_of(body)) == sorted(o["id"] for o in objs)
    assert all(o.get("type") != "bundle" for o in body["objects"]), "the bundle itself was stored"


def test_T082_cytaxii2_reaches_the_api_root_through_default(api):
    """cytaxii2 (and any client that hands discovery values straight to its HTTP library) uses
    `default` as a URL as it stands: it must be absolute (§4.1 examples) and lead to the API root."""
    discovery = assert_ok(api.get(api.discovery_url, headers=HEADERS))
    if "default" not in discovery:
        pytest.skip("the server names no default API root")
    default = discovery["default"]
    assert default.startswith(("https://", "http://")), f"default {default!r} is not an absolute URL"
    root = assert_ok(api.get(default, headers=HEADERS))
    assert root["title"] and "application/taxii+json;version=2.1" in root["versions"]
    collections = assert_ok(api.get(default + "collections/", headers=HEADERS))
    assert any(c["id"] == api.coll["read_write"] for c in collections.get("collections", []))
