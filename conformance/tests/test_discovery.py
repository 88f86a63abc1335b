"""Server Discovery (§4.1) and API Root (§4.2): T-080..T-096."""

import re
import uuid
from urllib.parse import urlparse

import pytest

from support.taxii import TAXII21, assert_error, assert_ok, resolve


@pytest.fixture(scope="module")
def discovery(api):
    return assert_ok(api.get(api.discovery_url))


@pytest.fixture(scope="module")
def api_root(api):
    return assert_ok(api.get(api.root_url))


def test_T080_discovery_ok(api, discovery):
    assert isinstance(discovery.get("title"), str) and discovery["title"]


def test_T081_discovery_field_types(discovery):
    for key in ("description", "contact", "default"):
        if key in discovery:
            assert isinstance(discovery[key], str), f"{key} must be a string"
    if "api_roots" in discovery:
        roots = discovery["api_roots"]
        assert isinstance(roots, list) and roots, "api_roots present but empty (T-067)"
        assert all(isinstance(u, str) for u in roots)


def test_T082_default_is_one_of_api_roots(discovery):
    if "default" not in discovery:
        pytest.skip("no default API root")
    assert discovery["default"] in discovery.get("api_roots", []), "default not listed in api_roots"


def test_T083_api_root_urls_are_https_or_slash_relative(api, discovery):
    """Absolute URLs are https; a server tested over plain HTTP (loopback) may name http."""
    served_over = urlparse(api.discovery_url).scheme
    for url in discovery.get("api_roots", []) + ([discovery["default"]] if "default" in discovery else []):
        if url.startswith("/"):
            assert not url.startswith("//"), f"{url!r}: network-path reference"
            assert "/../" not in url and not url.startswith("/.."), url
        else:
            scheme = urlparse(url).scheme
            allowed = ("https",) if served_over == "https" else ("https", "http")
            assert scheme in allowed, f"{url!r}: neither https nor '/'-relative (discovery served over {served_over})"
        assert "?" not in url, f"{url!r}: query string"


def test_T083_absolute_urls_name_the_server_as_the_client_reached_it(api, discovery):
    """Design decision (public_url): absolute URLs in discovery name the host, port and scheme
    the client used (behind a TLS proxy: the proxy's), not the address the server listens on."""
    for url in discovery.get("api_roots", []):
        if url.startswith("/"):
            continue
        assert urlparse(url).netloc == urlparse(api.discovery_url).netloc, (
            f"{url!r} names another host than {api.discovery_url!r}: set public_url")


def test_T084_discovery_lists_api_root_to_writer(api, discovery):
    roots = [resolve(api.discovery_url, u) for u in discovery.get("api_roots", [])]
    assert api.root_url in roots, f"{api.root_url} not in {roots}"


def test_T084_discovery_hides_api_root_from_outsider(api):
    body = assert_ok(api.get(api.discovery_url, role="outsider"))
    roots = body.get("api_roots")
    if roots is not None:
        assert roots, "api_roots present but empty: omit the key (T-067)"
        resolved = [resolve(api.discovery_url, u) for u in roots]
        assert api.root_url not in resolved, "API root listed to a partner without any collection"
    assert body.get("default") in (None, *(roots or [])), "default names an API root not listed"


def test_T084_discovery_lists_api_root_to_api_key_partner(api):
    body = assert_ok(api.get(api.discovery_url, role="partner"))
    roots = [resolve(api.discovery_url, u) for u in body.get("api_roots", [])]
    assert api.root_url in roots


def test_T091_api_root_ok(api_root):
    assert isinstance(api_root.get("title"), str) and api_root["title"]


def test_T092_api_root_fields(api_root):
    if "description" in api_root:
        assert isinstance(api_root["description"], str)
    assert isinstance(api_root.get("versions"), list) and api_root["versions"]
    assert all(isinstance(v, str) for v in api_root["versions"])
    mcl = api_root.get("max_content_length")
    assert isinstance(mcl, int) and not isinstance(mcl, bool), f"max_content_length {mcl!r}"


def test_T093_api_root_versions_list_taxii21(api_root):
    versions = api_root["versions"]
    assert TAXII21 in versions, versions
    for v in versions:
        assert re.fullmatch(r"application/taxii\+json;version=\d+\.\d+", v), f"{v!r} (T-093)"


def test_T094_max_content_length_positive(api_root):
    mcl = api_root["max_content_length"]
    assert 0 < mcl < 2**53


def test_T096_unknown_api_root_404(api):
    assert_error(api.get(f"{api.base_url}/no-such-root-{uuid.uuid4().hex[:8]}/"), 404)


def test_T096_api_root_of_outsider_not_readable(api):
    """A partner without collections gets either the API root or a 404 (never 403/500)."""
    r = api.get(api.root_url, role="outsider")
    if r.status_code == 200:
        assert_ok(r)
    else:
        assert_error(r, 404)


def test_T010_request_without_user_agent_served(api):
    r = api.get(api.discovery_url, headers={"User-Agent": None})
    assert_ok(r)
