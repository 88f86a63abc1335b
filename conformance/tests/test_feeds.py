"""Feeds for SIEMs (Concordia issue 14; OASIS interop checklist §3.13.2 optional filters).

- The richer filters on any collection: match[labels], match[confidence-gte/-lte],
  match[created_by_ref], match[tlp] (a ceiling; unmarked objects pass) and
  match[relationships-all] (an object with the relationships and sightings that refer to it).
- A derived collection (profile `collections.derived_feed`): what its filter admits from its
  sources, read-only, and never a way around a source's grants: a partner sees there only what
  it may read in a source the object came from.
- Revocation reaches a poller that uses added_after, in a stored and in a derived collection.
- Expiry: an indicator whose valid_until passes drops out of a `valid_now` feed.
- Retention (profile `collections.retention`): old versions go, the latest stays.

Tests skip on servers whose profile names none of these.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from support import stix
from support.taxii import assert_error, assert_ok, ids_of, random_uuid, require_role

TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
TLP_AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"


def need(api, key):
    if key not in api.coll:
        pytest.skip(f"profile names no {key} collection")
    return api.coll[key]


def ids_with(api, cid, ids, *params, role="writer"):
    """The ids among `ids` that a filtered Get Objects returns."""
    body = assert_ok(api.get(api.objects_url(cid), role=role,
                             params=[("match[id]", ",".join(ids)), *params]))
    return set(ids_of(body))


def test_richer_filters(api):
    if "derived_feed" not in api.coll:
        pytest.skip("the server's profile names no feeds: the optional filters are not claimed")
    rw = api.coll["read_write"]
    org = stix.identity()
    a = stix.indicator(labels=["APT-X", "c2"], confidence=90, created_by_ref=org["id"],
                       object_marking_refs=[TLP_GREEN])
    b = stix.indicator(labels=["phishing"], confidence=30, object_marking_refs=[TLP_AMBER])
    c = stix.indicator()
    api.add(rw, [org, a, b, c])
    ids = [a["id"], b["id"], c["id"]]
    assert ids_with(api, rw, ids, ("match[labels]", "c2")) == {a["id"]}
    assert ids_with(api, rw, ids, ("match[labels]", "apt-x,phishing")) == {a["id"], b["id"]}
    assert ids_with(api, rw, ids, ("match[confidence-gte]", "50")) == {a["id"]}
    assert ids_with(api, rw, ids, ("match[confidence-lte]", "50")) == {b["id"]}
    assert ids_with(api, rw, ids, ("match[created_by_ref]", org["id"])) == {a["id"]}
    assert ids_with(api, rw, ids, ("match[tlp]", "green")) == {a["id"], c["id"]}
    assert ids_with(api, rw, ids, ("match[tlp]", "amber"), ("match[labels]", "phishing")) == {b["id"]}
    for bad in [("match[confidence-gte]", "high"), ("match[tlp]", "purple"), ("match[created_by_ref]", "x")]:
        assert_error(api.get(api.objects_url(rw), params=[bad]), 400)
    # An object with the relationships that refer to it.
    m = stix.malware()
    r1, r2 = stix.relationship(a, m), stix.relationship(m, c, rel="uses")
    api.add(rw, [m, r1, r2])
    body = assert_ok(api.get(api.objects_url(rw), params=[("match[relationships-all]", m["id"])]))
    assert set(ids_of(body)) == {m["id"], r1["id"], r2["id"]}


def test_richer_filters_page_on_their_own(api):
    """The filters without match[id] (which would look the objects up by id): pages of one
    object through a label only these objects carry, and the confidence and TLP filters from
    the position just before them; each of ours that matches comes exactly once, in order."""
    if "derived_feed" not in api.coll:
        pytest.skip("the server's profile names no feeds: the optional filters are not claimed")
    rw = api.coll["read_write"]
    label = f"conformance-{random_uuid()[:12]}"
    confidence = [96, 10, 97, 55, 99, 20]
    objs = [stix.indicator(labels=[label] if i % 2 == 0 else ["other"], confidence=c,
                           object_marking_refs=[TLP_GREEN] if i < 3 else [TLP_AMBER])
            for i, c in enumerate(confidence)]
    api.add(rw, objs)
    ours = [o["id"] for o in objs]
    first = api.manifest_records(rw, [ours[0]])[0]["date_added"]
    before = (dt.datetime.fromisoformat(first.replace("Z", "+00:00")) - dt.timedelta(microseconds=1))
    after = before.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def paged(*params):
        got = []
        for _, body in api.pages(api.objects_url(rw), params, limit=1):
            got.extend(i for i in ids_of(body) if i in ours)
        return got

    assert paged(("match[labels]", label)) == [ours[0], ours[2], ours[4]]
    assert paged(("match[labels]", label.upper() + ",no-such-label")) == [ours[0], ours[2], ours[4]]
    assert paged(("match[labels]", label), ("match[tlp]", "green")) == [ours[0], ours[2]]
    assert paged(("added_after", after), ("match[confidence-gte]", "95")) == [ours[0], ours[2], ours[4]]
    assert paged(("added_after", after), ("match[confidence-gte]", "50"),
                 ("match[confidence-lte]", "60")) == [ours[3]]
    assert paged(("added_after", after), ("match[tlp]", "green"), ("match[type]", "indicator")) == ours[:3]
    body = assert_ok(api.get(api.objects_url(rw), params=[("match[labels]", f"{label}-none")]))
    assert ids_of(body) == [] and not body.get("more", False)


def test_derived_feed_admits_by_filter_and_refuses_writes(api):
    feed = need(api, "derived_feed")
    rw, ro = api.coll["read_write"], api.coll["read_only"]
    good = stix.indicator(confidence=80, object_marking_refs=[TLP_GREEN])
    unmarked = stix.indicator(confidence=60)
    low = stix.indicator(confidence=10)
    amber = stix.indicator(confidence=90, object_marking_refs=[TLP_AMBER])
    mal = stix.malware()
    other = stix.indicator(confidence=99)
    api.add(rw, [good, unmarked, low, amber, mal])
    api.add(ro, [other])
    ids = [o["id"] for o in (good, unmarked, low, amber, mal, other)]
    assert ids_with(api, feed, ids, role="reader") == {good["id"], unmarked["id"], other["id"]}
    # The collection resource says read-only; writes are refused.
    c = assert_ok(api.get(api.coll_url(feed), role="reader"))
    assert c["can_read"] is True and c["can_write"] is False
    assert_error(api.post(api.objects_url(feed), body={"objects": [stix.indicator(confidence=90)]}), 403)
    # The bytes of an object are those its source holds.
    a = api.get(api.object_url(rw, good["id"]))
    b = api.get(api.object_url(feed, good["id"]))
    assert a.status_code == b.status_code == 200 and a.content == b.content


def test_derived_feed_never_widens_a_source_grant(api):
    feed = need(api, "derived_feed")
    require_role(api, "partner")
    rw, ro = api.coll["read_write"], api.coll["read_only"]
    from_rw, from_ro = stix.indicator(confidence=80), stix.indicator(confidence=80)
    api.add(rw, [from_rw])
    api.add(ro, [from_ro])
    ids = [from_rw["id"], from_ro["id"]]
    assert ids_with(api, feed, ids, role="reader") == set(ids)
    # The API-key partner reads the feed and the read-write source, not the read-only one.
    assert ids_with(api, feed, ids, role="partner") == {from_rw["id"]}
    assert_error(api.get(api.object_url(feed, from_ro["id"]), role="partner"), 404)
    assert_error(api.get(api.objects_url(feed), role="outsider"), 404)


@pytest.mark.parametrize("where", ["stored", "derived"])
def test_revocation_reaches_an_added_after_poller(api, where):
    rw = api.coll["read_write"]
    cid = rw if where == "stored" else need(api, "derived_feed")
    ind = stix.indicator(confidence=80)
    api.add(rw, [ind])
    first = assert_ok(api.get(api.objects_url(cid), role="reader", params=[("match[id]", ind["id"])]))
    assert ids_of(first) == [ind["id"]]
    mark = api.get(api.objects_url(cid), role="reader", params=[("match[id]", ind["id"])]).headers[
        "X-TAXII-Date-Added-Last"]
    revoked = stix.new_version(ind, 1, revoked=True)
    api.add(rw, [revoked])
    polled = assert_ok(api.get(api.objects_url(cid), role="reader",
                               params=[("added_after", mark), ("match[id]", ind["id"])]))
    objs = polled.get("objects", [])
    assert len(objs) == 1 and objs[0]["revoked"] is True and objs[0]["modified"] == revoked["modified"]


def test_expired_indicator_drops_out_of_a_valid_now_feed(api):
    feed = need(api, "derived_feed")
    rw = api.coll["read_write"]
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    expiring = stix.indicator(confidence=80, valid_until=stix.stix_ts(until))
    api.add(rw, [expiring])
    r = api.get(api.objects_url(feed), role="reader", params=[("match[id]", expiring["id"])])
    assert ids_of(assert_ok(r)) == [expiring["id"]]
    mark = r.headers["X-TAXII-Date-Added-Last"]
    deadline = time.time() + 15
    while time.time() < deadline:
        body = assert_ok(api.get(api.objects_url(feed), role="reader", params=[("match[id]", expiring["id"])]))
        if not body.get("objects"):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the expired indicator is still in the valid_now feed")
    # No new version: a poller sees nothing new; the source keeps the object.
    polled = assert_ok(api.get(api.objects_url(feed), role="reader", params=[("added_after", mark)]))
    assert expiring["id"] not in ids_of(polled)
    assert ids_of(assert_ok(api.get(api.objects_url(rw), params=[("match[id]", expiring["id"])]))) == [expiring["id"]]


def test_retention_purges_old_versions_keeping_the_latest(api):
    cid = need(api, "retention")
    x = stix.indicator()
    x2 = stix.new_version(x, 1)
    y = stix.indicator()
    api.add(cid, [x, y])
    api.add(cid, [x2])

    def versions(oid):
        r = api.get(api.versions_url(cid, oid))
        return assert_ok(r).get("versions", []) if r.status_code == 200 else []

    assert versions(x["id"]) == [x["modified"], x2["modified"]]
    deadline = time.time() + 40
    while time.time() < deadline and len(versions(x["id"])) > 1:
        time.sleep(1)
    assert versions(x["id"]) == [x2["modified"]], "the old version outlived the retention"
    assert versions(y["id"]) == [y["modified"]], "keep_latest: an object's only version stays"
