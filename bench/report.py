#!/usr/bin/env python3
"""Turns the JSON lines of a bench/run.sh run into the Markdown of bench/results.md (stdlib only).

    report.py RESULTS.jsonl [--command ...] [--seconds N] ... > results.md

Every line carries the tags server, size and (since --runs) run; a line without a run tag is run 1.
Where a server was measured more than once at a size, every figure is the median over its runs,
followed by the range (min–max), and every check is that of the worst run. With one run, a cell is
the figure alone.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

# Targets of issue 13, at 1M objects: ingest (1 client, 4 clients) and full read in objects/s,
# p99 in ms of `match[id]` ("id") and of the type and manifest pages ("pages"), peak RSS in MB.
TARGETS = {
    "concordia-sqlite": {"ingest": {1: 40_000, 4: 50_000}, "read": 450_000, "id": 2, "pages": 5, "rss": 120},
    "concordia-postgres": {"ingest": {1: 35_000, 4: 35_000}, "read": 300_000, "id": 5, "pages": 10, "rss": 120},
}

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


# The richer filters (interop §3.13.2) on the one-client collection: pages after the same
# mid-way position as the type and manifest workloads.
FEED_FILTERED = [
    ("labels", "`match[labels]=partner-shared` + `added_after` mid-way, 100/page"),
    ("confidence", "`match[confidence-gte]=80` + `added_after` mid-way, 100/page"),
    ("tlp", "`match[tlp]=green` + `added_after` mid-way, 100/page"),
    ("created_by", "`match[created_by_ref]=<an author>` + `added_after` mid-way, 100/page"),
    ("rare_label", "`match[labels]=kestrel` (about 1.7 % of the objects) + `added_after` mid-way, 100/page"),
    ("no_match", "`match[labels]=no-such-label` (no object) + `added_after` mid-way, 100/page"),
    ("related", "`match[relationships-all]` of a random object"),
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


def run_of(r):
    """The run number of a result line: its run tag, or 1 for a line from before --runs."""
    return str(r.get("tags", {}).get("run", "1"))


def run_key(run):
    return (0, int(run), "") if run.isdigit() else (1, 0, run)


def fig(values, fmt, unit="", count=False):
    """The median of one figure over the runs, then its range (and with count, the number of runs).

    With one value this is fmt(value) + unit, exactly as before --runs. fmt may carry its own unit
    (ms()); the range then keeps it once at the end when both ends share it: "1.02–1.15 ms"."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    text = fmt(statistics.median(values)) + unit
    if len(values) > 1:
        lo, hi = fmt(min(values)), fmt(max(values))
        if not unit and lo.count(" ") == 1 and hi.count(" ") == 1 and lo.split(" ")[1] == hi.split(" ")[1]:
            lo = lo.split(" ")[0]
        text += f" ({lo}–{hi}" + (f", {len(values)} runs" if count else "") + ")"
    return text


def med(values):
    """The median of the values that are there, or None."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def in_runs(k, n):
    """Which of the runs a check or note is about: nothing with one run."""
    if n <= 1:
        return ""
    return " (in every run)" if k == n else f" (in {k} of {n} runs)"


def driver_failed(rs, n):
    """The cell of a workload whose driver failed in at least one run (the worst run shows)."""
    k = sum(1 for r in rs if r == "failed" or (isinstance(r, dict) and r.get("failed")))
    return "failed (driver error)" if n <= 1 else f"failed (driver error in {k} of {n} runs)"


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


def ingest_cell(rs, notes, cap, n=1):
    """rs: the ingest of each run (n runs at this size)."""
    if not rs:
        return "—", None
    if any(r.get("failed") for r in rs):
        return driver_failed(rs, n), None
    rates = [r["objects_per_s"] for r in rs]
    cell = f"{fig(rates, num, ' obj/s', count=True)} · {fig([r['mb_per_s'] for r in rs], lambda x: f'{x:.1f}', ' MB/s')}"
    capped = [r for r in rs if r.get("capped")]
    if capped:
        r = capped[0]
        cell += notes.add(
            f"capped: stopped posting after {cap} s; {num(r['posted'])} of {num(r['objects'])} objects posted, "
            f"{num(r['stored'])} stored (the reads below run on what was stored)" + in_runs(len(capped), n))
    failing = [r for r in rs if r.get("failures")]
    if failing:
        r = max(failing, key=lambda r: r["failures"])
        cell += " " + notes.add(f"{num(r['failures'])} objects failed: {short_error(r.get('errors'))}"
                                + in_runs(len(failing), n))
    empty = [r for r in rs if r.get("stored", 0) == 0]
    if empty:
        r = next((r for r in empty if r.get("errors")), empty[0])
        return "no object stored" + (notes.add(short_error(r.get("errors"))) if r.get("errors") else "") \
            + in_runs(len(empty), n), None
    return cell, med(rates)


def page_p50s(rs):
    """The page p50 of each run that read more than one page."""
    return [r["page_p50_ms"] for r in rs if r.get("page_p50_ms") is not None and r.get("pages", 0) > 1]


def read_cell(rs, notes, cap, n=1):
    """rs: the full read of each run (n runs at this size)."""
    if not rs:
        return "—", None
    if any(r.get("failed") for r in rs):
        return driver_failed(rs, n), None
    empty = [r for r in rs if r.get("objects", 0) == 0]
    if empty:
        r = next((r for r in empty if r.get("errors")), empty[0])
        why = short_error(r.get("errors")) or "no page"
        return f"no page in {r['seconds']:.0f} s ({why})" + in_runs(len(empty), n), None
    rates = [r["objects_per_s"] for r in rs]
    cell = fig(rates, num, " obj/s", count=True)
    pages = page_p50s(rs)
    if pages:
        # The per-page cost is what must stay flat as the collection grows; at 10k objects the
        # rate is 10 pages and mostly the first one (cold caches).
        p50 = fig(pages, lambda x: f"{x:.1f}", " ms")
        cell += f" (page p50 {p50})" if len(pages) == 1 else f", page p50 {p50}"
    checks = []
    for key in ("duplicates", "missing", "unexpected"):
        worst = max(r.get(key) or 0 for r in rs)
        if worst:
            checks.append(f"{num(worst)} {key}")
    capped = [r for r in rs if r.get("capped")]
    stopped = [r for r in rs if r.get("errors")]
    if capped:
        r = capped[0]
        cell += notes.add(f"capped at {cap} s after {num(r['objects'])} of {num(r.get('expected'))} objects"
                          + in_runs(len(capped), n))
    elif stopped:
        r = stopped[0]
        cell += notes.add(f"stopped after {num(r['objects'])} objects: {short_error(r.get('errors'))}"
                          + in_runs(len(stopped), n))
    elif checks:
        failing = sum(1 for r in rs if r.get("duplicates") or r.get("missing") or r.get("unexpected"))
        cell += " ✗ " + ", ".join(checks) + ("" if n <= 1 else f" (worst of {n} runs; {failing} failed)")
    else:
        cell += " ✓"
    return cell, med(rates)


def plain_read(r):
    return not r.get("gzip")


def gzip_read(r):
    return bool(r.get("gzip"))


def gzip_read_cell(rs, notes, cap, n=1):
    """A full read in gzip: the read's cell, then the bytes on the wire against the JSON."""
    if not rs:
        return "—", None
    cell, rate = read_cell(rs, notes, cap, n)
    if any(r.get("failed") for r in rs):
        return cell, rate
    good = [r for r in rs if r.get("wire_bytes") and r.get("bytes") and r.get("gzip_pages")]
    plain_only = [r for r in rs if r.get("pages") and not r.get("gzip_pages")]
    if good:
        mb = lambda x: f"{x / 1e6:,.0f}"  # noqa: E731
        wire = fig([r["wire_bytes"] for r in good], mb, " MB")
        plain = fig([r["bytes"] for r in good], mb, " MB")
        smaller = fig([r["bytes"] / r["wire_bytes"] for r in good], lambda x: f"{x:.1f}", "×")
        cell += f"; {wire} on the wire for {plain} ({smaller} smaller)" if len(good) == 1 else \
            f"; {wire} on the wire for {plain}, {smaller} smaller"
    if plain_only:
        cell += notes.add("the server sent no page compressed" + in_runs(len(plain_only), n))
    return cell, rate


def filtered_cell(ws, notes, timeout, peer, n=1):
    """ws: the summary of this filtered workload in each run (n runs at this size)."""
    if not ws:
        return "—", None
    idle = [w for w in ws if w.get("requests", 0) == 0]
    if idle:
        return "no request completed" + in_runs(len(idle), n), None
    rps = [w["requests_per_s"] for w in ws]
    digits = 1 if med(rps) < 10 else 0
    cell = (f"{fig([w['p50_ms'] for w in ws], ms, count=True)} / {fig([w['p99_ms'] for w in ws], ms)} · "
            f"{fig(rps, lambda x: num(x, digits), ' req/s')}")
    failing = [w for w in ws if w.get("errors")]
    if failing:
        w = max(failing, key=lambda w: w["errors"])
        sample = short_error(w.get("error_samples"))
        extra = f" (per-request timeout {timeout} s; a timed-out request counts at its elapsed time)" \
            if peer and sample == "timed out" else ""
        cell += " " + notes.add(f"{num(w['errors'])} of {num(w['requests'])} requests failed: {sample}{extra}"
                                + in_runs(len(failing), n))
    return cell, med(rps)


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

    def get(cmd, server, size, feed=False):
        """Results of one driver command; `feed`: those of the feeds part (tagged feed=1) only,
        else only the others."""
        for r in rows:
            t = r.get("tags", {})
            if (r.get("cmd") == cmd and t.get("server") == server and t.get("size") == str(size)
                    and bool(t.get("feed")) == feed):
                yield r

    def each(cmd, server, size, pred=lambda r: True, feed=False):
        """The first result of each run that matches, in run order (one per run that has one)."""
        by_run = {}
        for r in get(cmd, server, size, feed):
            if pred(r):
                by_run.setdefault(run_of(r), r)
        return [by_run[k] for k in sorted(by_run, key=run_key)]

    def nruns(server, size):
        """How many times the server was measured at this size."""
        return len({run_of(r) for r in rows if r.get("tags", {}).get("server") == server
                    and r.get("tags", {}).get("size") == str(size)}) or 1

    def workloads(server, size, key, feed=False):
        """The summary of one filtered workload in each run (each workload may be its own driver
        run), in run order: a summary, or "failed" for a run whose driver failed; None if none ran."""
        by_run = {}
        for f in get("filtered", server, size, feed):
            run = run_of(f)
            if isinstance(by_run.get(run), dict):
                continue
            if f.get("failed"):
                by_run[run] = "failed"
                continue
            x = next((x for x in f.get("workloads", []) if x.get("workload") == key), None)
            if x is not None:
                by_run[run] = x
        return [by_run[k] for k in sorted(by_run, key=run_key)] or None

    sizes = sorted({int(r["tags"]["size"]) for r in rows
                    if r.get("cmd") in ("ingest", "read", "filtered") and r.get("tags", {}).get("size")})
    present = [s for s, _ in SERVERS if any(r.get("tags", {}).get("server") == s for r in rows)]
    conc = [s for s in ("concordia-sqlite", "concordia-postgres") if s in present]
    conc_runs = sorted({nruns(s, size) for s in conc for size in sizes}) or [1]
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
    w(f"* Servers: {backends}; a fresh database per size{' and run' if conc_runs[-1] > 1 else ''}; "
      "STIX validation on.")
    if conc_runs[-1] > 1:
        times = f"{conc_runs[0]} times" if len(conc_runs) == 1 else f"{conc_runs[0]} to {conc_runs[-1]} times"
        turns = (", the backends taking turns (SQLite run 1, PostgreSQL run 1, SQLite run 2, …)"
                 if "concordia-postgres" in present else "")
        w(f"* Runs: at each size Concordia was measured {times} in a row{turns}, each run on a fresh database"
          + ("; the peers ran once" if any(p in present for p in PEERS) else "") + ". Every Concordia figure is "
          "the **median of its runs**, followed in parentheses by the range (min–max) and, after a cell's first "
          "figure, the number of runs; every check (✓ or ✗, failures, errors, caps) is that of the worst run. "
          "Ratios and the verdicts on the targets are computed from the medians.")
    peers_run = next((r for r in rows if r.get("cmd") == "peers-run"), None)
    if peers_run and any(p in present for p in PEERS):
        # `run.sh --peers-from FILE`: the peers' figures were taken from an earlier run, not measured again.
        a.peer_versions = peers_run.get("versions", a.peer_versions)
        a.peer_cap = peers_run.get("peer_cap", a.peer_cap)
        a.peer_timeout = peers_run.get("peer_timeout", a.peer_timeout)
        w(f"* **The peers were not run again**: their figures come from an earlier run "
          f"(`{peers_run.get('command', '?')}`, started {peers_run.get('date', '?')}, commit "
          f"{peers_run.get('commit', '?')}, on {peers_run.get('machine', 'an unrecorded machine')}), with the "
          "same driver logic, data set (seed) and sizes; the peers' software is unchanged since. The ratios "
          "compare this run's Concordia medians with those figures, so where the machines differ they are "
          "indicative, not exact.")
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

        runs = {s: nruns(s, size) for s in servers}
        for clients in (1, 4):
            row(f"ingest, {clients} client{'s' if clients > 1 else ''}, 1,000 objects/POST",
                {s: ingest_cell(each("ingest", s, size, lambda r, c=clients: r.get("clients") == c or r.get("failed")),
                                notes, a.peer_cap, runs[s]) for s in servers})
        row("full read, `limit=1000`, following `next` (✓ = every object exactly once)",
            {s: read_cell(each("read", s, size, plain_read), notes, a.peer_cap, runs[s]) for s in servers})
        if any(each("read", s, size, gzip_read) for s in servers):
            row("full read as above, `Accept-Encoding: gzip` (MB on the wire for the MB of JSON)",
                {s: gzip_read_cell(each("read", s, size, gzip_read), notes, a.peer_cap, runs[s]) for s in servers})
        for key, title in FILTERED:
            cells = {}
            for s in servers:
                wl = workloads(s, size, key)
                if wl and "failed" in wl:
                    cells[s] = (driver_failed(wl, runs[s]), None)
                    continue
                cells[s] = filtered_cell(wl, notes, a.peer_timeout, s in PEERS, runs[s])
            row(title, cells)
        rss_cells = {}
        for s in servers:
            rs = each("rss", s, size)
            if rs and not any(r.get("failed") for r in rs):
                peaks = [r["peak_mb"] for r in rs]
                rss_cells[s] = (fig(peaks, lambda x: f"{x:,.0f}", " MB", count=True), med(peaks))
            elif rs and runs[s] > 1:
                rss_cells[s] = (driver_failed(rs, runs[s]), None)
            else:
                rss_cells[s] = ("—", None)
        row("peak server RSS (VmHWM)", rss_cells, better="lower")
        tcells = {}
        for s in servers:
            ts = each("timing", s, size)
            tcells[s] = (fig([t["seconds"] for t in ts], lambda x: f"{round(x) // 60} min {round(x) % 60} s",
                             count=True) if ts else "—", None)
        row("wall time of this column" + (" (Concordia: of one run)" if max(runs.values()) > 1 else ""), tcells)
        w("")
        feed_servers = [s for s in servers if s in conc and any(True for _ in get("feed_fill", s, size, True))]
        if feed_servers:
            w(f"### Feeds at {size_label(size)}: the richer filters, and a derived collection "
              "(the indicators with confidence ≥ 50 of the one-client collection)")
            w("")
            w("| workload | " + " | ".join(labels[s] for s in feed_servers) + " |")
            w("|" + "|".join(["---"] * (len(feed_servers) + 1)) + "|")

            def frow(name, cells):
                w("| " + " | ".join([name] + [cells[s] for s in feed_servers]) + " |")

            for key, title in FEED_FILTERED:
                cells = {}
                for s in feed_servers:
                    wl = workloads(s, size, key, feed=True)
                    cells[s] = driver_failed(wl, runs[s]) if wl and "failed" in wl else \
                        filtered_cell(wl, notes, a.peer_timeout, False, runs[s])[0]
                frow(title, cells)
            fills = {}
            for s in feed_servers:
                secs = [r["seconds"] for r in each("feed_fill", s, size, feed=True)]
                reads = [r for r in each("read", s, size, plain_read, feed=True) if not r.get("failed")]
                held = [r.get("unique", 0) for r in reads]
                fills[s] = fig(secs, lambda x: f"{x:,.1f} s", count=True) + (
                    f" ({med(held):,.0f} versions, {med(held) / max(med(secs), 1e-9):,.0f}/s)" if held and secs else "")
            frow("derived collection: `apply` fills it from what is stored", fills)
            frow("derived collection: full read, `limit=1000`, following `next` (✓ = exactly the admitted objects)",
                 {s: read_cell(each("read", s, size, plain_read, feed=True), notes, a.peer_cap, runs[s])[0]
                  for s in feed_servers})
            for key, title in FILTERED[1:]:
                cells = {}
                for s in feed_servers:
                    wl = workloads(s, size, key, feed=True)
                    cells[s] = driver_failed(wl, runs[s]) if wl and "failed" in wl else \
                        filtered_cell(wl, notes, a.peer_timeout, False, runs[s])[0]
                frow("derived collection: " + title, cells)
            w("")

    # ---- targets ----
    def complete(cmd, s, size, pred=lambda r: True):
        """The result of each run, or None where a run failed or has none (the target shows —)."""
        rs = each(cmd, s, size, lambda r: pred(r) or r.get("failed"))
        if not rs or any(r.get("failed") for r in rs) or len(rs) < nruns(s, size):
            return None
        return rs

    if conc and sizes:
        # The targets are stated at 1M objects (10M has its own, below).
        top = max([z for z in sizes if z <= 1_000_000] or sizes)
        w(f"## Targets of issue 13 (at {size_label(top)}; 2 cores shared by server, database and driver)")
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

        for clients in (1, 4):
            cells = []
            for s in conc:
                need = TARGETS[s]["ingest"][clients]
                rs = complete("ingest", s, top, lambda r, c=clients: r.get("clients") == c)
                if rs is None:
                    cells.append("—")
                    continue
                rates = [r.get("objects_per_s") for r in rs]
                cells.append(f"{fig(rates, num, ' obj/s', count=True)} ≥ {need:,}: {verdict((med(rates) or 0) >= need)}")
            w(f"| ingest, {clients} client{'s' if clients > 1 else ''}, 1,000 objects per POST: ≥ "
              f"{TARGETS['concordia-sqlite']['ingest'][clients]:,} SQLite, ≥ "
              f"{TARGETS['concordia-postgres']['ingest'][clients]:,} PostgreSQL | " + " | ".join(cells) + " |")
        cells = []
        for s in conc:
            need = TARGETS[s]["read"]
            series = []
            for size in [z for z in sizes if z <= top]:
                rs = complete("read", s, size, plain_read)
                if rs:
                    series.append((size, [r.get("objects_per_s", 0) for r in rs], all(r.get("ok") for r in rs),
                                   [r["page_p50_ms"] for r in rs if r.get("page_p50_ms") is not None]))
            top_rate = next((med(x[1]) for x in series if x[0] == top), None)

            def at(z, rates, pages):
                text = f"{size_label(z)}: {fig(rates, num, count=True)}"
                if pages:
                    p50 = fig(pages, lambda x: f"{x:.1f}", " ms")
                    text += f" (page p50 {p50})" if len(pages) == 1 else f", page p50 {p50}"
                return text

            flat = " → ".join(at(z, v, p) for z, v, _, p in series)
            ok = top_rate is not None and top_rate >= need and all(x[2] for x in series)
            cells.append(f"{flat} obj/s, ≥ {need:,}: {verdict(ok)}" if series else "—")
        w(f"| full read, limit 1,000, every object exactly once: ≥ {TARGETS['concordia-sqlite']['read']:,} obj/s "
          f"SQLite, ≥ {TARGETS['concordia-postgres']['read']:,} PostgreSQL | " + " | ".join(cells) + " |")
        for key, title in FILTERED:
            kind = "id" if key == "id" else "pages"
            cells = []
            for s in conc:
                wl = workloads(s, top, key)
                if wl and all(isinstance(x, dict) for x in wl) and len(wl) == nruns(s, top):
                    p99, rps = [x["p99_ms"] for x in wl], [x["requests_per_s"] for x in wl]
                    ok = med(p99) <= TARGETS[s][kind] and not any(x.get("errors") for x in wl)
                    cells.append(f"p99 {fig(p99, ms, count=True)} ≤ {TARGETS[s][kind]} ms, "
                                 f"{fig(rps, num, ' req/s')}: {verdict(ok)}")
                else:
                    cells.append("—")
            w(f"| {title}, p99 at {a.connections} connections: ≤ {TARGETS['concordia-sqlite'][kind]} ms SQLite, "
              f"≤ {TARGETS['concordia-postgres'][kind]} ms PostgreSQL | " + " | ".join(cells) + " |")
        cells = []
        for s in conc:
            series = []
            for size in [z for z in sizes if z <= top]:
                rs = complete("rss", s, size)
                if rs:
                    series.append((size, [r["peak_mb"] for r in rs]))
            ok = bool(series) and all(med(v) <= TARGETS[s]["rss"] for _, v in series)
            cells.append(" → ".join(f"{size_label(z)}: {fig(v, lambda x: f'{x:,.0f}', ' MB', count=True)}"
                                    for z, v in series) + f": {verdict(ok)}"
                         if series else "—")
        w(f"| peak server RSS ≤ {TARGETS['concordia-sqlite']['rss']} MB | " + " | ".join(cells) + " |")
        w("")
        big = max(sizes)
        if big >= 10_000_000:
            w(f"At {size_label(big)} objects (against {size_label(top)}):")
            w("")
            w("| target | " + " | ".join(dict(SERVERS)[s] for s in conc) + " |")
            w("|" + "|".join(["---"] * (len(conc) + 1)) + "|")
            cells = []
            for s in conc:
                rs = complete("ingest", s, big, lambda r: r.get("clients") == 1)
                rates = [r.get("objects_per_s") for r in rs] if rs else []
                cells.append(f"{fig(rates, num, ' obj/s', count=True)}: {verdict(med(rates) >= 30_000)}"
                             if rates else "—")
            w("| ingest stays ≥ 30,000 objects/s | " + " | ".join(cells) + " |")
            cells = []
            for s in conc:
                at_big = [r["page_p50_ms"] for r in complete("read", s, big, plain_read) or []
                          if r.get("page_p50_ms") is not None]
                at_top = [r["page_p50_ms"] for r in complete("read", s, top, plain_read) or []
                          if r.get("page_p50_ms") is not None]
                if at_big and at_top:
                    ok = med(at_big) <= 1.10 * med(at_top)
                    cells.append(f"{fig(at_big, lambda x: f'{x:.2f}', ' ms', count=True)} against "
                                 f"{fig(at_top, lambda x: f'{x:.2f}', ' ms')}: {verdict(ok)}")
                else:
                    cells.append("—")
            w(f"| full read's page p50 within 10% of {size_label(top)} | " + " | ".join(cells) + " |")
            cells = []
            for s in conc:
                wl = workloads(s, big, "id")
                if wl and all(isinstance(x, dict) for x in wl):
                    p99 = [x["p99_ms"] for x in wl]
                    cells.append(f"p99 {fig(p99, ms, count=True)}: {verdict(med(p99) <= 3)}")
                else:
                    cells.append("—")
            w("| `match[id]` p99 ≤ 3 ms | " + " | ".join(cells) + " |")
            cells = []
            for s in conc:
                rs = complete("rss", s, big)
                v = [r["peak_mb"] for r in rs] if rs else []
                cells.append(f"{fig(v, lambda x: f'{x:,.0f}', ' MB', count=True)}: {verdict(med(v) <= 150)}"
                             if v else "—")
            w("| peak RSS ≤ 150 MB | " + " | ".join(cells) + " |")
            w("")
        dbs = {}
        for r in rows:
            if r.get("cmd") == "db":
                dbs.setdefault(int(r["tags"]["size"]), []).append(r["bytes"])
        if dbs:
            w("SQLite database size after both ingests (two collections): "
              + ", ".join(f"{size_label(z)}: {fig(b, lambda x: f'{x / 1e6:,.0f}', ' MB', count=True)}"
                          for z, b in sorted(dbs.items())) + ".")
            w("")

    skipped = [r for r in rows if r.get("cmd") == "note"]
    if notes.items or skipped:
        w("## Notes")
        w("")
        for i, n in enumerate(notes.items, 1):
            w(f"{i}. {n}")
        for r in skipped:
            t = r["tags"]
            run = f", run {run_of(r)}" if nruns(t["server"], t["size"]) > 1 else ""
            w(f"* {dict(SERVERS).get(t['server'], t['server'])} at {size_label(t['size'])}{run}: {r['text']}")
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
