//! STIX 2.1 validation against the fixtures in `tests/fixtures/stix/`:
//! every `valid/*.json` object has no problem, every `invalid/*.json` object has at least one
//! problem with the rule (and JSON pointer) recorded in `expectations.json`.
//!
//! The fixtures are written from the project's STIX 2.1 fact sheet; `expectations.json` also
//! records whether the OASIS validator reports each case (`oasis`), which
//! `tests/stix_differential/` checks against the real tool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use concordia::stix::{Problem, Validator};
use serde_json::Value;

/// The 42 STIX 2.1 types (19 SDOs, 2 SROs, 18 SCOs, 3 meta objects).
const TYPES: &[&str] = &[
    "attack-pattern",
    "campaign",
    "course-of-action",
    "grouping",
    "identity",
    "incident",
    "indicator",
    "infrastructure",
    "intrusion-set",
    "location",
    "malware",
    "malware-analysis",
    "note",
    "observed-data",
    "opinion",
    "report",
    "threat-actor",
    "tool",
    "vulnerability",
    "relationship",
    "sighting",
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
    "marking-definition",
    "language-content",
    "extension-definition",
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stix")
}

/// `(<sub>/<file name>, parsed object)` for every `*.json` in `valid/` or `invalid/`, sorted.
fn load(sub: &str) -> Vec<(String, Value)> {
    let dir = fixtures_dir().join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = format!("{sub}/{}", p.file_name().unwrap().to_string_lossy());
            (name, value)
        })
        .collect()
}

#[derive(Debug)]
struct Expectation {
    rule: String,
    property: Option<String>,
}

fn expectations() -> BTreeMap<String, Expectation> {
    let path = fixtures_dir().join("expectations.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (file, e) in value.as_object().expect("expectations.json is an object") {
        let rule = e["rule"].as_str().unwrap_or_else(|| panic!("{file}: rule must be a string")).to_owned();
        let property = match &e["property"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => panic!("{file}: property must be a string or null, not {other}"),
        };
        let oasis = e["oasis"].as_str().unwrap_or_default();
        assert!(["must", "should", "none"].contains(&oasis), "{file}: oasis must be must|should|none, not {oasis:?}");
        assert!(e["why"].as_str().is_some_and(|w| !w.is_empty()), "{file}: why is missing");
        out.insert(file.clone(), Expectation { rule, property });
    }
    out
}

fn validator() -> Validator {
    Validator::new().unwrap_or_else(|e| panic!("the embedded schemas do not compile: {e}"))
}

fn show(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("    {} | {} | {}", p.property, p.rule, p.message)).collect::<Vec<_>>().join("\n")
}

#[test]
fn valid_fixtures_have_no_problems() {
    let v = validator();
    let fixtures = load("valid");
    let mut failures = Vec::new();
    for (name, object) in &fixtures {
        let problems = v.validate(object);
        if !problems.is_empty() {
            failures.push(format!("{name}: expected valid, got {} problem(s):\n{}", problems.len(), show(&problems)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} valid fixtures were rejected:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_fixtures_break_the_expected_rule() {
    let v = validator();
    let expected = expectations();
    let fixtures = load("invalid");
    // STIX_FIXTURES_VERBOSE=1 prints every problem of every invalid fixture (use with --nocapture).
    let verbose = std::env::var_os("STIX_FIXTURES_VERBOSE").is_some();
    let mut failures = Vec::new();
    for (name, object) in &fixtures {
        let Some(exp) = expected.get(name) else {
            failures.push(format!("{name}: no entry in expectations.json"));
            continue;
        };
        let problems = v.validate(object);
        if verbose {
            println!("{name}:\n{}", show(&problems));
        }
        let hit =
            problems.iter().any(|p| p.rule == exp.rule && exp.property.as_ref().is_none_or(|want| &p.property == want));
        if !hit {
            let want = match &exp.property {
                Some(p) => format!("rule '{}' at '{}'", exp.rule, p),
                None => format!("rule '{}'", exp.rule),
            };
            if problems.is_empty() {
                failures.push(format!("{name}: expected {want}, got no problem (accepted)"));
            } else {
                failures.push(format!("{name}: expected {want}, got:\n{}", show(&problems)));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid fixtures did not fail as expected:\n{}",
        failures.len(),
        fixtures.len(),
        failures.join("\n")
    );
}

#[test]
fn manifest_and_files_match() {
    let expected = expectations();
    let files: BTreeSet<String> = load("invalid").into_iter().map(|(n, _)| n).collect();
    let stale: Vec<&String> = expected.keys().filter(|k| !files.contains(*k)).collect();
    assert!(stale.is_empty(), "expectations.json names fixtures that do not exist: {stale:?}");
    let missing: Vec<&String> = files.iter().filter(|f| !expected.contains_key(*f)).collect();
    assert!(missing.is_empty(), "invalid fixtures without an expectation: {missing:?}");
}

#[test]
fn every_stix_type_has_one_valid_and_two_invalid_fixtures() {
    // Files are named `<type>-<case>.json`. A valid fixture's name starts with its `type`; an
    // invalid one may break `type` itself, so it counts for the type its name starts with.
    let count = |sub: &str| {
        let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
        for (name, object) in load(sub) {
            let ty = object["type"].as_str().unwrap_or_default();
            let stem = name.trim_start_matches(&format!("{sub}/")).to_owned();
            if sub == "valid" {
                assert!(stem.starts_with(&format!("{ty}-")), "{name}: file name must start with its type '{ty}-'");
            }
            let named = TYPES.iter().filter(|t| stem.starts_with(&format!("{t}-"))).max_by_key(|t| t.len());
            if let Some(t) = named {
                *by_type.entry((*t).to_owned()).or_default() += 1;
            }
        }
        by_type
    };
    let valid = count("valid");
    let invalid = count("invalid");
    let mut gaps = Vec::new();
    for ty in TYPES {
        let (v, i) = (valid.get(*ty).copied().unwrap_or(0), invalid.get(*ty).copied().unwrap_or(0));
        if v < 1 || i < 2 {
            gaps.push(format!("{ty}: {v} valid, {i} invalid"));
        }
    }
    assert!(gaps.is_empty(), "types without 1 valid and 2 invalid fixtures:\n{}", gaps.join("\n"));
}
