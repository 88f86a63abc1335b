"""STIX 2.1 fixtures, generated fresh (uuid4 ids) for every test run."""

from __future__ import annotations

import copy
import datetime as dt
import random
import uuid

BASE = dt.datetime(2024, 3, 1, 10, 0, 0, tzinfo=dt.timezone.utc)


def stix_ts(when: dt.datetime) -> str:
    """STIX timestamp with millisecond precision."""
    when = when.astimezone(dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def ts(days: float = 0) -> str:
    return stix_ts(BASE + dt.timedelta(days=days))


def sid(kind: str) -> str:
    return f"{kind}--{uuid.uuid4()}"


def _sdo(kind: str, created: str | None = None, **props) -> dict:
    created = created or ts()
    obj = {"type": kind, "spec_version": "2.1", "id": sid(kind), "created": created,
           "modified": created}
    obj.update(props)
    return obj


def _ip() -> str:
    return f"198.51.100.{random.randint(1, 254)}"


def indicator(name: str | None = None, created: str | None = None, **props) -> dict:
    ip = _ip()
    base = dict(name=name or f"Conformance indicator {ip}",
                description="Outbound connection to a known C2 address",
                indicator_types=["malicious-activity"],
                pattern=f"[ipv4-addr:value = '{ip}']",
                pattern_type="stix",
                valid_from=created or ts())
    base.update(props)
    return _sdo("indicator", created, **base)


def malware(name: str | None = None, **props) -> dict:
    return _sdo("malware", None, name=name or f"ConfWorm-{uuid.uuid4().hex[:6]}",
                malware_types=["worm"], is_family=True, **props)


def identity(name: str | None = None, **props) -> dict:
    return _sdo("identity", None, name=name or f"Conformance Org {uuid.uuid4().hex[:6]}",
                identity_class="organization", **props)


def attack_pattern(**props) -> dict:
    return _sdo("attack-pattern", None, name=f"Spearphishing {uuid.uuid4().hex[:6]}", **props)


def relationship(source: dict, target: dict, rel: str = "indicates", **props) -> dict:
    return _sdo("relationship", None, relationship_type=rel, source_ref=source["id"],
                target_ref=target["id"], **props)


def marking_definition() -> dict:
    """An object with `created` but no `modified` (T-191)."""
    return {"type": "marking-definition", "spec_version": "2.1", "id": sid("marking-definition"),
            "created": ts(), "definition_type": "statement",
            "definition": {"statement": f"Conformance statement {uuid.uuid4().hex[:8]}"}}


def indicator_20(**props) -> dict:
    """A STIX 2.0 indicator: no spec_version, created/modified present (counts as 2.0)."""
    ip = _ip()
    obj = {"type": "indicator", "id": sid("indicator"), "created": ts(), "modified": ts(),
           "labels": ["malicious-activity"], "pattern": f"[ipv4-addr:value = '{ip}']",
           "valid_from": ts()}
    obj.update(props)
    return obj


def new_version(obj: dict, days: float, **changes) -> dict:
    """A later version of `obj`: same id, `modified` = BASE + days."""
    out = copy.deepcopy(obj)
    out["modified"] = ts(days)
    out.update(changes)
    return out


def mixed_batch(n: int) -> list[dict]:
    """n objects of several types."""
    makers = (indicator, malware, identity, attack_pattern)
    return [makers[i % len(makers)]() for i in range(n)]


def bundle(objects: list[dict]) -> dict:
    return {"type": "bundle", "id": sid("bundle"), "objects": objects}
