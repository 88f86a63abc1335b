//! STIX 2.1 validation: our own JSON Schemas (`schemas/`, embedded at build time) plus the rules
//! a schema cannot express ([`rules`]), and the per-collection sharing policy ([`policy`]).
//!
//! [`Validator::validate`] returns every problem of an object, not just the first; each names the
//! property and the rule broken. No I/O here: the schemas are compiled once at start-up, offline.

pub mod pattern;
pub mod policy;
mod rules;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use self::policy::{PolicyCheck as _, SharingPolicy};
use crate::model::stix::{read_object, ObjectHead};

include!(concat!(env!("OUT_DIR"), "/schemas.rs"));

/// Longest problem message kept (schema messages may quote the whole object).
const MAX_MESSAGE: usize = 300;

/// Base URI of every schema's `$id`.
pub const SCHEMA_BASE: &str = "https://concordia.invalid/schemas/stix-2.1/";

/// One problem with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON pointer of the offending property within the object (`""` for the object itself).
    pub property: String,
    /// Short name of the rule broken (`schema`, `timestamp-order`, `pattern`, ...).
    pub rule: String,
    pub message: String,
}

impl Problem {
    pub fn new(property: impl Into<String>, rule: &str, message: impl Into<String>) -> Self {
        Problem { property: property.into(), rule: rule.to_owned(), message: message.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.property.is_empty() {
            write!(f, "{} [{}]", self.message, self.rule)
        } else {
            write!(f, "{}: {} [{}]", self.property, self.message, self.rule)
        }
    }
}

/// Why one object was refused, naming it as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The object's id when it has a usable one, else its position (`objects[3]`).
    pub id: String,
    /// Its version (`modified`, else `created`) as written, or empty.
    pub version: String,
    pub problems: Vec<Problem>,
    /// The object could not be read at all (not an object, no usable id or version).
    unreadable: bool,
}

impl Refused {
    /// The text for a status resource's `failures` entry.
    pub fn message(&self) -> String {
        match self.problems.as_slice() {
            [only] if self.unreadable => only.message.clone(),
            list => {
                let parts: Vec<String> = list.iter().map(ToString::to_string).collect();
                format!("{} problem(s): {}", parts.len(), parts.join("; "))
            }
        }
    }
}

/// Compiled schemas, one per STIX type, plus the generic ones for custom objects.
pub struct Validator {
    by_type: HashMap<String, jsonschema::Validator>,
    core: jsonschema::Validator,
    sco_core: jsonschema::Validator,
    /// Property names each official type defines (its own and the common ones), for telling
    /// custom properties apart.
    known_properties: HashMap<String, HashSet<String>>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator").field("types", &self.by_type.len()).finish()
    }
}

/// Collects the property names a schema defines: its `properties`, through `allOf` and local or
/// relative `$ref`s to other embedded schemas.
fn collect_properties(
    schema: &Value,
    base: &str,
    docs: &HashMap<String, Value>,
    out: &mut HashSet<String>,
    depth: usize,
) {
    if depth > 8 {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        out.extend(props.keys().cloned());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            collect_properties(sub, base, docs, out, depth + 1);
        }
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let (file, pointer) = r.split_once('#').unwrap_or((r, ""));
        if file.is_empty() {
            return;
        }
        let target = resolve_relative(base, file);
        if let Some(doc) = docs.get(&target) {
            let node = if pointer.is_empty() { Some(doc) } else { doc.pointer(pointer) };
            if let Some(node) = node {
                collect_properties(node, &target, docs, out, depth + 1);
            }
        }
    }
}

/// Resolves a relative file reference (`../common/core.json`) against a schema URI.
fn resolve_relative(base: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for seg in rel.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

impl Validator {
    /// Compiles the embedded schemas. Fails only if the schemas themselves are broken.
    pub fn new() -> Result<Validator, String> {
        let mut docs: HashMap<String, Value> = HashMap::new();
        let mut index: HashMap<String, String> = HashMap::new();
        for (path, text) in SCHEMA_FILES {
            let value: Value = serde_json::from_str(text).map_err(|e| format!("schemas/{path}: {e}"))?;
            if *path == "index.json" {
                index = serde_json::from_value(value).map_err(|e| format!("schemas/index.json: {e}"))?;
            } else {
                docs.insert(format!("{SCHEMA_BASE}{path}"), value);
            }
        }
        let registry = jsonschema::Registry::new()
            .extend(docs.iter().map(|(k, v)| (k.clone(), v.clone())))
            .and_then(jsonschema::RegistryBuilder::prepare)
            .map_err(|e| format!("schema registry: {e}"))?;
        let compile = |uri: &str| -> Result<jsonschema::Validator, String> {
            let schema = docs.get(uri).ok_or_else(|| format!("missing schema {uri}"))?;
            jsonschema::options()
                .with_registry(&registry)
                .with_base_uri(uri.to_owned())
                .should_validate_formats(true)
                .build(schema)
                .map_err(|e| format!("{uri}: {e}"))
        };
        let mut by_type = HashMap::new();
        let mut known_properties = HashMap::new();
        for (ty, path) in &index {
            let uri = format!("{SCHEMA_BASE}{path}");
            by_type.insert(ty.clone(), compile(&uri)?);
            let mut props = HashSet::new();
            if let Some(doc) = docs.get(&uri) {
                collect_properties(doc, &uri, &docs, &mut props, 0);
            }
            known_properties.insert(ty.clone(), props);
        }
        let core = compile(&format!("{SCHEMA_BASE}common/core.json"))?;
        let sco_core = compile(&format!("{SCHEMA_BASE}common/sco-core.json"))?;
        Ok(Validator { by_type, core, sco_core, known_properties })
    }

    /// Whether `ty` is one of the STIX 2.1 types (as opposed to a custom one).
    pub fn is_official_type(&self, ty: &str) -> bool {
        self.by_type.contains_key(ty)
    }

    /// Top-level properties of `object` that its type does not define (custom properties).
    pub fn custom_properties<'a>(&self, object: &'a Value) -> Vec<&'a str> {
        let ty = object.get("type").and_then(Value::as_str).unwrap_or_default();
        let Some(known) = self.known_properties.get(ty) else {
            return Vec::new();
        };
        object
            .as_object()
            .map(|m| m.keys().map(String::as_str).filter(|k| !known.contains(*k)).collect())
            .unwrap_or_default()
    }

    /// Checks one object exactly as received (position `index` of its envelope): I-JSON (no
    /// duplicate member names, numbers a double carries exactly, no unpaired surrogates), its
    /// identity and version, STIX 2.1 validity, and, when given, a collection's sharing policy.
    /// This is the one check every way into the store goes through (POST, `import`) and what
    /// `concordia validate` reports.
    ///
    /// # Errors
    /// The object is refused, with every problem found (property as a JSON pointer, and rule).
    pub fn check_object(
        &self,
        sharing: Option<&SharingPolicy>,
        raw: &str,
        index: usize,
    ) -> Result<(ObjectHead, Value), Refused> {
        let (violations, named) = crate::model::ijson::scan(raw, &["id", "modified", "created"]);
        if !violations.is_empty() {
            // The object is named by the first id (and version) it gives, as the status must name
            // it somehow; which of two equal member names a parser keeps is exactly what cannot be
            // relied on, and the text may not even parse.
            let mut named = named.into_iter();
            let id = named.next().flatten().map_or_else(|| format!("objects[{index}]"), |id| id.to_ascii_lowercase());
            let version = named.next().flatten().or_else(|| named.next().flatten()).unwrap_or_default();
            let problems = violations.into_iter().map(|v| Problem::new(v.pointer, "i-json", v.message)).collect();
            return Err(Refused { id, version, problems, unreadable: false });
        }
        let (head, value) = read_object(raw, index).map_err(|p| Refused {
            id: p.id,
            version: p.version,
            problems: vec![Problem::new("", "object", p.message)],
            unreadable: true,
        })?;
        // STIX 2.0 objects (accepted only where a collection allows 2.0) have no 2.1 schema to
        // meet; without a collection (`concordia validate`), every object is checked as STIX 2.1.
        let mut problems =
            if head.spec_version == "2.1" || sharing.is_none() { self.validate(&value) } else { Vec::new() };
        if let Some(sharing) = sharing {
            problems.extend(sharing.check(self, &value, &head.spec_version));
        }
        if problems.is_empty() {
            Ok((head, value))
        } else {
            Err(Refused { id: head.id, version: head.version.unwrap_or_default(), problems, unreadable: false })
        }
    }

    /// Every problem of one STIX object: schema violations and the rules in [`rules`].
    pub fn validate(&self, object: &Value) -> Vec<Problem> {
        let mut problems = Vec::new();
        let Some(map) = object.as_object() else {
            return vec![Problem::new("", "object", "a STIX object must be a JSON object")];
        };
        let ty = map.get("type").and_then(Value::as_str).unwrap_or_default();
        let schema = match self.by_type.get(ty) {
            Some(s) => s,
            None if map.contains_key("created") || map.contains_key("modified") => &self.core,
            None => &self.sco_core,
        };
        for e in schema.iter_errors(object) {
            let mut message = e.to_string();
            // Some messages quote the whole instance; keep statuses small and readable.
            if message.len() > MAX_MESSAGE {
                let cut = (0..=MAX_MESSAGE).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
                message.truncate(cut);
                message.push('…');
            }
            problems.push(Problem::new(e.instance_path().to_string(), "schema", message));
        }
        rules::check(self, object, &mut problems);
        problems.dedup();
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn indicator() -> Value {
        json!({
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2016-04-06T20:03:48.000Z", "modified": "2016-04-06T20:03:48.000Z",
            "pattern": "[ipv4-addr:value = '198.51.100.1']", "pattern_type": "stix",
            "valid_from": "2016-01-01T00:00:00Z"
        })
    }

    #[test]
    fn the_embedded_schemas_compile_and_accept_a_valid_indicator() {
        let v = Validator::new().unwrap_or_else(|e| panic!("{e}"));
        assert!(v.validate(&indicator()).is_empty(), "{:?}", v.validate(&indicator()));
    }

    #[test]
    fn every_problem_is_reported_with_its_property() {
        let v = Validator::new().unwrap_or_else(|e| panic!("{e}"));
        let mut bad = indicator();
        bad["modified"] = json!("2015-01-01T00:00:00.000Z");
        bad["valid_until"] = json!("2015-01-01T00:00:00Z");
        bad["confidence"] = json!(101);
        bad.as_object_mut().unwrap().remove("pattern_type");
        let problems = v.validate(&bad);
        let rules: Vec<&str> = problems.iter().map(|p| p.rule.as_str()).collect();
        assert!(rules.iter().filter(|r| **r == "timestamp-order").count() == 2, "{problems:#?}");
        assert!(problems.iter().any(|p| p.property == "/confidence"), "{problems:#?}");
        assert!(problems.iter().any(|p| p.message.contains("pattern_type")), "{problems:#?}");
    }

    #[test]
    fn custom_objects_and_properties() {
        let v = Validator::new().unwrap_or_else(|e| panic!("{e}"));
        let custom = json!({"type": "x-acme-widget", "spec_version": "2.1", "id": "x-acme-widget--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2016-04-06T20:03:48.000Z", "modified": "2016-04-06T20:03:48.000Z", "x_acme_size": 3});
        assert!(v.validate(&custom).is_empty(), "{:?}", v.validate(&custom));
        let mut ind = indicator();
        ind["x_acme_score"] = json!(5);
        assert_eq!(v.custom_properties(&ind), vec!["x_acme_score"]);
        ind["BadName"] = json!(1);
        assert!(v.validate(&ind).iter().any(|p| p.rule == "property-name"));
    }
}
