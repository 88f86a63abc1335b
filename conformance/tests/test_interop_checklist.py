"""OASIS TAXII 2.1 Interoperability Test Document v1.0 (CSD01, 30 March 2022), server checklist.

The table "OASIS TAXII 2.1 interoperability checklist" in conformance/README.md maps every row
of the server checklist (§3.1.1 .. §3.15.1, M/O) to tests of this suite. The tests here cover rows
that the rest of the suite does not check exactly as the row states it; each docstring names its
row. `test_interop_checklist_table_names_existing_tests` keeps the table truthful: every
mandatory row names at least one test, and every named test exists.

Every test creates its own objects (fresh uuid4 ids), so the tests are independent.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest
import requests
from taxii2client.v21 import Server, as_pages

from support import stix
from support.taxii import (TAXII21, TAXII_TS, TIMEOUT, assert_error, assert_ok, check_paging,
                           check_status_resource, ids_of, random_uuid, require_role, resolve)


# ---- helpers ------------------------------------------------------------------------------------

def collection_listing(api, role):
    """{id: collection} of the caller's Get Collections, or None when the API root answers 404."""
    r = api.get(api.collections_url, role=role)
    if r.status_code == 404:
        assert_error(r, 404)
        return None
    body = assert_ok(r)
    if "collections" in body:
        assert isinstance(body["collections"], list) and body["collections"], \
            "collections present but empty: omit the key (T-067)"
    return {c["id"]: c for c in body.get("collections", [])}


def assert_collection_resource(c: dict, cid: str, can_read: bool, can_write: bool):
    assert c.get("id") == cid, c
    assert isinstance(c.get("title"), str) and c["title"], f"collection without title: {c}"
    assert isinstance(c.get("can_read"), bool) and isinstance(c.get("can_write"), bool), c
    assert (c["can_read"], c["can_write"]) == (can_read, can_write), (
        f"collection {cid}: can_read={c['can_read']}, can_write={c['can_write']}, "
        f"expected can_read={can_read}, can_write={can_write}")


def seed(api, key):
    """Id of an indicator the writer put into collection `key`, and whether it is stored there
    (False when the writer may not write there either: then the id names no object)."""
    obj = stix.indicator()
    r = api.post(api.objects_url(api.coll[key]), body={"objects": [obj]})
    if r.status_code != 202:
        return obj["id"], False
    st = assert_ok(r, 202)
    check_status_resource(st)
    return obj["id"], st["success_count"] == 1


def writer_sees(api, key, oid):
    """Ids of `oid`'s versions the writer reads in collection `key`; None when it may not read there."""
    r = api.get(api.objects_url(api.coll[key]), params={"match[id]": oid, "match[version]": "all"})
    if r.status_code == 403:
        return None
    return ids_of(assert_ok(r))


def date_added_of(api, cid, ids):
    return {r["id"]: r["date_added"] for r in api.manifest_records(cid, ids)}


def key(o):
    return (o["id"], o.get("modified", o.get("created")))


# ---- 3.1 authentication -------------------------------------------------------------------------

@pytest.fixture
def certholder(api):
    """The certholder partner's client certificate (profile `[credentials.certholder]` cert/key,
    written by `run.sh --mtls`); the 3.1.3 tests are skipped without it."""
    c = api.profile.credentials.get("certholder")
    if c is None or c.client_cert is None:
        pytest.skip("profile has no client certificate (credentials.certholder cert/key; run.sh --mtls)")
    return c


def plain_request(method, url, cert=None, auth=None, body=None, params=None):
    """One `requests` call with its own connection: the client certificate `cert` (or none), the
    `auth` given (or no Authorization header at all) and TAXII 2.1 media types."""
    headers = {"Accept": TAXII21}
    data = None
    if body is not None:
        headers["Content-Type"] = TAXII21
        data = json.dumps(body).encode("utf-8")
    r = requests.request(method, url, cert=cert, auth=auth, headers=headers, params=params, data=data,
                         timeout=TIMEOUT, allow_redirects=False)
    if auth is None:
        assert "Authorization" not in r.request.headers, "an Authorization header was sent (~/.netrc?)"
    return r


def test_interop_3_1_3_client_certificate_authenticates_requests(api, rw, certholder):
    """3.1.3 Certificate-based authentication: `requests` presenting the certholder partner's
    client certificate (mutual TLS) and no Authorization header gets discovery, the API root and
    Get Collections, where the read-write collection says can_read and can_write true (and the
    writer-only collection is not listed: the caller is certholder); it adds an object, reads
    its status and reads the object back."""
    cert = certholder.client_cert
    disco = assert_ok(plain_request("GET", api.discovery_url, cert=cert))
    assert api.root_url in {resolve(api.discovery_url, u) for u in disco.get("api_roots", [])}, disco
    root = assert_ok(plain_request("GET", api.root_url, cert=cert))
    assert any(v.replace(" ", "") == TAXII21 for v in root.get("versions", [])), root
    listing = assert_ok(plain_request("GET", api.collections_url, cert=cert))
    colls = {c["id"]: c for c in listing.get("collections", [])}
    assert rw in colls, f"the certificate partner does not see the read-write collection: {listing}"
    assert_collection_resource(colls[rw], rw, can_read=True, can_write=True)
    assert api.coll["hidden"] not in colls, "the writer-only collection is listed to the certificate partner"
    assert_collection_resource(assert_ok(plain_request("GET", api.coll_url(rw), cert=cert)),
                               rw, can_read=True, can_write=True)

    obj = stix.indicator()
    posted = assert_ok(plain_request("POST", api.objects_url(rw), cert=cert, body={"objects": [obj]}), 202)
    check_status_resource(posted)
    st = assert_ok(plain_request("GET", api.status_url(posted["id"]), cert=cert))
    deadline = time.monotonic() + 30
    while st["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
        st = assert_ok(plain_request("GET", api.status_url(posted["id"]), cert=cert))
    check_status_resource(st)
    assert (st["status"], st["success_count"], st["failure_count"]) == ("complete", 1, 0), st
    got = assert_ok(plain_request("GET", api.objects_url(rw), cert=cert, params={"match[id]": obj["id"]}))
    check_paging(got)
    assert got.get("objects") == [obj]
    one = assert_ok(plain_request("GET", api.object_url(rw, obj["id"]), cert=cert))
    assert one.get("objects") == [obj]
    # the same collection as everybody else's: the writer (HTTP Basic) reads it too
    assert ids_of(assert_ok(api.get(api.objects_url(rw), params={"match[id]": obj["id"]}))) == [obj["id"]]


def test_interop_3_1_3_client_certificate_with_taxii2client(api, rw, certholder):
    """3.1.3 Certificate-based authentication with the OASIS client: taxii2-client's
    `Server(discovery_url, cert=(crt, key))`, without user or password, lists the API root and
    the read-write collection (can_read, can_write), adds objects and pages them with as_pages."""
    server = Server(api.discovery_url, cert=certholder.client_cert)
    try:
        assert server.title
        roots = {resolve(api.discovery_url, r.url): r for r in server.api_roots}
        assert api.root_url in roots, list(roots)
        root = roots[api.root_url]
        assert root.title and root.versions and root.max_content_length
        colls = {c.id: c for c in root.collections}
        assert rw in colls, list(colls)
        coll = colls[rw]
        assert coll.can_read and coll.can_write
        objs = stix.mixed_batch(5)
        status = coll.add_objects({"objects": objs}, poll_interval=1, timeout=20)
        assert status.status == "complete"
        assert status.success_count == 5 and status.failure_count == 0
        ids = [o["id"] for o in objs]
        pages = list(as_pages(coll.get_objects, per_request=2, id=ids))
        got = [o["id"] for p in pages for o in p.get("objects", [])]
        assert sorted(got) == sorted(ids) and len(got) == len(set(got))
        assert len(pages) == 3
        manifest = [r["id"] for p in as_pages(coll.get_manifest, per_request=2, id=ids)
                    for r in p.get("objects", [])]
        assert sorted(manifest) == sorted(ids)
    finally:
        server.close()


OTHER_PARTNER = {"writer-basic": "writer", "keyholder-bearer": "partner", "keyholder-basic": "partner_basic"}


@pytest.mark.parametrize("role", list(OTHER_PARTNER.values()), ids=list(OTHER_PARTNER))
def test_interop_3_1_3_certificate_with_other_partners_credentials_is_401(api, rw, certholder, role):
    """3.1.3 Certificate-based authentication: the certholder partner's client certificate
    together with valid credentials of another partner (the writer's HTTP Basic password, the
    API-key partner's key) is refused with 401 and a TAXII error resource on every endpoint;
    neither identity is used, so nothing is served or stored."""
    require_role(api, role)
    cert, auth = certholder.client_cert, api.auth_for(role)
    hidden = api.coll["hidden"]  # the writer's alone: the certificate must not open it either
    for url in (api.discovery_url, api.root_url, api.collections_url, api.coll_url(rw),
                api.objects_url(rw), api.objects_url(hidden), api.manifest_url(hidden)):
        r = plain_request("GET", url, cert=cert, auth=auth)
        assert_error(r, 401, what=f"GET {url}: ")
        assert r.headers.get("WWW-Authenticate"), f"401 without WWW-Authenticate: {url}"
    obj = stix.indicator()
    r = plain_request("POST", api.objects_url(rw), cert=cert, auth=auth, body={"objects": [obj]})
    assert_error(r, 401, what="POST: ")
    assert assert_ok(api.get(api.objects_url(rw), params={"match[id]": obj["id"]})).get("objects") is None, \
        "a POST refused with 401 stored its object"
    # each credential alone works
    assert_ok(plain_request("GET", api.collections_url, cert=cert))
    assert_ok(plain_request("GET", api.collections_url, auth=auth))


def test_interop_3_1_3_no_certificate_no_credentials_is_401(api, rw, certholder):
    """3.1.3 Certificate-based authentication: on the server that asks for client certificates,
    a request with neither a certificate nor an Authorization header is refused with 401, a
    `WWW-Authenticate` challenge and a TAXII error resource (reading and writing)."""
    for url in (api.discovery_url, api.root_url, api.collections_url, api.coll_url(rw),
                api.objects_url(rw), api.manifest_url(rw)):
        r = plain_request("GET", url)
        assert_error(r, 401, what=f"GET {url}: ")
        assert r.headers.get("WWW-Authenticate"), f"401 without WWW-Authenticate: {url}"
    obj = stix.indicator()
    r = plain_request("POST", api.objects_url(rw), body={"objects": [obj]})
    assert_error(r, 401, what="POST: ")
    assert r.headers.get("WWW-Authenticate")
    assert assert_ok(api.get(api.objects_url(rw), params={"match[id]": obj["id"]})).get("objects") is None, \
        "a POST refused with 401 stored its object"


def test_interop_3_1_4_http_basic_authentication(api, rw):
    """3.1.4 HTTP Basic authentication: a hand-built `Authorization: Basic base64(user:password)`
    header is accepted on the discovery, API root, collections and objects endpoints."""
    c = api.profile.credentials["writer"]
    header = {"Authorization": "Basic " + base64.b64encode(f"{c.user}:{c.password}".encode()).decode()}
    assert_ok(api.get(api.discovery_url, role=None, headers=header))
    assert_ok(api.get(api.root_url, role=None, headers=header))
    body = assert_ok(api.get(api.collections_url, role=None, headers=header))
    assert rw in [x["id"] for x in body.get("collections", [])], "Basic-authenticated writer misses a collection"
    obj = stix.indicator()
    api.add(rw, [obj])
    got = assert_ok(api.get(api.objects_url(rw), role=None, headers=header, params={"match[id]": obj["id"]}))
    assert got.get("objects") == [obj]


# ---- 3.5.1 collection resources -----------------------------------------------------------------

def test_interop_3_5_1_1_write_only_collection_resource(api):
    """3.5.1.1 Write-only Collection resource: the write-only partner's view of the collection
    (Get a Collection and Get Collections) says can_read false, can_write true."""
    require_role(api, "writeonly")
    wo = api.coll["write_only"]
    one = assert_ok(api.get(api.coll_url(wo), role="writeonly"))
    assert_collection_resource(one, wo, can_read=False, can_write=True)
    listing = collection_listing(api, "writeonly")
    assert listing is not None and wo in listing, "write-only collection not listed to its writer"
    assert_collection_resource(listing[wo], wo, can_read=False, can_write=True)


def test_interop_3_5_1_2_read_write_collection_resource(api, rw):
    """3.5.1.2 Read-write Collection resource: can_read true, can_write true for a partner with
    both rights (Get a Collection and Get Collections)."""
    one = assert_ok(api.get(api.coll_url(rw)))
    assert_collection_resource(one, rw, can_read=True, can_write=True)
    listing = collection_listing(api, "writer")
    assert listing is not None and rw in listing
    assert_collection_resource(listing[rw], rw, can_read=True, can_write=True)


def test_interop_3_5_1_3_read_only_collection_resource(api):
    """3.5.1.3 Read-only Collection resource: the reader's view of the read-only collection says
    can_read true, can_write false (Get a Collection and Get Collections)."""
    ro = api.coll["read_only"]
    one = assert_ok(api.get(api.coll_url(ro), role="reader"))
    assert_collection_resource(one, ro, can_read=True, can_write=False)
    listing = collection_listing(api, "reader")
    assert listing is not None and ro in listing, "read-only collection not listed to its reader"
    assert_collection_resource(listing[ro], ro, can_read=True, can_write=False)


NO_RIGHTS = [("reader", "hidden"), ("reader", "write_only"), ("outsider", "read_write"),
             ("writeonly", "read_write")]


@pytest.mark.parametrize("role,coll_key", NO_RIGHTS, ids=[f"{r}-{k}" for r, k in NO_RIGHTS])
def test_interop_3_5_1_4_no_read_no_write_collection_resource(api, role, coll_key):
    """3.5.1.4 No-read-no-write Collection resource: a collection the caller may neither read nor
    write is either shown with can_read false and can_write false, or hidden: 404 on Get a
    Collection and absent from Get Collections (Concordia hides it, like an unknown collection)."""
    require_role(api, role)
    cid = api.coll[coll_key]
    r = api.get(api.coll_url(cid), role=role)
    if r.status_code == 404:
        assert_error(r, 404)
    else:
        assert_collection_resource(assert_ok(r), cid, can_read=False, can_write=False)
    listing = collection_listing(api, role)
    if listing is not None and cid in listing:
        assert r.status_code == 200, "collection listed but Get a Collection answers 404"
        assert_collection_resource(listing[cid], cid, can_read=False, can_write=False)


# ---- 3.5.2 refused operations -------------------------------------------------------------------

READ_ONLY_OR_WRITE_ONLY = [("reader", "read_only"), ("reader", "read_write"), ("writeonly", "write_only")]


@pytest.mark.parametrize("role,coll_key", READ_ONLY_OR_WRITE_ONLY,
                         ids=[f"{r}-{k}" for r, k in READ_ONLY_OR_WRITE_ONLY])
def test_interop_3_5_2_3_delete_on_read_only_or_write_only_is_403(api, role, coll_key):
    """3.5.2.3 Delete request to a read-only or write-only collection: 403 (TAXII §5.7), and the
    object stays."""
    require_role(api, role)
    oid, stored = seed(api, coll_key)
    r = api.delete(api.object_url(api.coll[coll_key], oid), role=role)
    assert_error(r, 403)
    if stored:
        assert writer_sees(api, coll_key, oid) in (None, [oid]), "a refused DELETE removed the object"


@pytest.mark.parametrize("role,coll_key", NO_RIGHTS, ids=[f"{r}-{k}" for r, k in NO_RIGHTS])
def test_interop_3_5_2_4_delete_on_no_read_no_write_is_404(api, role, coll_key):
    """3.5.2.4 Delete request to a no-read-no-write collection: 404 (TAXII §5.7), also for an
    object that exists there, and the object stays."""
    require_role(api, role)
    oid, stored = seed(api, coll_key)
    r = api.delete(api.object_url(api.coll[coll_key], oid), role=role)
    assert_error(r, 404)
    if stored:
        assert writer_sees(api, coll_key, oid) in (None, [oid]), "a refused DELETE removed the object"


@pytest.mark.parametrize("what", ["collection", "objects", "manifest", "object", "versions", "post", "delete"])
def test_interop_3_5_3_incorrect_collection_is_404(api, what):
    """3.5.3 Incorrect Collection information: every collection endpoint answers 404 for a
    collection id that does not exist."""
    unknown, oid = random_uuid(), stix.sid("indicator")
    if what == "post":
        r = api.post(api.objects_url(unknown), body={"objects": [stix.indicator()]})
    elif what == "delete":
        r = api.delete(api.object_url(unknown, oid))
    else:
        url = {"collection": api.coll_url(unknown), "objects": api.objects_url(unknown),
               "manifest": api.manifest_url(unknown), "object": api.object_url(unknown, oid),
               "versions": api.versions_url(unknown, oid)}[what]
        r = api.get(url)
    assert_error(r, 404)


# ---- 3.6 .. 3.7 manifest and objects ------------------------------------------------------------

def test_interop_3_6_1_get_manifest_resource(api, rw):
    """3.6.1 Get Manifest resource: one manifest-record per object version with id, date_added
    (TAXII timestamp), version and media_type, ascending by date_added, and the
    X-TAXII-Date-Added-First/Last headers of the first and last record."""
    ind = stix.indicator()
    objs = [ind, stix.malware(), stix.new_version(ind, 1, name="manifest v2")]
    for o in objs:
        api.add(rw, [o])
    media_types = assert_ok(api.get(api.coll_url(rw))).get("media_types", ["application/stix+json"])
    r = api.get(api.manifest_url(rw), params={"match[id]": f"{ind['id']},{objs[1]['id']}",
                                              "match[version]": "all"})
    body = assert_ok(r)
    check_paging(body)
    recs = body.get("objects", [])
    assert [(x["id"], x["version"]) for x in recs] == [key(o) for o in objs], \
        "one record per version, ascending by date_added"
    for rec in recs:
        assert TAXII_TS.match(rec.get("date_added", "")), f"date_added {rec.get('date_added')!r} (T-260)"
        if "media_type" in rec:
            assert rec["media_type"] in media_types, (rec["media_type"], media_types)
    dates = [x["date_added"] for x in recs]
    assert dates == sorted(dates)
    assert r.headers.get("X-TAXII-Date-Added-First") == dates[0]
    assert r.headers.get("X-TAXII-Date-Added-Last") == dates[-1]


def test_interop_3_7_1_get_objects_envelope(api, rw):
    """3.7.1 Get Envelope resource (Get Objects): the objects come back verbatim in an envelope
    (not a bundle), ascending by date_added, `more` false or absent, with the
    X-TAXII-Date-Added-First/Last headers."""
    objs = [stix.indicator(), stix.malware(), stix.identity()]
    for o in objs:
        api.add(rw, [o])
    r = api.get(api.objects_url(rw), params={"match[id]": ",".join(o["id"] for o in objs)})
    body = assert_ok(r)
    check_paging(body)
    assert body.get("type") != "bundle" and "spec_version" not in body, "a STIX bundle instead of an envelope"
    assert body.get("objects") == objs
    assert body.get("more", False) is False
    added = date_added_of(api, rw, [o["id"] for o in objs])
    assert r.headers.get("X-TAXII-Date-Added-First") == added[objs[0]["id"]]
    assert r.headers.get("X-TAXII-Date-Added-Last") == added[objs[-1]["id"]]


@pytest.mark.parametrize("endpoint", ["objects", "manifest"])
def test_interop_3_7_2_no_objects_is_empty_envelope(api, endpoint):
    """3.7.2 No objects: a request that selects no object is a 200 with an empty envelope (no
    `objects`, `more` false or absent), not a 404; for a reader of the read-only collection too."""
    cases = [
        ("writer", "read_write", {"added_after": "2999-01-01T00:00:00.000000Z"}),
        ("writer", "read_write", {"match[id]": stix.sid("indicator")}),
        ("reader", "read_only", {"added_after": "2999-01-01T00:00:00.000000Z"}),
    ]
    for role, coll_key, params in cases:
        cid = api.coll[coll_key]
        url = api.objects_url(cid) if endpoint == "objects" else api.manifest_url(cid)
        body = assert_ok(api.get(url, role=role, params=params))
        check_paging(body)
        assert "objects" not in body, f"{role} {coll_key} {params}: {body}"
        assert body.get("more", False) is False, body


# ---- 3.11 status ----------------------------------------------------------------------------------

def test_interop_3_11_2_all_status_properties(api):
    """3.11.2 Get all Status properties: id, status, request_timestamp (when present), the four
    counts, and the successes / failures / pendings lists whose entries carry id, version and
    message; a failure says why. Lists are present when their count is non-zero and absent when
    it is zero (T-067)."""
    cid = api.coll["hidden"]  # holds the invalid object if a lenient server stores it
    good1, good2 = stix.indicator(), stix.malware()
    bad = {**stix.indicator(), "id": stix.sid("malware")}  # id prefix contradicts the type
    posted = assert_ok(api.post(api.objects_url(cid), body={"objects": [good1, bad, good2]}), 202)
    check_status_resource(posted)
    st = assert_ok(api.get(api.status_url(posted["id"])))
    deadline = time.monotonic() + 30
    while st["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
        st = assert_ok(api.get(api.status_url(posted["id"])))
    check_status_resource(st)
    assert st["id"] == posted["id"]
    assert st["status"] == "complete", st
    if "request_timestamp" in st:
        assert TAXII_TS.match(st["request_timestamp"]), st["request_timestamp"]
        assert st["request_timestamp"] == posted.get("request_timestamp", st["request_timestamp"])
    assert (st["total_count"], st["success_count"], st["failure_count"], st["pending_count"]) == (3, 2, 1, 0), st
    assert "successes" in st and "failures" in st, f"status without successes/failures lists: {st}"
    assert "pendings" not in st, "pending_count is 0: pendings must be omitted (T-067)"
    successes = {d["id"]: d for d in st["successes"]}
    assert set(successes) == {good1["id"], good2["id"]}, st["successes"]
    for o in (good1, good2):
        assert successes[o["id"]]["version"] == o["modified"], successes[o["id"]]
        if "message" in successes[o["id"]]:
            assert isinstance(successes[o["id"]]["message"], str)
    (failure,) = st["failures"]
    assert failure["id"] == bad["id"], failure
    assert failure["version"] == bad["modified"], failure
    assert isinstance(failure.get("message"), str) and failure["message"], f"failure without message: {failure}"
    # the POST answer and the status resource agree
    for k in ("total_count", "success_count", "failure_count"):
        assert posted[k] == st[k] or posted["status"] == "pending", (k, posted, st)


# ---- 3.13 filtering -------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["objects", "manifest"])
def test_interop_3_13_1_9_or_and_and_together(api, rw, endpoint):
    """3.13.1.9 Logical OR and AND together: comma-separated values of one match[...] field are
    ORed, different fields are ANDed (match[id] x match[type] x match[version])."""
    ind = stix.indicator()
    ind2 = stix.new_version(ind, 1, name="or-and v2")
    mal, ident, ap = stix.malware(), stix.identity(), stix.attack_pattern()
    api.add(rw, [ind, mal, ident, ap])
    api.add(rw, [ind2])
    url = api.objects_url(rw) if endpoint == "objects" else api.manifest_url(rw)

    def got(*params):
        body = assert_ok(api.get(url, params=list(params)))
        check_paging(body)
        if endpoint == "objects":
            return sorted(key(o) for o in body.get("objects", []))
        return sorted((x["id"], x["version"]) for x in body.get("objects", []))

    ids = ("match[id]", ",".join(o["id"] for o in (ind, mal, ident)))      # ap excluded by id
    types = ("match[type]", "indicator,malware,attack-pattern")           # ident excluded by type
    assert got(ids, types) == sorted([key(ind2), key(mal)])
    assert got(ids, types, ("match[version]", "first,last")) == sorted([key(ind), key(ind2), key(mal)])
    assert got(ids, ("match[type]", "identity,attack-pattern")) == [key(ident)]


DUPLICATES = {
    "match-type": [("match[type]", "indicator"), ("match[type]", "malware")],
    "match-type-same-value": [("match[type]", "indicator"), ("match[type]", "indicator")],
    "match-id": [("match[id]", stix.sid("indicator")), ("match[id]", stix.sid("malware"))],
}


@pytest.mark.parametrize("endpoint", ["objects", "manifest"])
@pytest.mark.parametrize("params", list(DUPLICATES.values()), ids=list(DUPLICATES))
def test_interop_3_13_1_10_duplicate_filter_is_400(api, rw, endpoint, params):
    """3.13.1.10 Duplicate filter parameter: a match[...] parameter given twice is a 400 with an
    error resource (TAXII §3.4: each field at most once)."""
    url = api.objects_url(rw) if endpoint == "objects" else api.manifest_url(rw)
    assert_error(api.get(url, params=params), 400)


# ---- 3.14 pagination ------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["objects", "manifest"])
def test_interop_3_14_1_pagination_limit_more_next(api, rw, endpoint):
    """3.14.1 Pagination with limit, more and next: pages never exceed `limit`, every page but
    the last says more=true with a next, and the walk returns every object exactly once,
    ascending by date_added."""
    objs = stix.mixed_batch(7)
    api.add(rw, objs[:4])
    api.add(rw, objs[4:])
    ids = [o["id"] for o in objs]
    url = api.objects_url(rw) if endpoint == "objects" else api.manifest_url(rw)
    pages = list(api.pages(url, [("match[id]", ",".join(ids))], limit=3))
    for _, body in pages:
        assert len(body.get("objects", [])) <= 3, "more objects than limit (T-205)"
    assert len(pages) >= 3
    assert all(b.get("more") is True for _, b in pages[:-1])
    assert not pages[-1][1].get("more", False)
    got = [o["id"] for _, b in pages for o in b.get("objects", [])]
    assert len(got) == len(set(got)), "an object on two pages"
    assert sorted(got) == sorted(ids)
    added = date_added_of(api, rw, ids)
    assert [added[i] for i in got] == sorted(added[i] for i in got), "not ascending by date_added"


@pytest.mark.parametrize("endpoint", ["versions", "object"])
def test_interop_3_14_1_pagination_by_added_after_header(api, rw, endpoint):
    """3.14.1 Pagination without next: a client pages the versions of one object with `limit`
    and added_after = X-TAXII-Date-Added-Last of the previous page (TAXII §3.5) and gets every
    version exactly once."""
    v1 = stix.indicator()
    versions = [v1] + [stix.new_version(v1, i, description=f"page revision {i}") for i in range(1, 5)]
    for v in versions:  # one request each: distinct date_added
        api.add(rw, [v])
    url = api.versions_url(rw, v1["id"]) if endpoint == "versions" else api.object_url(rw, v1["id"])
    base = [("limit", "2")] + ([("match[version]", "all")] if endpoint == "object" else [])
    seen, after = [], None
    for _ in range(10):
        r = api.get(url, params=base + ([("added_after", after)] if after else []))
        body = assert_ok(r)
        check_paging(body)
        page = body.get("versions") if endpoint == "versions" else \
            [o["modified"] for o in body.get("objects", [])]
        page = page or []
        assert len(page) <= 2, "more versions than limit (T-205)"
        seen.extend(page)
        if not body.get("more", False):
            break
        assert page, "more=true on an empty page"
        after = r.headers.get("X-TAXII-Date-Added-Last")
        assert after and TAXII_TS.match(after), f"X-TAXII-Date-Added-Last {after!r}"
    else:
        raise AssertionError("paging by added_after does not end")
    assert len(seen) == len(set(seen)), f"a version returned twice: {seen}"
    assert sorted(seen) == sorted(v["modified"] for v in versions), f"versions missing: {seen}"


# ---- 3.15 custom properties -----------------------------------------------------------------------

def test_interop_3_15_1_custom_properties_stored_and_served_unchanged(api, rw):
    """3.15.1 Custom properties: x_ properties of every JSON type, on SDOs and an SRO and across
    versions, are stored and served unchanged by Get Objects and Get an Object."""
    custom = dict(x_conformance_score=87, x_conformance_ratio=0.25, x_conformance_flag=False,
                  x_conformance_tags=["alpha", "beta"],
                  x_conformance_nested={"k": [1, "two", {"three": 3.5}], "deep": {"flag": True}},
                  x_conformance_text="Ünïcødé ✓ \"quoted\"", x_conformance_big=9007199254740991)
    ind = stix.indicator(**custom)
    ind2 = stix.new_version(ind, 1, x_conformance_score=91, x_conformance_added_later="yes")
    mal = stix.malware(x_conformance_family_tag="worm-ish")
    rel = stix.relationship(ind, mal, x_conformance_weight=3)
    api.add(rw, [ind, mal, rel])
    api.add(rw, [ind2])
    objs = [ind, mal, rel, ind2]
    body = assert_ok(api.get(api.objects_url(rw), params={"match[id]": ",".join(o["id"] for o in (ind, mal, rel)),
                                                          "match[version]": "all"}))
    got = {key(o): o for o in body.get("objects", [])}
    assert set(got) == {key(o) for o in objs}
    for o in objs:
        assert got[key(o)] == o, f"object changed on the way: {o['id']} {key(o)[1]}"
    one = assert_ok(api.get(api.object_url(rw, ind["id"]), params={"match[version]": "all"}))
    assert one.get("objects") == [ind, ind2]


# ---- the mapping table in README.md -------------------------------------------------------------

MANDATORY_ROWS = [
    "3.1.1", "3.1.2", "3.1.3", "3.1.4", "3.2.1", "3.3.1", "3.3.2", "3.4.1",
    "3.5.1.1", "3.5.1.2", "3.5.1.3", "3.5.1.4", "3.5.2.1", "3.5.2.2", "3.5.2.3", "3.5.2.4", "3.5.3",
    "3.6.1", "3.7.1", "3.7.2", "3.8.1", "3.8.2", "3.9.1", "3.10.1", "3.11.1", "3.11.2", "3.12.1",
    "3.13.1.1", "3.13.1.2", "3.13.1.3", "3.13.1.4", "3.13.1.5", "3.13.1.6", "3.13.1.7", "3.13.1.8",
    "3.13.1.9", "3.13.1.10", "3.14.1", "3.15.1",
]
OPTIONAL_ROWS = ["3.13.2.1", "3.13.2.2", "3.13.2.3", "3.13.2.4", "3.13.2.5"]
TABLE_HEADING = "## OASIS TAXII 2.1 interoperability checklist"
TEST_REF = re.compile(r"`([A-Za-z0-9_]+\.py)::(test_[A-Za-z0-9_]+)(\[[^`\]]*\])?`")

CONFORMANCE = Path(__file__).resolve().parents[1]
TESTS = CONFORMANCE / "tests"


def checklist_table() -> dict[str, tuple[str, str]]:
    """row -> (M/O, tests cell) from the table under TABLE_HEADING in README.md."""
    text = (CONFORMANCE / "README.md").read_text(encoding="utf-8")
    assert TABLE_HEADING in text, f"README.md has no section {TABLE_HEADING!r}"
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not re.fullmatch(r"3(\.\d+)+", cells[0]):
            continue  # header or separator
        assert len(cells) == 4, f"table row needs 4 cells (row | test | M/O | tests): {line!r}"
        assert cells[0] not in rows, f"row {cells[0]} listed twice"
        rows[cells[0]] = (cells[2], cells[3])
    return rows


def test_interop_checklist_table_names_existing_tests():
    """The README mapping is truthful: every checklist row is listed once with its M/O level,
    every mandatory row names at least one test, every named test function exists in
    conformance/tests/, and every test_interop_<row>_* test of this file is named in its row."""
    rows = checklist_table()
    all_rows = set(MANDATORY_ROWS) | set(OPTIONAL_ROWS)
    assert set(rows) == all_rows, (
        f"missing rows: {sorted(all_rows - set(rows))}, unexpected rows: {sorted(set(rows) - all_rows)}")
    sources: dict[str, str] = {}
    for row, (level, cell) in rows.items():
        expected = "M" if row in MANDATORY_ROWS else "O"
        assert level == expected, f"row {row}: level {level!r}, the checklist says {expected}"
        refs = TEST_REF.findall(cell)
        if expected == "M":
            assert refs, f"mandatory row {row} names no test: {cell!r}"
        for file, name, _param in refs:
            path = TESTS / file
            assert path.is_file(), f"row {row}: no test file conformance/tests/{file}"
            src = sources.setdefault(file, path.read_text(encoding="utf-8"))
            assert re.search(rf"^def {re.escape(name)}\(", src, re.M), (
                f"row {row}: conformance/tests/{file} has no test function {name}")
    own = re.findall(r"^def (test_interop_((?:\d+_)+)\w*)\(", Path(__file__).read_text(encoding="utf-8"), re.M)
    for name, digits in own:
        row = digits.strip("_").replace("_", ".")
        assert row in rows, f"{name}: no row {row} in the README table"
        named = [n for f, n, _ in TEST_REF.findall(rows[row][1]) if f == Path(__file__).name]
        assert name in named, f"{name} is not named in README row {row}"
