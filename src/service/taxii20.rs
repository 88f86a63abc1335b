//! The read-only TAXII 2.0 view, for tools that speak only 2.0 (QRadar and other appliances).
//!
//! It shows the same API roots and collections, but only the collections whose policy says
//! `taxii20 = true`, under `/taxii20/`. Objects are served as STIX 2.0 where 2.0 can express them
//! exactly (see `model::stix20`); writes stay TAXII 2.1 only. Pages are `Range: items=N-M`
//! ranges over the versions a request matches, in `date_added` order, answered with
//! `Content-Range: items N-M/TOTAL`. A range that continues the one a partner read just before
//! starts after that one's last position (a keyset, as `next` is in 2.1); any other range is
//! found by counting versions from the start.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::objects::Page;
use super::{Service, ServiceError, ServiceResult};
use crate::model::access::{ApiRootInfo, CollectionInfo, Principal, Rights};
use crate::model::filter::{Endpoint, Query};
use crate::model::stix::valid_identifier;
use crate::model::stix20::{to_stix20, type_names};
use crate::model::time::{format_taxii, now_micros};
use crate::storage::objects::PageQuery;
use crate::storage::{self};

/// The TAXII 2.0 media type of TAXII resources.
pub const TAXII20: &str = "application/vnd.oasis.taxii+json; version=2.0";
/// The STIX 2.0 media type (bundles).
pub const STIX20: &str = "application/vnd.oasis.stix+json; version=2.0";

#[derive(Debug, Serialize)]
pub struct Discovery20 {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_roots: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ApiRoot20 {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub versions: Vec<String>,
    pub max_content_length: i64,
}

#[derive(Debug, Serialize)]
pub struct Collection20 {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub can_read: bool,
    pub can_write: bool,
    pub media_types: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Collections20 {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<Collection20>,
}

/// Which listing a TAXII 2.0 request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing20 {
    Objects,
    Object,
    Manifest,
}

/// A `Range: items=N-M` request (`end` inclusive; `None`: open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range20 {
    pub start: u64,
    pub end: Option<u64>,
}

/// What a TAXII 2.0 listing answers.
#[derive(Debug)]
pub enum Answer20 {
    /// A page: its body, its `Content-Range` (for objects and manifests), whether it is a part
    /// (206) of what matched, and what the audit trail records of it.
    Page { body: Vec<u8>, content_range: Option<String>, partial: bool, page: Box<Page> },
    /// The range starts beyond the matching versions (416, `Content-Range: items */TOTAL`).
    Unsatisfiable { total: i64 },
}

/// Where each partner's last range ended: (partner, collection key, object, filters, next
/// start) -> `date_added` of the last version it was served. Bounded: emptied when full.
type Continuations = HashMap<(i64, i64, Option<String>, String, u64), i64>;

fn continuations() -> &'static Mutex<Continuations> {
    static MAP: std::sync::OnceLock<Mutex<Continuations>> = std::sync::OnceLock::new();
    MAP.get_or_init(|| Mutex::new(HashMap::new()))
}

const MAX_CONTINUATIONS: usize = 10_000;

impl Service {
    /// A collection of the TAXII 2.0 view: as in 2.1, and only if the policy opens it to 2.0.
    fn collection20<'a>(
        view: &'a crate::model::access::AccessView,
        who: &Principal,
        root: &str,
        id: &str,
    ) -> ServiceResult<(&'a ApiRootInfo, &'a CollectionInfo, Rights)> {
        let (r, col, rights) = Self::collection(view, who, root, id)?;
        if !col.feed.taxii20 {
            return Err(Self::deny(who, ServiceError::UnknownCollection));
        }
        Ok((r, col, rights))
    }

    /// The API roots where the caller sees a collection open to TAXII 2.0.
    fn roots20<'a>(view: &'a crate::model::access::AccessView, who: &'a Principal) -> Vec<&'a ApiRootInfo> {
        view.api_roots.iter().filter(|r| view.visible_collections(who, r).any(|(c, _)| c.feed.taxii20)).collect()
    }

    fn root20<'a>(
        view: &'a crate::model::access::AccessView,
        who: &Principal,
        name: &str,
    ) -> ServiceResult<&'a ApiRootInfo> {
        view.api_roots
            .iter()
            .find(|r| r.name == name && view.visible_collections(who, r).any(|(c, _)| c.feed.taxii20))
            .ok_or_else(|| Self::deny(who, ServiceError::UnknownApiRoot))
    }

    /// TAXII 2.0 discovery (`/taxii20/`), with absolute URLs under `base`.
    pub fn discovery20(&self, who: &Principal, base: &str) -> Discovery20 {
        let view = self.view();
        let roots = Self::roots20(&view, who);
        let d = view.discovery.clone().unwrap_or_default();
        let title = if d.title.is_empty() { "Concordia TAXII server (TAXII 2.0 view)".to_owned() } else { d.title };
        Discovery20 {
            title,
            description: d.description,
            contact: d.contact,
            default: d
                .default
                .filter(|def| roots.iter().any(|r| &r.name == def))
                .map(|n| format!("{base}/taxii20/{n}/")),
            api_roots: roots.iter().map(|r| format!("{base}/taxii20/{}/", r.name)).collect(),
        }
    }

    pub fn api_root20(&self, who: &Principal, root: &str) -> ServiceResult<ApiRoot20> {
        let view = self.view();
        let r = Self::root20(&view, who, root)?;
        Ok(ApiRoot20 {
            title: r.title.clone(),
            description: r.description.clone(),
            versions: vec!["taxii-2.0".to_owned()],
            max_content_length: r.max_content_length,
        })
    }

    fn collection20_resource(col: &CollectionInfo, rights: Rights) -> Collection20 {
        Collection20 {
            id: col.id.clone(),
            title: col.title.clone(),
            description: col.description.clone(),
            can_read: rights.read,
            // Writes stay TAXII 2.1 only.
            can_write: false,
            media_types: vec![STIX20.to_owned()],
        }
    }

    pub fn collections20(&self, who: &Principal, root: &str) -> ServiceResult<Collections20> {
        let view = self.view();
        let r = Self::root20(&view, who, root)?;
        Ok(Collections20 {
            collections: view
                .visible_collections(who, r)
                .filter(|(c, _)| c.feed.taxii20)
                .map(|(c, rights)| Self::collection20_resource(c, rights))
                .collect(),
        })
    }

    pub fn get_collection20(&self, who: &Principal, root: &str, id: &str) -> ServiceResult<Collection20> {
        let view = self.view();
        let (_, col, rights) = Self::collection20(&view, who, root, id)?;
        Ok(Self::collection20_resource(col, rights))
    }

    /// Add Objects through the TAXII 2.0 view: refused, naming where to write.
    pub fn refuse_write20(&self, who: &Principal, root: &str, id: &str) -> ServiceError {
        let view = self.view();
        match Self::collection20(&view, who, root, id) {
            Ok(_) => ServiceError::Forbidden(
                "the TAXII 2.0 view is read-only; add objects through TAXII 2.1 (/<api root>/collections/<id>/objects/)",
            ),
            Err(e) => e,
        }
    }

    /// Get Objects, Get an Object and Get Object Manifests of the TAXII 2.0 view.
    #[allow(clippy::too_many_arguments)]
    pub async fn list20(
        &self,
        who: &Principal,
        listing: Listing20,
        root: &str,
        collection: &str,
        object: Option<&str>,
        query: Query,
        range: Option<Range20>,
    ) -> ServiceResult<Answer20> {
        let object = object.map(str::to_ascii_lowercase);
        let object_named = object.clone().unwrap_or_default();
        let view = self.view();
        let (_, col, rights) = Self::collection20(&view, who, root, collection)?;
        if !rights.read {
            return Err(Self::deny(who, ServiceError::Forbidden("this partner may not read this collection")));
        }
        if let Some(id) = object.as_deref().filter(|id| valid_identifier(id).is_none()) {
            return Err(ServiceError::UnknownObject(id.to_owned()));
        }
        let mut filter = query.filter;
        // Only what STIX 2.0 has a type for (the rest is never served here): so that ranges
        // count what can be served.
        let types20 = type_names();
        filter.types = if filter.types.is_empty() {
            types20
        } else {
            filter.types.into_iter().filter(|t| types20.contains(t)).collect()
        };
        let max = self.settings.max_page_size.max(1);
        let Range20 { start, end } = range.unwrap_or(Range20 { start: 0, end: None });
        let wanted = end.map_or(max, |e| e.saturating_sub(start).saturating_add(1)).clamp(1, max);
        let sources = view.readable_sources(who, col);
        let valid_at = (col.feed.is_derived() && col.feed.filter.checks_validity()).then(now_micros);
        let key = (who.id(), col.key, object.clone(), filter.to_query(), start);
        let known_after =
            if start == 0 { None } else { continuations().lock().ok().and_then(|m| m.get(&key).copied()) };
        let (ckey, partner) = (col.key, who.id());
        let plans = self.storage.page_plans();
        let answer = self
            .storage
            .read(move |c| {
                let base = PageQuery {
                    collection: ckey,
                    object: object.as_deref(),
                    filter: &filter,
                    after: None,
                    fetch: i64::try_from(wanted).unwrap_or(1000),
                    sources,
                    valid_at,
                    plans: Some(&plans),
                };
                let empty_page = |filter: &crate::model::filter::Filter| Page {
                    body: Vec::new(),
                    first: None,
                    last: None,
                    count: 0,
                    filter: filter.clone(),
                    snapshot: None,
                    sources,
                    omitted: Vec::new(),
                };
                if filter.types.is_empty() {
                    return Ok(Answer20::Page {
                        body: empty_body(listing),
                        content_range: (listing != Listing20::Object).then(|| "items */0".to_owned()),
                        partial: false,
                        page: Box::new(empty_page(&filter)),
                    });
                }
                let total = if listing == Listing20::Object { 0 } else { storage::objects::count_rows(c, &base)? };
                if listing != Listing20::Object && total == 0 {
                    return Ok(Answer20::Page {
                        body: empty_body(listing),
                        content_range: Some("items */0".to_owned()),
                        partial: false,
                        page: Box::new(empty_page(&filter)),
                    });
                }
                let start_i = i64::try_from(start).unwrap_or(i64::MAX);
                if listing != Listing20::Object && start_i >= total {
                    return Ok(Answer20::Unsatisfiable { total });
                }
                let after = match (start, known_after) {
                    (0, _) => None,
                    (_, Some(a)) => Some(a),
                    (_, None) => storage::objects::position_at(c, &base, start_i - 1)?,
                };
                let pq = PageQuery { after, ..base.clone() };
                let (rows, bodies, snapshot) = if listing == Listing20::Manifest {
                    let page = storage::objects::page(c, &pq)?;
                    (page.rows, Vec::new(), page.snapshot)
                } else {
                    let page = storage::objects::page_with_bodies(c, &pq, super::objects::PAGE_BYTE_BUDGET)?;
                    let (rows, bodies): (Vec<_>, Vec<_>) = page.rows.into_iter().unzip();
                    (rows, bodies, page.snapshot)
                };
                if rows.is_empty() {
                    // Gone since the count (a delete between the two statements): as past the end.
                    return Ok(Answer20::Unsatisfiable { total });
                }
                let last_index = start + rows.len() as u64 - 1;
                let mut omitted: Vec<String> = Vec::new();
                let body = match listing {
                    Listing20::Objects | Listing20::Object => {
                        let mut objects: Vec<String> = Vec::with_capacity(rows.len());
                        for (r, b) in rows.iter().zip(&bodies) {
                            match to_stix20(b, &r.spec_version) {
                                Some(o) => objects.push(o),
                                None => omitted.push(format!("{}|{}", r.stix_id, r.version)),
                            }
                        }
                        bundle(&objects)
                    }
                    Listing20::Manifest => {
                        let ids: Vec<&str> = rows.iter().map(|r| r.stix_id.as_str()).collect();
                        let versions = storage::objects::versions_of_many(c, ckey, &ids, sources, valid_at)?;
                        let entries: Vec<serde_json::Value> = rows
                            .iter()
                            .map(|r| {
                                let vs: Vec<&str> = versions
                                    .get(&r.stix_id)
                                    .map(|v| v.iter().map(|(_, v)| v.as_str()).collect())
                                    .unwrap_or_else(|| vec![r.version.as_str()]);
                                serde_json::json!({
                                    "id": r.stix_id,
                                    "date_added": format_taxii(r.date_added),
                                    "versions": vs,
                                    "media_types": [STIX20],
                                })
                            })
                            .collect();
                        serde_json::to_vec(&serde_json::json!({ "objects": entries })).unwrap_or_default()
                    }
                };
                let page = Page {
                    body: Vec::new(),
                    first: rows.first().map(|r| r.date_added),
                    last: rows.last().map(|r| r.date_added),
                    count: rows.len(),
                    filter: filter.clone(),
                    snapshot,
                    sources,
                    omitted,
                };
                if let (Some(last), Ok(mut m)) = (page.last, continuations().lock()) {
                    if m.len() >= MAX_CONTINUATIONS {
                        m.clear();
                    }
                    m.insert((partner, ckey, object.clone(), filter.to_query(), last_index + 1), last);
                }
                let (content_range, partial) = match listing {
                    Listing20::Object => (None, false),
                    _ => (
                        Some(format!("items {start}-{last_index}/{total}")),
                        start > 0 || i64::try_from(last_index + 1).unwrap_or(i64::MAX) < total,
                    ),
                };
                Ok(Answer20::Page { body, content_range, partial, page: Box::new(page) })
            })
            .await?;
        if let (Listing20::Object, Answer20::Unsatisfiable { .. }) = (listing, &answer) {
            return Err(ServiceError::UnknownObject(object_named));
        }
        Ok(answer)
    }
}

fn empty_body(listing: Listing20) -> Vec<u8> {
    match listing {
        Listing20::Manifest => b"{}".to_vec(),
        _ => bundle(&[]),
    }
}

/// A STIX 2.0 bundle of object texts (`objects` left out when there are none, as 2.0 asks).
fn bundle(objects: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + objects.iter().map(String::len).sum::<usize>());
    out.extend_from_slice(b"{\"type\":\"bundle\",\"id\":\"bundle--");
    out.extend_from_slice(uuid::Uuid::new_v4().to_string().as_bytes());
    out.extend_from_slice(b"\",\"spec_version\":\"2.0\"");
    if !objects.is_empty() {
        out.extend_from_slice(b",\"objects\":[");
        for (i, o) in objects.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(o.as_bytes());
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

/// Parses `Range: items=N-M` (also `items N-M`, which some 2.0 clients send, and `items=N-`).
///
/// # Errors
/// A message for a malformed range.
pub fn parse_range(value: &str) -> Result<Range20, String> {
    let spec = value
        .trim()
        .strip_prefix("items")
        .map(|r| r.trim_start_matches(['=', ' ']))
        .ok_or_else(|| format!("Range '{}' is not items=N-M", crate::model::stix::shown(value)))?;
    let (a, b) =
        spec.split_once('-').ok_or_else(|| format!("Range '{}' is not items=N-M", crate::model::stix::shown(value)))?;
    let num =
        |s: &str| (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    let start = num(a.trim())
        .ok_or_else(|| format!("Range '{}' does not start with a number", crate::model::stix::shown(value)))?;
    let end = match b.trim() {
        "" => None,
        e => Some(
            num(e).ok_or_else(|| format!("Range '{}' does not end with a number", crate::model::stix::shown(value)))?,
        ),
    };
    if end.is_some_and(|e| e < start) {
        return Err(format!("Range '{}' ends before it starts", crate::model::stix::shown(value)));
    }
    Ok(Range20 { start, end })
}

/// The `match[...]` filters a TAXII 2.0 listing understands, parsed as in 2.1.
///
/// # Errors
/// A malformed parameter.
pub fn parse_query20(raw: &str, listing: Listing20) -> Result<Query, crate::model::filter::QueryError> {
    let endpoint = match listing {
        Listing20::Objects => Endpoint::Objects,
        Listing20::Object => Endpoint::Object,
        Listing20::Manifest => Endpoint::Manifest,
    };
    crate::model::filter::parse_query(raw, endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("items=0-99"), Ok(Range20 { start: 0, end: Some(99) }));
        assert_eq!(parse_range("items 5-9"), Ok(Range20 { start: 5, end: Some(9) }));
        assert_eq!(parse_range("items=10-"), Ok(Range20 { start: 10, end: None }));
        for bad in ["bytes=0-9", "items=9-5", "items=a-b", "items=-5", "items=1", "items=99999999999999999999999-"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bundles() {
        let b = String::from_utf8(bundle(&["{\"a\":1}".to_owned()])).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&b).unwrap_or_default();
        assert_eq!(v["spec_version"], "2.0");
        assert_eq!(v["objects"][0]["a"], 1);
        let e: serde_json::Value = serde_json::from_slice(&bundle(&[])).unwrap_or_default();
        assert!(e.get("objects").is_none());
    }
}
