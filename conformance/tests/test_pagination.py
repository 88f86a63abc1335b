"""Pagination and the date-added headers (§3.2, §3.3, §3.5): T-205..T-239, T-260, T-264, T-028."""

import pytest

from support import stix
from support.taxii import TAXII_TS, assert_error, assert_ok, check_paging, ids_of

N = 23


class Batch:
    pass


@pytest.fixture(scope="module")
def batch(api):
    """23 objects posted in 3 requests (10, 10, 3), plus their manifest records."""
    rw = api.coll["read_write"]
    b = Batch()
    b.objs = stix.mixed_batch(N)
    for chunk in (b.objs[:10], b.objs[10:20], b.objs[20:]):
        api.add(rw, chunk)
    b.ids = [o["id"] for o in b.objs]
    b.rw = rw
    b.params = [("match[id]", ",".join(b.ids))]
    recs = api.manifest_records(rw, b.ids)
    assert len(recs) == N
    b.added = {r["id"]: r["date_added"] for r in recs}
    return b


def walk(api, url, params, limit):
    pages = list(api.pages(url, params, limit=limit))
    for _, body in pages:
        n = len(body.get("objects", []))
        assert n <= limit, f"{n} objects for limit={limit} (T-205)"
    return pages


@pytest.mark.parametrize("what", ["objects", "manifest"])
def test_T230_paging_to_end_no_duplicates_no_gaps(api, batch, what):
    url = api.objects_url(batch.rw) if what == "objects" else api.manifest_url(batch.rw)
    pages = walk(api, url, batch.params, 5)
    got = [o["id"] for _, body in pages for o in body.get("objects", [])]
    assert len(got) == len(set(got)), "an object appeared on two pages"
    assert sorted(got) == sorted(batch.ids), "objects missing from the walk"
    assert len(pages) >= 5
    dates = [batch.added[i] for i in got]
    assert dates == sorted(dates), "not ascending by date_added (T-230)"


def test_T205_first_page_respects_limit_and_says_more(api, batch):
    body = assert_ok(api.get(api.objects_url(batch.rw), params=batch.params + [("limit", "7")]))
    assert len(body.get("objects", [])) == 7
    assert body.get("more") is True and body.get("next"), body.keys()


def test_T206_everything_in_one_page_when_within_limits(api, batch):
    body = assert_ok(api.get(api.objects_url(batch.rw), params=batch.params + [("limit", str(N))]))
    assert len(body.get("objects", [])) == N
    assert not body.get("more", False)


def test_T232_more_always_with_next_limit_one(api, batch):
    ids = batch.ids[:4]
    pages = walk(api, api.objects_url(batch.rw), [("match[id]", ",".join(ids))], 1)
    assert [i for _, b in pages for i in ids_of(b)] == sorted(ids, key=lambda i: batch.added[i])


def test_T235_last_page_has_no_more(api, batch):
    pages = walk(api, api.objects_url(batch.rw), batch.params, 10)
    assert not pages[-1][1].get("more", False)
    assert all(b.get("more") for _, b in pages[:-1])


@pytest.mark.parametrize("what", ["objects", "manifest"])
def test_T236_date_added_headers_match_each_page(api, batch, what):
    url = api.objects_url(batch.rw) if what == "objects" else api.manifest_url(batch.rw)
    for r, body in walk(api, url, batch.params, 4):
        objs = body.get("objects", [])
        if not objs:
            continue
        first, last = r.headers.get("X-TAXII-Date-Added-First"), r.headers.get("X-TAXII-Date-Added-Last")
        assert first and last, f"page without X-TAXII-Date-Added-* headers: {dict(r.headers)}"
        assert TAXII_TS.match(first) and TAXII_TS.match(last), (first, last)
        assert first == batch.added[objs[0]["id"]], "X-TAXII-Date-Added-First != date_added of first object"
        assert last == batch.added[objs[-1]["id"]], "X-TAXII-Date-Added-Last != date_added of last object"


def test_T260_date_added_has_microseconds(batch):
    for oid, added in batch.added.items():
        assert TAXII_TS.match(added), f"{oid}: date_added {added!r}"


def test_T264_date_added_unique_within_batch(batch):
    """Derived: strictly increasing date_added so that added_after paging never skips (A-6)."""
    assert len(set(batch.added.values())) == N


def test_T234_paging_by_added_after_header(api, batch):
    """Client without `next`: continue with added_after = X-TAXII-Date-Added-Last."""
    seen = []
    params = batch.params + [("limit", "4")]
    after = None
    for _ in range(3 * N):
        p = params + ([("added_after", after)] if after else [])
        r = api.get(api.objects_url(batch.rw), params=p)
        body = assert_ok(r)
        check_paging(body)
        page = ids_of(body)
        if not page:
            break
        seen.extend(page)
        after = r.headers["X-TAXII-Date-Added-Last"]
    assert len(seen) == len(set(seen)), "object returned twice"
    assert sorted(seen) == sorted(batch.ids), f"{N - len(set(seen))} objects skipped"


def first_page(api, batch, limit=5, extra=()):
    body = assert_ok(api.get(api.objects_url(batch.rw), params=batch.params + [("limit", str(limit)), *extra]))
    assert body.get("more") and body.get("next")
    return body


def test_T208_next_without_original_filters(api, batch):
    """Concordia decision: `next` is self-contained; filters may be omitted on follow-up requests."""
    p1 = first_page(api, batch)
    with_f = assert_ok(api.get(api.objects_url(batch.rw), params=batch.params + [("limit", "5"), ("next", p1["next"])]))
    without = assert_ok(api.get(api.objects_url(batch.rw), params=[("limit", "5"), ("next", p1["next"])]))
    assert ids_of(without) == ids_of(with_f)
    assert not set(ids_of(without)) & set(ids_of(p1))


def test_T233_limit_may_change_between_pages(api, batch):
    p1 = first_page(api, batch, 5)
    p2 = assert_ok(api.get(api.objects_url(batch.rw), params=batch.params + [("limit", "7"), ("next", p1["next"])]))
    assert len(ids_of(p2)) == 7
    seen = ids_of(p1) + ids_of(p2)
    dates = [batch.added[i] for i in seen]
    assert dates == sorted(dates) and len(set(seen)) == 12
    assert max(dates) <= min(batch.added[i] for i in batch.ids if i not in seen), "page 2 skipped objects"


def test_T233_next_reusable(api, batch):
    """The same `next` value may be fetched twice (client retry after a timeout)."""
    p1 = first_page(api, batch)
    a = assert_ok(api.get(api.objects_url(batch.rw), params=batch.params + [("limit", "5"), ("next", p1["next"])]))
    b = assert_ok(api.get(api.objects_url(batch.rw), params=batch.params + [("limit", "5"), ("next", p1["next"])]))
    assert ids_of(a) == ids_of(b)


def test_T028_next_with_different_filters_400(api, batch):
    p1 = first_page(api, batch)
    r = api.get(api.objects_url(batch.rw), params=batch.params + [("match[type]", "malware"), ("limit", "5"),
                                                                  ("next", p1["next"])])
    assert_error(r, 400)


def test_T028_next_with_other_match_id_400(api, batch):
    p1 = first_page(api, batch)
    r = api.get(api.objects_url(batch.rw), params=[("match[id]", ",".join(batch.ids[:3])), ("limit", "5"),
                                                   ("next", p1["next"])])
    assert_error(r, 400)


@pytest.mark.parametrize("how", ["random", "flip-last-char", "flip-first-char", "truncated", "appended"])
def test_T028_forged_next_400(api, batch, how):
    p1 = first_page(api, batch)
    tok = p1["next"]
    flip = {"a": "b", "b": "a", "A": "B", "0": "1", "1": "0"}
    forged = {
        "random": "forged-" + stix.sid("x")[3:],
        "flip-last-char": tok[:-1] + flip.get(tok[-1], "a" if tok[-1] != "a" else "b"),
        "flip-first-char": flip.get(tok[0], "a" if tok[0] != "a" else "b") + tok[1:],
        "truncated": tok[: len(tok) // 2],
        "appended": tok + "AAAA",
    }[how]
    assert forged != tok
    r = api.get(api.objects_url(batch.rw), params=batch.params + [("limit", "5"), ("next", forged)])
    assert_error(r, 400)


def test_T028_next_bound_to_collection(api, batch):
    """A token issued for one collection does not page another one."""
    p1 = first_page(api, batch)
    r = api.get(api.objects_url(api.coll["hidden"]), params=batch.params + [("limit", "5"), ("next", p1["next"])])
    assert_error(r, 400)


def test_T028_next_bound_to_endpoint(api, batch):
    """A token from Get Objects is not accepted by Get Object Manifests."""
    p1 = first_page(api, batch)
    r = api.get(api.manifest_url(batch.rw), params=batch.params + [("limit", "5"), ("next", p1["next"])])
    assert_error(r, 400)


def test_T028_next_not_usable_without_access(api):
    """A token for the writer-only collection gives the reader nothing."""
    hidden = api.coll["hidden"]
    objs = [stix.malware() for _ in range(3)]
    api.add(hidden, objs)
    params = [("match[id]", ",".join(o["id"] for o in objs)), ("limit", "1")]
    body = assert_ok(api.get(api.objects_url(hidden), params=params))
    assert body.get("more") and body.get("next")
    r = api.get(api.objects_url(hidden), role="reader", params=params + [("next", body["next"])])
    assert_error(r, 404)
    r = api.get(api.objects_url(api.coll["read_write"]), role="reader", params=params + [("next", body["next"])])
    assert_error(r, 400)


def test_T134_manifest_more_and_next(api, batch):
    body = assert_ok(api.get(api.manifest_url(batch.rw), params=batch.params + [("limit", "3")]))
    assert len(body.get("objects", [])) == 3
    assert body.get("more") is True and body.get("next")


def test_T207_limit_above_server_max_clamped(api, profile):
    """Concordia decision: a `limit` above the server's page size is clamped to it, with more/next."""
    cap = profile.max_page_size
    if not cap or cap > 2000:
        pytest.skip("profile gives no (small enough) max_page_size")
    rw = api.coll["read_write"]
    marker = stix.identity()
    api.add(rw, [marker])
    start = api.manifest_records(rw, [marker["id"]])[0]["date_added"]
    objs = [stix.malware(name=f"clamp-{i}") for i in range(cap + 1)]
    for i in range(0, len(objs), 500):
        api.add(rw, objs[i:i + 500])
    r = api.get(api.objects_url(rw), params={"added_after": start, "limit": str(cap * 10)})
    body = assert_ok(r)
    check_paging(body)
    assert len(body.get("objects", [])) == cap, f"expected a page of exactly {cap} objects"
    assert body.get("more") is True
    rest = assert_ok(api.get(api.objects_url(rw), params={"added_after": start, "limit": str(cap * 10),
                                                          "next": body["next"]}))
    assert ids_of(body) + ids_of(rest) == [o["id"] for o in objs]


def test_T207_server_page_cap(api, profile, batch):
    """Without limit the server may cap the page (its max page size), never exceed it."""
    body = assert_ok(api.get(api.objects_url(batch.rw), params={"match[type]": "indicator,malware,identity,attack-pattern"}))
    n = len(body.get("objects", []))
    if profile.max_page_size:
        assert n <= profile.max_page_size
    check_paging(body)
