"""HTTP access to the server under test and the assertions shared by all tests."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urljoin

import requests
from requests.auth import HTTPBasicAuth

from .profile import Profile

TAXII21 = "application/taxii+json;version=2.1"
STIX21 = "application/stix+json;version=2.1"
STIX20 = "application/stix+json;version=2.0"
# TAXII timestamp (T-260): RFC 3339, UTC, exactly six fractional digits, literal Z.
TAXII_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PROPERTY_NAME = re.compile(r"^[a-z0-9_]+$")
TIMEOUT = 30
MAX_PAGES = 500

_DEFAULT = object()


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str):
        self.token = token

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class Api:
    """Thin wrapper around requests with one session per role.

    Roles: writer, reader, outsider, writeonly (HTTP Basic), partner (API key as Bearer),
    partner_basic (API key as Basic password), certholder (TLS client certificate, no
    Authorization header), None (no Authorization header, no certificate). A role whose
    credential has `cert`/`key` presents that client certificate.
    """

    def __init__(self, profile: Profile):
        self.profile = profile
        self.base_url = profile.base_url
        self.discovery_url = profile.base_url + profile.discovery_path
        self.root_url = profile.base_url + profile.api_root_path
        self.collections_url = self.root_url + "collections/"
        self.coll = profile.collections
        self._sessions: dict = {}

    # ---- auth -------------------------------------------------------------------------------
    def has_role(self, role: str) -> bool:
        base = "partner" if role == "partner_basic" else role
        return base in self.profile.credentials

    def auth_for(self, role):
        if role is None:
            return None
        creds = self.profile.credentials
        if role == "partner":
            return BearerAuth(creds["partner"].api_key)
        if role == "partner_basic":
            c = creds["partner"]
            return HTTPBasicAuth(c.user, c.api_key)
        c = creds[role]
        if c.password is None:
            return None  # a client certificate alone (certholder)
        return HTTPBasicAuth(c.user, c.password)

    def cert_for(self, role) -> tuple[str, str] | None:
        """The (cert, key) client certificate the role presents, or None."""
        if role is None:
            return None
        c = self.profile.credentials.get("partner" if role == "partner_basic" else role)
        return c.client_cert if c else None

    def session(self, role) -> requests.Session:
        if role not in self._sessions:
            s = requests.Session()
            s.auth = self.auth_for(role)
            s.cert = self.cert_for(role)
            s.headers["User-Agent"] = "concordia-conformance/1.0"
            self._sessions[role] = s
        return self._sessions[role]

    # ---- URLs -------------------------------------------------------------------------------
    def coll_url(self, cid: str) -> str:
        return f"{self.collections_url}{cid}/"

    def objects_url(self, cid: str) -> str:
        return f"{self.coll_url(cid)}objects/"

    def manifest_url(self, cid: str) -> str:
        return f"{self.coll_url(cid)}manifest/"

    def object_url(self, cid: str, oid: str) -> str:
        return f"{self.objects_url(cid)}{oid}/"

    def versions_url(self, cid: str, oid: str) -> str:
        return f"{self.object_url(cid, oid)}versions/"

    def status_url(self, sid: str) -> str:
        return f"{self.root_url}status/{sid}/"

    # ---- requests ---------------------------------------------------------------------------
    def request(self, method, url, role="writer", accept=_DEFAULT, headers=None, params=None,
                body=None, data=None, content_type=_DEFAULT, auth=_DEFAULT, **kw):
        h = {}
        if accept is _DEFAULT:
            h["Accept"] = TAXII21
        elif accept is not None:
            h["Accept"] = accept
        if body is not None or data is not None:
            if body is not None:
                data = json.dumps(body).encode("utf-8")
            if content_type is _DEFAULT:
                h["Content-Type"] = TAXII21
            elif content_type is not None:
                h["Content-Type"] = content_type
        if headers:
            h.update(headers)
        s = self.session(role)
        # requests adds "Accept: */*" and friends unless told not to: None removes a header.
        for name in ("Accept", "Content-Type"):
            h.setdefault(name, None)
        extra = {}
        if auth is not _DEFAULT:
            extra["auth"] = auth
        return s.request(method, url, headers=h, params=params, data=data, timeout=TIMEOUT,
                         allow_redirects=False, **extra, **kw)

    def get(self, url, role="writer", **kw):
        return self.request("GET", url, role=role, **kw)

    def delete(self, url, role="writer", **kw):
        return self.request("DELETE", url, role=role, **kw)

    def post(self, url, role="writer", **kw):
        return self.request("POST", url, role=role, **kw)

    # ---- higher level -----------------------------------------------------------------------
    def add(self, cid: str, objects: list, role="writer") -> dict:
        """POST an envelope; asserts 202 and a consistent status; returns the status."""
        r = self.post(self.objects_url(cid), role=role, body={"objects": objects})
        status = assert_ok(r, 202)
        check_status_resource(status)
        return status

    def manifest_records(self, cid: str, ids: list[str], role="writer", extra=()) -> list[dict]:
        """Every manifest record (all versions, all spec versions) of the given ids."""
        out = []
        for chunk in _chunks(ids, 40):
            params = [("match[id]", ",".join(chunk)), ("match[version]", "all"),
                      ("match[spec_version]", "2.0,2.1"), *extra]
            for _, body in self.pages(self.manifest_url(cid), params, role=role):
                out.extend(body.get("objects", []))
        return out

    def pages(self, url, params=(), role="writer", limit=None, max_pages=MAX_PAGES):
        """Walk a paged resource with `next` (resending the original filters, T-208).

        Yields (response, body); asserts the paging invariants on every page.
        """
        base = list(params)
        if limit is not None:
            base.append(("limit", str(limit)))
        p = base
        for _ in range(max_pages):
            r = self.get(url, role=role, params=p)
            body = assert_ok(r)
            check_paging(body)
            yield r, body
            if not body.get("more", False):
                return
            p = base + [("next", body["next"])]
        raise AssertionError(f"more than {max_pages} pages from {url}: endless paging?")


def _chunks(seq, n):
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def require_role(api: Api, role: str):
    import pytest
    if not api.has_role(role):
        pytest.skip(f"profile has no credentials for role {role!r}")


def random_uuid() -> str:
    return str(uuid.uuid4())


# ---- assertions ---------------------------------------------------------------------------------

def norm_media_type(value: str | None) -> str:
    return (value or "").replace(" ", "").replace("\t", "").lower()


def assert_taxii_content_type(r: requests.Response):
    ct = r.headers.get("Content-Type")
    assert norm_media_type(ct) == TAXII21, (
        f"{r.request.method} {r.url} -> {r.status_code}: Content-Type {ct!r}, "
        f"expected {TAXII21!r} (T-042)")


def describe(r: requests.Response) -> str:
    text = r.text if len(r.text) < 600 else r.text[:600] + "..."
    return f"{r.request.method} {r.url} -> {r.status_code} {text!r}"


def json_body(r: requests.Response):
    try:
        return r.json()
    except ValueError:
        raise AssertionError(f"body is not JSON: {describe(r)}") from None


def assert_ok(r: requests.Response, status: int = 200):
    """Asserts a success status, the TAXII Content-Type and a JSON object body."""
    assert r.status_code == status, f"expected {status}: {describe(r)}"
    assert_taxii_content_type(r)
    body = json_body(r)
    assert isinstance(body, dict), f"body is not a JSON object: {describe(r)}"
    check_property_names(body)
    return body


def assert_error(r: requests.Response, status, what: str = ""):
    """Asserts an error status (int or tuple of ints) carrying a TAXII error resource."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert r.status_code in allowed, f"{what}expected {'/'.join(map(str, allowed))}: {describe(r)}"
    assert_taxii_content_type(r)
    body = json_body(r)
    assert isinstance(body, dict), f"error body is not a JSON object (T-251): {describe(r)}"
    assert isinstance(body.get("title"), str) and body["title"], f"error without title (T-251): {describe(r)}"
    if "http_status" in body:
        assert body["http_status"] == str(r.status_code), (
            f"http_status {body['http_status']!r} != {r.status_code} (T-252)")
    for key in ("description", "error_id", "error_code", "external_details"):
        if key in body:
            assert isinstance(body[key], str), f"error.{key} must be a string (T-251)"
    if "details" in body:
        assert isinstance(body["details"], dict), "error.details must be a dictionary (T-251)"
    return body


def check_property_names(body: dict):
    for key in body:
        assert PROPERTY_NAME.match(key), f"property name {key!r} is not snake_case (T-065)"


def check_paging(body: dict):
    """Envelope / manifest / versions paging invariants (T-067, T-232, T-241)."""
    more = body.get("more", False)
    assert isinstance(more, bool), f"more must be a boolean: {body.get('more')!r} (T-068)"
    if more:
        assert isinstance(body.get("next"), str) and body["next"], (
            "more=true without a usable next: taxii2-client loops forever (T-232, §4.1 item 10)")
    if "next" in body:
        assert isinstance(body["next"], str), "next must be a string (T-241)"
    for key in ("objects", "versions"):
        if key in body:
            assert isinstance(body[key], list) and body[key], f"{key} present but empty/not a list (T-067)"


def check_status_resource(st: dict):
    """Status resource shape (T-103, T-105, T-106), as taxii2-client validates it."""
    assert UUID4.match(str(st.get("id", ""))), f"status id {st.get('id')!r} is not a UUIDv4 (T-070)"
    assert st.get("status") in ("complete", "pending"), f"bad status value {st.get('status')!r}"
    for key in ("total_count", "success_count", "failure_count", "pending_count"):
        assert isinstance(st.get(key), int) and not isinstance(st[key], bool) and st[key] >= 0, (
            f"status.{key} missing or not a non-negative integer: {st.get(key)!r} (T-103)")
    assert st["success_count"] + st["failure_count"] + st["pending_count"] == st["total_count"], (
        f"counts do not add up: {st} (T-105)")
    if "request_timestamp" in st:
        assert TAXII_TS.match(st["request_timestamp"]), (
            f"request_timestamp {st['request_timestamp']!r} not a TAXII timestamp (T-260)")
    for key, count in (("successes", "success_count"), ("failures", "failure_count"),
                       ("pendings", "pending_count")):
        if key in st:
            assert isinstance(st[key], list) and st[key], f"status.{key} present but empty (T-067)"
            assert len(st[key]) == st[count], f"len({key}) != {count}: {st} (T-105)"
            for d in st[key]:
                assert isinstance(d.get("id"), str), f"status-details without id: {d} (T-106)"
                assert isinstance(d.get("version"), str), f"status-details without version: {d} (T-106)"
                if "message" in d:
                    assert isinstance(d["message"], str)
        else:
            # taxii2-client tolerates missing lists; counts are authoritative.
            pass


def resolve(base: str, ref: str) -> str:
    u = urljoin(base, ref)
    return u if u.endswith("/") else u + "/"


def ids_of(body: dict) -> list[str]:
    return [o["id"] for o in body.get("objects", [])]


def versions_of(objs: list[dict]) -> list[str]:
    return [o.get("modified", o.get("created")) for o in objs]
