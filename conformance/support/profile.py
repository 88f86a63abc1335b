"""Loading of a conformance profile (TOML) describing the server under test.

A profile may name a `base` profile (path relative to the file); its tables are merged
key by key, the including file winning. Dynamic values can be overridden by environment
variables (see README.md): CONFORMANCE_BASE_URL, CONFORMANCE_API_KEY,
CONFORMANCE_<ROLE>_PASSWORD (ROLE = WRITER, READER, OUTSIDER, WRITEONLY) and
CONFORMANCE_CERTHOLDER_CERT / CONFORMANCE_CERTHOLDER_KEY.

Any credential may carry a TLS client certificate: `cert` and `key` (PEM files, together;
relative paths are relative to the profile file given). The optional `certholder` credential
is a client certificate alone (mutual TLS, OASIS interop row 3.1.3); its tests are skipped
without it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

BASIC_ROLES = ("writer", "reader", "outsider", "writeonly")
COLLECTION_KEYS = ("read_write", "read_only", "write_only", "hidden")


class ProfileError(Exception):
    pass


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        raise ProfileError(f"profile include loop at {path}")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ProfileError(f"profile not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    base = data.pop("base", None)
    if base:
        base_path = Path(base)
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        data = _merge(_load_raw(base_path, seen + (path,)), data)
    return data


@dataclass
class Credential:
    user: str | None
    password: str | None = None
    api_key: str | None = None
    cert: str | None = None   # PEM client certificate (chain) for mutual TLS
    key: str | None = None    # PEM private key of `cert`

    @property
    def client_cert(self) -> tuple[str, str] | None:
        """(cert, key) as `requests` and taxii2-client take it, or None."""
        return (self.cert, self.key) if self.cert else None


@dataclass
class Profile:
    name: str
    base_url: str
    discovery_path: str
    api_root_path: str
    collections: dict[str, str]
    collection_titles: dict[str, str]
    credentials: dict[str, Credential]
    max_page_size: int | None = None
    # Optional: the path of a read-only TAXII 2.0 view's discovery (e.g. /taxii20/).
    taxii20_path: str | None = None
    expected_failures: dict[str, str] = field(default_factory=dict)
    source: str = ""


def _need(table: dict, key: str, where: str):
    if key not in table or table[key] in ("", None):
        raise ProfileError(f"profile: missing {where}.{key}")
    return table[key]


def _client_cert(c: dict, where: str, profile_dir: Path) -> dict:
    """The `cert`/`key` pair of a credential table as absolute paths to existing files ({} without)."""
    if not c.get("cert") and not c.get("key"):
        return {}
    out = {}
    for k in ("cert", "key"):
        p = Path(str(_need(c, k, where)))
        if not p.is_absolute():
            p = profile_dir / p
        if not p.is_file():
            raise ProfileError(f"profile: {where}.{k}: no such file {p}")
        out[k] = str(p)
    return out


def load_profile(path: str | os.PathLike, environ=os.environ) -> Profile:
    raw = _load_raw(Path(path))
    server = dict(raw.get("server", {}))
    if environ.get("CONFORMANCE_BASE_URL"):
        server["base_url"] = environ["CONFORMANCE_BASE_URL"]
    base_url = str(_need(server, "base_url", "server")).rstrip("/")
    discovery_path = server.get("discovery_path", "/taxii2/")
    api_root_path = str(_need(server, "api_root_path", "server"))
    for p in (discovery_path, api_root_path):
        if not p.startswith("/") or not p.endswith("/"):
            raise ProfileError(f"profile: paths must start and end with '/': {p!r}")

    colls_raw = raw.get("collections", {})
    collections = {k: str(_need(colls_raw, k, "collections")) for k in COLLECTION_KEYS}
    # Optional collections (tests that need them skip without them), e.g. tlp_ceiling_amber.
    for k, v in colls_raw.items():
        if k not in collections and not k.endswith("_title"):
            collections[k] = str(v)
    titles = {k[: -len("_title")]: str(v) for k, v in colls_raw.items() if k.endswith("_title")}

    creds_raw = raw.get("credentials", {})
    profile_dir = Path(path).resolve().parent
    credentials: dict[str, Credential] = {}
    for role in BASIC_ROLES:
        c = dict(creds_raw.get(role, {}))
        env_pw = environ.get(f"CONFORMANCE_{role.upper()}_PASSWORD")
        if env_pw:
            c["password"] = env_pw
        if role == "writeonly" and not c:
            continue  # optional role: its tests are skipped
        credentials[role] = Credential(user=_need(c, "user", f"credentials.{role}"),
                                       password=_need(c, "password", f"credentials.{role}"),
                                       **_client_cert(c, f"credentials.{role}", profile_dir))
    partner = dict(creds_raw.get("partner", {}))
    if environ.get("CONFORMANCE_API_KEY"):
        partner["api_key"] = environ["CONFORMANCE_API_KEY"]
    if partner:
        credentials["partner"] = Credential(user=partner.get("user"),
                                            api_key=_need(partner, "api_key", "credentials.partner"),
                                            **_client_cert(partner, "credentials.partner", profile_dir))
    # Optional: a partner that authenticates with a client certificate only (mutual TLS).
    holder = dict(creds_raw.get("certholder", {}))
    for k in ("cert", "key"):
        if environ.get(f"CONFORMANCE_CERTHOLDER_{k.upper()}"):
            holder[k] = environ[f"CONFORMANCE_CERTHOLDER_{k.upper()}"]
    holder_cert = _client_cert(holder, "credentials.certholder", profile_dir)
    if holder_cert:
        credentials["certholder"] = Credential(user=holder.get("user"), **holder_cert)
    elif holder.get("password") or holder.get("api_key"):
        raise ProfileError("profile: credentials.certholder is a client certificate: give cert and key")

    xfail = {str(k): str(v) for k, v in raw.get("expected_failures", {}).items()}
    mps = server.get("max_page_size")
    return Profile(
        name=str(raw.get("name", Path(path).stem)),
        base_url=base_url,
        discovery_path=discovery_path,
        api_root_path=api_root_path,
        collections=collections,
        collection_titles=titles,
        credentials=credentials,
        max_page_size=int(mps) if mps else None,
        taxii20_path=server.get("taxii20_path") or None,
        expected_failures=xfail,
        source=str(path),
    )
