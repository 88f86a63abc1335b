"""Client flow 6: cytaxii2-style client (Cyware).

Sends `Content-Type: application/taxii+json;version=2.1` on GET requests too, and posts
STIX bundles instead of TAXII envelopes; both must be accepted.
"""

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
