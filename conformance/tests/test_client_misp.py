"""Client flow 5: MISP-style pusher (misp-taxii push / MISP2TAXII).

Reads max_content_length from the API root, splits a larger batch into envelopes that fit,
posts all of them, then reads every status resource.
"""

import json

import pytest

from support import stix
from support.taxii import assert_ok, check_status_resource


def test_T094_misp_splits_batch_under_max_content_length(api):
    rw = api.coll["read_write"]
    max_len = assert_ok(api.get(api.root_url))["max_content_length"]
    if max_len > 4 * 1024 * 1024:
        pytest.skip("max_content_length too large for a quick push test")
    desc = "MISP event attribute context. " * 100          # ~3 KB per object
    total_size = int(max_len * 2.5)
    objs = []
    size = 0
    while size < total_size:
        o = stix.indicator(description=desc)
        objs.append(o)
        size += len(json.dumps(o))

    envelopes, current = [], []
    for o in objs:
        candidate = current + [o]
        if current and len(json.dumps({"objects": candidate}).encode()) >= max_len:
            envelopes.append(current)
            current = [o]
        else:
            current = candidate
    envelopes.append(current)
    assert len(envelopes) >= 3

    statuses = []
    for env in envelopes:
        raw = json.dumps({"objects": env}).encode()
        assert len(raw) < max_len
        r = api.post(api.objects_url(rw), data=raw)
        statuses.append(assert_ok(r, 202))

    total = 0
    for st in statuses:
        got = assert_ok(api.get(api.status_url(st["id"])))
        check_status_resource(got)
        assert got["status"] in ("complete", "pending")
        assert got["failure_count"] == 0, got
        total += got["success_count"] + got["pending_count"]
    assert total == len(objs)

    recs = api.manifest_records(rw, [o["id"] for o in objs])
    assert sorted(r["id"] for r in recs) == sorted(o["id"] for o in objs)
