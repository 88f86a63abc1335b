//! Per-collection sharing policy: custom content, TLP ceiling, required TLP, spec versions.

use serde_json::Value;

use super::{Problem, Validator};
pub use crate::model::policy::{SharingPolicy, Tlp};

/// Checks an object against a collection's sharing policy.
pub trait PolicyCheck {
    fn check(&self, validator: &Validator, object: &Value, spec_version: &str) -> Vec<Problem>;
}

impl PolicyCheck for SharingPolicy {
    /// The problems of an object under this policy (`spec_version` is the object's, derived).
    fn check(&self, validator: &Validator, object: &Value, spec_version: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        if !self.spec_versions.iter().any(|v| v == spec_version) {
            problems.push(Problem::new(
                "/spec_version",
                "policy-spec-version",
                format!(
                    "this collection accepts spec_version {} only, not {spec_version}",
                    self.spec_versions.join(", ")
                ),
            ));
        }
        let ty = object.get("type").and_then(Value::as_str).unwrap_or_default();
        if !self.custom_objects && !validator.is_official_type(ty) {
            problems.push(Problem::new(
                "/type",
                "policy-custom-object",
                format!("this collection does not accept custom object types such as '{ty}'"),
            ));
        }
        if !self.custom_properties {
            // Extension-definition extensions are custom content too, wherever their properties sit.
            for key in object.get("extensions").and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
                if key.starts_with("extension-definition--") {
                    problems.push(Problem::new(
                        format!("/extensions/{key}"),
                        "policy-custom-property",
                        format!("this collection does not accept custom extensions such as '{key}'"),
                    ));
                }
            }
            for p in validator.custom_properties(object) {
                problems.push(Problem::new(
                    format!("/{p}"),
                    "policy-custom-property",
                    format!("this collection does not accept custom properties such as '{p}'"),
                ));
            }
        }
        let levels: Vec<Tlp> = object.as_object().map(Tlp::levels_of).unwrap_or_default();
        if let (Some(ceiling), Some(max)) = (self.tlp_ceiling, levels.iter().max()) {
            if *max > ceiling {
                problems.push(Problem::new(
                    "/object_marking_refs",
                    "policy-tlp-ceiling",
                    format!("the object is marked {}, above this collection's ceiling {}", max.name(), ceiling.name()),
                ));
            }
        }
        if self.require_tlp && ty != "marking-definition" && levels.is_empty() {
            problems.push(Problem::new(
                "/object_marking_refs",
                "policy-tlp-required",
                "this collection requires a TLP marking in object_marking_refs",
            ));
        }
        problems
    }
}
