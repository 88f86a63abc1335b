#!/usr/bin/env python3
"""Turns the JSON lines of a bench/run.sh run into the Markdown of bench/results.md (stdlib only).

    report.py RESULTS.jsonl [--command ...] [--seconds N] ... > results.md
"""
import argparse
import json
import os
import platform
import subprocess
import sys

SERVERS = [
    ("concordia-sqlite", "Concordia, SQLite"),
    ("concordia-postgres", "Concordia, PostgreSQL"),
    ("medallion", "medallion"),
    ("opentaxii", "OpenTAXII"),
]
PEERS = ("medallion", "opentaxii")
FILTERED = [
    ("id", "`match[id]` of a random object"),
    ("type", "`match[type]=indicator` + `added_after` mid-way, 100/page"),
    ("manifest", "manifest + `added_after` mid-way, 100/page"),
]


def num(x, digits=0):
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def ms(x):
    if x is None:
        return "—"
    if x >= 1000:
        return f"{x / 1000:,.1f} s"
    if x >= 100:
        return f"{x:,.0f} ms"
    if x >= 10:
        return f"{x:,.1f} ms"
    return f"{x:,.2f} ms"


def size_label(n):
    n = int(n)
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


class Notes:
    """Numbered footnotes."""

    def __init__(self):
        self.items = []

    def add(self, text):
        if text not in self.items:
            self.items.append(text)
        return f"<sup>{self.items.index(text) + 1}</sup>"


def short_error(errors):
    if not errors:
        return ""
    e = str(errors[0])
    if "timed out" in e:
        return "timed out"
    e = e.split(": ", 1)[-1] if e.startswith(("GET ", "POST ")) else e
    return e[:90]


def ingest_cell(r, notes, cap):
    if r is None:
        return "—", None
    if r.get("failed"):
        return "failed (driver error)", None
    cell = f"{num(r['objects_per_s'])} obj/s · {r['mb_per_s']:.1f} MB/s"
    if r.get("capped"):
        cell += notes.add(
            f"capped: stopped posting after {cap} s; {num(r['posted'])} of {num(r['objects'])} objects posted, "
            f"{num(r['stored'])} stored (the reads below run on what was stored)")
    if r.get("failures"):
        cell += " " + notes.add(f"{num(r['failures'])} objects failed: {short_error(r.get('errors'))}")
    if r.get("stored", 0) == 0:
        return "no object stored" + (notes.add(short_error(r.get("errors"))) if r.get("errors") else ""), None
    return cell, r["objects_per_s"]


def read_cell(r, notes, cap):
    if r is None:
        return "—", None
    if r.get("failed"):
        return "failed (driver error)", None
    if r.get("objects", 0) == 0:
        why = short_error(r.get("errors")) or "no page"
        return f"no page in {r['seconds']:.0f} s ({why})", None
    cell = f"{num(r['objects_per_s'])} obj/s"
    if r.get("page_p50_ms") is not None and r.get("pages", 0) > 1:
        # The per-page cost is what must stay flat as the collection grows; at 10k objects the
        # rate is 10 pages and mostly the first one (cold caches).
        cell += f" (page p50 {r['page_p50_ms']:.1f} ms)"
    checks = []
    if r.get("duplicates"):
        checks.append(f"{num(r['duplicates'])} duplicates")
    if r.get("missing"):
        checks.append(f"{num(r['missing'])} missing")
    if r.get("unexpected"):
        checks.append(f"{num(r['unexpected'])} unexpected")
    if r.get("capped"):
        cell += notes.add(f"capped at {cap} s after {num(r['objects'])} of {num(r.get('expected'))} objects")
    elif r.get("errors"):
        cell += notes.add(f"stopped after {num(r['objects'])} objects: {short_error(r.get('errors'))}")
    elif checks:
        cell += " ✗ " + ", ".join(checks)
    else:
        cell += " ✓"
    return cell, r["objects_per_s"]


def plain_read(r):
    return not r.get("gzip")


def gzip_read(r):
    return bool(r.get("gzip"))


def gzip_read_cell(r, notes, cap):
    """A full read in gzip: the read's cell, then the bytes on the wire against the JSON."""
    if r is None:
        return "—", None
    cell, rate = read_cell(r, notes, cap)
    wire, plain = r.get("wire_bytes"), r.get("bytes")
    if wire and plain and r.get("gzip_pages"):
        cell += f"; {wire / 1e6:,.0f} MB on the wire for {plain / 1e6:,.0f} MB ({plain / wire:.1f}× smaller)"
    elif r.get("pages") and not r.get("gzip_pages"):
        cell += notes.add("the server sent no page compressed")
    return cell, rate


def filtered_cell(w, notes, timeout, peer):
    if w is None:
        return "—", None
    if w.get("requests", 0) == 0:
        return "no request completed", None
    cell = f"{ms(w['p50_ms'])} / {ms(w['p99_ms'])} · {num(w['requests_per_s'], 1 if w['requests_per_s'] < 10 else 0)} req/s"
    if w.get("errors"):
        sample = short_error(w.get("error_samples"))
        extra = f" (per-request timeout {timeout} s; a timed-out request counts at its elapsed time)" \
            if peer and sample == "timed out" else ""
        cell += " " + notes.add(f"{num(w['errors'])} of {num(w['requests'])} requests failed: {sample}{extra}")
    return cell, w["requests_per_s"] if w.get("requests") else None


def ratio(c, p, better="higher"):
    if c is None or p is None or p == 0 or c == 0:
        return "—"
    x = c / p if better == "higher" else p / c
    return f"{x:,.0f}×" if x >= 10 else f"{x:,.1f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--peer-cap", type=int, default=120)
    ap.add_argument("--peer-timeout", type=int, default=45)
    ap.add_argument("--postgres-version", default="")
    ap.add_argument("--peer-versions", default="")
    ap.add_argument("--repo", default=".")
    ap.add_argument("--load", default="")
    ap.add_argument("--date", default="", help="when the run started (default: now)")
    ap.add_argument("--commit", default="", help="commit measured (default: the repository's HEAD now)")
    a = ap.parse_args()

    rows = []
    with open(a.results) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    print(f"report.py: skipping a line that is not JSON: {line[:80]}", file=sys.stderr)

    def get(cmd, server, size):
        for r in rows:
            t = r.get("tags", {})
            if r.get("cmd") == cmd and t.get("server") == server and t.get("size") == str(size):
                yield r

    def one(cmd, server, size, pred=lambda r: True):
        return next((r for r in get(cmd, server, size) if pred(r)), None)

    def workload(server, size, key):
        """The summary of one filtered workload (each may be its own driver run)."""
        failed = False
        for f in get("filtered", server, size):
            if f.get("failed"):
                failed = True
                continue
            for x in f.get("workloads", []):
                if x.get("workload") == key:
                    return x
        return "failed" if failed else None

    sizes = sorted({int(r["tags"]["size"]) for r in rows
                    if r.get("cmd") in ("ingest", "read", "filtered") and r.get("tags", {}).get("size")})
    present = [s for s, _ in SERVERS if any(r.get("tags", {}).get("server") == s for r in rows)]
    gen = {int(r["tags"]["size"]): r for r in rows if r.get("cmd") == "generate" and r.get("tags", {}).get("size")}

    def git(*args):
        try:
            return subprocess.run(["git", "-C", a.repo, *args], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    def cpu():
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or "unknown CPU"

    def mem_gib():
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        return int(line.split()[1]) / 1048576
        except OSError:
            pass
        return 0

    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, timeout=10).stdout.split()[1]
    except (OSError, subprocess.SubprocessError, IndexError):
        rustc = "?"
    commit = a.commit
    if not commit:
        commit = git("rev-parse", "--short", "HEAD") or "unknown"
        if commit != "unknown" and subprocess.run(["git", "-C", a.repo, "diff", "--quiet", "HEAD"],
                                                  capture_output=True).returncode != 0:
            commit += " with uncommitted changes"
    date = a.date or subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True,
                                    text=True).stdout.strip()
    out = []
    w = out.append
    w("# Concordia benchmark results")
    w("")
    w(f"Produced by `{a.command}` (bench/run.sh; see [bench/README.md](README.md) for what is measured and how).")
    w("")
    w(f"* Run: started {date}, commit {commit}, total {a.seconds // 60} min {a.seconds % 60} s.")
    w(f"* Machine: {os.cpu_count()} cores ({cpu()}), {mem_gib():.0f} GiB RAM, Linux {platform.release()}; "
      f"rustc {rustc}, release build; the driver runs on the same cores as the server."
      + (f" Load average (1/5/15 min) when the run started: {a.load} (a shared machine: anything well above "
         "0 means another job was running, and the figures are lower than they would be on a quiet one)."
         if a.load else ""))
    backends = "Concordia on SQLite (bundled, WAL)"
    if "concordia-postgres" in present:
        backends += f" and on PostgreSQL {a.postgres_version or '?'} (same machine)"
    w(f"* Servers: {backends}; a fresh database per size; STIX validation on.")
    if any(p in present for p in PEERS):
        w(f"* Peers (PyPI, on loopback, same driver and data): {a.peer_versions}. medallion uses its memory "
          "backend and Flask's threaded server; OpenTAXII runs under gunicorn with 2 sync workers on SQLite, with "
          "**one patched call**: `Job.as_taxii2_dict` returns `str(self.id)`, because OpenTAXII 0.9.3 otherwise "
          "answers every TAXII 2.1 POST with a 500 after storing the objects (the status id is a `uuid.UUID` that "
          "`json.dumps` rejects; pinning SQLAlchemy 1.4 does not help). "
          f"Peers are capped at {a.peer_cap} s per ingest and per full read, with a {a.peer_timeout} s "
          "per-request timeout.")
    if gen:
        g = gen[max(gen)]
        w(f"* Data: `taxii-bench generate` (seed {g.get('seed')}): per 20 objects 11 indicators, 5 relationships, "
          f"2 malware, 1 threat actor, 1 identity, all with TLP markings; {g['avg_object_bytes']:.0f} bytes per "
          f"object on average, indicators {g['avg_indicator_bytes']:.0f} bytes.")
    w(f"* Filtered reads: {a.connections} keep-alive connections, {a.duration} s per workload; cells are "
      "p50 / p99 latency · requests per second. Ratios: how many times Concordia (SQLite) is faster "
      "(throughput, requests/s) or leaner (memory) than the peer. Where a peer's ingest was capped, its reads "
      "ran on the smaller collection it had stored (see the notes), so the ratio understates the difference.")
    w("")

    notes = Notes()
    for size in sizes:
        servers = [s for s in present if any(True for _ in get("ingest", s, size))]
        if not servers:
            continue
        peers = [p for p in PEERS if p in servers] if "concordia-sqlite" in servers else []
        w(f"## {size_label(size)} objects ({size:,})")
        w("")
        labels = dict(SERVERS)
        head = ["workload"] + [labels[s] for s in servers] + [f"Concordia ÷ {labels[p]}" for p in peers]
        w("| " + " | ".join(head) + " |")
        w("|" + "|".join(["---"] * len(head)) + "|")

        def row(name, cells_by_server, better="higher"):
            cells = [cells_by_server[s][0] for s in servers]
            c = cells_by_server.get("concordia-sqlite", (None, None))[1]
            ratios = [ratio(c, cells_by_server[p][1], better) for p in peers]
            w("| " + " | ".join([name] + cells + ratios) + " |")

        for clients in (1, 4):
            row(f"ingest, {clients} client{'s' if clients > 1 else ''}, 1,000 objects/POST",
                {s: ingest_cell(one("ingest", s, size, lambda r, c=clients: r.get("clients") == c or r.get("failed")),
                                notes, a.peer_cap) for s in servers})
        row("full read, `limit=1000`, following `next` (✓ = every object exactly once)",
            {s: read_cell(one("read", s, size, plain_read), notes, a.peer_cap) for s in servers})
        if any(one("read", s, size, gzip_read) for s in servers):
            row("full read as above, `Accept-Encoding: gzip` (MB on the wire for the MB of JSON)",
                {s: gzip_read_cell(one("read", s, size, gzip_read), notes, a.peer_cap) for s in servers})
        for key, title in FILTERED:
            cells = {}
            for s in servers:
                wl = workload(s, size, key)
                if wl == "failed":
                    cells[s] = ("failed (driver error)", None)
                    continue
                cells[s] = filtered_cell(wl, notes, a.peer_timeout, s in PEERS)
            row(title, cells)
        rss_cells = {}
        for s in servers:
            r = one("rss", s, size)
            if r and not r.get("failed"):
                rss_cells[s] = (f"{r['peak_mb']:,.0f} MB", r["peak_mb"])
            else:
                rss_cells[s] = ("—", None)
        row("peak server RSS (VmHWM)", rss_cells, better="lower")
        tcells = {}
        for s in servers:
            t = one("timing", s, size)
            tcells[s] = (f"{t['seconds'] // 60} min {t['seconds'] % 60} s" if t else "—", None)
        row("wall time of this column", tcells)
        w("")

    # ---- targets ----
    conc = [s for s in ("concordia-sqlite", "concordia-postgres") if s in present]
    if conc and sizes:
        top = max(sizes)
        w(f"## Targets of issue 6 (at the largest size measured: {size_label(top)})")
        w("")
        if top < 1_000_000:
            w(f"The targets are stated at 1M objects; this run stopped at {size_label(top)}, so it shows the "
              "trend, not the verdict.")
            w("")
        head = ["target"] + [dict(SERVERS)[s] for s in conc]
        w("| " + " | ".join(head) + " |")
        w("|" + "|".join(["---"] * len(head)) + "|")

        def verdict(ok):
            return "met" if ok else "**missed**"

        def ingest_rate(s, size):
            r = one("ingest", s, size, lambda r: r.get("clients") == 1)
            return r.get("objects_per_s") if r and not r.get("failed") else None

        cells = []
        for s in conc:
            need = 25_000 if s == "concordia-sqlite" else 30_000
            r1 = ingest_rate(s, top)
            r4 = one("ingest", s, top, lambda r: r.get("clients") == 4)
            r4 = r4.get("objects_per_s") if r4 and not r4.get("failed") else None
            cells.append(f"{num(r1)} obj/s (4 clients {num(r4)}) ≥ {need:,}: {verdict((r1 or 0) >= need)}"
                         if r1 is not None else "—")
        w("| ingest, validation on: ≥ 25,000 obj/s SQLite, ≥ 30,000 PostgreSQL | " + " | ".join(cells) + " |")
        cells = []
        for s in conc:
            need = 300_000 if s == "concordia-sqlite" else 150_000
            series = []
            for size in sizes:
                r = one("read", s, size, plain_read)
                if r and not r.get("failed"):
                    series.append((size, r.get("objects_per_s", 0), r.get("ok")))
            top_rate = next((x[1] for x in series if x[0] == top), None)
            pages = {z: (one("read", s, z, plain_read) or {}).get("page_p50_ms") for z, _, _ in series}
            flat = " → ".join(
                f"{size_label(z)}: {num(v)}" + (f" (page p50 {pages[z]:.1f} ms)" if pages.get(z) is not None else "")
                for z, v, _ in series)
            ok = top_rate is not None and top_rate >= need and all(x[2] for x in series)
            cells.append(f"{flat} obj/s, ≥ {need:,}: {verdict(ok)}" if series else "—")
        w("| full read: ≥ 300,000 obj/s SQLite, ≥ 150,000 PostgreSQL, flat from 10k to 1M | "
          + " | ".join(cells) + " |")
        for key, title in FILTERED:
            cells = []
            for s in conc:
                wl = workload(s, top, key)
                if isinstance(wl, dict):
                    ok = wl["p99_ms"] < 10 and wl["requests_per_s"] >= 1000 and not wl.get("errors")
                    cells.append(f"p99 {ms(wl['p99_ms'])}, {num(wl['requests_per_s'])} req/s: {verdict(ok)}")
                else:
                    cells.append("—")
            w(f"| {title}: p99 < 10 ms, thousands of req/s at {a.connections} connections | " + " | ".join(cells) + " |")
        cells = []
        for s in conc:
            series = []
            for size in sizes:
                r = one("rss", s, size)
                if r and not r.get("failed"):
                    series.append((size, r["peak_mb"]))
            ok = bool(series) and all(v < 200 for _, v in series)
            cells.append(" → ".join(f"{size_label(z)}: {v:,.0f} MB" for z, v in series) + f": {verdict(ok)}"
                         if series else "—")
        w("| peak server RSS < 200 MB, independent of collection size | " + " | ".join(cells) + " |")
        w("")
        dbs = [(int(r["tags"]["size"]), r["bytes"]) for r in rows if r.get("cmd") == "db"]
        if dbs:
            w("SQLite database size after both ingests (two collections): "
              + ", ".join(f"{size_label(z)}: {b / 1e6:,.0f} MB" for z, b in sorted(dbs)) + ".")
            w("")

    skipped = [r for r in rows if r.get("cmd") == "note"]
    if notes.items or skipped:
        w("## Notes")
        w("")
        for i, n in enumerate(notes.items, 1):
            w(f"{i}. {n}")
        for r in skipped:
            w(f"* {dict(SERVERS).get(r['tags']['server'], r['tags']['server'])} at "
              f"{size_label(r['tags']['size'])}: {r['text']}")
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
