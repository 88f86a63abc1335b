//! Query parameters of the object endpoints (§3.4): parsing, validation and a canonical form.
//!
//! Every malformed value is rejected with a message that says what to fix (T-200). Unknown
//! `match[...]` fields are rejected too (T-211 allows ignoring them, but a consumer that asks
//! for `match[confidence-gte]` on a server that ignored it would load everything); other
//! unknown parameters are ignored.

use serde::{Deserialize, Serialize};

use super::feed::normalise_label;
use super::policy::Tlp;
use super::stix::{shown, valid_identifier, valid_type};
use super::time::{parse_taxii, stix_version_key, Micros};

/// Which object endpoint a query is for; decides which parameters apply (T-220).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endpoint {
    #[serde(rename = "o")]
    Objects,
    #[serde(rename = "m")]
    Manifest,
    #[serde(rename = "b")]
    Object,
    #[serde(rename = "v")]
    Versions,
    #[serde(rename = "d")]
    Delete,
}

impl Endpoint {
    fn allows(self, field: &str) -> bool {
        match self {
            Endpoint::Objects | Endpoint::Manifest => matches!(
                field,
                "added_after"
                    | "limit"
                    | "next"
                    | "id"
                    | "type"
                    | "version"
                    | "spec_version"
                    | "labels"
                    | "confidence-gte"
                    | "confidence-lte"
                    | "created_by_ref"
                    | "tlp"
                    | "relationships-all"
            ),
            Endpoint::Object => matches!(field, "added_after" | "limit" | "next" | "version" | "spec_version"),
            Endpoint::Versions => matches!(field, "added_after" | "limit" | "next" | "spec_version"),
            Endpoint::Delete => matches!(field, "version" | "spec_version"),
        }
    }
}

/// The `match[version]` selection (T-214..T-217).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionSel {
    All,
    /// Any of: the first version, the last version, explicit versions (normalised keys).
    Some {
        first: bool,
        last: bool,
        explicit: Vec<String>,
    },
}

impl VersionSel {
    pub fn last() -> Self {
        VersionSel::Some { first: false, last: true, explicit: Vec::new() }
    }

    fn is_last(&self) -> bool {
        *self == Self::last()
    }
}

/// The filters of a request, without `limit` and `next`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub added_after: Option<Micros>,
    #[serde(rename = "i", default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    #[serde(rename = "t", default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(rename = "v", default = "VersionSel::last", skip_serializing_if = "VersionSel::is_last")]
    pub versions: VersionSel,
    /// Empty: the default, the latest spec version per object (T-219).
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub spec_versions: Vec<String>,
    /// `match[labels]`: any of these labels (normalised: lower case).
    #[serde(rename = "l", default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// `match[confidence-gte]` / `match[confidence-lte]`.
    #[serde(rename = "cg", default, skip_serializing_if = "Option::is_none")]
    pub confidence_gte: Option<i32>,
    #[serde(rename = "cl", default, skip_serializing_if = "Option::is_none")]
    pub confidence_lte: Option<i32>,
    /// `match[created_by_ref]`: any of these identity ids (lower case).
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub created_by: Vec<String>,
    /// `match[tlp]`: the highest TLP level; objects without a TLP marking pass.
    #[serde(rename = "tl", default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<Tlp>,
    /// `match[relationships-all]`: these objects, and the relationships (by `source_ref` or
    /// `target_ref`) and sightings (by `sighting_of_ref`) that refer to them.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub relationships_all: Vec<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            added_after: None,
            ids: Vec::new(),
            types: Vec::new(),
            versions: VersionSel::last(),
            spec_versions: Vec::new(),
            labels: Vec::new(),
            confidence_gte: None,
            confidence_lte: None,
            created_by: Vec::new(),
            tlp: None,
            relationships_all: Vec::new(),
        }
    }
}

impl Filter {
    /// The filter as a canonical query string (`parse_query` reads it back), for the audit trail.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(t) = self.added_after {
            parts.push(format!("added_after={}", super::time::format_taxii(t)));
        }
        if !self.ids.is_empty() {
            parts.push(format!("match[id]={}", self.ids.join(",")));
        }
        if !self.types.is_empty() {
            parts.push(format!("match[type]={}", self.types.join(",")));
        }
        match &self.versions {
            VersionSel::All => parts.push("match[version]=all".into()),
            VersionSel::Some { first, last, explicit } => {
                let mut v: Vec<&str> = Vec::new();
                if *first {
                    v.push("first");
                }
                if *last {
                    v.push("last");
                }
                v.extend(explicit.iter().map(String::as_str));
                parts.push(format!("match[version]={}", v.join(",")));
            }
        }
        if !self.spec_versions.is_empty() {
            parts.push(format!("match[spec_version]={}", self.spec_versions.join(",")));
        }
        let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        if !self.labels.is_empty() {
            parts.push(format!("match[labels]={}", self.labels.iter().map(|l| enc(l)).collect::<Vec<_>>().join(",")));
        }
        if let Some(c) = self.confidence_gte {
            parts.push(format!("match[confidence-gte]={c}"));
        }
        if let Some(c) = self.confidence_lte {
            parts.push(format!("match[confidence-lte]={c}"));
        }
        if !self.created_by.is_empty() {
            parts.push(format!("match[created_by_ref]={}", self.created_by.join(",")));
        }
        if let Some(t) = self.tlp {
            parts.push(format!("match[tlp]={}", enc(tlp_value(t))));
        }
        if !self.relationships_all.is_empty() {
            parts.push(format!("match[relationships-all]={}", self.relationships_all.join(",")));
        }
        parts.join("&")
    }

    /// Whether the filter's version selection (`match[version]`, `match[spec_version]`) picks the
    /// version `(key, spec)` of an object whose versions in the collection are `all` (each
    /// `(key, spec)`, `key` being the normalised version key). The same rule storage applies
    /// with its flags (see `storage::objects`): without `match[spec_version]`, `first`/`last`/`all`
    /// are taken within the object's latest spec version; with one, within it; with several,
    /// over every version; explicit versions match in any spec version not filtered out.
    pub fn selects_version(&self, key: &str, spec: &str, all: &[(String, String)]) -> bool {
        let max_spec = all.iter().map(|(_, s)| s.as_str()).max().unwrap_or(spec);
        let specs_ok = match self.spec_versions.as_slice() {
            [] => true,
            listed => listed.iter().any(|s| s == spec),
        };
        if !specs_ok {
            return false;
        }
        // The versions `first` and `last` are taken among.
        let pool: Vec<&str> = all
            .iter()
            .filter(|(_, s)| match self.spec_versions.as_slice() {
                [] | [_] => s == spec,
                _ => true,
            })
            .map(|(k, _)| k.as_str())
            .collect();
        let is_last = pool.iter().all(|k| *k <= key);
        let is_first = pool.iter().all(|k| *k >= key);
        let latest_spec = self.spec_versions.is_empty().then_some(spec == max_spec);
        match &self.versions {
            VersionSel::All => latest_spec.unwrap_or(true),
            VersionSel::Some { first, last, explicit } => {
                let flagged = latest_spec.unwrap_or(true);
                (*last && is_last && flagged) || (*first && is_first && flagged) || explicit.iter().any(|e| e == key)
            }
        }
    }
}

/// The `match[tlp]` value of a TLP level.
fn tlp_value(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    }
}

/// The `match[...]` fields this server filters on.
pub const MATCH_FIELDS: &[&str] = &[
    "id",
    "type",
    "version",
    "spec_version",
    "labels",
    "confidence-gte",
    "confidence-lte",
    "created_by_ref",
    "tlp",
    "relationships-all",
];

fn parse_confidence(name: &str, value: &str) -> Result<i32, QueryError> {
    match value.parse::<i32>() {
        Ok(n) if (0..=100).contains(&n) && value.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => err(format!("{name} '{}' is not a whole number from 0 to 100", shown(value))),
    }
}

fn parse_tlp(value: &str) -> Result<Tlp, QueryError> {
    // A literal '+' in a query string decodes to a space: `amber+strict` arrives as "amber strict".
    Ok(match value.to_ascii_lowercase().as_str() {
        "clear" | "white" => Tlp::Clear,
        "green" => Tlp::Green,
        "amber" => Tlp::Amber,
        "amber+strict" | "amber strict" => Tlp::AmberStrict,
        "red" => Tlp::Red,
        _ => {
            return err(format!(
                "match[tlp] '{}' is not a TLP level: clear (or white), green, amber, amber+strict (written amber%2Bstrict) or red",
                shown(value)
            ))
        }
    })
}

/// A parsed query: filters, the client's limit and the `next` token, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub filter: Filter,
    /// Whether the request carried any filter parameter (as opposed to only `limit`/`next`).
    pub has_filters: bool,
    /// Whether `match[version]` was given (the default `last` is then not implied).
    pub versions_given: bool,
    pub limit: Option<u64>,
    pub next: Option<String>,
}

/// A query parameter problem, turned into a 400 by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError(msg.into()))
}

/// Most values one `match[...]` parameter may list (keeps URLs and `next` tokens bounded).
pub const MAX_MATCH_VALUES: usize = 300;

/// Splits a comma-separated list, refusing empty elements.
fn list(name: &str, value: &str) -> Result<Vec<String>, QueryError> {
    let mut out: Vec<String> = Vec::new();
    if value.split(',').count() > MAX_MATCH_VALUES {
        return err(format!("{name} lists more than {MAX_MATCH_VALUES} values; split the request"));
    }
    for part in value.split(',') {
        if part.is_empty() {
            return err(format!("{name} has an empty value; give one or more comma-separated values without spaces"));
        }
        out.push(part.to_owned());
    }
    Ok(out)
}

fn parse_versions(value: &str) -> Result<VersionSel, QueryError> {
    let tokens = list("match[version]", value)?;
    let mut seen = std::collections::HashSet::new();
    let mut first = false;
    let mut last = false;
    let mut all = false;
    let mut explicit = Vec::new();
    for t in &tokens {
        let key = match t.as_str() {
            "first" => {
                first = true;
                "first".to_owned()
            }
            "last" => {
                last = true;
                "last".to_owned()
            }
            "all" => {
                all = true;
                "all".to_owned()
            }
            other => match stix_version_key(other) {
                Some(k) => {
                    explicit.push(k.clone());
                    k
                }
                None => {
                    return err(format!(
                        "match[version] value '{}' is not 'first', 'last', 'all' or a STIX timestamp such as 2016-01-01T01:01:01.000Z",
                        shown(other)
                    ))
                }
            },
        };
        if !seen.insert(key) {
            return err(format!("match[version] lists '{t}' more than once"));
        }
    }
    if all && tokens.len() > 1 {
        return err("match[version]=all cannot be combined with other values");
    }
    if all {
        return Ok(VersionSel::All);
    }
    explicit.sort();
    Ok(VersionSel::Some { first, last, explicit })
}

fn parse_spec_versions(value: &str) -> Result<Vec<String>, QueryError> {
    let mut out = list("match[spec_version]", value)?;
    for v in &out {
        let ok = v.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
        if !ok {
            return err(format!("match[spec_version] value '{}' is not a STIX version such as 2.1", shown(v)));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Parses the raw query string of a request to `endpoint`.
pub fn parse_query(raw: &str, endpoint: Endpoint) -> Result<Query, QueryError> {
    let mut filter = Filter::default();
    let mut has_filters = false;
    let mut versions_given = false;
    let mut limit = None;
    let mut next = None;
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let field = match key.strip_prefix("match[").and_then(|k| k.strip_suffix(']')) {
            Some(f) => f.to_owned(),
            None => key.to_string(),
        };
        let is_match = key.starts_with("match[");
        if is_match && !MATCH_FIELDS.contains(&field.as_str()) {
            return err(format!(
                "{} is not a filter this server supports; the match fields are {}",
                shown(&key),
                MATCH_FIELDS.join(", ")
            ));
        }
        let known = is_match || matches!(field.as_str(), "added_after" | "limit" | "next");
        if !known {
            continue; // unknown parameters are ignored
        }
        if !seen.insert(key.to_string()) {
            return err(format!(
                "parameter {} is given more than once; give it once, with comma-separated values",
                shown(&key)
            ));
        }
        if !endpoint.allows(&field) {
            continue;
        }
        match (is_match, field.as_str()) {
            (false, "added_after") => {
                has_filters = true;
                match parse_taxii(&value) {
                    Some(t) => filter.added_after = Some(t),
                    None => {
                        return err(format!(
                            "added_after '{}' is not a timestamp such as 2016-01-01T01:01:01.000000Z",
                            shown(&value)
                        ))
                    }
                }
            }
            (false, "limit") => {
                if value.is_empty() || !value.bytes().all(|c| c.is_ascii_digit()) {
                    return err(format!("limit '{}' is not a positive whole number", shown(&value)));
                }
                // Values beyond u64 are clamped like any other value above the server maximum.
                let n = value.parse::<u64>().unwrap_or(u64::MAX);
                if n == 0 {
                    return err("limit must be greater than 0");
                }
                limit = Some(n);
            }
            (false, "next") if !value.is_empty() => {
                next = Some(value.to_string());
            }
            (true, "id") => {
                has_filters = true;
                let mut ids = list("match[id]", &value)?;
                for id in &mut ids {
                    // Indexed in lower case: RFC 4122 hex digits are case-insensitive.
                    *id = id.to_ascii_lowercase();
                    if valid_identifier(id).is_none() {
                        return err(format!(
                            "match[id] value '{}' is not a STIX identifier such as indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                            shown(id)
                        ));
                    }
                }
                ids.sort();
                ids.dedup();
                filter.ids = ids;
            }
            (true, "type") => {
                has_filters = true;
                let mut types = list("match[type]", &value)?;
                if let Some(bad) = types.iter().find(|t| !valid_type(t)) {
                    return err(format!(
                        "match[type] value '{}' is not a STIX type name (3 to 250 characters of a-z, 0-9 and '-', such as indicator)",
                        shown(bad)
                    ));
                }
                types.sort();
                types.dedup();
                filter.types = types;
            }
            (true, "version") => {
                has_filters = true;
                versions_given = true;
                filter.versions = parse_versions(&value)?;
            }
            (true, "spec_version") => {
                has_filters = true;
                filter.spec_versions = parse_spec_versions(&value)?;
            }
            (true, "labels") => {
                has_filters = true;
                let mut labels: Vec<String> =
                    list("match[labels]", &value)?.iter().map(|l| normalise_label(l)).collect();
                if labels.iter().any(String::is_empty) {
                    return err("match[labels] has an empty label");
                }
                if let Some(bad) = labels.iter().find(|l| l.chars().any(char::is_control)) {
                    return err(format!("match[labels] value '{}' holds a control character", shown(bad)));
                }
                labels.sort();
                labels.dedup();
                filter.labels = labels;
            }
            (true, "confidence-gte") => {
                has_filters = true;
                filter.confidence_gte = Some(parse_confidence("match[confidence-gte]", &value)?);
            }
            (true, "confidence-lte") => {
                has_filters = true;
                filter.confidence_lte = Some(parse_confidence("match[confidence-lte]", &value)?);
            }
            (true, "relationships-all") => {
                has_filters = true;
                let mut ids = list("match[relationships-all]", &value)?;
                for id in &mut ids {
                    *id = id.to_ascii_lowercase();
                    if valid_identifier(id).is_none() {
                        return err(format!(
                            "match[relationships-all] value '{}' is not a STIX identifier such as malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                            shown(id)
                        ));
                    }
                }
                ids.sort();
                ids.dedup();
                filter.relationships_all = ids;
            }
            (true, "created_by_ref") => {
                has_filters = true;
                let mut ids = list("match[created_by_ref]", &value)?;
                for id in &mut ids {
                    *id = id.to_ascii_lowercase();
                    if valid_identifier(id).is_none() {
                        return err(format!(
                            "match[created_by_ref] value '{}' is not a STIX identifier such as identity--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                            shown(id)
                        ));
                    }
                }
                ids.sort();
                ids.dedup();
                filter.created_by = ids;
            }
            (true, "tlp") => {
                has_filters = true;
                filter.tlp = Some(parse_tlp(&value)?);
            }
            _ => {}
        }
    }
    if endpoint == Endpoint::Versions {
        filter.versions = VersionSel::All;
    }
    Ok(Query { filter, has_filters, versions_given, limit, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_latest_version_and_spec() {
        let q = parse_query("", Endpoint::Objects).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.filter, Filter::default());
        assert!(!q.has_filters);
    }

    #[test]
    fn parses_lists_and_versions() {
        let q = parse_query(
            "match%5Btype%5D=malware,indicator&match[version]=first,2016-01-01T01:01:01Z,last&limit=5",
            Endpoint::Objects,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.filter.types, vec!["indicator".to_owned(), "malware".to_owned()]);
        assert_eq!(
            q.filter.versions,
            VersionSel::Some { first: true, last: true, explicit: vec!["2016-01-01T01:01:01.000000000Z".to_owned()] }
        );
        assert_eq!(q.limit, Some(5));
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "limit=0",
            "limit=-1",
            "limit=abc",
            "limit=1&limit=2",
            "added_after=yesterday",
            "match[version]=all,last",
            "match[version]=last,last",
            "match[version]=newest",
            "match[type]=",
            "match[type]=a,,b",
            "match[type]=a&match[type]=b",
            "match[spec_version]=two",
            "match[id]=indicator--%00",
            "match[id]=foo",
            "match[type]=Indicator",
            "match[type]=a%00b",
            "match[foo]=1",
            "match[confidence-gte]=101",
            "match[confidence-gte]=-1",
            "match[confidence-lte]=high",
            "match[confidence-lte]=+5",
            "match[tlp]=purple",
            "match[tlp]=green,red",
            "match[created_by_ref]=acme",
            "match[labels]=a,,b",
        ] {
            assert!(parse_query(bad, Endpoint::Objects).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_round_trip_through_their_query_string() {
        for q in [
            "",
            "added_after=2016-01-01T01:01:01.5Z&match[id]=indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f&match[type]=indicator,malware",
            "match[version]=first,2016-01-01T01:01:01Z,last&match[spec_version]=2.0,2.1",
            "match[version]=all",
            "match[labels]=APT,c%26c,a%2Bb&match[confidence-gte]=50&match[confidence-lte]=90&match[tlp]=amber%2Bstrict",
            "match[created_by_ref]=identity--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f&match[tlp]=white",
            "match[relationships-all]=malware--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
        ] {
            let f = parse_query(q, Endpoint::Objects).unwrap_or_else(|e| panic!("{e}")).filter;
            let again = parse_query(&f.to_query(), Endpoint::Objects).unwrap_or_else(|e| panic!("{e}")).filter;
            assert_eq!(f, again, "{q} -> {}", f.to_query());
        }
    }

    #[test]
    fn version_selection() {
        let v = |k: &str, s: &str| (k.to_owned(), s.to_owned());
        let all = vec![v("1", "2.0"), v("2", "2.1"), v("3", "2.1"), v("4", "2.0")];
        let f = |q: &str| parse_query(q, Endpoint::Objects).unwrap_or_else(|e| panic!("{e}")).filter;
        // Default: last of the latest spec version (2.1): key 3 only.
        let picked = |flt: &Filter| {
            all.iter().filter(|(k, s)| flt.selects_version(k, s, &all)).map(|(k, _)| k.clone()).collect::<Vec<_>>()
        };
        assert_eq!(picked(&f("")), vec!["3"]);
        assert_eq!(picked(&f("match[version]=first")), vec!["2"]);
        assert_eq!(picked(&f("match[version]=all")), vec!["2", "3"]);
        assert_eq!(picked(&f("match[spec_version]=2.0")), vec!["4"]);
        assert_eq!(picked(&f("match[spec_version]=2.0,2.1")), vec!["4"]);
        assert_eq!(picked(&f("match[spec_version]=2.0,2.1&match[version]=first")), vec!["1"]);
        assert_eq!(picked(&f("match[version]=all&match[spec_version]=2.0,2.1")), vec!["1", "2", "3", "4"]);
    }

    #[test]
    fn richer_filters_are_normalised() {
        let q = parse_query(
            "match[labels]=APT,apt,C2&match[tlp]=amber+strict&match[confidence-gte]=0&match[created_by_ref]=identity--8E2E2D2B-17D4-4CBF-938F-98EE46B3CD3F",
            Endpoint::Manifest,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.filter.labels, vec!["apt".to_owned(), "c2".to_owned()]);
        assert_eq!(q.filter.tlp, Some(Tlp::AmberStrict), "a literal + decodes to a space");
        assert_eq!(q.filter.confidence_gte, Some(0));
        assert_eq!(q.filter.created_by, vec!["identity--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f".to_owned()]);
        // Not on the per-object endpoints, where they are ignored like match[type].
        let q = parse_query("match[labels]=apt", Endpoint::Versions).unwrap_or_else(|e| panic!("{e}"));
        assert!(q.filter.labels.is_empty());
    }

    #[test]
    fn huge_limit_is_accepted_for_clamping() {
        let q = parse_query("limit=99999999999999999999999", Endpoint::Objects).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.limit, Some(u64::MAX));
    }

    #[test]
    fn endpoint_specific_fields_are_ignored_elsewhere() {
        let q = parse_query("match[type]=indicator", Endpoint::Object).unwrap_or_else(|e| panic!("{e}"));
        assert!(q.filter.types.is_empty());
        let q = parse_query("match[version]=first", Endpoint::Versions).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.filter.versions, VersionSel::All);
    }
}
