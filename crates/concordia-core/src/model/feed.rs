//! Feeds: the properties of an object that filters look at (its facets), the filter of a derived
//! collection, and a collection's feed settings (derived sources, retention, TAXII 2.0).
//!
//! The same facets serve the richer `match[...]` parameters on every collection (indexed
//! columns, see `storage::objects`) and the filter that admits versions into a derived
//! collection (evaluated here, when the version is written to a source).

use serde::{Deserialize, Serialize};

use super::policy::Tlp;
use super::time::{parse_taxii, Micros};

/// What filters look at in one object version. Absent properties are `None` / empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    /// `confidence` (0–100).
    pub confidence: Option<i32>,
    /// `created_by_ref`, in lower case (identifiers compare case-insensitively).
    pub created_by: Option<String>,
    /// The most restrictive TLP marking (object and granular markings, TLP 1.0 and 2.0).
    pub tlp: Option<Tlp>,
    pub revoked: bool,
    pub valid_from: Option<Micros>,
    pub valid_until: Option<Micros>,
    /// `labels`, in lower case (labels match case-insensitively).
    pub labels: Vec<String>,
    pub created: Option<Micros>,
    pub modified: Option<Micros>,
    /// What a relationship links (`source_ref`, `target_ref`), or what a sighting is of
    /// (`sighting_of_ref`, as its source): `match[relationships-all]` finds them by either.
    pub source_ref: Option<String>,
    pub target_ref: Option<String>,
}

/// The character that separates labels in the stored `labels` column: `␟a␟b␟`, so that one
/// label is found with `LIKE '%␟a␟%'`. It is removed from labels themselves.
pub const LABEL_SEPARATOR: char = '\u{1f}';

/// A label as stored and matched: lower case, without the separator and without NUL (which
/// PostgreSQL text cannot hold; the object's own text keeps it).
pub fn normalise_label(label: &str) -> String {
    label.chars().filter(|c| *c != LABEL_SEPARATOR && *c != '\0').flat_map(char::to_lowercase).collect()
}

/// An identifier property as indexed: lower case, and only if it is a STIX identifier (the
/// validator refuses others in STIX 2.1 objects; custom and 2.0 content may carry anything).
fn identifier(value: Option<&serde_json::Value>) -> Option<String> {
    let id = value?.as_str()?.to_ascii_lowercase();
    super::stix::valid_identifier(&id).is_some().then_some(id)
}

impl Facets {
    /// Reads the facets of a parsed STIX object; properties of the wrong type count as absent
    /// (the validator reports them where the collection validates).
    pub fn of(object: &serde_json::Map<String, serde_json::Value>) -> Facets {
        use serde_json::Value;
        let time = |name: &str| object.get(name).and_then(Value::as_str).and_then(parse_taxii);
        let mut labels: Vec<String> = object
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(normalise_label)
            .filter(|l| !l.is_empty())
            .collect();
        labels.sort();
        labels.dedup();
        let reference = |name: &str| identifier(object.get(name));
        let (source_ref, target_ref) = match object.get("type").and_then(Value::as_str) {
            Some("relationship") => (reference("source_ref"), reference("target_ref")),
            Some("sighting") => (reference("sighting_of_ref"), None),
            _ => (None, None),
        };
        Facets {
            source_ref,
            target_ref,
            confidence: object.get("confidence").and_then(Value::as_i64).and_then(|c| i32::try_from(c).ok()),
            created_by: identifier(object.get("created_by_ref")),
            tlp: Tlp::levels_of(object).into_iter().max(),
            revoked: object.get("revoked").and_then(Value::as_bool).unwrap_or(false),
            valid_from: time("valid_from"),
            valid_until: time("valid_until"),
            labels,
            created: time("created"),
            modified: time("modified"),
        }
    }

    /// The stored form of the labels (`None` without labels).
    pub fn labels_column(&self) -> Option<String> {
        if self.labels.is_empty() {
            return None;
        }
        let mut s = String::from(LABEL_SEPARATOR);
        for l in &self.labels {
            s.push_str(l);
            s.push(LABEL_SEPARATOR);
        }
        Some(s)
    }

    /// Whether the object is valid at `now`: `valid_from` ≤ now < `valid_until` (a missing
    /// bound does not limit).
    pub fn valid_at(&self, now: Micros) -> bool {
        self.valid_from.is_none_or(|f| f <= now) && self.valid_until.is_none_or(|u| now < u)
    }
}

/// The TLP level as stored in the `tlp` column (0 = CLEAR/WHITE … 4 = RED).
pub fn tlp_rank(t: Tlp) -> i32 {
    match t {
        Tlp::Clear => 0,
        Tlp::Green => 1,
        Tlp::Amber => 2,
        Tlp::AmberStrict => 3,
        Tlp::Red => 4,
    }
}

/// The filter postings of a version (table `object_tags`): the keys under which the richer
/// filters find it without reading the collection. One per label (`l:<label>`, or `h:` and a
/// digest for a label too long to be an index key), one for its TLP level (`t:0` … `t:4`, `t:-`
/// unmarked) and one for its confidence decile (`c:0` … `c:10`, none without `confidence`).
/// `confidence`, `tlp` and `labels` are the stored columns (`tlp_rank`, `labels_column`).
pub fn filter_tags(confidence: Option<i32>, tlp: Option<i32>, labels: Option<&str>) -> Vec<String> {
    let mut out = Vec::with_capacity(3);
    out.push(tlp.map_or_else(|| "t:-".to_owned(), |t| format!("t:{t}")));
    if let Some(c) = confidence {
        out.push(confidence_tag(c));
    }
    for l in labels.into_iter().flat_map(|l| l.split(LABEL_SEPARATOR)).filter(|l| !l.is_empty()) {
        out.push(label_tag(l));
    }
    out.sort();
    out.dedup();
    out
}

/// Labels longer than this (in bytes) are posted under a digest (PostgreSQL refuses index keys
/// over about 2.7 kB).
const LABEL_TAG_MAX: usize = 200;

/// The posting key of a (normalised) label.
pub fn label_tag(label: &str) -> String {
    if label.len() <= LABEL_TAG_MAX {
        return format!("l:{label}");
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(label.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("h:{hex}")
}

/// The posting key of a confidence value: its decile (values outside 0–100 go to the nearest).
pub fn confidence_tag(confidence: i32) -> String {
    format!("c:{}", confidence.clamp(0, 100) / 10)
}

/// The posting keys that hold every version with `confidence` within the bounds (a superset
/// at the edges: the bounds themselves are checked on the rows).
pub fn confidence_tags(min: Option<i32>, max: Option<i32>) -> Vec<String> {
    let lo = min.unwrap_or(0).clamp(0, 100) / 10;
    let hi = max.unwrap_or(100).clamp(0, 100) / 10;
    if min.is_some_and(|m| m > 100) || max.is_some_and(|m| m < 0) {
        return Vec::new();
    }
    (lo..=hi).map(|d| format!("c:{d}")).collect()
}

/// The posting keys of every version at or below a TLP level (`tlp_rank`), unmarked included.
pub fn tlp_tags(max_rank: i32) -> Vec<String> {
    std::iter::once("t:-".to_owned()).chain((0..=max_rank.clamp(-1, 4)).map(|r| format!("t:{r}"))).collect()
}

/// The filter of a derived collection (`[collections.filter]` in the policy). Every key given
/// must hold; a list matches when any of its values does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedFilter {
    /// Object types (`indicator`, `malware`, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// At least one of these labels (case-insensitive).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// `confidence` at least / at most this; objects without `confidence` do not match a bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_min: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence_max: Option<i32>,
    /// Highest TLP level; objects without a TLP marking pass (as under a collection's
    /// `tlp_ceiling`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tlp_max: Option<Tlp>,
    /// `created_by_ref` is one of these identity ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub created_by: Vec<String>,
    /// `revoked` is this (absent in the object: false). With `false`, the version that revokes
    /// an object already in the feed is still added, so that consumers learn of the revocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<bool>,
    /// `true`: only objects valid now (`valid_from` ≤ now < `valid_until`), checked when the
    /// feed is read, so that an expired indicator drops out. `false` or absent: no check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_now: Option<bool>,
    /// `modified` (else `created`) after this STIX timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modified_after: Option<String>,
    /// `created` after this STIX timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_after: Option<String>,
}

impl FeedFilter {
    /// Every problem of the filter (`label` names the collection in messages).
    pub fn problems(&self, label: &str) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.types {
            if !super::stix::valid_type(t) {
                out.push(format!("{label}: filter.types value '{t}' is not a STIX type name such as indicator"));
            }
        }
        for (name, v) in [("confidence_min", self.confidence_min), ("confidence_max", self.confidence_max)] {
            if v.is_some_and(|v| !(0..=100).contains(&v)) {
                out.push(format!("{label}: filter.{name} must be between 0 and 100"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.confidence_min, self.confidence_max) {
            if lo > hi {
                out.push(format!("{label}: filter.confidence_min is above confidence_max"));
            }
        }
        for id in &self.created_by {
            if super::stix::valid_identifier(&id.to_ascii_lowercase()).is_none_or(|t| t != "identity") {
                out.push(format!(
                    "{label}: filter.created_by value '{id}' is not an identity id such as identity--<uuid>"
                ));
            }
        }
        for (name, v) in [("modified_after", &self.modified_after), ("created_after", &self.created_after)] {
            if v.as_deref().is_some_and(|v| parse_taxii(v).is_none()) {
                out.push(format!("{label}: filter.{name} is not a timestamp such as 2026-01-01T00:00:00Z"));
            }
        }
        if self.labels.iter().any(|l| normalise_label(l).is_empty()) {
            out.push(format!("{label}: filter.labels has an empty label"));
        }
        out
    }

    /// Whether a version with this type and these facets matches every condition that does not
    /// depend on the time of reading (`valid_now` is applied when the feed is read).
    pub fn admits(&self, stix_type: &str, f: &Facets) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == stix_type))
            && (self.labels.is_empty() || self.labels.iter().any(|l| f.labels.contains(&normalise_label(l))))
            && self.confidence_min.is_none_or(|m| f.confidence.is_some_and(|c| c >= m))
            && self.confidence_max.is_none_or(|m| f.confidence.is_some_and(|c| c <= m))
            && self.tlp_max.is_none_or(|m| f.tlp.is_none_or(|t| t <= m))
            && (self.created_by.is_empty()
                || f.created_by.as_deref().is_some_and(|c| self.created_by.iter().any(|w| w.eq_ignore_ascii_case(c))))
            && self.revoked.is_none_or(|r| r == f.revoked)
            && self
                .modified_after
                .as_deref()
                .and_then(parse_taxii)
                .is_none_or(|t| f.modified.or(f.created).is_some_and(|m| m > t))
            && self.created_after.as_deref().and_then(parse_taxii).is_none_or(|t| f.created.is_some_and(|c| c > t))
    }

    /// Whether reads apply the validity window.
    pub fn checks_validity(&self) -> bool {
        self.valid_now == Some(true)
    }
}

/// A retention period in days: whole or fractional (`0.5` is twelve hours).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Days(pub f64);

// Policies are compared whole; a period is a finite number (validation refuses NaN).
impl Eq for Days {}

impl Days {
    /// The period in µs.
    pub fn micros(self) -> i64 {
        // Saturating float-to-int conversion; validated to at most 36,500 days.
        (self.0 * 86_400_000_000.0) as i64
    }

    /// Whether the period is usable: more than 0, at most 36,500 days.
    pub fn valid(self) -> bool {
        self.0.is_finite() && self.0 > 0.0 && self.0 <= 36_500.0
    }
}

impl std::fmt::Display for Days {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A collection's feed settings, stored with the collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedSettings {
    /// Source collection ids; non-empty for a derived collection. A source's position in this
    /// list is its bit in the `source_mask` of the derived collection's rows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<String>,
    #[serde(skip_serializing_if = "is_default_filter")]
    pub filter: FeedFilter,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<Days>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keep_latest: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub taxii20: bool,
}

fn is_default_filter(f: &FeedFilter) -> bool {
    *f == FeedFilter::default()
}

/// Most source collections one derived collection may have (one bit each in a 63-bit mask).
pub const MAX_SOURCES: usize = 62;

impl FeedSettings {
    pub fn is_derived(&self) -> bool {
        !self.derived_from.is_empty()
    }

    /// The stored form (JSON; `{}` for none).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The bit of a source collection in the derived collection's `source_mask`.
    pub fn source_bit(&self, source: &str) -> Option<i64> {
        self.derived_from.iter().position(|s| s == source).and_then(|i| u32::try_from(i).ok()).map(|i| 1i64 << i)
    }

    /// Whether the contents of a derived collection change from `self` to `other` (its rows
    /// are then rebuilt).
    pub fn same_contents(&self, other: &FeedSettings) -> bool {
        self.derived_from == other.derived_from && self.filter == other.filter
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_postings_of_a_version() {
        assert_eq!(super::filter_tags(None, None, None), ["t:-"]);
        assert_eq!(
            super::filter_tags(Some(87), Some(1), Some("\u{1f}apt28\u{1f}c2\u{1f}")),
            ["c:8", "l:apt28", "l:c2", "t:1"]
        );
        assert_eq!(super::filter_tags(Some(100), Some(4), None), ["c:10", "t:4"]);
        assert_eq!(super::filter_tags(Some(-5), None, None), ["c:0", "t:-"], "out of range: the nearest decile");
        let long = "x".repeat(500);
        let tag = super::label_tag(&long);
        assert!(tag.starts_with("h:") && tag.len() == 34, "{tag}");
        assert_eq!(tag, super::label_tag(&long), "the same label, the same key");
        assert_ne!(tag, super::label_tag(&"x".repeat(501)));
    }

    #[test]
    fn posting_keys_of_the_richer_filters_cover_every_match() {
        assert_eq!(super::confidence_tags(Some(80), None), ["c:8", "c:9", "c:10"]);
        assert_eq!(super::confidence_tags(None, Some(19)), ["c:0", "c:1"]);
        assert_eq!(super::confidence_tags(Some(35), Some(64)), ["c:3", "c:4", "c:5", "c:6"]);
        assert!(super::confidence_tags(Some(70), Some(20)).is_empty(), "nothing between");
        assert_eq!(super::tlp_tags(1), ["t:-", "t:0", "t:1"]);
        assert_eq!(super::tlp_tags(4).len(), 6);
        // Every value within the bounds is posted under one of the keys asked for.
        for c in 0..=100 {
            for (lo, hi) in [(Some(0), None), (Some(45), Some(55)), (None, Some(100)), (Some(99), Some(100))] {
                let inside = lo.is_none_or(|l| c >= l) && hi.is_none_or(|h| c <= h);
                if inside {
                    assert!(super::confidence_tags(lo, hi).contains(&super::confidence_tag(c)), "{c} {lo:?} {hi:?}");
                }
            }
        }
    }

    use super::*;

    fn facets(json: &str) -> Facets {
        let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        Facets::of(v.as_object().unwrap_or(&serde_json::Map::new()))
    }

    #[test]
    fn facets_are_read_from_the_object() {
        let f = facets(
            r#"{"confidence":70,"created_by_ref":"identity--AB6E9A3C-7A43-4D8B-9E44-8E6B36CE1E01","labels":["APT","apt","c2"],
                "object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],
                "granular_markings":[{"marking_ref":"marking-definition--f88d31f6-486f-44da-b317-01333bde0b82","selectors":["name"]}],
                "revoked":true,"valid_from":"2026-01-01T00:00:00Z","valid_until":"2026-02-01T00:00:00.5Z"}"#,
        );
        assert_eq!(f.confidence, Some(70));
        assert_eq!(f.created_by.as_deref(), Some("identity--ab6e9a3c-7a43-4d8b-9e44-8e6b36ce1e01"));
        assert_eq!(f.labels, vec!["apt".to_owned(), "c2".to_owned()]);
        assert_eq!(f.tlp, Some(Tlp::Amber), "the most restrictive marking, granular ones included");
        assert!(f.revoked);
        assert_eq!(f.labels_column().as_deref(), Some("\u{1f}apt\u{1f}c2\u{1f}"));
        let (from, until) = (f.valid_from.unwrap_or_default(), f.valid_until.unwrap_or_default());
        assert!(f.valid_at(from) && !f.valid_at(from - 1) && f.valid_at(until - 1) && !f.valid_at(until));
        let none = facets(r#"{"confidence":"high","labels":"x","revoked":"yes","created_by_ref":"acme\u0000"}"#);
        assert_eq!(none, Facets::default());
        let nul = facets(r#"{"labels":["a\u0000b","\u0000"]}"#);
        assert_eq!(nul.labels, vec!["ab".to_owned()], "no NUL reaches a text column");
    }

    #[test]
    fn the_filter_admits_what_every_condition_allows() {
        let f = FeedFilter {
            types: vec!["indicator".into()],
            confidence_min: Some(50),
            tlp_max: Some(Tlp::Green),
            revoked: Some(false),
            labels: vec!["C2".into(), "phishing".into()],
            ..FeedFilter::default()
        };
        let ok = facets(
            r#"{"confidence":50,"labels":["c2"],"object_marking_refs":["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]}"#,
        );
        assert!(f.admits("indicator", &ok));
        assert!(!f.admits("malware", &ok));
        let unmarked = Facets { tlp: None, ..ok.clone() };
        assert!(f.admits("indicator", &unmarked), "an unmarked object passes a TLP ceiling");
        assert!(!f.admits("indicator", &Facets { tlp: Some(Tlp::Amber), ..ok.clone() }));
        assert!(!f.admits("indicator", &Facets { confidence: Some(49), ..ok.clone() }));
        assert!(!f.admits("indicator", &Facets { confidence: None, ..ok.clone() }));
        assert!(!f.admits("indicator", &Facets { revoked: true, ..ok.clone() }));
        assert!(!f.admits("indicator", &Facets { labels: vec!["other".into()], ..ok.clone() }));
        let by = FeedFilter {
            created_by: vec!["identity--ab6e9a3c-7a43-4d8b-9e44-8e6b36ce1e01".into()],
            ..FeedFilter::default()
        };
        assert!(!by.admits("indicator", &ok));
        assert!(by.admits(
            "indicator",
            &Facets { created_by: Some("identity--ab6e9a3c-7a43-4d8b-9e44-8e6b36ce1e01".into()), ..ok.clone() }
        ));
        let after = FeedFilter { modified_after: Some("2026-01-01T00:00:00Z".into()), ..FeedFilter::default() };
        assert!(!after.admits("indicator", &facets(r#"{"modified":"2026-01-01T00:00:00Z"}"#)));
        assert!(after.admits("indicator", &facets(r#"{"modified":"2026-01-01T00:00:00.001Z"}"#)));
        assert!(
            after.admits("indicator", &facets(r#"{"created":"2026-01-02T00:00:00Z"}"#)),
            "created when no modified"
        );
    }

    #[test]
    fn filter_problems_are_reported() {
        let f = FeedFilter {
            types: vec!["Indicator".into()],
            confidence_min: Some(80),
            confidence_max: Some(120),
            created_by: vec!["malware--ab6e9a3c-7a43-4d8b-9e44-8e6b36ce1e01".into()],
            modified_after: Some("yesterday".into()),
            ..FeedFilter::default()
        };
        assert_eq!(f.problems("c").len(), 4, "{:?}", f.problems("c"));
        let crossed = FeedFilter { confidence_min: Some(80), confidence_max: Some(20), ..FeedFilter::default() };
        assert_eq!(crossed.problems("c").len(), 1);
        assert!(FeedFilter::default().problems("c").is_empty());
    }

    #[test]
    fn settings_round_trip_and_source_bits() {
        let s =
            FeedSettings { derived_from: vec!["a".into(), "b".into()], keep_latest: true, ..FeedSettings::default() };
        let back: FeedSettings = serde_json::from_str(&s.to_json()).unwrap_or_default();
        assert_eq!(back, s);
        assert_eq!(s.source_bit("b"), Some(2));
        assert_eq!(s.source_bit("c"), None);
        assert_eq!(FeedSettings::default().to_json(), "{}");
    }
}
