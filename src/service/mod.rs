//! The TAXII operations. Every call receives the caller's [`Principal`], resolves its rights on
//! the collection through the one [`AccessView`], and filters every query by them. A collection
//! the caller may not see is reported exactly like an unknown one. No actix, no SQL here.

pub mod audit;
pub mod console;
pub mod feeds;
pub mod limits;
mod objects;
pub mod operator;
pub mod taxii20;

use std::sync::{Arc, RwLock};

pub use objects::{prepare_object, Page, MAX_OBJECTS_PER_ENVELOPE};

use self::audit::{Auditor, Operator, RequestMeta};
use crate::auth::{AuthError, Authenticator};
use crate::model::access::{
    AccessView, ApiRootInfo, AuthMethod, Caller, CollectionInfo, Credential, PeerCertificate, Principal, Rights,
};
use crate::model::audit::{AuditKind, AuditRecord};
use crate::model::cursor::{CursorError, KeyRing};
use crate::model::filter::QueryError;
use crate::model::time::{now_micros, Micros};
use crate::model::{ApiRootResource, CollectionResource, CollectionsResource, Discovery};
use crate::stix::Validator;
use crate::storage::{self, Storage, StorageError};

/// Why an operation failed; the HTTP layer maps each variant to one status code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("API root not found")]
    UnknownApiRoot,
    /// Unknown, or not visible to the caller: the two are indistinguishable on purpose.
    #[error("collection not found")]
    UnknownCollection,
    #[error("object {} not found in this collection", crate::model::stix::shown(.0))]
    UnknownObject(String),
    #[error("status not found")]
    UnknownStatus,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    BadQuery(#[from] QueryError),
    #[error(transparent)]
    BadCursor(#[from] CursorError),
    #[error("{0}")]
    MalformedBody(String),
    /// A member name given twice at the top level of the body (I-JSON).
    #[error("{0}")]
    DuplicateMember(String),
    #[error("{0}")]
    Unprocessable(String),
    /// The partner's `allow_from` does not include the client's address.
    #[error("this partner may not connect from {0}; the hub operator lists the partner's addresses in its allow_from")]
    AddressNotAllowed(String),
    /// Over the partner's request rate or write rate.
    #[error("{}", limited_message(.what, *.retry_after))]
    Limited { what: &'static str, retry_after: std::time::Duration },
    /// An envelope with more objects than the partner may add in a minute (never passes).
    #[error("the envelope holds {objects} objects, more than this partner may add in a minute (its write_limit is {per_minute} objects per minute); send at most {per_minute} objects per request")]
    EnvelopeOverWriteLimit { objects: usize, per_minute: u32 },
    /// The caller is not in the policy this node has loaded yet.
    #[error("this partner's policy is not loaded on this server yet; retry in a second")]
    PolicyNotLoaded,
    #[error("the server is busy; retry shortly")]
    Unavailable(#[source] StorageError),
    #[error("internal error")]
    Internal(#[source] StorageError),
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        if e.is_busy() {
            ServiceError::Unavailable(e)
        } else {
            ServiceError::Internal(e)
        }
    }
}

/// A blocking task that could not finish (the runtime is shutting down): retry.
impl From<tokio::task::JoinError> for ServiceError {
    fn from(e: tokio::task::JoinError) -> Self {
        ServiceError::Unavailable(StorageError::Unavailable(Box::new(e)))
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

fn limited_message(what: &str, retry_after: std::time::Duration) -> String {
    let secs = limits::retry_after_seconds(retry_after);
    match what {
        "writes" => format!(
            "this partner has added more objects than its write_limit allows on this server; retry in {secs} s (see Retry-After), or send smaller envelopes"
        ),
        _ => format!("this partner sends more requests than its rate_limit allows; retry in {secs} s (see Retry-After)"),
    }
}

impl From<limits::Refusal> for ServiceError {
    fn from(r: limits::Refusal) -> Self {
        match r {
            limits::Refusal::NotAllowedFrom(client) => ServiceError::AddressNotAllowed(client),
            limits::Refusal::RateLimited { what, retry_after } => ServiceError::Limited { what, retry_after },
            limits::Refusal::EnvelopeOverWriteLimit { objects, per_minute } => {
                ServiceError::EnvelopeOverWriteLimit { objects, per_minute }
            }
            limits::Refusal::NotLoaded => ServiceError::PolicyNotLoaded,
        }
    }
}

/// Tunables the service needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The keys that sign `next` tokens.
    pub keys: KeyRing,
    /// The keys live in the database (no `server_key` configured): reloaded with the policy, so
    /// `concordia rotate-key` reaches every node.
    pub keys_in_database: bool,
    /// Default request and write limits of partners.
    pub limits: limits::Defaults,
    pub max_page_size: u64,
    pub status_retention_hours: u64,
    pub anonymous_read: bool,
    /// Keep the audit trail (records of writes in their transactions; of reads by the node's
    /// [`Auditor`]).
    pub audit: bool,
}

/// Shared state of the TAXII service.
pub struct Service {
    pub storage: Storage,
    pub auth: Authenticator,
    pub validator: Arc<Validator>,
    /// This node's appender of read and failed-login records.
    pub audit: Auditor,
    /// Per-partner rates and allow-lists.
    pub limits: limits::Limits,
    view: RwLock<Arc<AccessView>>,
    keys: RwLock<Arc<KeyRing>>,
    settings: Settings,
    /// Set on SIGTERM: `/readyz` answers 503 while the node still serves.
    draining: std::sync::atomic::AtomicBool,
    /// When the keys were last reloaded because a token named an unknown key.
    keys_reloaded: std::sync::atomic::AtomicI64,
    /// Up to when expiries in `valid_now` feeds were counted (see `housekeep_feeds`).
    expiry_checked: std::sync::atomic::AtomicI64,
    /// Set while this node's feed housekeeping runs (one at a time).
    pub housekeeping: std::sync::atomic::AtomicBool,
    /// Client certificates this node noted as used within the last hour (see
    /// [`Service::note_certificate`]).
    certificates_noted: moka::sync::Cache<String, ()>,
}

impl Service {
    pub fn new(
        storage: Storage,
        auth: Authenticator,
        validator: Arc<Validator>,
        audit: Auditor,
        settings: Settings,
    ) -> Self {
        Service {
            storage,
            auth,
            validator,
            audit,
            limits: limits::Limits::new(settings.limits),
            view: RwLock::new(Arc::new(AccessView::default())),
            keys: RwLock::new(Arc::new(settings.keys.clone())),
            settings,
            draining: std::sync::atomic::AtomicBool::new(false),
            keys_reloaded: std::sync::atomic::AtomicI64::new(0),
            expiry_checked: std::sync::atomic::AtomicI64::new(now_micros()),
            housekeeping: std::sync::atomic::AtomicBool::new(false),
            certificates_noted: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
        }
    }

    /// A service for operator tools (`import`, the demo loader) outside the server: the same
    /// checks, sharing policy, storage and audit, without an HTTP side. Call [`Service::refresh`]
    /// before use.
    ///
    /// # Errors
    /// The embedded STIX schemas do not compile.
    pub fn offline(storage: Storage, audit: bool) -> Result<Service, String> {
        let validator = Arc::new(Validator::new()?);
        let settings = Settings {
            keys: KeyRing::new(&[]),
            keys_in_database: false,
            limits: limits::Defaults::UNLIMITED,
            max_page_size: 1000,
            status_retention_hours: 72,
            anonymous_read: false,
            audit,
        };
        let auth = Authenticator::new(storage.clone(), 0);
        Ok(Service::new(storage, auth, validator, Auditor::disabled(), settings))
    }

    /// Authenticates a request from its `Authorization` header and, over mutual TLS, its client
    /// certificate (already verified against `tls_client_ca` by the TLS layer). A certificate
    /// must identify exactly one partner; with credentials for another partner beside it the
    /// request is refused, never guessed.
    ///
    /// # Errors
    /// Why the caller is not authenticated (all answered 401, or 429/503).
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        client: Option<std::net::IpAddr>,
        certificate: Option<&PeerCertificate>,
    ) -> Result<Caller, AuthError> {
        let Some(cert) = certificate else {
            return match (header, self.settings.anonymous_read) {
                (None, true) => Ok(Caller::anonymous()),
                (header, _) => self.auth.authenticate(header, client).await,
            };
        };
        let view = self.view();
        let partner = match view.partners_for_certificate(cert).as_slice() {
            [one] => one.clone(),
            [] => return Err(AuthError::UnknownCertificate(cert.fingerprint.clone())),
            _ => return Err(AuthError::AmbiguousCertificate(cert.fingerprint.clone())),
        };
        if header.is_some() {
            let other = self.auth.authenticate(header, client).await?;
            if other.principal != partner {
                return Err(AuthError::ConflictingCredentials(cert.fingerprint.clone()));
            }
        }
        self.note_certificate(&partner, cert);
        Ok(Caller {
            principal: partner,
            credential: Credential { method: AuthMethod::Certificate, id: Some(cert.fingerprint.clone()) },
        })
    }

    /// Notes (at most hourly per node, off the request's path) that a client certificate
    /// authenticated a partner, with its subject and expiry: the console lists the ones that
    /// expire soon.
    fn note_certificate(&self, partner: &Principal, cert: &PeerCertificate) {
        if self.certificates_noted.contains_key(&cert.fingerprint) {
            return;
        }
        self.certificates_noted.insert(cert.fingerprint.clone(), ());
        let (storage, partner_id, cert) = (self.storage.clone(), partner.id(), cert.clone());
        let subject = cert.subject.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
        tokio::spawn(async move {
            let noted = storage
                .write(move |c| {
                    storage::credentials::note_certificate(
                        c,
                        &cert.fingerprint,
                        partner_id,
                        &subject,
                        cert.not_after,
                        now_micros(),
                    )
                })
                .await;
            if let Err(e) = noted {
                tracing::debug!(error = %e, "noting a client certificate failed");
            }
        });
    }

    /// A request's audit record, filled in with the caller and the request's identity.
    pub fn request_record(
        &self,
        caller: &Caller,
        meta: &RequestMeta,
        action: &str,
        api_root: Option<&str>,
        collection: Option<&str>,
        object: Option<&str>,
    ) -> AuditRecord {
        let (partner_id, partner) = match &caller.principal {
            Principal::Partner { id, name } => (Some(*id), Some(name.clone())),
            Principal::Anonymous => (None, None),
        };
        AuditRecord {
            at: now_micros(),
            kind: AuditKind::Request.as_str().into(),
            partner_id,
            partner,
            credential_method: Some(caller.credential.method.as_str().into()),
            credential_id: caller.credential.id.clone(),
            client: meta.client.map(|c| c.to_string()),
            action: action.into(),
            api_root: api_root.map(str::to_owned),
            collection_id: collection.map(str::to_owned),
            object_id: object.map(str::to_owned),
            request_id: Some(meta.request_id.clone()),
            ..AuditRecord::default()
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current access view.
    pub fn view(&self) -> Arc<AccessView> {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The keys that sign and verify `next` tokens.
    pub fn keys(&self) -> Arc<KeyRing> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the access view if the policy generation changed (or `force`). Cached logins of
    /// partners whose credentials changed (or who are gone) are dropped, and only those; limits
    /// follow the policy; keys kept in the database are reloaded. Returns whether it reloaded.
    pub async fn refresh(&self, force: bool) -> ServiceResult<bool> {
        let old = self.view();
        let gen = self.storage.read(storage::generation).await?;
        if gen == old.generation && !force {
            return Ok(false);
        }
        let mut view = self.storage.read(storage::access::load_view).await?;
        view.anonymous_read = self.settings.anonymous_read;
        let changed: Vec<i64> = old
            .login_state
            .iter()
            .filter(|(id, state)| view.login_state.get(id) != Some(state))
            .map(|(id, _)| *id)
            .collect();
        self.auth.forget(&changed);
        self.auth.set_verifications_per_failure(view.max_passwords);
        self.limits.update(&view);
        self.load_keys().await?;
        let view = Arc::new(view);
        match self.view.write() {
            Ok(mut v) => *v = view,
            Err(p) => *p.into_inner() = view,
        }
        Ok(true)
    }

    /// Reloads the keys kept in the database (no-op with configured keys).
    async fn load_keys(&self) -> ServiceResult<()> {
        if !self.settings.keys_in_database {
            return Ok(());
        }
        if let Some(keys) = self.storage.read(storage::load_keys).await? {
            let keys = Arc::new(keys);
            if *self.keys() != *keys {
                tracing::info!(key = keys.current_id(), previous = ?keys.previous(), "next-token keys reloaded");
            }
            match self.keys.write() {
                Ok(mut k) => *k = keys,
                Err(p) => *p.into_inner() = keys,
            }
        }
        Ok(())
    }

    /// Reloads the keys at once (a token names a key this node does not know), at most once a
    /// second, so that tokens with made-up key ids cannot hammer the database.
    pub(crate) async fn reload_keys(&self) -> ServiceResult<()> {
        use std::sync::atomic::Ordering;
        let now = now_micros();
        let last = self.keys_reloaded.load(Ordering::Relaxed);
        if now - last < 1_000_000
            || self.keys_reloaded.compare_exchange(last, now, Ordering::SeqCst, Ordering::Relaxed).is_err()
        {
            return Ok(());
        }
        self.load_keys().await
    }

    /// Whether the node should get traffic: not draining, and the database answers within
    /// `timeout`.
    ///
    /// # Errors
    /// Why not, for the `/readyz` body.
    pub async fn ready(&self, timeout: std::time::Duration) -> Result<(), &'static str> {
        if self.draining() {
            return Err("draining: the node is stopping");
        }
        self.database_ok(timeout).await
    }

    /// Whether the database answers within `timeout`.
    ///
    /// # Errors
    /// Why not.
    pub async fn database_ok(&self, timeout: std::time::Duration) -> Result<(), &'static str> {
        match tokio::time::timeout(timeout, self.storage.read(storage::generation)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the database does not answer"),
            Err(_) => Err("the database did not answer in time"),
        }
    }

    /// Updates the gauges read at scrape time: pool connections, the SQLite WAL, the audit
    /// queue, readiness.
    pub fn sample_gauges(&self) {
        let m = crate::metrics::get();
        let (open, idle) = self.storage.pool_state();
        m.pool_connections.with_label_values(&["idle"]).set(i64::from(idle));
        m.pool_connections.with_label_values(&["in_use"]).set(i64::from(open.saturating_sub(idle)));
        if let Some(wal) = self.storage.wal_bytes() {
            m.sqlite_wal_bytes.set(i64::try_from(wal).unwrap_or(i64::MAX));
        }
        m.audit_queue.set(i64::try_from(self.audit.queued()).unwrap_or(i64::MAX));
        m.ready.set(i64::from(!self.draining()));
    }

    /// Turns `/readyz` to 503 (SIGTERM): the load balancer stops sending, then the node drains.
    pub fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Removes audit records older than `days` (retention), leaving the anchor that lets the
    /// trail still verify; returns how many.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn purge_audit(&self, days: u64) -> ServiceResult<i64> {
        let span = i64::try_from(days.saturating_mul(86_400_000_000)).unwrap_or(i64::MAX);
        let before = now_micros().saturating_sub(span);
        let by = format!("retention ({days} days) on {}", audit::host_name());
        Ok(self.storage.write(move |c| audit::purge(c, before, &by)).await?)
    }

    /// The hourly work of feeds: the retention purge of every collection with
    /// `retention_days`, and the count of versions that expired in `valid_now` feeds since the
    /// last run (both exported as metrics). Failures are logged; the next run tries again.
    pub async fn housekeep_feeds(&self) {
        let storage = self.storage.clone();
        let by = Operator { id: format!("retention on {}", audit::host_name()), audit: self.settings.audit };
        let now = now_micros();
        let since = self.expiry_checked.swap(now, std::sync::atomic::Ordering::Relaxed);
        let view = self.view();
        let job = tokio::task::spawn_blocking(move || {
            let purged = feeds::purge_retention(&storage, &by, now);
            let expired = feeds::expired_between(&storage, &view, since, now);
            if let Err(e) = feeds::activate_feeds(&storage, &by, &view, now) {
                tracing::warn!(error = %e, "moving versions that became valid failed");
            }
            (purged, expired)
        })
        .await;
        let m = crate::metrics::get();
        match job {
            Ok((purged, expired)) => {
                match purged {
                    Ok(purged) => {
                        for p in purged.iter().filter(|p| p.versions > 0) {
                            m.objects_purged.with_label_values(&[p.collection.as_str()]).inc_by(p.versions);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "retention purge failed"),
                }
                match expired {
                    Ok(expired) => {
                        for (collection, n) in expired.into_iter().filter(|e| e.1 > 0) {
                            m.objects_expired.with_label_values(&[collection.as_str()]).inc_by(n.unsigned_abs());
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "expiry count failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "feed housekeeping stopped"),
        }
    }

    /// Deletes statuses past their retention period.
    pub async fn purge_statuses(&self) -> ServiceResult<usize> {
        let before = self.retention_start();
        Ok(self.storage.write(move |c| storage::statuses::purge(c, before)).await?)
    }

    fn retention_start(&self) -> Micros {
        let hours = i64::try_from(self.settings.status_retention_hours).unwrap_or(i64::MAX / 3_600_000_000);
        now_micros().saturating_sub(hours.saturating_mul(3_600_000_000))
    }

    /// Anonymous callers are told to authenticate instead of "not found"/"forbidden".
    fn deny(who: &Principal, e: ServiceError) -> ServiceError {
        match (who, &e) {
            (
                Principal::Anonymous,
                ServiceError::UnknownApiRoot | ServiceError::UnknownCollection | ServiceError::Forbidden(_),
            ) => ServiceError::Unauthenticated,
            _ => e,
        }
    }

    fn root<'a>(view: &'a AccessView, who: &Principal, name: &str) -> ServiceResult<&'a ApiRootInfo> {
        // An API root with no collection visible to the caller is hidden like an unknown one.
        let root = view.api_root(name).ok_or_else(|| Self::deny(who, ServiceError::UnknownApiRoot))?;
        if view.visible_collections(who, root).next().is_none() {
            return Err(Self::deny(who, ServiceError::UnknownApiRoot));
        }
        Ok(root)
    }

    /// The collection and the caller's rights on it; unknown and invisible answer the same.
    fn collection<'a>(
        view: &'a AccessView,
        who: &Principal,
        root: &str,
        id: &str,
    ) -> ServiceResult<(&'a ApiRootInfo, &'a CollectionInfo, Rights)> {
        let root = Self::root(view, who, root)?;
        let col = view
            .collection(id)
            .filter(|c| c.api_root_id == root.id)
            .ok_or_else(|| Self::deny(who, ServiceError::UnknownCollection))?;
        let rights = view.rights(who, col);
        if !rights.visible() {
            return Err(Self::deny(who, ServiceError::UnknownCollection));
        }
        Ok((root, col, rights))
    }

    /// Discovery resource: only API roots where the caller has a collection (T-084), as absolute
    /// URLs under `base` (the public URL partners use, without a trailing slash; §4.1).
    pub fn discovery(&self, who: &Principal, base: &str) -> Discovery {
        let view = self.view();
        let roots: Vec<&ApiRootInfo> = view.visible_roots(who).collect();
        let d = view.discovery.clone().unwrap_or_default();
        let title = if d.title.is_empty() { "Concordia TAXII 2.1 server".to_owned() } else { d.title };
        Discovery {
            title,
            description: d.description,
            contact: d.contact,
            default: d.default.filter(|def| roots.iter().any(|r| &r.name == def)).map(|n| format!("{base}/{n}/")),
            api_roots: roots.iter().map(|r| format!("{base}/{}/", r.name)).collect(),
        }
    }

    pub fn api_root(&self, who: &Principal, root: &str) -> ServiceResult<ApiRootResource> {
        let view = self.view();
        let r = Self::root(&view, who, root)?;
        Ok(ApiRootResource {
            title: r.title.clone(),
            description: r.description.clone(),
            versions: vec![crate::model::TAXII_CONTENT_TYPE.to_owned()],
            max_content_length: r.max_content_length,
        })
    }

    /// `max_content_length` of an API root the caller can see (for the body limit).
    pub fn max_content_length(&self, who: &Principal, root: &str, collection: &str) -> ServiceResult<i64> {
        let view = self.view();
        let (r, _, rights) = Self::collection(&view, who, root, collection)?;
        if !rights.write {
            return Err(Self::deny(
                who,
                ServiceError::Forbidden("this partner may not add objects to this collection"),
            ));
        }
        Ok(r.max_content_length)
    }

    fn collection_resource(col: &CollectionInfo, rights: Rights) -> CollectionResource {
        CollectionResource {
            id: col.id.clone(),
            title: col.title.clone(),
            description: col.description.clone(),
            alias: col.alias.clone(),
            can_read: rights.read,
            can_write: rights.write,
            // Every media type the collection can store (T-118): its accepted spec versions.
            media_types: {
                let mut v = col.sharing.spec_versions.clone();
                v.sort_by(|a, b| b.cmp(a));
                v.iter().map(|s| format!("application/stix+json;version={s}")).collect()
            },
        }
    }

    pub fn collections(&self, who: &Principal, root: &str) -> ServiceResult<CollectionsResource> {
        let view = self.view();
        let r = Self::root(&view, who, root)?;
        Ok(CollectionsResource {
            collections: view
                .visible_collections(who, r)
                .map(|(c, rights)| Self::collection_resource(c, rights))
                .collect(),
        })
    }

    pub fn get_collection(&self, who: &Principal, root: &str, id: &str) -> ServiceResult<CollectionResource> {
        let view = self.view();
        let (_, col, rights) = Self::collection(&view, who, root, id)?;
        Ok(Self::collection_resource(col, rights))
    }

    /// A status resource, visible only to the partner whose request created it (T-107).
    pub async fn get_status(&self, who: &Principal, root: &str, id: &str) -> ServiceResult<String> {
        let view = self.view();
        let r = Self::root(&view, who, root)?;
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ServiceError::UnknownStatus);
        }
        let (root_id, partner, id, since) = (r.id, who.id(), id.to_owned(), self.retention_start());
        self.storage
            .read(move |c| storage::statuses::find(c, &id, root_id, partner, since))
            .await?
            .ok_or(ServiceError::UnknownStatus)
    }
}
