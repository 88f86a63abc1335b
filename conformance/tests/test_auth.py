"""Authentication (§1.6.9, §8.2.2): T-020..T-024."""

import base64
import re

import pytest

from support import stix
from support.taxii import assert_error, assert_ok, random_uuid, require_role


def endpoints(api):
    rw = api.coll["read_write"]
    oid = stix.sid("indicator")
    return {
        "discovery": api.discovery_url,
        "api-root": api.root_url,
        "collections": api.collections_url,
        "collection": api.coll_url(rw),
        "objects": api.objects_url(rw),
        "manifest": api.manifest_url(rw),
        "object": api.object_url(rw, oid),
        "versions": api.versions_url(rw, oid),
        "status": api.status_url(random_uuid()),
    }


ENDPOINTS = ["discovery", "api-root", "collections", "collection", "objects", "manifest", "object",
             "versions", "status"]


def assert_basic_challenge(r):
    challenge = r.headers.get("WWW-Authenticate", "")
    assert re.match(r"(?i)^\s*basic\b", challenge), (
        f"401 without a Basic challenge: WWW-Authenticate={challenge!r} (T-023)")
    assert re.search(r'(?i)realm\s*=\s*"[^"]*"', challenge), f"challenge without realm: {challenge!r}"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_T023_no_credentials_401_with_basic_challenge(api, endpoint):
    r = api.get(endpoints(api)[endpoint], role=None)
    assert_error(r, 401)
    assert_basic_challenge(r)


def test_T023_post_without_credentials_401(api):
    r = api.post(api.objects_url(api.coll["read_write"]), role=None,
                 body={"objects": [stix.indicator()]})
    assert_error(r, 401)
    assert_basic_challenge(r)


def test_T023_delete_without_credentials_401(api):
    r = api.delete(api.object_url(api.coll["read_write"], stix.sid("indicator")), role=None)
    assert_error(r, 401)
    assert_basic_challenge(r)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("endpoint", ["discovery", "collections", "objects"])
def test_T023_wrong_password_401(api, endpoint):
    user = api.profile.credentials["writer"].user
    r = api.get(endpoints(api)[endpoint], role=None, headers={"Authorization": basic(user, "wrong-" + random_uuid())})
    assert_error(r, 401)
    assert_basic_challenge(r)


def test_T023_unknown_user_401(api):
    r = api.get(api.discovery_url, role=None, headers={"Authorization": basic("nobody-" + random_uuid()[:8], "x")})
    assert_error(r, 401)
    assert_basic_challenge(r)


@pytest.mark.parametrize("header", ["Basic", "Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                                    "Digest username=\"writer\"", "Bearer", ""],
                         ids=["basic-empty", "basic-garbage", "basic-no-colon", "digest", "bearer-empty", "empty"])
def test_T023_malformed_authorization_401(api, header):
    r = api.get(api.discovery_url, role=None, headers={"Authorization": header})
    assert_error(r, 401)


def test_T024_failed_auth_on_collection_endpoints_401_or_404(api):
    for name in ("collections", "collection", "objects", "manifest", "object", "versions"):
        r = api.get(endpoints(api)[name], role=None, headers={"Authorization": basic(api.profile.credentials["writer"].user, "bad")})
        assert_error(r, (401, 404), what=f"{name}: ")


def test_T022_bearer_api_key(api):
    require_role(api, "partner")
    body = assert_ok(api.get(api.collections_url, role="partner"))
    assert api.coll["read_write"] in [c["id"] for c in body.get("collections", [])]
    assert_ok(api.get(api.objects_url(api.coll["read_write"]), role="partner", params={"limit": "1"}))


def test_T022_api_key_as_basic_password(api):
    require_role(api, "partner")
    body = assert_ok(api.get(api.collections_url, role="partner_basic"))
    assert api.coll["read_write"] in [c["id"] for c in body.get("collections", [])]


def test_T022_api_key_partner_can_post(api):
    require_role(api, "partner")
    status = api.add(api.coll["read_write"], [stix.indicator()], role="partner")
    assert status["success_count"] == 1
    assert_ok(api.get(api.status_url(status["id"]), role="partner"))


def test_T022_wrong_bearer_key_401(api):
    r = api.get(api.discovery_url, role=None, headers={"Authorization": "Bearer not-a-key-" + random_uuid()})
    assert_error(r, 401)
    assert "WWW-Authenticate" in r.headers, "401 without WWW-Authenticate (T-023)"


def test_T022_api_key_never_grants_another_partners_rights(api):
    """Basic with another partner's name and the API key: refused, or the key's own partner."""
    require_role(api, "partner")
    key = api.profile.credentials["partner"].api_key
    writer = api.profile.credentials["writer"].user
    r = api.get(api.collections_url, role=None, headers={"Authorization": basic(writer, key)})
    if r.status_code == 401:
        assert_error(r, 401)
        return
    ids = [c["id"] for c in assert_ok(r).get("collections", [])]
    assert api.coll["hidden"] not in ids, "an API key used with the writer's name grants the writer's rights"


def test_T022_password_is_not_a_bearer_token(api):
    pw = api.profile.credentials["writer"].password
    r = api.get(api.discovery_url, role=None, headers={"Authorization": f"Bearer {pw}"})
    assert_error(r, 401)
