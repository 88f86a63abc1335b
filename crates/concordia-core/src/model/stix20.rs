//! STIX 2.1 objects as STIX 2.0, for the read-only TAXII 2.0 view.
//!
//! The rule: an object is served as STIX 2.0 only where 2.0 can say exactly what it says.
//! - Versions stored as STIX 2.0 are served as they are.
//! - Of 2.1 objects, only the types STIX 2.0 has ([`TYPES`]) are served; the others
//!   (grouping, infrastructure, location, note, opinion, malware-analysis, language-content,
//!   extension-definition, the cyber observables as top-level objects, custom types) are left out.
//! - `spec_version` is removed, and so is every property STIX 2.0 does not define for the type
//!   (`confidence`, `lang`, `extensions`, `pattern_type`, `is_family`, ...); custom `x_`
//!   properties stay, as 2.0 allows them.
//! - Where 2.1 moved the meaning of 2.0's required `labels` to a `<type>_types` property
//!   (`indicator_types`, `malware_types`, `report_types`, `threat_actor_types`, `tool_types`),
//!   an object without `labels` gets them from that property.
//! - An object that still lacks a property 2.0 requires (an indicator whose `pattern_type` is
//!   not `stix`, a malware without labels or types, observed data with `object_refs` instead of
//!   `objects`, ...) is left out.

use serde_json::{Map, Value};

const COMMON: &[&str] = &[
    "type",
    "id",
    "created_by_ref",
    "created",
    "modified",
    "revoked",
    "labels",
    "external_references",
    "object_marking_refs",
    "granular_markings",
];

/// The STIX 2.0 types, each with its own properties (besides [`COMMON`]) and those it requires.
pub const TYPES: &[(&str, &[&str], &[&str])] = &[
    ("attack-pattern", &["name", "description", "kill_chain_phases"], &["name"]),
    ("campaign", &["name", "description", "aliases", "first_seen", "last_seen", "objective"], &["name"]),
    ("course-of-action", &["name", "description"], &["name"]),
    (
        "identity",
        &["name", "description", "identity_class", "sectors", "contact_information"],
        &["name", "identity_class"],
    ),
    (
        "indicator",
        &["name", "description", "pattern", "valid_from", "valid_until", "kill_chain_phases"],
        &["pattern", "valid_from", "labels"],
    ),
    (
        "intrusion-set",
        &[
            "name",
            "description",
            "aliases",
            "first_seen",
            "last_seen",
            "goals",
            "resource_level",
            "primary_motivation",
            "secondary_motivations",
        ],
        &["name"],
    ),
    ("malware", &["name", "description", "kill_chain_phases"], &["name", "labels"]),
    (
        "observed-data",
        &["first_observed", "last_observed", "number_observed", "objects"],
        &["first_observed", "last_observed", "number_observed", "objects"],
    ),
    ("report", &["name", "description", "published", "object_refs"], &["name", "published", "object_refs", "labels"]),
    (
        "threat-actor",
        &[
            "name",
            "description",
            "aliases",
            "roles",
            "goals",
            "sophistication",
            "resource_level",
            "primary_motivation",
            "secondary_motivations",
            "personal_motivations",
        ],
        &["name", "labels"],
    ),
    ("tool", &["name", "description", "kill_chain_phases", "tool_version"], &["name", "labels"]),
    ("vulnerability", &["name", "description"], &["name"]),
    (
        "relationship",
        &["relationship_type", "description", "source_ref", "target_ref"],
        &["relationship_type", "source_ref", "target_ref"],
    ),
    (
        "sighting",
        &["first_seen", "last_seen", "count", "sighting_of_ref", "observed_data_refs", "where_sighted_refs", "summary"],
        &["sighting_of_ref"],
    ),
    ("marking-definition", &["definition_type", "definition"], &["definition_type", "definition"]),
];

/// The STIX 2.0 type names (what the TAXII 2.0 view asks storage for).
pub fn type_names() -> Vec<String> {
    TYPES.iter().map(|(t, _, _)| (*t).to_owned()).collect()
}

/// The 2.1 property that carries what 2.0's `labels` did, per type.
fn labels_from(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "indicator" => "indicator_types",
        "malware" => "malware_types",
        "report" => "report_types",
        "threat-actor" => "threat_actor_types",
        "tool" => "tool_types",
        _ => return None,
    })
}

/// The object (its stored JSON text, stored as `spec_version`) as STIX 2.0 text, or `None` if
/// STIX 2.0 cannot express it exactly (see the module documentation).
pub fn to_stix20(body: &str, spec_version: &str) -> Option<String> {
    if spec_version == "2.0" {
        return Some(body.to_owned());
    }
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(body) else { return None };
    let ty = object.get("type").and_then(Value::as_str)?.to_owned();
    let (_, own, required) = TYPES.iter().find(|(t, _, _)| *t == ty)?;
    if ty == "indicator" && object.get("pattern_type").and_then(Value::as_str).is_some_and(|p| p != "stix") {
        return None;
    }
    let mut out = Map::new();
    for (k, v) in &object {
        if COMMON.contains(&k.as_str()) || own.contains(&k.as_str()) || k.starts_with("x_") {
            out.insert(k.clone(), v.clone());
        }
    }
    if !out.contains_key("labels") {
        if let Some(types) =
            labels_from(&ty).and_then(|p| object.get(p)).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            out.insert("labels".into(), types.clone());
        }
    }
    if required.iter().any(|r| !out.contains_key(*r)) {
        return None;
    }
    serde_json::to_string(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_indicator_loses_what_20_lacks_and_gets_labels_from_its_types() {
        let v21 = r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","indicator_types":["malicious-activity"],"pattern":"[ipv4-addr:value = '1.2.3.4']","pattern_type":"stix","valid_from":"2016-01-01T00:00:00Z","confidence":80,"x_acme_score":7}"#;
        let out: Value = serde_json::from_str(&to_stix20(v21, "2.1").unwrap_or_default()).unwrap_or_default();
        assert_eq!(out["labels"], serde_json::json!(["malicious-activity"]));
        for gone in ["spec_version", "pattern_type", "confidence", "indicator_types"] {
            assert!(out.get(gone).is_none(), "{gone}");
        }
        assert_eq!(out["x_acme_score"], 7, "custom properties stay");
        assert_eq!(out["pattern"], "[ipv4-addr:value = '1.2.3.4']");
    }

    #[test]
    fn what_20_cannot_say_is_left_out() {
        let sigma = r#"{"type":"indicator","spec_version":"2.1","id":"indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","labels":["x"],"pattern":"title: x","pattern_type":"sigma","valid_from":"2016-01-01T00:00:00Z"}"#;
        assert_eq!(to_stix20(sigma, "2.1"), None);
        let no_labels = r#"{"type":"malware","spec_version":"2.1","id":"malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","name":"x","is_family":false}"#;
        assert_eq!(to_stix20(no_labels, "2.1"), None);
        let grouping = r#"{"type":"grouping","spec_version":"2.1","id":"grouping--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f","created":"2016-04-06T20:03:48.000Z","modified":"2016-04-06T20:03:48.000Z","context":"x","object_refs":["malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"]}"#;
        assert_eq!(to_stix20(grouping, "2.1"), None);
        let sco = r#"{"type":"ipv4-addr","spec_version":"2.1","id":"ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd","value":"1.2.3.4"}"#;
        assert_eq!(to_stix20(sco, "2.1"), None);
        let v20 = r#"{"type":"grouping","id":"x"}"#;
        assert_eq!(to_stix20(v20, "2.0").as_deref(), Some(v20), "stored as 2.0: served as it came");
    }
}
