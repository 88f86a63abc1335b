"""Media types and content negotiation (§1.6.8, §3.1): T-040..T-049, T-042 on every endpoint."""

import json

import pytest

from support import stix
from support.taxii import TAXII21, assert_error, assert_ok, assert_taxii_content_type


def get_urls(api):
    rw = api.coll["read_write"]
    return [api.discovery_url, api.root_url, api.collections_url, api.coll_url(rw),
            api.objects_url(rw), api.manifest_url(rw)]


ACCEPT_SERVED = {  # T-044: TAXII media type in any legal spelling
    "exact": "application/taxii+json;version=2.1",
    "space-before-param": "application/taxii+json; version=2.1",
    "spaces-around": "application/taxii+json ; version=2.1",
    "no-version": "application/taxii+json",
    "q-value": "application/taxii+json;version=2.1;q=0.9",
    "list-json-first": "application/json;q=0.5, application/taxii+json;version=2.1",
    "list-no-spaces": "text/html,application/taxii+json",
    "list-stix-too": "application/taxii+json;version=2.1,application/stix+json;version=2.1",
    "list-20-and-21": "application/vnd.oasis.taxii+json; version=2.0, application/taxii+json; version=2.1",
}

ACCEPT_POLICY_SERVED = {  # T-045: MAY; Concordia serves these as TAXII 2.1
    "star-star": "*/*",
    "application-star": "application/*",
    "missing": None,
}

ACCEPT_REFUSED = {  # T-045: only undefined / other versions -> 406
    "taxii20-vnd": "application/vnd.oasis.taxii+json; version=2.0",
    "taxii-2.0": "application/taxii+json;version=2.0",
    "taxii-3.0": "application/taxii+json;version=3.0",
    "json-only": "application/json",
}


@pytest.mark.parametrize("accept", list(ACCEPT_SERVED.values()), ids=list(ACCEPT_SERVED))
def test_T044_accept_taxii_served(api, accept):
    for url in get_urls(api):
        assert_ok(api.get(url, accept=accept))


@pytest.mark.parametrize("accept", list(ACCEPT_POLICY_SERVED.values()), ids=list(ACCEPT_POLICY_SERVED))
def test_T045_accept_wildcard_or_missing_served(api, accept):
    for url in get_urls(api):
        assert_ok(api.get(url, accept=accept))


@pytest.mark.parametrize("accept", list(ACCEPT_REFUSED.values()), ids=list(ACCEPT_REFUSED))
def test_T045_accept_other_version_406(api, accept):
    for url in get_urls(api):
        assert_error(api.get(url, accept=accept), 406)


def test_T049_manifest_accept_with_stix_media_type(api):
    accept = "application/taxii+json;version=2.1,application/stix+json;version=2.1"
    assert_ok(api.get(api.manifest_url(api.coll["read_write"]), accept=accept))


def test_T158_post_with_taxii20_accept_406(api):
    r = api.post(api.objects_url(api.coll["read_write"]), accept="application/vnd.oasis.taxii+json; version=2.0",
                 body={"objects": [stix.indicator()]})
    assert_error(r, 406)


CT_ACCEPTED = {
    "exact": "application/taxii+json;version=2.1",
    "space": "application/taxii+json; version=2.1",
    "no-version": "application/taxii+json",
    "charset": "application/taxii+json;version=2.1;charset=utf-8",
    "charset-no-version": "application/taxii+json; charset=UTF-8",
}

CT_REFUSED = {
    "json": "application/json",
    "stix21": "application/stix+json;version=2.1",
    "text": "text/plain",
    "taxii-2.0": "application/taxii+json;version=2.0",
    "taxii20-vnd": "application/vnd.oasis.taxii+json; version=2.0",
    "form": "application/x-www-form-urlencoded",
    "missing": None,
}


@pytest.mark.parametrize("ctype", list(CT_ACCEPTED.values()), ids=list(CT_ACCEPTED))
def test_T046_post_content_type_accepted(api, ctype):
    obj = stix.indicator()
    r = api.post(api.objects_url(api.coll["read_write"]), data=json.dumps({"objects": [obj]}).encode(),
                 content_type=ctype)
    st = assert_ok(r, 202)
    assert st["success_count"] == 1


@pytest.mark.parametrize("ctype", list(CT_REFUSED.values()), ids=list(CT_REFUSED))
def test_T047_post_wrong_content_type_415(api, ctype):
    obj = stix.indicator()
    r = api.post(api.objects_url(api.coll["read_write"]), data=json.dumps({"objects": [obj]}).encode(),
                 content_type=ctype)
    assert_error(r, 415)
    got = assert_ok(api.get(api.objects_url(api.coll["read_write"]), params={"match[id]": obj["id"]}))
    assert "objects" not in got, "object stored although the request was refused"


def test_T042_content_type_on_every_success(api):
    rw = api.coll["read_write"]
    obj = stix.indicator()
    r = api.post(api.objects_url(rw), body={"objects": [obj]})
    st = assert_ok(r, 202)
    oid = obj["id"]
    for url in get_urls(api) + [api.object_url(rw, oid), api.versions_url(rw, oid), api.status_url(st["id"])]:
        assert_ok(api.get(url))
    r = api.delete(api.object_url(rw, oid))
    assert r.status_code == 200, r.text
    assert_taxii_content_type(r)


def test_T180_delete_has_no_payload(api):
    rw = api.coll["read_write"]
    obj = stix.indicator()
    api.add(rw, [obj])
    r = api.delete(api.object_url(rw, obj["id"]))
    assert r.status_code == 200, r.text
    assert_taxii_content_type(r)
    assert r.content.strip() in (b"", b"{}"), f"DELETE returned a payload: {r.content[:200]!r}"


def test_T041_no_version_answered_as_21(api):
    r = api.get(api.discovery_url, accept="application/taxii+json")
    assert_ok(r)
    assert r.headers["Content-Type"].replace(" ", "") == TAXII21
