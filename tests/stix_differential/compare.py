#!/usr/bin/env python3
"""Differential test: Concordia's STIX 2.1 validator against the OASIS stix2-validator.

Every object of the fixtures (tests/fixtures/stix/{valid,invalid}) and of each --corpus
directory is validated by both tools; their verdicts (valid / invalid) must agree unless the
object is listed in known_differences.json. Only the OASIS tool's errors (MUST checks) count;
its warnings (SHOULD checks) are ignored. See README.md.

The last line printed is "N passed, M failed" (N = agreeing + known differences, M = the rest).
"""

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile

from stix2validator import ValidationOptions, validate_instance

CHUNK = 500  # objects per `concordia validate` call


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concordia", required=True, help="Concordia binary (runs `concordia validate --json`)")
    p.add_argument("--fixtures", required=True, help="tests/fixtures/stix (valid/, invalid/, expectations.json)")
    p.add_argument("--known", required=True, help="known_differences.json")
    p.add_argument("--fact-sheet-valid", required=True, help="fact_sheet_valid.json (corpus files that must pass)")
    p.add_argument("--corpus", action="append", default=[], metavar="DIR",
                   help="extra directory of STIX JSON files, walked recursively (repeatable)")
    p.add_argument("--no-fixtures", action="store_true", help="compare the --corpus objects only")
    p.add_argument("--show-known", action="store_true", help="list every known difference that was seen")
    return p.parse_args()


# ------------------------------------------------------------------------------------------------
# Reading objects


def nested_object_lists(doc, out):
    """Lists named `objects` anywhere in `doc` whose items are STIX-looking objects (e.g. the
    collections of a TAXII server's data file)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k == "objects" and isinstance(v, list) and v and all(isinstance(o, dict) and "type" in o for o in v):
                out.extend(v)
            else:
                nested_object_lists(v, out)
    elif isinstance(doc, list):
        for v in doc:
            nested_object_lists(v, out)


def extract(doc):
    """(objects, shape) of one parsed file, or (None, reason)."""
    if isinstance(doc, list):
        return doc, "list"
    if not isinstance(doc, dict):
        return None, "neither a JSON object nor a list"
    if doc.get("type") == "bundle":
        return doc.get("objects") or [], "bundle"
    if "type" in doc:
        return [doc], "object"
    if isinstance(doc.get("objects"), list):
        return doc["objects"], "envelope"
    found = []
    nested_object_lists(doc, found)
    if found:
        return found, "nested objects lists"
    return None, "no STIX object found (not a bundle, envelope, list or object)"


class Item:
    """One object to compare."""

    def __init__(self, source, rel, abspath, index, obj):
        self.source = source  # "fixtures" or the corpus directory as given
        self.rel = rel  # path relative to the fixtures / corpus directory
        self.abspath = abspath
        self.index = index
        self.obj = obj
        self.id = obj.get("id") if isinstance(obj, dict) else None
        self.type = obj.get("type") if isinstance(obj, dict) else None
        self.ours = None  # (valid, [messages])
        self.oasis = None  # (valid, [messages])
        self.outcome = None  # agreed | known | unexplained | stale-known | rejected-valid-corpus | manifest

    @property
    def label(self):
        return f"{self.rel}#{self.index}" + (f" ({self.id})" if self.id else "")


def walk(source, root, files, skipped):
    items = []
    for path in files:
        rel = os.path.relpath(path, root)
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            skipped.append((path, f"unparsable: {e}"))
            continue
        objects, shape = extract(doc)
        if objects is None:
            skipped.append((path, shape))
            continue
        for i, o in enumerate(objects):
            items.append(Item(source, rel, os.path.abspath(path), i, o))
    return items


def json_files(root):
    out = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        out.extend(os.path.join(d, n) for n in sorted(names) if n.endswith(".json"))
    return out


# ------------------------------------------------------------------------------------------------
# The two validators


def run_oasis(items):
    options = ValidationOptions(version="2.1")
    for it in items:
        try:
            result = validate_instance(it.obj, options)
            it.oasis = (bool(result.is_valid), [e.message for e in result.errors])
        except Exception as e:  # the tool raises on non-objects, missing id/type, and on its own bugs
            it.oasis = (False, [f"stix2-validator raised {type(e).__name__}: {e}"])


def run_concordia(binary, items):
    with tempfile.TemporaryDirectory(prefix="stixdiff-") as tmp:
        by_file = {}
        for n, it in enumerate(items):
            path = os.path.join(tmp, f"{n:06d}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(it.obj, f, ensure_ascii=False)
            by_file[path] = it
        paths = list(by_file)
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start:start + CHUNK]
            proc = subprocess.run([binary, "validate", "--json", *chunk], capture_output=True, text=True)
            # Exit 1 = some object invalid (expected); anything else is a harness failure.
            if proc.returncode not in (0, 1):
                sys.exit(f"compare.py: `{binary} validate --json` exited {proc.returncode}:\n{proc.stderr[-4000:]}")
            try:
                records = json.loads(proc.stdout)
            except json.JSONDecodeError as e:
                sys.exit(f"compare.py: `concordia validate --json` printed no JSON array ({e}):\n"
                         f"{proc.stdout[:2000]}\n{proc.stderr[-2000:]}")
            seen = {}
            for r in records:
                seen.setdefault(r["file"], []).append(r)
            for path in chunk:
                it = by_file[path]
                rs = seen.get(path, [])
                if len(rs) != 1 or rs[0].get("index") != 0:
                    it.ours = (False, [f"harness: expected one record for the object, got {len(rs)} "
                                       f"(stderr: {proc.stderr.strip()[-300:]})"])
                    continue
                r = rs[0]
                msgs = [f"{p.get('property') or '/'} [{p.get('rule')}] {p.get('message')}" for p in r.get("problems", [])]
                it.ours = (bool(r["valid"]), msgs)


# ------------------------------------------------------------------------------------------------
# Known differences and corpus expectations


def path_matches(pattern, it):
    """`pattern` (a path, glob allowed) names `it`'s file: relative to its fixtures/corpus
    directory, or as a trailing part of its absolute path (so that a corpus may be given as the
    corpora root or as one of its sub-directories)."""
    if fnmatch.fnmatchcase(it.rel, pattern):
        return True
    parts = it.abspath.split(os.sep)
    return any(fnmatch.fnmatchcase("/".join(parts[k:]), pattern) for k in range(1, len(parts)))


def find_known(known, it):
    for key, entry in known.items():
        path, _, which = key.rpartition("#")
        if which in (str(it.index), it.id) and path_matches(path, it):
            return key, entry
    return None, None


def verdict(valid):
    return "valid" if valid else "invalid"


def main():
    args = parse_args()
    with open(args.known, encoding="utf-8") as f:
        known = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    with open(args.fact_sheet_valid, encoding="utf-8") as f:
        sheet = json.load(f)
    must_pass, exceptions = sheet.get("valid", {}), sheet.get("exceptions", {})
    with open(os.path.join(args.fixtures, "expectations.json"), encoding="utf-8") as f:
        expectations = json.load(f)

    skipped = []
    groups = []  # (name, [items])
    if not args.no_fixtures:
        for sub in ("valid", "invalid"):
            d = os.path.join(args.fixtures, sub)
            groups.append((f"fixtures/{sub}", walk("fixtures", args.fixtures, json_files(d), skipped)))
    for corpus in args.corpus:
        if not os.path.isdir(corpus):
            sys.exit(f"compare.py: --corpus {corpus}: not a directory")
        groups.append((f"corpus {corpus}", walk(corpus, corpus, json_files(corpus), skipped)))
    items = [it for _, group in groups for it in group]
    if not items:
        sys.exit("compare.py: nothing to compare")

    run_oasis(items)
    run_concordia(args.concordia, items)

    used_known = set()
    for it in items:
        ours, oasis = it.ours[0], it.oasis[0]
        key, entry = find_known(known, it)
        if key:
            used_known.add(key)
        if (it.source != "fixtures" and not ours and any(path_matches(p, it) for p in must_pass)
                and not find_known(exceptions, it)[0]):
            it.outcome = "rejected-valid-corpus"
        elif it.source == "fixtures" and it.rel.startswith("invalid" + os.sep) and not manifest_agrees(expectations, it):
            it.outcome = "manifest"
        elif ours == oasis:
            it.outcome = "agreed"
        elif entry and entry.get("ours") == verdict(ours) and entry.get("oasis") == verdict(oasis):
            it.outcome = "known"
        elif entry:
            it.outcome = "stale-known"
        else:
            it.outcome = "unexplained"

    if args.no_fixtures:  # entries for fixtures cannot match; do not list them as unused
        used_known |= {k for k in known if k.startswith(("valid/", "invalid/"))}
    report(groups, items, known, used_known, skipped)
    failed = sum(1 for it in items if it.outcome not in ("agreed", "known"))
    passed = len(items) - failed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def manifest_agrees(expectations, it):
    """An invalid fixture's `oasis` field says whether the OASIS tool reports an error."""
    exp = expectations.get(it.rel.replace(os.sep, "/"))
    if exp is None:
        it.manifest_note = "no entry in expectations.json"
        return False
    oasis_error = not it.oasis[0]
    if (exp.get("oasis") == "must") != oasis_error:
        it.manifest_note = (f"expectations.json says oasis={exp.get('oasis')!r} but stix2-validator "
                            f"{'reports an error' if oasis_error else 'reports no error'}")
        return False
    return True


def show(messages, limit=4):
    out = [f"        {m.splitlines()[0][:240]}" for m in messages[:limit]]
    if len(messages) > limit:
        out.append(f"        ... {len(messages) - limit} more")
    return out or ["        (no problem)"]


def report(groups, items, known, used_known, skipped):
    rows = []
    for name, group in groups:
        count = lambda o: sum(1 for it in group if it.outcome == o)  # noqa: E731
        rows.append((name, len(group), count("agreed"), count("known"),
                     len(group) - count("agreed") - count("known")))
    total = (sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows), sum(r[4] for r in rows))
    width = max(len(r[0]) for r in rows + [("total",)])
    print()
    print(f"{'source':<{width}}  {'objects':>8}  {'agreed':>8}  {'known':>8}  {'failed':>8}")
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>8}  {r[2]:>8}  {r[3]:>8}  {r[4]:>8}")
    print(f"{'total':<{width}}  {total[0]:>8}  {total[1]:>8}  {total[2]:>8}  {total[3]:>8}")
    both_invalid = sum(1 for it in items if it.outcome == "agreed" and not it.ours[0])
    print(f"(agreed: {total[1] - both_invalid} both valid, {both_invalid} both invalid)")

    def section(title, outcome, extra=None):
        bad = [it for it in items if it.outcome == outcome]
        if not bad:
            return
        print(f"\n{title}: {len(bad)}")
        for it in bad:
            print(f"  {it.label}  [{it.source}]")
            if extra:
                print(f"      {extra(it)}")
            print(f"      Concordia: {verdict(it.ours[0])}")
            print("\n".join(show(it.ours[1])))
            print(f"      stix2-validator: {verdict(it.oasis[0])}")
            print("\n".join(show(it.oasis[1])))

    section("UNEXPLAINED DIFFERENCES (add to known_differences.json only with a fact-sheet reason)", "unexplained")
    section("KNOWN DIFFERENCES WHOSE VERDICTS CHANGED", "stale-known",
            lambda it: f"known_differences.json: {find_known(known, it)[1]}")
    section("CORPUS OBJECTS THE FACT SHEET CALLS VALID, REJECTED BY CONCORDIA", "rejected-valid-corpus")
    section("INVALID FIXTURES WHOSE `oasis` EXPECTATION IS WRONG", "manifest", lambda it: it.manifest_note)

    seen_known = [it for it in items if it.outcome == "known"]
    if seen_known:
        print(f"\nknown differences seen: {len(seen_known)}")
        by_why = {}
        for it in seen_known:
            key, entry = find_known(known, it)
            by_why.setdefault((entry["ours"], entry["oasis"], entry["why"]), []).append(it.label)
        for (ours, oasis, why), labels in sorted(by_why.items()):
            print(f"  ours {ours} / OASIS {oasis} x{len(labels)}: {why}")
            for label in labels[:3]:
                print(f"      {label}")
            if len(labels) > 3:
                print(f"      ... {len(labels) - 3} more")
    unused = sorted(set(known) - used_known)
    if unused:
        print(f"\nknown_differences.json entries not matched by any compared object: {len(unused)}")
        for k in unused:
            print(f"  {k}")
    agreed_listed = sorted({find_known(known, it)[0] for it in items if it.outcome == "agreed" and find_known(known, it)[0]})
    if agreed_listed:
        print(f"\nknown_differences.json entries on which both tools currently agree "
              f"(a validator changed; remove the entry once that is intended): {len(agreed_listed)}")
        for k in agreed_listed:
            print(f"  {k}")
    if skipped:
        print(f"\nskipped files: {len(skipped)}")
        for path, why in skipped:
            print(f"  {path}: {why}")
    print()


if __name__ == "__main__":
    sys.exit(main())
