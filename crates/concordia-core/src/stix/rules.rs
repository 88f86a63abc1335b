//! The STIX 2.1 rules a JSON Schema cannot express (fact sheet §1.5, §1.7, §1.9, §3, §5.1):
//! real calendar timestamps and their ordering, custom type and property naming, granular
//! marking selectors, marking self-references, STIX patterns, UUID versions.

use serde_json::{Map, Value};

use super::{pattern, Problem, Validator};
use crate::model::time::stix_version_key;

/// Properties holding STIX timestamps, wherever they appear (top level, extensions, nested).
const TIMESTAMP_PROPERTIES: &[&str] = &[
    "created",
    "modified",
    "valid_from",
    "valid_until",
    "first_seen",
    "last_seen",
    "first_observed",
    "last_observed",
    "published",
    "start_time",
    "stop_time",
    "submitted",
    "analysis_started",
    "analysis_ended",
    "object_modified",
    "ctime",
    "mtime",
    "atime",
    "date",
    "start",
    "end",
    "created_time",
    "modified_time",
    "account_created",
    "account_expires",
    "credential_last_changed",
    "account_first_login",
    "account_last_login",
    "validity_not_before",
    "validity_not_after",
    "private_key_usage_period_not_before",
    "private_key_usage_period_not_after",
    "time_date_stamp",
];

/// Ordering rules: (types it applies to, or empty for every type; earlier; later; strictly).
const ORDER_RULES: &[(&[&str], &str, &str, bool)] = &[
    (&[], "created", "modified", false),
    (
        &["campaign", "infrastructure", "intrusion-set", "malware", "threat-actor", "sighting"],
        "first_seen",
        "last_seen",
        false,
    ),
    (&["observed-data"], "first_observed", "last_observed", false),
    (&["indicator"], "valid_from", "valid_until", true),
    (&["relationship"], "start_time", "stop_time", true),
    (&["network-traffic"], "start", "end", false),
];

/// SCO types whose id must be a UUIDv4 when none of their ID-contributing properties is present
/// (`process` has none at all).
const UUID4_WITHOUT: &[(&str, &[&str])] = &[
    ("process", &[]),
    ("artifact", &["hashes", "payload_bin"]),
    ("email-message", &["from_ref", "subject", "body"]),
    ("user-account", &["account_type", "user_id", "account_login"]),
    ("windows-registry-key", &["key", "values"]),
    ("x509-certificate", &["hashes", "serial_number"]),
];

/// Common properties, never counted as an object's own properties.
const COMMON: &[&str] = &[
    "type",
    "spec_version",
    "id",
    "created_by_ref",
    "created",
    "modified",
    "revoked",
    "labels",
    "confidence",
    "lang",
    "external_references",
    "object_marking_refs",
    "granular_markings",
    "defanged",
    "extensions",
];

/// Checks timestamp properties for a real date and time: the object's own properties, those of
/// its extensions, and those of the members of an observed-data `objects` container (where the
/// spec defines timestamps). Custom content deeper down is not assumed to hold timestamps.
fn timestamps(map: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let mut check = |prefix: &str, m: &Map<String, Value>| {
        for (k, v) in m {
            if let (true, Value::String(s)) = (TIMESTAMP_PROPERTIES.contains(&k.as_str()), v) {
                if stix_version_key(s).is_none() {
                    problems.push(Problem::new(
                        format!("{prefix}/{k}"),
                        "timestamp",
                        format!("'{s}' is not a valid STIX timestamp (YYYY-MM-DDTHH:MM:SS[.s]Z, a real date and time in UTC)"),
                    ));
                }
            }
        }
    };
    check("", map);
    for (container, nested) in [("extensions", true), ("objects", true)] {
        let Some(inner) = map.get(container).and_then(Value::as_object) else { continue };
        for (name, v) in inner {
            if let Some(m) = v.as_object() {
                let at = format!("/{container}/{}", name.replace('~', "~0").replace('/', "~1"));
                check(&at, m);
                if nested {
                    if let Some(exts) = m.get("extensions").and_then(Value::as_object) {
                        for (en, ev) in exts {
                            if let Some(em) = ev.as_object() {
                                check(&format!("{at}/extensions/{en}"), em);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn ordering(ty: &str, map: &Map<String, Value>, problems: &mut Vec<Problem>) {
    for (types, earlier, later, strict) in ORDER_RULES {
        if !types.is_empty() && !types.contains(&ty) {
            continue;
        }
        let key = |p: &str| map.get(p).and_then(Value::as_str).and_then(stix_version_key);
        if let (Some(a), Some(b)) = (key(earlier), key(later)) {
            let bad = if *strict { b <= a } else { b < a };
            if bad {
                let relation = if *strict { "later than" } else { "the same as or later than" };
                problems.push(Problem::new(
                    format!("/{later}"),
                    "timestamp-order",
                    format!("{later} must be {relation} {earlier}"),
                ));
            }
        }
    }
}

/// STIX type names: a-z, 0-9 and single hyphens, starting with a letter, 3..250 characters.
pub fn valid_type_name(t: &str) -> bool {
    (3..=250).contains(&t.len())
        && t.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && t.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !t.contains("--")
        && !t.ends_with('-')
}

/// STIX property names: a-z, 0-9 and `_`, starting with a letter, 3..250 characters (`id` too).
pub fn valid_property_name(p: &str) -> bool {
    p == "id"
        || (3..=250).contains(&p.len())
            && p.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
            && p.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Resolves a granular-marking selector against the object.
fn selector_resolves(object: &Value, selector: &str) -> bool {
    let mut node = object;
    for part in selector.split('.') {
        let next = match part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
            Some(index) => index.parse::<usize>().ok().and_then(|i| node.as_array().and_then(|a| a.get(i))),
            None => node.as_object().and_then(|m| m.get(part)),
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

fn uuid_version(id: &str) -> Option<usize> {
    id.split_once("--").and_then(|(_, u)| uuid::Uuid::parse_str(u).ok()).map(|u| u.get_version_num())
}

/// Property names no object may use, at any level (§1.1; the OASIS schemas add the plural).
const RESERVED: &[&str] = &["severity", "action", "username", "phone_number", "phone_numbers"];

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.len() % 2 == 0 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn is_base64(s: &str) -> bool {
    use base64::Engine as _;
    !s.is_empty() && base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

/// Suffix rules for custom properties (§1.1): `_hex` holds hex, `_bin` base64; custom lists
/// must not be empty (§1.7). `_ref`/`_refs` values are not checked: the suffix rule says what a
/// reference property is named, and real data (ATT&CK's `x_mitre_data_source_ref: ""`) relies
/// on that reading, as does the OASIS validator.
fn custom_value(name: &str, value: &Value, problems: &mut Vec<Problem>) {
    let at = format!("/{name}");
    if value.as_array().is_some_and(Vec::is_empty) {
        problems.push(Problem::new(at.clone(), "empty-list", format!("'{name}' is an empty list; omit it instead")));
    }
    let bad = if name.ends_with("_hex") {
        (!value.as_str().is_some_and(is_lower_hex)).then_some("lower-case hex with an even number of digits")
    } else if name.ends_with("_bin") {
        (!value.as_str().is_some_and(is_base64)).then_some("base64")
    } else {
        None
    };
    if let Some(what) = bad {
        problems.push(Problem::new(at, "property-suffix", format!("'{name}' must hold {what}, as its suffix says")));
    }
}

/// Extension contents (§1.8): property names follow the naming rules and avoid reserved names.
fn extensions(map: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let Some(exts) = map.get("extensions").and_then(Value::as_object) else { return };
    for (key, ext) in exts {
        let Some(props) = ext.as_object() else { continue };
        let defined = key.starts_with("extension-definition--");
        for p in props.keys() {
            let at = format!("/extensions/{key}/{p}");
            if RESERVED.contains(&p.as_str()) {
                problems.push(Problem::new(
                    at.clone(),
                    "reserved-property",
                    format!("'{p}' is a reserved property name"),
                ));
            }
            if defined && p != "extension_type" && !valid_property_name(p) {
                problems.push(Problem::new(
                    at,
                    "property-name",
                    format!("property name '{p}' must be 3-250 characters of a-z, 0-9 and '_', starting with a letter"),
                ));
            }
        }
    }
}

/// IANA registries (§5.1 `artifact_mime_type`, `character_set`): the registry's syntax.
fn iana(ty: &str, map: &Map<String, Value>, problems: &mut Vec<Problem>) {
    const TOP: &[&str] = &["application", "audio", "font", "image", "message", "model", "multipart", "text", "video"];
    if ty == "artifact" {
        if let Some(m) = map.get("mime_type").and_then(Value::as_str) {
            // Unregistered `x-` subtypes (RFC 6648) are not in the registry either.
            let ok = m.split_once('/').is_some_and(|(t, sub)| {
                TOP.contains(&t)
                    && !sub.is_empty()
                    && !sub.starts_with("x-")
                    && !sub.starts_with("x.")
                    && sub.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'+' | b'_' | b'-'))
            });
            if !ok {
                problems.push(Problem::new(
                    "/mime_type",
                    "iana",
                    format!("'{m}' is not an IANA media type such as application/zip"),
                ));
            }
        }
    }
    for (t, prop) in [("directory", "path_enc"), ("file", "name_enc")] {
        if ty != t {
            continue;
        }
        if let Some(cs) = map.get(prop).and_then(Value::as_str) {
            let ok = !cs.is_empty()
                && cs
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'(' | b')' | b'.' | b':'));
            if !ok {
                problems.push(Problem::new(
                    format!("/{prop}"),
                    "iana",
                    format!("'{cs}' is not an IANA character set name such as UTF-8"),
                ));
            }
        }
    }
}

/// Value formats the schemas carry as annotations (§2.3): domain names and e-mail addresses.
fn formats(ty: &str, map: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let Some(value) = map.get("value").and_then(Value::as_str) else { return };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    match ty {
        "domain-name" => {
            let name = value.strip_suffix('.').unwrap_or(value);
            if name.len() > 253 || !name.split('.').all(label_ok) {
                problems.push(Problem::new(
                    "/value",
                    "format",
                    format!("'{value}' is not a domain name (RFC 1034 / IDNA labels separated by dots)"),
                ));
            }
        }
        "email-addr" => {
            // addr-spec only, as the OASIS validator checks it: local@domain.tld, no display name.
            let ok = value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-'))
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && domain.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.'))
            });
            if !ok {
                problems.push(Problem::new(
                    "/value",
                    "format",
                    format!("'{value}' is not an e-mail address (addr-spec only, no display name)"),
                ));
            }
        }
        _ => {}
    }
}

/// References inside the deprecated observed-data `objects` container point to its own keys.
fn observed_objects(map: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let Some(container) = map.get("objects").and_then(Value::as_object) else { return };
    fn walk(v: &Value, at: String, keys: &Map<String, Value>, problems: &mut Vec<Problem>, depth: usize) {
        let Some(m) = v.as_object() else { return };
        if depth > 16 {
            return;
        }
        for (k, val) in m {
            let here = format!("{at}/{k}");
            let refs: Vec<(String, &str)> = if k.ends_with("_ref") {
                val.as_str().map(|r| (here.clone(), r)).into_iter().collect()
            } else if k.ends_with("_refs") {
                val.as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .filter_map(|(i, r)| r.as_str().map(|r| (format!("{here}/{i}"), r)))
                    .collect()
            } else {
                walk(val, here.clone(), keys, problems, depth + 1);
                Vec::new()
            };
            for (at, r) in refs {
                if !keys.contains_key(r) {
                    problems.push(Problem::new(
                        at,
                        "observable-reference",
                        format!("'{r}' is not a key of this observed-data's objects"),
                    ));
                }
            }
        }
    }
    for (key, obj) in container {
        walk(obj, format!("/objects/{key}"), container, problems, 0);
    }
}

/// Runs every rule on one object.
pub fn check(validator: &Validator, object: &Value, problems: &mut Vec<Problem>) {
    let Some(map) = object.as_object() else { return };
    let ty = map.get("type").and_then(Value::as_str).unwrap_or_default();
    let id = map.get("id").and_then(Value::as_str).unwrap_or_default();

    if ty == "bundle" {
        problems.push(Problem::new(
            "/type",
            "custom-type-name",
            "a bundle is a container, not a STIX object: send the objects it holds",
        ));
        return;
    }
    if let Some((prefix, _)) = id.split_once("--") {
        if prefix != ty {
            problems.push(Problem::new(
                "/id",
                "id-prefix",
                format!("the id's type '{prefix}' differs from type '{ty}'"),
            ));
        }
    }
    extensions(map, problems);
    iana(ty, map, problems);
    formats(ty, map, problems);
    if ty == "observed-data" {
        observed_objects(map, problems);
    }
    if ty == "relationship" {
        let rt = map.get("relationship_type").and_then(Value::as_str).unwrap_or_default();
        let prefix = |p: &str| map.get(p).and_then(Value::as_str).and_then(|r| r.split_once("--")).map(|(t, _)| t);
        if matches!(rt, "derived-from" | "duplicate-of") && prefix("source_ref") != prefix("target_ref") {
            problems.push(Problem::new(
                "/target_ref",
                "relationship-same-type",
                format!("a '{rt}' relationship links two objects of the same type"),
            ));
        }
    }

    timestamps(map, problems);
    ordering(ty, map, problems);

    // Custom object types and custom property names (§1.1, §1.9).
    let official = validator.is_official_type(ty);
    if !official {
        if !valid_type_name(ty) {
            problems.push(Problem::new(
                "/type",
                "custom-type-name",
                format!("type '{ty}' must be 3-250 characters of a-z, 0-9 and single hyphens, starting with a letter"),
            ));
        }
        if !map.keys().any(|k| !COMMON.contains(&k.as_str())) {
            problems.push(Problem::new("", "custom-object", "a custom object needs at least one property of its own"));
        }
    }
    let custom: Vec<&str> = if official {
        validator.custom_properties(object)
    } else {
        map.keys().map(String::as_str).filter(|k| !COMMON.contains(k)).collect()
    };
    for p in custom {
        if let Some(v) = map.get(p) {
            custom_value(p, v, problems);
        }
        if !valid_property_name(p) {
            problems.push(Problem::new(
                format!("/{p}"),
                "property-name",
                format!("property name '{p}' must be 3-250 characters of a-z, 0-9 and '_', starting with a letter"),
            ));
        }
    }

    // Granular marking selectors must point at content that is present (§1.7).
    for (i, g) in map.get("granular_markings").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for (j, s) in g.get("selectors").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if let Some(sel) = s.as_str() {
                if !selector_resolves(object, sel) {
                    problems.push(Problem::new(
                        format!("/granular_markings/{i}/selectors/{j}"),
                        "marking-selector",
                        format!("selector '{sel}' does not point to content present on the object"),
                    ));
                }
            }
        }
        if ty == "marking-definition" && g.get("marking_ref").and_then(Value::as_str) == Some(id) {
            problems.push(Problem::new(
                format!("/granular_markings/{i}/marking_ref"),
                "marking-self-reference",
                "a marking definition must not mark itself",
            ));
        }
    }
    if ty == "marking-definition"
        && map
            .get("object_marking_refs")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|r| r.as_str() == Some(id)))
    {
        problems.push(Problem::new(
            "/object_marking_refs",
            "marking-self-reference",
            "a marking definition must not mark itself",
        ));
    }

    // STIX patterns must parse (§5.1 `patterns`).
    if ty == "indicator" && map.get("pattern_type").and_then(Value::as_str) == Some("stix") {
        if let Some(p) = map.get("pattern").and_then(Value::as_str) {
            if let Err(e) = pattern::check(p) {
                problems.push(Problem::new(
                    "/pattern",
                    "pattern",
                    format!("not a valid STIX pattern: {} (at byte {})", e.message, e.position),
                ));
            }
        }
    }

    // UUID versions (§1.3, §5.1 `uuid_version_check`, `process`).
    for (t, contributing) in UUID4_WITHOUT {
        if ty == *t && !contributing.iter().any(|p| map.contains_key(*p)) && uuid_version(id).is_some_and(|v| v != 4) {
            problems.push(Problem::new(
                "/id",
                "uuid-version",
                format!("a {ty} without any of its id-contributing properties must have a UUIDv4 id"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_type_name("x-mitre-tactic"));
        assert!(!valid_type_name("x--a"));
        assert!(!valid_type_name("X-a"));
        assert!(!valid_type_name("ab"));
        assert!(valid_property_name("x_mitre_version"));
        assert!(!valid_property_name("xMitre"));
        assert!(!valid_property_name("ab"));
        assert!(!valid_property_name("_abc"));
    }

    #[test]
    fn selectors() {
        let o = serde_json::json!({"description": "d", "labels": ["a"], "external_references": [{"source_name": "x"}]});
        assert!(selector_resolves(&o, "description"));
        assert!(selector_resolves(&o, "labels.[0]"));
        assert!(selector_resolves(&o, "external_references.[0].source_name"));
        assert!(!selector_resolves(&o, "labels.[1]"));
        assert!(!selector_resolves(&o, "name"));
        assert!(!selector_resolves(&o, "description.[0]"));
    }
}
