"""Client flow 2: Cortex XSOAR-style feed (TAXII 2 Feed integration).

Tries TAXII 2.0 first (Accept application/vnd.oasis.taxii+json; version=2.0), expects 406,
falls back to TAXII 2.1, then picks the collection by its title and fetches indicators.
"""

from support import stix
from support.taxii import assert_error, assert_ok, resolve

ACCEPT_20 = "application/vnd.oasis.taxii+json; version=2.0"
ACCEPT_21 = "application/taxii+json;version=2.1"


def test_T045_xsoar_falls_back_from_taxii20_and_picks_collection_by_title(api):
    title = api.profile.collection_titles.get("read_write")
    if not title:
        title = assert_ok(api.get(api.coll_url(api.coll["read_write"])))["title"]
    marker = stix.indicator()
    objs = [stix.indicator() for _ in range(4)]
    api.add(api.coll["read_write"], [marker])
    api.add(api.coll["read_write"], objs)

    # 1. version probing
    assert_error(api.get(api.discovery_url, accept=ACCEPT_20), 406)
    disc = assert_ok(api.get(api.discovery_url, accept=ACCEPT_21))
    roots = [resolve(api.discovery_url, u) for u in disc.get("api_roots", [])]
    root = resolve(api.discovery_url, disc["default"]) if disc.get("default") else roots[0]
    assert root == api.root_url
    assert_ok(api.get(root, accept=ACCEPT_21))

    # 2. collection chosen by title
    colls = assert_ok(api.get(root + "collections/", accept=ACCEPT_21))["collections"]
    matches = [c for c in colls if c["title"] == title]
    assert len(matches) == 1, f"collection titled {title!r}: {len(matches)} matches"
    coll = matches[0]
    assert coll["can_read"]

    # 3. fetch indicators added after the marker
    marker_added = api.manifest_records(coll["id"], [marker["id"]])[0]["date_added"]
    url = f"{root}collections/{coll['id']}/objects/"
    got = []
    for _, body in api.pages(url, [("added_after", marker_added), ("match[type]", "indicator")], limit=2):
        got.extend(body.get("objects", []))
    assert [o["id"] for o in got] == [o["id"] for o in objs]
