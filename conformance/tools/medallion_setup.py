"""Writes a medallion 3.0.0 configuration, its data file and a concrete profile.

usage: medallion_setup.py WORKDIR PORT PROFILE
Collection ids, titles and user names come from PROFILE (profiles/medallion.toml); passwords
are random. Produces WORKDIR/medallion-config.json, WORKDIR/medallion-data.json and
WORKDIR/profile.toml (which names PROFILE as its base).
"""

import json
import secrets
import sys
import tomllib
from pathlib import Path

MEDIA = ["application/stix+json;version=2.1"]


def main():
    work, port, profile_path = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]).resolve()
    prof = tomllib.loads(profile_path.read_text())
    colls = prof["collections"]
    creds = prof["credentials"]
    root = prof["server"]["api_root_path"].strip("/")

    def coll(key, title, can_read, can_write):
        return {"id": colls[key], "title": title, "description": f"conformance {key}",
                "can_read": can_read, "can_write": can_write, "media_types": list(MEDIA),
                "objects": [], "manifest": []}

    data = {
        "/discovery": {"title": "medallion conformance server", "description": "TAXII 2.1 conformance run",
                       "contact": "conformance@medallion.invalid",
                       # Absolute, as in the examples of TAXII 2.1 §4.1 (medallion serves what it is given).
                       "default": f"http://127.0.0.1:{port}/{root}/",
                       "api_roots": [f"http://127.0.0.1:{port}/{root}/"]},
        root: {
            "information": {"title": "Conformance API root", "description": "conformance",
                            "versions": ["application/taxii+json;version=2.1"],
                            "max_content_length": 1048576},
            "status": [],
            "collections": [
                coll("read_write", colls.get("read_write_title", "Conformance read-write"), True, True),
                coll("read_only", "Conformance read-only", True, False),
                coll("write_only", "Conformance write-only", False, True),
                coll("hidden", "Conformance writer-only", True, True),
                coll("tlp_ceiling_amber", "Conformance TLP ceiling", True, True),
            ],
        },
    }
    passwords = {role: secrets.token_urlsafe(18) for role in ("writer", "reader", "outsider", "writeonly", "partner")}
    users = {creds[role]["user"]: pw for role, pw in passwords.items()}
    config = {
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                    "filename": str(work / "medallion-data.json"), "session_timeout": 60,
                    "check_interval": 10},
        "users": users,
        "taxii": {"max_page_size": prof["server"].get("max_page_size", 100)},
    }
    (work / "medallion-data.json").write_text(json.dumps(data, indent=1))
    (work / "medallion-config.json").write_text(json.dumps(config, indent=1))
    lines = [f'base = "{profile_path}"', "", "[server]", f'base_url = "http://127.0.0.1:{port}"', ""]
    for role in ("writer", "reader", "outsider", "writeonly"):
        lines += [f"[credentials.{role}]", f'password = "{passwords[role]}"', ""]
    lines += ["[credentials.partner]", f'api_key = "{passwords["partner"]}"', ""]
    (work / "profile.toml").write_text("\n".join(lines))
    print(json.dumps({"writer": [creds["writer"]["user"], passwords["writer"]]}))


if __name__ == "__main__":
    main()
