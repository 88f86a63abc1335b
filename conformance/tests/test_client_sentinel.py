"""Client flow 4: Microsoft Sentinel-style "Threat intelligence - TAXII" data connector.

Basic authentication with the API key as password, collection ids must be UUIDv4,
periodic polls with added_after while the producer keeps posting between polls:
nothing may be missed, nothing delivered twice.
"""

from support import stix
from support.taxii import UUID4, assert_ok, require_role


def test_T234_sentinel_polls_with_added_after(api):
    require_role(api, "partner")
    rw = api.coll["read_write"]
    colls = assert_ok(api.get(api.collections_url, role="partner_basic")).get("collections", [])
    assert colls
    for c in colls:
        assert UUID4.match(c["id"]), f"collection id {c['id']!r} is not a UUIDv4"
    assert rw in [c["id"] for c in colls]

    marker = stix.identity()
    api.add(rw, [marker])
    cursor = api.manifest_records(rw, [marker["id"]])[0]["date_added"]
    url = api.objects_url(rw)

    posted, seen = [], []
    plan = [[4], [1, 3], [], [7], [2, 2, 2]]  # envelopes posted before each poll
    for sizes in plan:
        for n in sizes:
            objs = stix.mixed_batch(n)
            api.add(rw, objs)
            posted.extend(o["id"] for o in objs)
        params = [("added_after", cursor), ("limit", "3")]
        for r, body in api.pages(url, params, role="partner_basic"):
            seen.extend(o["id"] for o in body.get("objects", []))
            if body.get("objects"):
                cursor = r.headers["X-TAXII-Date-Added-Last"]
        assert seen == posted, "poll results differ from what was posted since the last poll"
    assert len(seen) == len(set(seen)) == 21
