"""pytest configuration of the TAXII 2.1 conformance suite.

The server under test is described by a profile (TOML), given with `--profile FILE` or the
CONFORMANCE_PROFILE environment variable. Its `[expected_failures]` table maps test names
(`test_x` or `test_x[param]`) to a reason; those tests are marked xfail(strict=True), so a
listed test that starts passing fails the run as XPASS(strict).
"""

from __future__ import annotations

import os

import pytest

from support.profile import ProfileError, load_profile
from support.taxii import Api

_unused_xfails: list[str] = []


def pytest_addoption(parser):
    parser.addoption("--profile", default=os.environ.get("CONFORMANCE_PROFILE"),
                     help="conformance profile (TOML) of the server under test")


def pytest_configure(config):
    path = config.getoption("--profile")
    if not path:
        raise pytest.UsageError("no profile: pass --profile FILE or set CONFORMANCE_PROFILE")
    try:
        config._conformance_profile = load_profile(path)
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from exc


def pytest_report_header(config):
    p = config._conformance_profile
    return [f"conformance profile: {p.name} ({p.source})",
            f"server: {p.base_url}  discovery: {p.discovery_path}  api root: {p.api_root_path}",
            f"expected failures listed: {len(p.expected_failures)}"]


def pytest_collection_modifyitems(config, items):
    xfails = config._conformance_profile.expected_failures
    used = set()
    for item in items:
        key = item.name if item.name in xfails else getattr(item, "originalname", item.name)
        reason = xfails.get(key)
        if reason is not None:
            used.add(key)
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
    tests_dir = os.path.join(str(config.rootpath), "tests")
    full_run = (not config.option.keyword and not config.option.markexpr
                and all(os.path.abspath(a) in (tests_dir, str(config.rootpath)) for a in config.args))
    if full_run:
        _unused_xfails.extend(sorted(set(xfails) - used))


def pytest_terminal_summary(terminalreporter):
    if _unused_xfails:
        terminalreporter.section("profile: expected failures naming no collected test")
        for name in _unused_xfails:
            terminalreporter.write_line(f"  {name}")


@pytest.fixture(scope="session")
def profile(pytestconfig):
    return pytestconfig._conformance_profile


@pytest.fixture(scope="session")
def api(profile):
    return Api(profile)


@pytest.fixture(scope="session")
def rw(api):
    return api.coll["read_write"]
