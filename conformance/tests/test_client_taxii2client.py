"""Client flow 1: the OASIS reference client taxii2-client 2.3.0 (§4.1 of the notes).

Server -> api_roots -> collections -> add_objects -> as_pages(get_objects / get_manifest).
taxii2-client checks the response Content-Type on every GET, validates the status resource
and loops forever on `more: true` without `next`.
"""

import pytest
from taxii2client.v21 import Server, as_pages

from support import stix
from support.taxii import resolve


@pytest.fixture(scope="module")
def client_collection(api):
    creds = api.profile.credentials["writer"]
    server = Server(api.discovery_url, user=creds.user, password=creds.password)
    assert server.title
    roots = {resolve(api.discovery_url, r.url): r for r in server.api_roots}
    assert api.root_url in roots, list(roots)
    root = roots[api.root_url]
    assert root.title and root.versions and root.max_content_length
    colls = {c.id: c for c in root.collections}
    assert api.coll["read_write"] in colls
    coll = colls[api.coll["read_write"]]
    assert coll.can_read and coll.can_write
    yield coll
    server.close()


def test_T232_taxii2client_add_and_page_objects(api, client_collection):
    objs = stix.mixed_batch(8)
    status = client_collection.add_objects({"objects": objs}, poll_interval=1, timeout=20)
    assert status.status == "complete"
    assert status.success_count == 8 and status.failure_count == 0
    ids = [o["id"] for o in objs]
    pages = list(as_pages(client_collection.get_objects, per_request=3, id=ids))
    got = [o["id"] for p in pages for o in p.get("objects", [])]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    assert len(pages) == 3


def test_T134_taxii2client_manifest_pages(api, client_collection):
    objs = stix.mixed_batch(5)
    client_collection.add_objects({"objects": objs}, poll_interval=1, timeout=20)
    ids = [o["id"] for o in objs]
    pages = list(as_pages(client_collection.get_manifest, per_request=2, id=ids))
    got = [r["id"] for p in pages for r in p.get("objects", [])]
    assert sorted(got) == sorted(ids)


def test_T170_taxii2client_object_and_versions(api, client_collection):
    v1 = stix.indicator()
    v2 = stix.new_version(v1, 1)
    client_collection.add_objects({"objects": [v1]}, poll_interval=1, timeout=20)
    client_collection.add_objects({"objects": [v2]}, poll_interval=1, timeout=20)
    env = client_collection.get_object(v1["id"], version="all")
    assert [o["modified"] for o in env["objects"]] == [v1["modified"], v2["modified"]]
    versions = client_collection.object_versions(v1["id"])
    assert sorted(versions["versions"]) == sorted([v1["modified"], v2["modified"]])
    client_collection.delete_object(v1["id"])


def test_T082_taxii2client_default_api_root(api):
    """taxii2-client's `Server.default`: the API root named by discovery's `default`, usable as is."""
    creds = api.profile.credentials["writer"]
    server = Server(api.discovery_url, user=creds.user, password=creds.password)
    try:
        if server.default is None:
            pytest.skip("the server names no default API root")
        assert resolve(api.discovery_url, server.default.url) == api.root_url
        assert server.default.title and server.default.versions
        assert api.coll["read_write"] in {c.id for c in server.default.collections}
    finally:
        server.close()
