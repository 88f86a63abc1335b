//! Objects, manifests, versions: paged reads, Add Objects, Delete.

use serde_json::value::RawValue;

use super::audit::{self, Operator, RequestMeta, VersionTrace};
use super::{Service, ServiceError, ServiceResult};
use crate::model::access::{Caller, Principal};
use crate::model::audit::AuditRecord;
use crate::model::cursor::Cursor;
use crate::model::filter::{Endpoint, Filter, Query, VersionSel};
use crate::model::ijson::{self, ContainerError};
use crate::model::policy::SharingPolicy;
use crate::model::stix::valid_identifier;
use crate::model::time::{format_taxii, now_micros, Micros};
use crate::model::{Status, StatusDetail};
use crate::stix::Validator;
use crate::storage::objects::{NewObject, Outcome, PageQuery, VersionRow};
use crate::storage::{self};

/// One page of a listing, ready to send, and what the audit trail records of it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The serialised resource (envelope, manifest or versions).
    pub body: Vec<u8>,
    /// `date_added` of the first and last item (the `X-TAXII-Date-Added-*` headers, T-236).
    pub first: Option<Micros>,
    pub last: Option<Micros>,
    /// Items served.
    pub count: usize,
    /// The filters applied (those of the first page when paging with `next`).
    pub filter: Filter,
    /// The collection's highest `date_added` the read could see: the versions that existed.
    pub snapshot: Option<Micros>,
    /// A derived collection read through some of its sources only: their bits.
    pub sources: Option<i64>,
    /// Objects of the page's range it did not send (see `audit::PageDetail`).
    pub omitted: Vec<String>,
}

/// Appends a JSON string literal.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as JSON requires; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes `{"more":…,"next":…,"<key>":[` … `]}` around the items; `{}` when there are none.
fn wrap<I: IntoIterator<Item = Vec<u8>>>(key: &str, more: bool, next: Option<&str>, items: I) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut iter = items.into_iter().peekable();
    if iter.peek().is_none() {
        out.extend_from_slice(b"{}");
        return out;
    }
    out.extend_from_slice(if more { b"{\"more\":true," } else { b"{\"more\":false," });
    if let Some(n) = next {
        out.extend_from_slice(b"\"next\":");
        push_json_str(&mut out, n);
        out.push(b',');
    }
    push_json_str(&mut out, key);
    out.extend_from_slice(b":[");
    for (i, item) in iter.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// Most bytes of object bodies in one page; a page stops early (with `more` and `next`) rather
/// than build a response of unbounded size from very large objects.
pub(crate) const PAGE_BYTE_BUDGET: usize = 32 * 1024 * 1024;

/// Most objects accepted in one envelope (each gets a line in the status resource).
pub const MAX_OBJECTS_PER_ENVELOPE: usize = 100_000;

impl Service {
    /// Resolves `next` against this request (T-028) and returns the effective filter and position.
    async fn resolve_cursor(
        &self,
        who: &Principal,
        endpoint: Endpoint,
        collection: &str,
        object: Option<&str>,
        q: &Query,
    ) -> ServiceResult<(Filter, Option<Micros>)> {
        let Some(token) = &q.next else { return Ok((q.filter.clone(), None)) };
        if Cursor::names_unknown_key(token, &self.keys()) {
            // Another node may have rotated the key a moment ago.
            self.reload_keys().await?;
        }
        let cursor = Cursor::decode(token, &self.keys(), crate::model::time::now_micros())?;
        let filter = q.has_filters.then_some(&q.filter);
        cursor.check(endpoint, collection, object, who.id(), filter)?;
        Ok((cursor.filter, Some(cursor.date_added)))
    }

    fn page_size(&self, q: &Query) -> i64 {
        let max = self.settings.max_page_size.max(1);
        i64::try_from(q.limit.unwrap_or(max).min(max)).unwrap_or(1000)
    }

    /// Get Objects, Get an Object, Get Object Manifests, Get Object Versions.
    pub async fn list(
        &self,
        who: &Principal,
        endpoint: Endpoint,
        root: &str,
        collection: &str,
        object: Option<&str>,
        q: Query,
    ) -> ServiceResult<Page> {
        // Object ids are indexed in lower case (see model::stix::head_of).
        let object_lower = object.map(str::to_ascii_lowercase);
        let object = object_lower.as_deref();
        let view = self.view();
        let (_, col, rights) = Self::collection(&view, who, root, collection)?;
        if !rights.read {
            return Err(Self::deny(who, ServiceError::Forbidden("this partner may not read this collection")));
        }
        // No object with an invalid id was ever stored: answered without asking the database
        // (which could not even compare some such strings, e.g. one holding a NUL on PostgreSQL).
        if let Some(id) = object.filter(|id| valid_identifier(id).is_none()) {
            return Err(ServiceError::UnknownObject(id.to_owned()));
        }
        let (filter, after) = self.resolve_cursor(who, endpoint, &col.id, object, &q).await?;
        let limit = self.page_size(&q);
        let (cid, ckey, oid) = (col.id.clone(), col.key, object.map(str::to_owned));
        let key = self.keys();
        let partner = who.id();
        let with_bodies = matches!(endpoint, Endpoint::Objects | Endpoint::Object);
        // A derived collection: only what came from sources the caller may read, and, with
        // `valid_now`, only what is valid at this instant.
        let sources = view.readable_sources(who, col);
        let valid_at = (col.feed.is_derived() && col.feed.filter.checks_validity()).then(now_micros);
        let plans = self.storage.page_plans();
        let page = self
            .storage
            .read(move |c| {
                let pq = PageQuery {
                    collection: ckey,
                    object: oid.as_deref(),
                    filter: &filter,
                    after,
                    fetch: limit + 1,
                    sources,
                    valid_at,
                    plans: Some(&plans),
                };
                let (mut rows, mut bodies, cut, snapshot): (Vec<VersionRow>, Vec<String>, bool, _) = if with_bodies {
                    let page = storage::objects::page_with_bodies(c, &pq, PAGE_BYTE_BUDGET)?;
                    let (rows, bodies) = page.rows.into_iter().unzip();
                    (rows, bodies, page.cut, page.snapshot)
                } else {
                    let page = storage::objects::page(c, &pq)?;
                    (page.rows, Vec::new(), false, page.snapshot)
                };
                let more = rows.len() as i64 > limit || cut;
                rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
                bodies.truncate(rows.len());
                // Get an Object: nothing to return on a first page is a 404, both for an unknown
                // id and for a version that does not exist or was deleted (T-183, T-173).
                // Versions: 404 only for an object with no version at all in the collection.
                if rows.is_empty() && after.is_none() {
                    match (endpoint, oid.as_deref()) {
                        (Endpoint::Object, Some(_)) => return Ok(None),
                        (_, Some(id)) if !storage::objects::exists(c, ckey, id, sources)? => return Ok(None),
                        _ => {}
                    }
                }
                let next = match (more, rows.last()) {
                    (true, Some(last)) => Some(
                        Cursor {
                            endpoint,
                            collection: cid.clone(),
                            object: oid.clone(),
                            partner,
                            filter: filter.clone(),
                            date_added: last.date_added,
                            seq: last.seq,
                        }
                        .encode(&key),
                    ),
                    _ => None,
                };
                let first = rows.first().map(|r| r.date_added);
                let last = rows.last().map(|r| r.date_added);
                let count = rows.len();
                let body = match endpoint {
                    Endpoint::Objects | Endpoint::Object => {
                        wrap("objects", more, next.as_deref(), bodies.into_iter().map(String::into_bytes))
                    }
                    Endpoint::Manifest => wrap("objects", more, next.as_deref(), rows.iter().map(manifest_record)),
                    Endpoint::Versions | Endpoint::Delete => wrap(
                        "versions",
                        more,
                        next.as_deref(),
                        rows.iter().map(|r| {
                            let mut v = Vec::new();
                            push_json_str(&mut v, &r.version);
                            v
                        }),
                    ),
                };
                Ok(Some(Page { body, first, last, count, filter, snapshot, sources, omitted: Vec::new() }))
            })
            .await?;
        page.ok_or_else(|| ServiceError::UnknownObject(object.unwrap_or_default().to_owned()))
    }

    /// Add Objects: every object is stored or reported as a failure on its own; the envelope's
    /// successes, its status and its audit record are committed in one transaction.
    pub async fn add_objects(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        root: &str,
        collection: &str,
        body: Vec<u8>,
    ) -> ServiceResult<Status> {
        let who = &caller.principal;
        let view = self.view();
        let (r, col, rights) = Self::collection(&view, who, root, collection)?;
        if !rights.write {
            return Err(Self::deny(
                who,
                ServiceError::Forbidden("this partner may not add objects to this collection"),
            ));
        }
        let request_time = now_micros();
        // Parse off the async threads and outside the write lock.
        let (validator, sharing) = (self.validator.clone(), col.sharing.clone());
        let (items, failures) = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let parsed = parse_envelope(&body, &validator, &sharing);
            crate::metrics::get().validation_seconds.observe(started.elapsed().as_secs_f64());
            parsed
        })
        .await??;
        // The write limit counts every object the envelope holds, stored or refused.
        self.limits.admit_write(who, items.len() + failures.len())?;
        let mut record = self.request_record(caller, meta, "add_objects", Some(&r.name), Some(&col.id), None);
        record.status = Some(202);
        let write = Write {
            root_id: r.id,
            collection: col.id.clone(),
            collection_key: col.key,
            added_by: who.id(),
            can_read: rights.read,
            record,
        };
        self.store(write, items, failures, request_time).await
    }

    /// Bulk load (`concordia import`): the objects go through the same checks, sharing policy,
    /// storage and audit as Add Objects, as if `partner` had posted them, in one transaction
    /// per call. Unless `operator_override`, the partner must be allowed to write the collection;
    /// either way the load is recorded as the operator's.
    ///
    /// # Errors
    /// `UnknownCollection`, `Forbidden` (the partner may not write it), storage failures.
    pub async fn import(
        &self,
        operator: &Operator,
        partner: &Principal,
        operator_override: bool,
        collection: &str,
        objects: Vec<String>,
    ) -> ServiceResult<Status> {
        let view = self.view();
        let col = view.collection(collection).ok_or(ServiceError::UnknownCollection)?;
        let root = view.api_roots.iter().find(|r| r.id == col.api_root_id).ok_or(ServiceError::UnknownCollection)?;
        let rights = view.rights(partner, col);
        if col.feed.is_derived() {
            return Err(ServiceError::Forbidden(
                "a derived collection takes no objects of its own; load them into one of its sources",
            ));
        }
        if !rights.write && !operator_override {
            return Err(ServiceError::Forbidden(
                "this partner may not write this collection; give --operator to load it as the operator",
            ));
        }
        let request_time = now_micros();
        let (validator, sharing) = (self.validator.clone(), col.sharing.clone());
        let (items, failures) = tokio::task::spawn_blocking(move || {
            let raws: Vec<&str> = objects.iter().map(String::as_str).collect();
            prepare_texts(&validator, &sharing, &raws)
        })
        .await?;
        let mut record = operator.record(
            "import",
            serde_json::json!({ "as_partner": partner_name(partner), "operator_override": operator_override && !rights.write }),
        );
        record.partner_id = Some(partner.id());
        record.partner = partner_name(partner);
        record.api_root = Some(root.name.clone());
        record.collection_id = Some(col.id.clone());
        let write = Write {
            root_id: root.id,
            collection: col.id.clone(),
            collection_key: col.key,
            added_by: partner.id(),
            can_read: true,
            record,
        };
        self.store(write, items, failures, request_time).await
    }

    /// The one way objects enter the store: stores the checked objects of one envelope, its
    /// status and its audit record in one transaction.
    ///
    /// The new versions also go to the derived collections of this collection, as the policy
    /// this node has loaded defines them; if the policy changed in the meantime, the write
    /// finds out under its collection's lock, and is retried with the policy reloaded.
    async fn store(
        &self,
        write: Write,
        items: Vec<NewObject>,
        failures: Vec<StatusDetail>,
        request_time: Micros,
    ) -> ServiceResult<Status> {
        let items = std::sync::Arc::new(items);
        for attempt in 1.. {
            let view = self.view();
            let derived = derived_targets(&view, &write.collection);
            match self
                .store_once(write.clone(), items.clone(), failures.clone(), request_time, derived, view.feed_generation)
                .await
            {
                Err(ServiceError::Internal(storage::StorageError::StalePolicy)) if attempt < 5 => {
                    self.refresh(true).await?;
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }

    async fn store_once(
        &self,
        write: Write,
        items: std::sync::Arc<Vec<NewObject>>,
        failures: Vec<StatusDetail>,
        request_time: Micros,
        derived: Vec<storage::objects::Derived>,
        generation: i64,
    ) -> ServiceResult<Status> {
        let audit = self.settings.audit;
        let started = std::time::Instant::now();
        self.storage
            .write(move |c| {
                let Write { root_id, collection, collection_key, added_by, can_read, mut record } = write;
                let now = now_micros();
                let locked = started.elapsed();
                let mut withdrawn = Vec::new();
                let outcomes = storage::objects::insert(
                    c,
                    collection_key,
                    added_by,
                    &items,
                    now,
                    &derived,
                    Some(generation),
                    &mut withdrawn,
                )?;
                if audit && !withdrawn.is_empty() {
                    // Versions that moved in a feed (a second source sent them): their old
                    // positions, recorded with this write as the cause.
                    super::feeds::record_withdrawn(c, &record, &withdrawn)?;
                }
                tracing::debug!(
                    objects = items.len(),
                    lock_wait_ms = locked.as_secs_f64() * 1e3,
                    insert_ms = (started.elapsed() - locked).as_secs_f64() * 1e3,
                    "add objects"
                );
                let stored = outcomes.iter().filter(|o| matches!(o, Outcome::Stored { .. })).count();
                let successes = items
                    .iter()
                    .zip(outcomes)
                    .map(|(item, o)| match o {
                        Outcome::Stored { version } => {
                            StatusDetail { id: item.head.id.clone(), version, message: None }
                        }
                        // A write-only partner must not learn what the collection holds: its
                        // duplicates are reported exactly like new objects.
                        Outcome::Duplicate { version } if can_read => StatusDetail {
                            id: item.head.id.clone(),
                            version,
                            message: Some("this version is already in the collection".into()),
                        },
                        Outcome::Duplicate { .. } => StatusDetail {
                            id: item.head.id.clone(),
                            version: item.head.version.clone().unwrap_or_else(|| format_taxii(now)),
                            message: None,
                        },
                    })
                    .collect();
                let status =
                    Status::complete(uuid::Uuid::new_v4().to_string(), format_taxii(request_time), successes, failures);
                let text =
                    serde_json::to_string(&status).map_err(|e| storage::StorageError::Conflict(e.to_string()))?;
                storage::statuses::insert(c, &status.id, root_id, added_by, now, &text)?;
                if audit {
                    record.at = now;
                    record.object_count = Some(i64::try_from(stored).unwrap_or(i64::MAX));
                    record.failure_count = Some(i64::try_from(status.failure_count).unwrap_or(i64::MAX));
                    let mut detail: serde_json::Value =
                        record.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
                    if let Some(map) = detail.as_object_mut() {
                        map.insert("status_id".into(), status.id.clone().into());
                    } else {
                        detail = serde_json::json!({ "status_id": status.id });
                    }
                    record.detail = Some(detail.to_string());
                    audit::record_write(c, &collection, &record)?;
                }
                Ok(status)
            })
            .await
            .map_err(ServiceError::from)
    }

    /// Delete an Object (§5.7): the caller needs both read and write (T-182). Without
    /// `match[version]`, every version is deleted; without `match[spec_version]`, every spec
    /// version. The deleted versions are named in the audit record, committed with the deletion.
    pub async fn delete_object(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        root: &str,
        collection: &str,
        object: &str,
        q: Query,
    ) -> ServiceResult<()> {
        let who = &caller.principal;
        let object_lower = object.to_ascii_lowercase();
        let object = object_lower.as_str();
        let view = self.view();
        let (r, col, rights) = Self::collection(&view, who, root, collection)?;
        if !(rights.read && rights.write) {
            return Err(Self::deny(
                who,
                ServiceError::Forbidden("deleting needs both read and write access to this collection"),
            ));
        }
        if valid_identifier(object).is_none() {
            return Err(ServiceError::UnknownObject(object.to_owned()));
        }
        let mut filter = q.filter;
        if !q.versions_given {
            filter.versions = VersionSel::All;
        }
        if filter.spec_versions.is_empty() {
            filter.spec_versions = vec!["2.0".into(), "2.1".into()];
        }
        let mut record = self.request_record(caller, meta, "delete_object", Some(&r.name), Some(&col.id), Some(object));
        record.filters = Some(filter.to_query());
        record.status = Some(200);
        let audit = self.settings.audit;
        let (cid, ckey, oid) = (col.id.clone(), col.key, object.to_owned());
        let mut attempt = 0;
        let deleted = loop {
            attempt += 1;
            // The derived collections the deleted versions leave, from the policy as loaded;
            // re-read if it changed (see `store`).
            let view = self.view();
            let (derived, generation) = (derived_targets(&view, &cid), view.feed_generation);
            let (cid, oid, filter, mut record) = (cid.clone(), oid.clone(), filter.clone(), record.clone());
            let result = self
                .storage
                .write(move |c| {
                    let mut withdrawn = Vec::new();
                    let gone =
                        storage::objects::delete(c, ckey, &oid, &filter, &derived, Some(generation), &mut withdrawn)?;
                    if audit {
                        // The feeds' records name the deleting request as the cause.
                        super::feeds::record_withdrawn(c, &record, &withdrawn)?;
                    }
                    if audit && !gone.is_empty() {
                        let traces: Vec<VersionTrace> = gone
                            .iter()
                            .map(|(facts, facets)| VersionTrace::of(facts.clone(), facets.clone()))
                            .collect();
                        record.at = now_micros();
                        record.object_count = Some(i64::try_from(gone.len()).unwrap_or(i64::MAX));
                        record.detail = Some(serde_json::to_string(&traces).unwrap_or_default());
                        audit::record_write(c, &cid, &record)?;
                    }
                    Ok(gone.len())
                })
                .await;
            match result {
                Err(storage::StorageError::StalePolicy) if attempt < 5 => self.refresh(true).await.map(|_| ())?,
                other => break other?,
            }
        };
        if deleted == 0 {
            return Err(ServiceError::UnknownObject(object.to_owned()));
        }
        Ok(())
    }
}

use super::feeds::derived_targets;

/// A write about to be stored: where, as whom, and its audit record (completed in the transaction).
#[derive(Clone)]
struct Write {
    root_id: i64,
    collection: String,
    collection_key: i64,
    added_by: i64,
    /// Whether the writer may read the collection (else duplicates are not revealed).
    can_read: bool,
    record: AuditRecord,
}

fn partner_name(p: &Principal) -> Option<String> {
    match p {
        Principal::Partner { name, .. } => Some(name.clone()),
        Principal::Anonymous => None,
    }
}

fn manifest_record(r: &VersionRow) -> Vec<u8> {
    let mut v = Vec::with_capacity(200);
    v.extend_from_slice(b"{\"id\":");
    push_json_str(&mut v, &r.stix_id);
    v.extend_from_slice(b",\"date_added\":\"");
    v.extend_from_slice(format_taxii(r.date_added).as_bytes());
    v.extend_from_slice(b"\",\"version\":");
    push_json_str(&mut v, &r.version);
    v.extend_from_slice(b",\"media_type\":\"application/stix+json;version=");
    v.extend_from_slice(r.spec_version.as_bytes());
    v.extend_from_slice(b"\"}");
    v
}

/// Parses an envelope (or a bundle-shaped object): objects to store, and per-object failures.
fn parse_envelope(
    body: &[u8],
    validator: &Validator,
    sharing: &SharingPolicy,
) -> Result<(Vec<NewObject>, Vec<StatusDetail>), ServiceError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ServiceError::MalformedBody(format!("the request body is not valid UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    let objects = match ijson::read_container(text) {
        Ok(Some(objects)) => objects,
        Ok(None) => {
            return Err(ServiceError::Unprocessable(
                "the request body must be a TAXII envelope: a JSON object with an 'objects' list".into(),
            ))
        }
        Err(e @ ContainerError::NotAnEnvelope(_)) => return Err(ServiceError::Unprocessable(e.to_string())),
        Err(e @ ContainerError::DuplicateMember(_)) => return Err(ServiceError::DuplicateMember(e.to_string())),
        Err(e @ ContainerError::Syntax(_)) => return Err(ServiceError::MalformedBody(e.to_string())),
    };
    if objects.len() > MAX_OBJECTS_PER_ENVELOPE {
        return Err(ServiceError::Unprocessable(format!(
            "the envelope holds {} objects; send at most {MAX_OBJECTS_PER_ENVELOPE} per request",
            objects.len()
        )));
    }
    if objects.is_empty() {
        return Err(ServiceError::Unprocessable(
            "the envelope has no objects: send {\"objects\": [ ... ]} with at least one STIX object".into(),
        ));
    }
    Ok(prepare_all(validator, sharing, &objects))
}

/// Below this many objects an envelope is checked on the calling thread alone.
const PARALLEL_FROM: usize = 128;
/// Objects per task when an envelope is checked on the pool.
const CHECK_CHUNK: usize = 64;

/// The threads that check large envelopes: one per core, shared by all requests. A fixed pool
/// (rather than threads per request) bounds the checking work in flight to the cores there are.
fn check_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("stix-check-{i}"))
            .build()
            .map_err(|e| tracing::warn!(error = %e, "no STIX check pool; envelopes are checked on one thread"))
            .ok()
    })
    .as_ref()
}

/// Checks the objects of one envelope, on every core when the envelope is large (one client
/// posting big envelopes one after another would otherwise leave the other cores idle). Results
/// keep the envelope's order.
fn prepare_all(
    validator: &Validator,
    sharing: &SharingPolicy,
    objects: &[&RawValue],
) -> (Vec<NewObject>, Vec<StatusDetail>) {
    let texts: Vec<&str> = objects.iter().map(|r| r.get()).collect();
    prepare_texts(validator, sharing, &texts)
}

/// [`prepare_all`] over object texts.
fn prepare_texts(
    validator: &Validator,
    sharing: &SharingPolicy,
    objects: &[&str],
) -> (Vec<NewObject>, Vec<StatusDetail>) {
    use rayon::prelude::*;
    let check = |offset: usize, part: &[&str]| {
        let mut items = Vec::with_capacity(part.len());
        let mut failures = Vec::new();
        for (i, raw) in part.iter().enumerate() {
            match prepare_object(validator, Some(sharing), raw, offset + i) {
                Ok(item) => items.push(item),
                Err(f) => failures.push(f),
            }
        }
        (items, failures)
    };
    // Small envelopes never touch (or start) the pool.
    let pool = if objects.len() >= PARALLEL_FROM { check_pool() } else { None };
    let Some(pool) = pool else { return check(0, objects) };
    let parts: Vec<(Vec<NewObject>, Vec<StatusDetail>)> = pool.install(|| {
        objects.par_chunks(CHECK_CHUNK).enumerate().map(|(n, part)| check(n * CHECK_CHUNK, part)).collect()
    });
    let mut items = Vec::with_capacity(objects.len());
    let mut failures = Vec::new();
    for (i, f) in parts {
        items.extend(i);
        failures.extend(f);
    }
    (items, failures)
}

/// Checks one object as received (see [`Validator::check_object`]) under a collection's sharing
/// policy, if any. Returns it ready to store, or its failure naming every problem.
pub fn prepare_object(
    validator: &Validator,
    sharing: Option<&SharingPolicy>,
    raw: &str,
    index: usize,
) -> Result<NewObject, StatusDetail> {
    match validator.check_object(sharing, raw, index) {
        Ok((head, _)) => Ok(NewObject { head, body: raw.to_owned() }),
        Err(r) => Err(StatusDetail { message: Some(r.message()), id: r.id, version: r.version }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indicator(n: usize) -> String {
        format!(
            r#"{{"type":"indicator","spec_version":"2.1","id":"indicator--00000000-0000-4000-8000-{n:012}","created":"2026-01-01T00:00:00.000Z","modified":"2026-01-01T00:00:00.000Z","pattern":"[ipv4-addr:value = '10.0.0.1']","pattern_type":"stix","valid_from":"2026-01-01T00:00:00Z"}}"#
        )
    }

    /// A large envelope is checked on several threads: the stored objects keep the envelope's
    /// order, and every failure names its own object.
    #[test]
    fn parallel_checks_keep_order_and_blame_the_right_object() -> Result<(), Box<dyn std::error::Error>> {
        let validator = Validator::new()?;
        let sharing = SharingPolicy::default();
        let bad = [0usize, 129, 400, 999];
        let texts: Vec<String> =
            (0..1000)
                .map(|n| {
                    if bad.contains(&n) {
                        indicator(n).replace("\"pattern_type\":\"stix\",", "")
                    } else {
                        indicator(n)
                    }
                })
                .collect();
        let raws: Vec<Box<RawValue>> =
            texts.iter().map(|t| serde_json::value::RawValue::from_string(t.clone())).collect::<Result<_, _>>()?;
        let refs: Vec<&RawValue> = raws.iter().map(AsRef::as_ref).collect();
        let (items, failures) = prepare_all(&validator, &sharing, &refs);
        let want: Vec<String> = (0..1000)
            .filter(|n| !bad.contains(n))
            .map(|n| format!("indicator--00000000-0000-4000-8000-{n:012}"))
            .collect();
        let got: Vec<String> = items.iter().map(|i| i.head.id.clone()).collect();
        assert_eq!(got, want);
        let failed: Vec<String> = failures.iter().map(|f| f.id.clone()).collect();
        let want_failed: Vec<String> =
            bad.iter().map(|n| format!("indicator--00000000-0000-4000-8000-{n:012}")).collect();
        assert_eq!(failed, want_failed);
        assert!(failures.iter().all(|f| f.message.as_deref().is_some_and(|m| m.contains("pattern_type"))));
        // The bodies are the bytes received.
        assert_eq!(items.first().map(|i| i.body.as_str()), texts.get(1).map(String::as_str));
        Ok(())
    }
}
