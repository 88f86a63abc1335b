"""Client flow 3: Elastic Filebeat/Agent threat-intel TAXII poller with an API key (Bearer).

Follows `next` while it is non-empty, then resumes later with added_after = the
X-TAXII-Date-Added-Last of the previous poll.
"""

from support import stix
from support.taxii import TAXII_TS, assert_ok, ids_of, require_role


def poll(api, url, added_after, limit=5):
    """One Elastic poll: returns (objects, last X-TAXII-Date-Added-Last seen)."""
    params = [("added_after", added_after), ("limit", str(limit))]
    got, last = [], None
    r = api.get(url, role="partner", params=params)
    for _ in range(200):
        body = assert_ok(r)
        got.extend(body.get("objects", []))
        if body.get("objects"):
            last = r.headers.get("X-TAXII-Date-Added-Last")
            assert last and TAXII_TS.match(last), f"X-TAXII-Date-Added-Last {last!r}"
        if not body.get("next"):
            break
        r = api.get(url, role="partner", params=params + [("next", body["next"])])
    else:
        raise AssertionError("endless next chain")
    return got, last


def test_T234_elastic_bearer_poll_then_resume(api):
    require_role(api, "partner")
    rw = api.coll["read_write"]
    url = api.objects_url(rw)
    marker = stix.identity()
    api.add(rw, [marker], role="partner")
    start = api.manifest_records(rw, [marker["id"]])[0]["date_added"]

    first = stix.mixed_batch(12)
    api.add(rw, first[:6], role="partner")
    api.add(rw, first[6:], role="partner")
    got, last = poll(api, url, start)
    assert [o["id"] for o in got] == [o["id"] for o in first], "first poll must return the 12 new objects in order"
    assert last is not None

    # nothing new: empty result
    again, _ = poll(api, url, last)
    assert again == []

    later = stix.mixed_batch(3)
    api.add(rw, later, role="partner")
    got2, last2 = poll(api, url, last)
    assert [o["id"] for o in got2] == [o["id"] for o in later]
    assert last2 > last
    body = assert_ok(api.get(url, role="partner", params={"added_after": last2}))
    assert ids_of(body) == []
