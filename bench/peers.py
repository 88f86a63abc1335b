#!/usr/bin/env python3
"""Provisioning of the peer TAXII servers for bench/run.sh (stdlib only, except where noted).

    peers.py medallion WORKDIR USER PASSWORD COLLECTION...
        writes WORKDIR/medallion-config.json and WORKDIR/medallion-data.json (memory backend,
        API root /bench/, max_page_size 1000, the given collections, one user).

    peers.py opentaxii-config WORKDIR
        writes WORKDIR/opentaxii.yml (TAXII 2 only, SQLite for data and accounts in WORKDIR).

    OPENTAXII_CONFIG=WORKDIR/opentaxii.yml VENV/bin/python peers.py opentaxii-provision USER PASSWORD N
        (run with OpenTAXII's own interpreter) creates an API root, N collections and an admin
        account, and prints {"api_root": "taxii2/<id>", "collections": [ids]} as JSON.
"""
import json
import sys
from pathlib import Path

MEDIA = ["application/stix+json;version=2.1"]


def medallion(work, user, password, collections):
    work = Path(work)
    data = {
        "/discovery": {"title": "medallion (bench)", "description": "taxii-bench run",
                       "contact": "bench@localhost", "default": "/bench/", "api_roots": ["/bench/"]},
        "bench": {
            "information": {"title": "bench", "description": "taxii-bench",
                            "versions": ["application/taxii+json;version=2.1"],
                            "max_content_length": 104857600},
            "status": [],
            "collections": [
                {"id": c, "title": f"bench {i}", "description": "taxii-bench", "can_read": True,
                 "can_write": True, "media_types": list(MEDIA), "objects": [], "manifest": []}
                for i, c in enumerate(collections)
            ],
        },
    }
    config = {
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend", "filename": str(work / "medallion-data.json"),
                    "interop_requirements": False},
        "users": {user: password},
        "taxii": {"max_page_size": 1000},
    }
    (work / "medallion-data.json").write_text(json.dumps(data))
    (work / "medallion-config.json").write_text(json.dumps(config))


def opentaxii_config(work):
    work = Path(work)
    (work / "opentaxii.yml").write_text(f"""---
domain: "127.0.0.1"
support_basic_auth: yes
return_server_error_details: no
auth_api:
  class: opentaxii.auth.sqldb.SQLDatabaseAPI
  parameters:
    db_connection: sqlite:///{work}/opentaxii-auth.db
    create_tables: yes
    secret: taxii-bench-not-a-secret-{work.name}
    token_ttl_secs: 3600
taxii1:
taxii2:
  title: "OpenTAXII (bench)"
  max_content_length: 104857600
  allow_custom_properties: yes
  persistence_api:
    class: opentaxii.persistence.sqldb.Taxii2SQLDatabaseAPI
    parameters:
      db_connection: sqlite:///{work}/opentaxii-data.db
      create_tables: yes
logging:
  opentaxii: warning
  root: warning
""")


def opentaxii_provision(user, password, n):
    from opentaxii.cli import app  # noqa: PLC0415 (OpenTAXII's venv only)
    from opentaxii.entities import Account  # noqa: PLC0415
    from opentaxii.local import context  # noqa: PLC0415

    with app.app_context():
        context.account = Account(id=None, username="local-admin", permissions=None, is_admin=True)
        api = app.taxii_server.servers.taxii2.persistence.api
        root = api.add_api_root(title="bench", description="taxii-bench", default=True)
        colls = [api.add_collection(api_root_id=str(root.id), title=f"bench {i}", description="taxii-bench",
                                    alias=None, is_public=False, is_public_write=False)
                 for i in range(n)]
        manager = app.taxii_server.auth
        manager.update_account(Account(id=None, username=user, permissions={}, is_admin=True), password)
    print(json.dumps({"api_root": f"taxii2/{root.id}", "collections": [str(c.id) for c in colls]}))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "medallion":
        medallion(args[0], args[1], args[2], args[3:])
    elif cmd == "opentaxii-config":
        opentaxii_config(args[0])
    elif cmd == "opentaxii-provision":
        opentaxii_provision(args[0], args[1], int(args[2]))
    else:
        sys.exit(f"peers.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
