"""Waits until URL answers with the expected status.

usage: wait_http.py URL [--status 200] [--timeout 30] [--pid PID] [--user USER --password PW] [--cafile PEM]
Exits 0 when ready, 1 on timeout or when process PID has exited.
"""

import argparse
import base64
import os
import ssl
import sys
import time
import urllib.error
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--cafile", help="CA certificate(s) that sign an https URL's certificate")
    a = ap.parse_args()
    context = ssl.create_default_context(cafile=a.cafile) if a.cafile else None
    headers = {"Accept": "application/taxii+json;version=2.1"}
    if a.user:
        token = base64.b64encode(f"{a.user}:{a.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    deadline = time.monotonic() + a.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if a.pid:
            try:
                os.kill(a.pid, 0)
            except ProcessLookupError:
                print(f"server process {a.pid} exited before {a.url} was ready", file=sys.stderr)
                return 1
        try:
            with urllib.request.urlopen(urllib.request.Request(a.url, headers=headers), timeout=2, context=context) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except OSError as e:
            code, last = None, str(e)
        if code == a.status:
            return 0
        if code is not None:
            last = f"HTTP {code}"
        time.sleep(0.1)
    print(f"{a.url} not ready after {a.timeout:.0f}s ({last})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
