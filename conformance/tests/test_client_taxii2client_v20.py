"""Client flow: the OASIS taxii2-client's TAXII 2.0 half (`taxii2client.v20`), against the
server's read-only TAXII 2.0 view (profile `server.taxii20_path`): discovery, API roots,
collections, and paging through every object with `Range: items=N-M`, each object exactly once.
Skipped for servers without a 2.0 view.
"""

import pytest
from taxii2client.v20 import Server, as_pages

from support import stix
from support.taxii import resolve


@pytest.fixture(scope="module")
def v20(api):
    path = api.profile.taxii20_path
    if not path:
        pytest.skip("the profile names no TAXII 2.0 view")
    creds = api.profile.credentials["reader"]
    server = Server(api.base_url + path, user=creds.user, password=creds.password)
    yield server
    server.close()


def collection_of(api, server, cid):
    roots = {resolve(server.url, r.url): r for r in server.api_roots}
    root = roots[api.base_url + api.profile.taxii20_path + api.profile.api_root_path.strip("/") + "/"]
    assert root.title and "taxii-2.0" in root.versions
    colls = {c.id: c for c in root.collections}
    assert cid in colls, list(colls)
    c = colls[cid]
    assert c.can_read and not c.can_write
    return c


def test_taxii2client_v20_discovery_and_collections(api, v20):
    assert v20.title
    rw = collection_of(api, v20, api.coll["read_write"])
    # Only the collections opened to 2.0 are listed.
    listed = {c.id for r in v20.api_roots for c in r.collections}
    assert api.coll["read_only"] not in listed
    assert rw.id == api.coll["read_write"]


def test_taxii2client_v20_pages_every_object_exactly_once(api, v20):
    rw = api.coll["read_write"]
    mine = [stix.indicator() for _ in range(7)]
    api.add(rw, mine)
    coll = collection_of(api, v20, rw)
    seen = []
    for bundle in as_pages(coll.get_objects, per_request=5):
        assert bundle["type"] == "bundle" and bundle.get("spec_version") == "2.0"
        for o in bundle.get("objects", []):
            assert "spec_version" not in o, o
            seen.append((o["id"], o["modified"]))
    assert len(seen) == len(set(seen)), "an object came twice"
    ids = {i for i, _ in seen}
    for o in mine:
        assert o["id"] in ids, f"{o['id']} missing from the TAXII 2.0 pages"
    # The manifest pages too.
    entries = [e for page in as_pages(coll.get_manifest, per_request=5) for e in page.get("objects", [])]
    assert {e["id"] for e in entries} >= {o["id"] for o in mine}
    one = coll.get_object(mine[0]["id"])
    assert one["objects"][0]["id"] == mine[0]["id"]
    assert one["objects"][0]["labels"] == ["malicious-activity"]


def test_taxii2client_v20_reads_a_derived_feed(api, v20):
    if "derived_feed" not in api.coll:
        pytest.skip("the profile names no derived feed")
    rw = api.coll["read_write"]
    good = stix.indicator(confidence=90)
    api.add(rw, [good])
    coll = collection_of(api, v20, api.coll["derived_feed"])
    ids = [o["id"] for page in as_pages(coll.get_objects, per_request=50) for o in page.get("objects", [])]
    assert good["id"] in ids and len(ids) == len(set(ids))
    assert all(i.startswith("indicator--") for i in ids)
