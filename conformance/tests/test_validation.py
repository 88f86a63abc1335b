"""STIX 2.1 validation on Add Objects and per-collection sharing policy refusals (T-157, T-159).

Each invalid object is a failure of its own in the status resource, whose message names the
property and the rule broken; valid objects of the same envelope are stored. Policy tests need
the optional profile collection `tlp_ceiling_amber` (at most TLP:AMBER, every object TLP-marked,
no custom object types) and are skipped without it.
"""

import json

import pytest

from support import stix
from support.taxii import assert_ok, check_status_resource

TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
TLP_RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
TLP2_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"


def _post(api, cid, objs):
    st = assert_ok(api.post(api.objects_url(cid), body={"objects": objs}), 202)
    check_status_resource(st)
    return st


def _failures(st):
    return {f["id"]: f.get("message", "") for f in st.get("failures", [])}


@pytest.fixture(scope="module")
def invalid_batch(api):
    good = stix.indicator()
    backwards = stix.indicator()
    backwards["modified"] = "2000-01-01T00:00:00.000Z"  # before created
    bad_pattern = stix.indicator(pattern="[ipv4-addr:value = '198.51.100.1'")
    too_confident = stix.malware(confidence=101)
    objs = [good, backwards, bad_pattern, too_confident]
    # Invalid objects go to the writer-only collection so a lenient server cannot disturb others.
    return objs, _post(api, api.coll["hidden"], objs)


def test_T159_invalid_stix_objects_fail_alone(invalid_batch):
    objs, st = invalid_batch
    assert st["total_count"] == 4
    assert st["success_count"] == 1, st
    assert st["failure_count"] == 3, st
    assert set(_failures(st)) == {o["id"] for o in objs[1:]}


def test_T159_failure_names_property_and_rule(invalid_batch):
    objs, st = invalid_batch
    f = _failures(st)
    assert "modified" in f.get(objs[1]["id"], ""), f
    assert "pattern" in f.get(objs[2]["id"], ""), f
    assert "confidence" in f.get(objs[3]["id"], ""), f


def test_T159_an_object_parsers_read_differently_is_refused(api):
    """I-JSON (§1.6.7): an object whose first member is named `$serde_json::private::RawValue` is
    read by serde_json (Rust's common parser) as the JSON text in that member's string, here a
    valid indicator or a TLP marking, and by every other parser as an object holding one odd
    member. A server must not store what its consumers would read otherwise than it validated
    it (found by Concordia's envelope fuzz target)."""
    good = stix.indicator()
    hidden = stix.indicator()
    smuggled = {"$serde_json::private::RawValue": json.dumps(hidden)}
    marked = stix.indicator()
    marked["object_marking_refs"] = {"$serde_json::private::RawValue": json.dumps([TLP_GREEN])}
    st = _post(api, api.coll["hidden"], [good, smuggled, marked])
    assert st["success_count"] == 1, st
    assert st["failure_count"] == 2, st
    assert [s["id"] for s in st.get("successes", [])] == [good["id"]], st
    assert hidden["id"] not in _failures(st), "the failure names what was sent, not what one parser saw"


def _policy_collection(api):
    cid = api.coll.get("tlp_ceiling_amber")
    if not cid:
        pytest.skip("profile has no tlp_ceiling_amber collection")
    return cid


def test_policy_tlp_ceiling_refuses_higher_markings(api):
    cid = _policy_collection(api)
    green, red, red2 = (stix.malware(object_marking_refs=[m]) for m in (TLP_GREEN, TLP_RED, TLP2_RED))
    st = _post(api, cid, [green, red, red2])
    assert st["success_count"] == 1, st
    f = _failures(st)
    assert set(f) == {red["id"], red2["id"]}, st
    assert all("TLP:RED" in m for m in f.values()), f


def test_policy_requires_a_tlp_marking(api):
    cid = _policy_collection(api)
    unmarked = stix.malware()
    st = _post(api, cid, [unmarked])
    assert st["failure_count"] == 1, st
    assert "TLP" in _failures(st)[unmarked["id"]]


def test_policy_refuses_custom_object_types(api):
    cid = _policy_collection(api)
    custom = {"type": "x-acme-widget", "spec_version": "2.1", "id": stix.sid("x-acme-widget"),
              "created": stix.ts(), "modified": stix.ts(), "x_acme_size": 3,
              "object_marking_refs": [TLP_GREEN]}
    st = _post(api, cid, [custom])
    assert st["failure_count"] == 1, st
    assert "custom object" in _failures(st)[custom["id"]]
