//! The sharing policy file (`concordia apply POLICY.toml`): API roots, partners, partner groups
//! and collections with the groups that may read or write them.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Discovery information shown at `/taxii2/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryPolicy {
    /// Title of the server (required by TAXII).
    pub title: String,
    pub description: Option<String>,
    pub contact: Option<String>,
    /// Name of the default API root; shown only to partners that can use it.
    pub default: Option<String>,
}

/// An API root, served at `/{name}/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiRootPolicy {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    /// Largest accepted request body in bytes (default 10 MiB).
    #[serde(default = "default_max_content_length")]
    pub max_content_length: i64,
}

fn default_max_content_length() -> i64 {
    10 * 1024 * 1024
}

/// A partner organisation; `name` is its HTTP Basic user name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerPolicy {
    pub name: String,
    pub title: Option<String>,
    /// Client certificates that identify the partner, by SHA-256 fingerprint of the DER
    /// certificate: `sha256:<64 hex digits>` (colons and upper case are accepted).
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Subject patterns: `CN=*.alpha.example,O=CERT Alpha`; every attribute listed must be
    /// present with a matching value (`*` matches any characters).
    #[serde(default)]
    pub certificate_subjects: Vec<String>,
    /// subjectAltName patterns: `dns:*.alpha.example`, `email:soc@alpha.example`, `uri:…`, `ip:…`.
    #[serde(default)]
    pub certificate_sans: Vec<String>,
    /// Client addresses the partner may connect from (CIDRs or single addresses); requests from
    /// elsewhere get 403. Empty: any address.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Requests per second (with a burst) on each node; default from the configuration.
    pub rate_limit: Option<RateLimitPolicy>,
    /// Objects the partner may add per minute on each node; default from the configuration.
    pub write_limit: Option<WriteLimitPolicy>,
}

/// `rate_limit = { requests_per_second = N, burst = M }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    pub requests_per_second: u32,
    /// Requests allowed at once before the rate applies (default: the configured burst, at least
    /// one second's worth).
    pub burst: Option<u32>,
}

/// `write_limit = { objects_per_minute = N }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteLimitPolicy {
    pub objects_per_minute: u32,
}

/// A partner's address allow-list and limits, as stored and enforced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct PartnerLimits {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_from: Vec<ipnet::IpNet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_limit: Option<WriteLimitPolicy>,
}

impl PartnerLimits {
    /// The stored form (JSON; `{}` for none).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// Parses an `allow_from` entry: a CIDR (`192.0.2.0/24`, `2001:db8::/32`) or one address.
/// Host bits are cleared (`192.0.2.7/24` is `192.0.2.0/24`).
pub fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("'{s}' is not an address or a CIDR such as 192.0.2.0/24 or 2001:db8::/32"))
}

/// Highest request or write rate a policy may set (a limit this high is none at all).
const MAX_RATE: u32 = 10_000_000;

/// Subject attributes a pattern may name, in their canonical spelling.
const SUBJECT_ATTRIBUTES: &[&str] =
    &["CN", "O", "OU", "C", "L", "ST", "emailAddress", "serialNumber", "DC", "UID", "street", "title", "GN", "SN"];

/// Normalises a fingerprint to `sha256:<lower-case hex>`.
pub fn parse_fingerprint(f: &str) -> Option<String> {
    let hex: String =
        f.strip_prefix("sha256:").or_else(|| f.strip_prefix("SHA256:"))?.chars().filter(|c| *c != ':').collect();
    (hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// Parses `ATTR=value,ATTR=value` (a `,` inside a value written `\,`).
pub fn parse_subject_pattern(p: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.push(chars.next().unwrap_or('\\')),
            ',' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    let mut out = Vec::new();
    for part in parts {
        let Some((attr, value)) = part.split_once('=') else {
            return Err(format!("'{part}' is not ATTRIBUTE=value"));
        };
        let attr = attr.trim();
        let Some(canonical) = SUBJECT_ATTRIBUTES.iter().find(|a| a.eq_ignore_ascii_case(attr)) else {
            return Err(format!("'{attr}' is not a subject attribute ({})", SUBJECT_ATTRIBUTES.join(", ")));
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{canonical} has an empty value"));
        }
        out.push(((*canonical).to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// Writes a parsed subject pattern back in canonical form.
pub fn subject_pattern_text(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(a, v)| format!("{a}={}", v.replace('\\', "\\\\").replace(',', "\\,")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `kind:pattern` with kind `dns`, `email`, `uri` or `ip`.
pub fn parse_san_pattern(p: &str) -> Result<(String, String), String> {
    match p.split_once(':') {
        Some((kind, pattern)) if matches!(kind, "dns" | "email" | "uri" | "ip") && !pattern.is_empty() => {
            Ok((kind.to_owned(), pattern.to_owned()))
        }
        _ => Err(format!("'{p}' is not dns:…, email:…, uri:… or ip:… followed by a pattern")),
    }
}

impl PartnerPolicy {
    /// The partner's allow-list and limits, checked; every problem is reported.
    pub fn limits(&self) -> Result<PartnerLimits, Vec<String>> {
        let mut problems = Vec::new();
        let mut allow_from = Vec::new();
        for a in &self.allow_from {
            match parse_network(a) {
                Ok(net) => allow_from.push(net),
                Err(e) => problems.push(format!("partner '{}': allow_from {e}", self.name)),
            }
        }
        allow_from.sort();
        allow_from.dedup();
        if let Some(r) = &self.rate_limit {
            if !(1..=MAX_RATE).contains(&r.requests_per_second) {
                problems.push(format!(
                    "partner '{}': rate_limit.requests_per_second must be between 1 and {MAX_RATE}",
                    self.name
                ));
            }
            if r.burst.is_some_and(|b| !(1..=MAX_RATE).contains(&b)) {
                problems.push(format!("partner '{}': rate_limit.burst must be between 1 and {MAX_RATE}", self.name));
            }
        }
        if let Some(w) = &self.write_limit {
            if !(1..=MAX_RATE).contains(&w.objects_per_minute) {
                problems.push(format!(
                    "partner '{}': write_limit.objects_per_minute must be between 1 and {MAX_RATE}",
                    self.name
                ));
            }
        }
        if problems.is_empty() {
            Ok(PartnerLimits { allow_from, rate_limit: self.rate_limit, write_limit: self.write_limit })
        } else {
            Err(problems)
        }
    }

    /// The partner's certificate identities, as stored: (kind, normalised pattern), kind being
    /// `fingerprint`, `subject` or `san`. Problems are reported, not skipped.
    pub fn certificate_rows(&self) -> Result<Vec<(String, String)>, Vec<String>> {
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for f in &self.certificates {
            match parse_fingerprint(f) {
                Some(f) => rows.push(("fingerprint".to_owned(), f)),
                None => problems.push(format!(
                    "partner '{}': certificate '{f}' is not sha256:<64 hex digits> (openssl x509 -noout -fingerprint -sha256)",
                    self.name
                )),
            }
        }
        for p in &self.certificate_subjects {
            match parse_subject_pattern(p) {
                Ok(attrs) => rows.push(("subject".to_owned(), subject_pattern_text(&attrs))),
                Err(e) => problems.push(format!("partner '{}': certificate subject '{p}': {e}", self.name)),
            }
        }
        for p in &self.certificate_sans {
            match parse_san_pattern(p) {
                Ok((kind, pattern)) => rows.push(("san".to_owned(), format!("{kind}:{pattern}"))),
                Err(e) => problems.push(format!("partner '{}': certificate SAN {e}", self.name)),
            }
        }
        rows.sort();
        rows.dedup();
        if problems.is_empty() {
            Ok(rows)
        } else {
            Err(problems)
        }
    }
}

/// A stored certificate identity (see [`PartnerPolicy::certificate_rows`]) in usable form.
pub fn certificate_identity(kind: &str, pattern: &str) -> Option<super::access::CertificateIdentity> {
    use super::access::CertificateIdentity as C;
    match kind {
        "fingerprint" => parse_fingerprint(pattern).map(C::Fingerprint),
        "subject" => parse_subject_pattern(pattern).ok().map(C::Subject),
        "san" => parse_san_pattern(pattern).ok().map(|(k, p)| C::San(k, p)),
        _ => None,
    }
}

/// A partner group and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicy {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
}

/// A collection and its grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionPolicy {
    /// UUIDv4; generated on first apply when absent (the collection is then matched by title).
    pub id: Option<String>,
    pub api_root: String,
    pub title: String,
    pub description: Option<String>,
    pub alias: Option<String>,
    /// Groups that may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Groups that may write.
    #[serde(default)]
    pub write: Vec<String>,
    /// Readable without credentials when the server runs with `anonymous_read` enabled.
    #[serde(default)]
    pub public: bool,
    /// What the collection accepts beyond valid STIX 2.1 (custom content, TLP, spec versions).
    #[serde(default)]
    pub sharing: SharingPolicy,
    /// A derived collection: the ids of its source collections. It holds the versions written
    /// to them that its `filter` admits, and takes no writes of its own.
    #[serde(default)]
    pub derived_from: Vec<String>,
    /// The filter of a derived collection.
    pub filter: Option<super::feed::FeedFilter>,
    /// Versions added longer ago than this many days (fractions allowed) are purged.
    pub retention_days: Option<super::feed::Days>,
    /// With `retention_days`: the latest version of each object is kept whatever its age.
    #[serde(default)]
    pub keep_latest: bool,
    /// Also served read-only as TAXII 2.0 under `/taxii20/`.
    #[serde(default)]
    pub taxii20: bool,
}

impl CollectionPolicy {
    /// The collection's feed settings, as stored.
    pub fn feed(&self) -> super::feed::FeedSettings {
        super::feed::FeedSettings {
            derived_from: self.derived_from.iter().map(|s| s.to_ascii_lowercase()).collect(),
            filter: self.filter.clone().unwrap_or_default(),
            retention_days: self.retention_days,
            keep_latest: self.keep_latest,
            taxii20: self.taxii20,
        }
    }
}

/// A Traffic Light Protocol level, ordered from least to most restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tlp {
    /// TLP:WHITE (1.0) and TLP:CLEAR (2.0).
    #[serde(alias = "white")]
    Clear,
    Green,
    Amber,
    #[serde(rename = "amber+strict")]
    AmberStrict,
    Red,
}

impl Tlp {
    pub fn name(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR/WHITE",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }

    /// The TLP levels an object is marked with: its object markings and granular markings that
    /// are TLP marking definitions (1.0 or 2.0), in the order they appear.
    pub fn levels_of(object: &serde_json::Map<String, serde_json::Value>) -> Vec<Tlp> {
        use serde_json::Value;
        let granular = object
            .get("granular_markings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("marking_ref").and_then(Value::as_str));
        object
            .get("object_marking_refs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .chain(granular)
            .filter_map(Tlp::of_marking)
            .collect()
    }

    /// The TLP level of a marking-definition id (TLP 1.0 and 2.0), if it is one.
    pub fn of_marking(id: &str) -> Option<Tlp> {
        // Identifiers compare case-insensitively (RFC 4122 hex digits).
        Some(match id.to_ascii_lowercase().as_str() {
            "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9" => Tlp::Clear,
            "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487" => Tlp::Clear,
            "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da" => Tlp::Green,
            "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb" => Tlp::Green,
            "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82" => Tlp::Amber,
            "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421" => Tlp::Amber,
            "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003" => Tlp::AmberStrict,
            "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed" => Tlp::Red,
            "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1" => Tlp::Red,
            _ => return None,
        })
    }
}

/// What one collection accepts, beyond valid STIX 2.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharingPolicy {
    /// Accept object types that are not STIX 2.1 types (e.g. `x-mitre-tactic`).
    pub custom_objects: bool,
    /// Accept properties that the object's type does not define (e.g. `x_mitre_version`).
    pub custom_properties: bool,
    /// Highest TLP level the collection may carry.
    pub tlp_ceiling: Option<Tlp>,
    /// Every object (other than marking definitions) must carry a TLP marking.
    pub require_tlp: bool,
    /// Accepted `spec_version`s.
    pub spec_versions: Vec<String>,
}

impl Default for SharingPolicy {
    fn default() -> Self {
        SharingPolicy {
            custom_objects: true,
            custom_properties: true,
            tlp_ceiling: None,
            require_tlp: false,
            spec_versions: vec!["2.1".into()],
        }
    }
}

/// The whole policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub discovery: Option<DiscoveryPolicy>,
    #[serde(default)]
    pub api_roots: Vec<ApiRootPolicy>,
    #[serde(default)]
    pub partners: Vec<PartnerPolicy>,
    #[serde(default)]
    pub groups: Vec<GroupPolicy>,
    #[serde(default)]
    pub collections: Vec<CollectionPolicy>,
}

/// First path segments the server answers itself; no API root may take them.
pub const RESERVED_PATHS: &[&str] = &["taxii2", "taxii20", "taxii", "healthz", "livez", "readyz", "metrics", "console"];

/// Names usable in URLs and as user names: lower-case letters, digits, `-`, `_`, `.`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.'))
        && name.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Whether `id` is a lower-case RFC 4122 version-4 UUID (T-070).
pub fn is_uuid_v4(id: &str) -> bool {
    id.len() == 36
        && !id.bytes().any(|c| c.is_ascii_uppercase())
        && uuid::Uuid::parse_str(id)
            .is_ok_and(|u| u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122)
}

impl Policy {
    /// Parses a policy from TOML text.
    pub fn from_toml(text: &str) -> Result<Policy, Vec<String>> {
        let p: Policy = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        p.validate()?;
        Ok(p)
    }

    /// Reports every problem of the policy at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut roots = HashSet::new();
        for r in &self.api_roots {
            if !valid_name(&r.name) || RESERVED_PATHS.contains(&r.name.as_str()) {
                problems.push(format!(
                    "api root name '{}' must be lower-case letters, digits, '-', '_' or '.', and not one of {}",
                    r.name,
                    RESERVED_PATHS.join(", ")
                ));
            }
            if !roots.insert(r.name.as_str()) {
                problems.push(format!("api root '{}' is listed twice", r.name));
            }
            if r.title.trim().is_empty() {
                problems.push(format!("api root '{}' needs a title", r.name));
            }
            if r.max_content_length <= 0 || r.max_content_length > (1 << 40) {
                problems.push(format!("api root '{}': max_content_length must be between 1 and 2^40 bytes", r.name));
            }
        }
        if let Some(d) = &self.discovery {
            if d.title.trim().is_empty() {
                problems.push("discovery.title must not be empty".into());
            }
            if let Some(def) = &d.default {
                if !roots.contains(def.as_str()) {
                    problems.push(format!("discovery.default '{def}' is not one of the api roots"));
                }
            }
        }
        let mut partners = HashSet::new();
        let mut fingerprints: HashMap<String, &str> = HashMap::new();
        for p in &self.partners {
            if let Err(e) = p.certificate_rows() {
                problems.extend(e);
            }
            if let Err(e) = p.limits() {
                problems.extend(e);
            }
            for f in p.certificates.iter().filter_map(|f| parse_fingerprint(f)) {
                if let Some(other) = fingerprints.insert(f.clone(), p.name.as_str()) {
                    if other != p.name {
                        problems.push(format!(
                            "certificate {f} is listed for partners '{other}' and '{}'; a certificate identifies one partner",
                            p.name
                        ));
                    }
                }
            }
            if !valid_name(&p.name) {
                problems.push(format!("partner name '{}' must be lower-case letters, digits, '-', '_' or '.'", p.name));
            }
            if !partners.insert(p.name.as_str()) {
                problems.push(format!("partner '{}' is listed twice", p.name));
            }
        }
        let mut groups = HashSet::new();
        for g in &self.groups {
            if !valid_name(&g.name) {
                problems.push(format!("group name '{}' must be lower-case letters, digits, '-', '_' or '.'", g.name));
            }
            if !groups.insert(g.name.as_str()) {
                problems.push(format!("group '{}' is listed twice", g.name));
            }
            for m in &g.members {
                if !partners.contains(m.as_str()) {
                    problems.push(format!("group '{}': member '{m}' is not a partner in this policy", g.name));
                }
            }
        }
        let mut ids = HashSet::new();
        let mut titles: HashMap<(&str, &str), ()> = HashMap::new();
        let mut aliases = HashSet::new();
        for c in &self.collections {
            let label = format!("collection '{}'", c.title);
            if let Some(id) = &c.id {
                if !is_uuid_v4(id) {
                    problems.push(format!("{label}: id '{id}' must be a lower-case UUIDv4"));
                }
                if !ids.insert(id.as_str()) {
                    problems.push(format!("{label}: id '{id}' is used twice"));
                }
            }
            if !roots.contains(c.api_root.as_str()) {
                problems.push(format!("{label}: api_root '{}' is not defined in this policy", c.api_root));
            }
            if c.title.trim().is_empty() {
                problems.push("a collection needs a title".into());
            }
            if titles.insert((c.api_root.as_str(), c.title.as_str()), ()).is_some() {
                problems.push(format!("{label}: titles must be unique within api root '{}'", c.api_root));
            }
            if let Some(a) = &c.alias {
                if !valid_name(a) {
                    problems.push(format!("{label}: alias '{a}' must be lower-case letters, digits, '-', '_' or '.'"));
                }
                if !aliases.insert((c.api_root.as_str(), a.as_str())) {
                    problems.push(format!("{label}: alias '{a}' is used twice in api root '{}'", c.api_root));
                }
            }
            for v in &c.sharing.spec_versions {
                if v != "2.1" && v != "2.0" {
                    problems.push(format!("{label}: spec_versions may list 2.1 and 2.0, not '{v}'"));
                }
            }
            if c.sharing.spec_versions.is_empty() {
                problems.push(format!("{label}: spec_versions must list at least one of 2.1, 2.0"));
            }
            for g in c.read.iter().chain(&c.write) {
                if !groups.contains(g.as_str()) {
                    problems.push(format!("{label}: group '{g}' is not defined in this policy"));
                }
            }
            if let Some(f) = &c.filter {
                if c.derived_from.is_empty() {
                    problems.push(format!("{label}: a filter needs derived_from (the source collections it filters)"));
                }
                problems.extend(f.problems(&label));
            }
            if !c.derived_from.is_empty() {
                if !c.write.is_empty() {
                    problems.push(format!(
                        "{label}: a derived collection takes no writes; give its writers write on a source collection instead"
                    ));
                }
                if c.derived_from.len() > super::feed::MAX_SOURCES {
                    problems.push(format!(
                        "{label}: derived_from lists more than {} collections",
                        super::feed::MAX_SOURCES
                    ));
                }
                if c.id.is_none() {
                    problems.push(format!("{label}: a derived collection needs an id"));
                }
                let mut seen = HashSet::new();
                for src in &c.derived_from {
                    let src = src.to_ascii_lowercase();
                    if !seen.insert(src.clone()) {
                        problems.push(format!("{label}: derived_from lists '{src}' twice"));
                    }
                    match self.collections.iter().find(|o| o.id.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(&src))) {
                        None => problems.push(format!(
                            "{label}: derived_from '{src}' is not the id of a collection in this policy (sources need an id)"
                        )),
                        Some(o) if !o.derived_from.is_empty() => problems.push(format!(
                            "{label}: derived_from '{src}' is itself derived; derive from stored collections"
                        )),
                        Some(_) => {}
                    }
                }
            }
            if c.keep_latest && c.retention_days.is_none() {
                problems.push(format!("{label}: keep_latest needs retention_days"));
            }
            if c.retention_days.is_some_and(|d| !d.valid()) {
                problems.push(format!("{label}: retention_days must be more than 0 and at most 36500"));
            }
            if c.retention_days.is_some() && !c.derived_from.is_empty() {
                problems.push(format!(
                    "{label}: a derived collection keeps what its sources keep; set retention_days on the sources"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_policy_is_valid() {
        let text = include_str!("../../../../examples/alliance.toml");
        let p = Policy::from_toml(text).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.collections.len(), 3);
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
            [[api_roots]]
            name = "taxii2"
            title = ""
            max_content_length = 0
            [[groups]]
            name = "g"
            members = ["ghost"]
            [[collections]]
            id = "not-a-uuid"
            api_root = "nowhere"
            title = "t"
            read = ["nobody"]
        "#;
        let problems = Policy::from_toml(text).err().unwrap_or_default();
        assert!(problems.len() >= 6, "{problems:#?}");
    }

    #[test]
    fn certificate_identities_are_parsed_and_checked() {
        let text = r#"
            [[partners]]
            name = "a"
            certificates = ["SHA256:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"]
            certificate_subjects = ["cn=*.a.example, O=Org\\, Inc."]
            certificate_sans = ["dns:*.a.example"]
            [[partners]]
            name = "b"
            certificates = ["sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "sha1:00"]
            certificate_subjects = ["XX=1", "CN"]
            certificate_sans = ["mail:x"]
        "#;
        let problems = Policy::from_toml(text).err().unwrap_or_default();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("partners 'a' and 'b'")), "{problems:#?}");
        let p: Policy = toml::from_str(text).unwrap();
        let rows = p.partners[0].certificate_rows().unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    "fingerprint".into(),
                    "sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789".into()
                ),
                ("san".into(), "dns:*.a.example".into()),
                ("subject".into(), "CN=*.a.example,O=Org\\, Inc.".into()),
            ]
        );
        let id = certificate_identity("subject", "CN=*.a.example,O=Org\\, Inc.").unwrap();
        assert_eq!(
            id,
            crate::model::access::CertificateIdentity::Subject(vec![
                ("CN".into(), "*.a.example".into()),
                ("O".into(), "Org, Inc.".into())
            ])
        );
    }

    #[test]
    fn uuid_v4_check() {
        assert!(is_uuid_v4("2f3d8e7a-1c4b-4e5f-9a6b-7c8d9e0f1a2b"));
        assert!(!is_uuid_v4("2f3d8e7a-1c4b-1e5f-9a6b-7c8d9e0f1a2b"));
        assert!(!is_uuid_v4("2F3D8E7A-1C4B-4E5F-9A6B-7C8D9E0F1A2B"));
    }
}
