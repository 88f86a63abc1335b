//! The operator console's questions and actions. It reads through the same storage functions and
//! access view as the TAXII operations, records every operator action in the audit trail (changes
//! in their own transactions, reads through the node's appender), and keeps its sessions in the
//! database so that any node behind a load balancer knows them. No actix, no SQL here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::audit::{self, record_operator, Delivery, ExportFilter, Exported, Operator};
use super::{Service, ServiceError, ServiceResult};
use crate::auth::operators::{OperatorAuth, OperatorLoginError};
use crate::auth::{new_api_key, LoginLimits};
use crate::model::access::Rights;
use crate::model::audit::{block_records, AuditKind, AuditRecord};
use crate::model::plan::{Plan, State};
use crate::model::policy::{Policy, Tlp};
use crate::model::time::{format_taxii, now_micros, Micros};
use crate::storage::credentials::{self, CredentialInfo, NewCredential, SeenCertificate};
use crate::storage::{self, operators, StorageError};

/// How long an overview (object counts, a day of the audit trail) is reused before it is
/// computed again.
const OVERVIEW_TTL: Duration = Duration::from_secs(30);
/// The most audit records one overview reads; past it, the activity is marked partial.
const ACTIVITY_SCAN_LIMIT: usize = 2_000_000;
/// The most records an audit search shows (the newest ones that match).
pub const SEARCH_LIMIT: usize = 200;
/// Objects listed on a collection's page.
pub const LATEST_LIMIT: i64 = 50;
/// Audit-trail scans (searches, exports, recipients, overviews) running at once.
const SCANS: usize = 2;
/// How long a scan waits for its turn before the console answers busy.
const SCAN_WAIT: Duration = Duration::from_secs(10);
/// How long the live traffic panel's records are reused (every open tab polls every 5 s).
const LIVE_TTL: Duration = Duration::from_secs(4);
/// How long an export waits for a slow client to take its next line before it gives up (and
/// gives its database connection back).
const EXPORT_STALL: Duration = Duration::from_secs(30);
/// Blocks read, and records shown, by the live traffic panel.
const LIVE_BLOCKS: usize = 50;
const LIVE_RECORDS: usize = 25;
/// How soon an expiry counts as soon.
const EXPIRING_WITHIN: Micros = 30 * 86_400 * 1_000_000;
const HOUR: Micros = 3_600 * 1_000_000;
/// The longest a session lasts, however busy: then the operator signs in again.
pub const SESSION_LIFETIME: Micros = 12 * HOUR;
/// A session's last use is written at most this often (µs).
const TOUCH_EVERY: Micros = 15 * 1_000_000;

/// Settings of the console.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// `scheme://host[:port]` of `public_url`: the console's origin behind a proxy that does not
    /// forward the host it was asked for.
    pub public_origin: Option<String>,
    pub idle_timeout: Duration,
    pub quiet_hours: u64,
    pub login_limits: LoginLimits,
}

/// A signed-in operator's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub operator_id: i64,
    pub name: String,
    /// The token every form and htmx request must carry.
    pub csrf: String,
}

impl Session {
    /// This operator, as the audit trail names console operators: `console:<name>`.
    pub fn operator(&self, audit: bool) -> Operator {
        Operator { id: format!("console:{}", self.name), audit }
    }
}

/// Objects per collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionRow {
    pub id: String,
    pub title: String,
    pub api_root: String,
    pub derived: bool,
    pub objects: i64,
}

/// One partner's traffic over the last hour and day, from the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    pub reads_hour: i64,
    pub reads_day: i64,
    pub served_hour: i64,
    pub served_day: i64,
    pub writes_hour: i64,
    pub writes_day: i64,
    pub stored_hour: i64,
    pub stored_day: i64,
    /// The last successful read of objects or a manifest.
    pub last_poll: Option<Micros>,
}

/// The console's front page.
#[derive(Debug, Clone)]
pub struct Overview {
    pub computed_at: Micros,
    pub collections: Vec<CollectionRow>,
    /// Every partner (by name), with its traffic.
    pub activity: BTreeMap<String, Activity>,
    /// The audit records read; `partial` when the scan stopped at its limit.
    pub records_scanned: usize,
    pub partial: bool,
    /// Partners that may read something but have not polled successfully within `quiet_hours`.
    pub quiet: Vec<(String, Option<Micros>)>,
    pub quiet_hours: u64,
    pub expiring_credentials: Vec<CredentialInfo>,
    pub expiring_certificates: Vec<SeenCertificate>,
    pub audit_enabled: bool,
}

/// The access matrix: partners × collections.
#[derive(Debug, Clone)]
pub struct Matrix {
    pub partners: Vec<String>,
    /// (id, title, api root, derived)
    pub collections: Vec<(String, String, String, bool)>,
    /// partner name -> collection id -> rights
    pub rights: HashMap<String, HashMap<String, Rights>>,
    /// (partner, derived collection) where the partner's read grant serves nothing: it may read
    /// none of the sources.
    pub sourceless: std::collections::HashSet<(String, String)>,
}

impl Matrix {
    /// The partner's rights on the collection as TAXII applies them (granted, and for a
    /// derived collection narrowed to the sources it may read).
    pub fn rights(&self, partner: &str, collection: &str) -> Rights {
        self.rights.get(partner).and_then(|m| m.get(collection)).copied().unwrap_or_default()
    }

    /// Whether the partner reads anything of the collection.
    pub fn reads(&self, partner: &str, collection: &str) -> bool {
        self.rights(partner, collection).read && !self.sourceless.contains(&(partner.to_owned(), collection.to_owned()))
    }
}

/// Why a partner has access to a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellDetail {
    pub partner: String,
    pub collection_id: String,
    pub collection_title: String,
    pub rights: Rights,
    /// (group, read, write) for each of the partner's groups with a grant on the collection.
    pub groups: Vec<(String, bool, bool)>,
    pub public_read: bool,
    /// For a derived collection, its sources' titles: a partner reads only what it may also
    /// read in one of them.
    pub sources: Vec<String>,
}

/// Credentials by partner.
#[derive(Debug, Clone)]
pub struct PartnerCredentials {
    pub partner: String,
    pub credentials: Vec<CredentialInfo>,
    /// Certificate identities from the policy: (kind, pattern).
    pub certificates: Vec<(String, String)>,
}

/// An audit search.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub partner: Option<String>,
    pub collection: Option<String>,
    pub action: Option<String>,
    pub since: Option<Micros>,
    pub until: Option<Micros>,
}

/// One object's latest version, as the collection page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub id: String,
    pub stix_type: String,
    pub modified: String,
    pub date_added: Micros,
    /// TLP names, and other marking definition ids.
    pub markings: Vec<String>,
}

fn unavailable(e: StorageError) -> ServiceError {
    if e.is_busy() {
        ServiceError::Unavailable(e)
    } else {
        ServiceError::Internal(e)
    }
}

/// The SHA-256 (hex) of a session token: what the database keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The console: operator logins and sessions, and the pages' data.
pub struct Console {
    pub svc: Arc<Service>,
    auth: OperatorAuth,
    settings: ConsoleSettings,
    overview: Mutex<Option<(Instant, Arc<Overview>)>>,
    live: Mutex<Option<(Instant, Arc<Vec<AuditRecord>>)>>,
    /// Bounds the scans of the audit trail running at once (searches, exports, recipients, the
    /// overview), so that operators cannot take the database's connections from partners.
    scans: Arc<tokio::sync::Semaphore>,
}

impl Console {
    pub fn new(svc: Arc<Service>, settings: ConsoleSettings) -> Console {
        Console {
            auth: OperatorAuth::new(svc.storage.clone(), settings.login_limits),
            svc,
            settings,
            overview: Mutex::new(None),
            live: Mutex::new(None),
            scans: Arc::new(tokio::sync::Semaphore::new(SCANS)),
        }
    }

    pub fn settings(&self) -> &ConsoleSettings {
        &self.settings
    }

    fn audit(&self) -> bool {
        self.svc.settings().audit
    }

    /// A turn to scan the audit trail that a blocking task can keep.
    async fn scans_owned(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.scans.clone().acquire_owned().await.ok()
    }

    /// A turn to scan the audit trail (see [`SCANS`]).
    async fn scan_turn(&self) -> ServiceResult<tokio::sync::SemaphorePermit<'_>> {
        match tokio::time::timeout(SCAN_WAIT, self.scans.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ServiceError::Unavailable(StorageError::Unavailable(
                "other console scans of the audit trail are running".into(),
            ))),
        }
    }

    /// Records a POST the console refused (no or a wrong CSRF token, another origin): someone
    /// tried to act with this session's cookie.
    pub async fn record_refused(&self, session: &Session, path: &str, origin: Option<&str>) {
        if self.svc.audit.enabled() {
            let mut r = session.operator(true).record(
                "console_refused_post",
                serde_json::json!({ "path": path, "origin": origin.map(crate::model::stix::shown) }),
            );
            r.kind = AuditKind::AuthFailure.as_str().into();
            self.svc.audit.record(r).await;
        }
    }

    /// Records an operator's read (a search, an export, an object viewed) through the node's
    /// appender.
    pub async fn record_read(&self, session: &Session, action: &str, detail: serde_json::Value) {
        if self.svc.audit.enabled() {
            self.svc.audit.record(session.operator(true).record(action, detail)).await;
        }
    }

    /// Signs an operator in with a name and password; returns the session and its cookie token.
    ///
    /// # Errors
    /// Why not; every failure is recorded in the audit trail.
    pub async fn login_password(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(String, Session), OperatorLoginError> {
        match self.auth.password(name, password, client).await {
            Ok((id, name)) => self.open_session(id, name, "password", client).await,
            Err(e) => {
                self.record_failure(name, "password", client, &e).await;
                Err(e)
            }
        }
    }

    /// Signs an operator in with the client certificate of the connection.
    ///
    /// # Errors
    /// No operator holds the certificate (recorded), or the database is unavailable.
    pub async fn login_certificate(
        &self,
        fingerprint: &str,
        client: Option<IpAddr>,
    ) -> Result<(String, Session), OperatorLoginError> {
        match self.auth.certificate(fingerprint).await {
            Ok((id, name)) => self.open_session(id, name, "certificate", client).await,
            Err(e) => {
                self.record_failure(fingerprint, "certificate", client, &e).await;
                Err(e)
            }
        }
    }

    async fn record_failure(&self, who: &str, method: &str, client: Option<IpAddr>, e: &OperatorLoginError) {
        crate::metrics::get().auth_failures.with_label_values(&["console"]).inc();
        if !self.svc.audit.enabled() {
            return;
        }
        let reason = match e {
            OperatorLoginError::Invalid => "invalid",
            OperatorLoginError::Limited => "limited",
            OperatorLoginError::Busy => "busy",
            OperatorLoginError::Unavailable(_) => "unavailable",
        };
        self.svc
            .audit
            .record(AuditRecord {
                at: now_micros(),
                kind: AuditKind::AuthFailure.as_str().into(),
                credential_method: Some(format!("console_{method}")),
                credential_id: Some(crate::model::stix::shown(who)),
                client: client.map(|c| c.to_string()),
                action: "console_login".into(),
                detail: Some(serde_json::json!({ "reason": reason }).to_string()),
                ..AuditRecord::default()
            })
            .await;
    }

    async fn open_session(
        &self,
        operator_id: i64,
        name: String,
        method: &'static str,
        client: Option<IpAddr>,
    ) -> Result<(String, Session), OperatorLoginError> {
        let token = hex::encode(crate::auth::random_bytes::<32>());
        let session = Session {
            token_hash: token_hash(&token),
            operator_id,
            name,
            csrf: hex::encode(crate::auth::random_bytes::<32>()),
        };
        let (s, audit, idle) = (session.clone(), self.audit(), self.idle_micros());
        self.svc
            .storage
            .write(move |c| {
                let now = now_micros();
                operators::purge_sessions(c, now - idle, now - SESSION_LIFETIME)?;
                operators::create_session(c, &s.token_hash, s.operator_id, &s.csrf, now)?;
                let detail = serde_json::json!({ "method": method, "client": client.map(|c| c.to_string()) });
                record_operator(c, &s.operator(audit), "console_login", detail)
            })
            .await?;
        Ok((token, session))
    }

    fn idle_micros(&self) -> Micros {
        i64::try_from(self.settings.idle_timeout.as_micros()).unwrap_or(i64::MAX)
    }

    /// The live session a cookie token names, marked as used now; `None` when there is none or
    /// it has been idle longer than the timeout (it is then ended).
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn session(&self, token: &str) -> ServiceResult<Option<Session>> {
        self.lookup(token, true).await
    }

    /// Like [`Console::session`], for a background poll (the live traffic panel): it does not
    /// count as use, so a page left open still times out.
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn peek_session(&self, token: &str) -> ServiceResult<Option<Session>> {
        self.lookup(token, false).await
    }

    async fn lookup(&self, token: &str, used: bool) -> ServiceResult<Option<Session>> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let idle = self.idle_micros();
        let found = {
            let hash = hash.clone();
            self.svc.storage.read(move |c| operators::session(c, &hash)).await.map_err(unavailable)?
        };
        let Some(row) = found else { return Ok(None) };
        let now = now_micros();
        if now.saturating_sub(row.last_seen) > idle || now.saturating_sub(row.created_at) > SESSION_LIFETIME {
            let h = hash.clone();
            self.svc.storage.write(move |c| operators::end_session(c, &h)).await.map_err(unavailable)?;
            return Ok(None);
        }
        if used && now.saturating_sub(row.last_seen) > TOUCH_EVERY.min(idle / 4) {
            let h = hash.clone();
            self.svc.storage.write(move |c| operators::touch_session(c, &h, now)).await.map_err(unavailable)?;
        }
        Ok(Some(Session { token_hash: hash, operator_id: row.operator_id, name: row.operator, csrf: row.csrf }))
    }

    /// Ends a session (sign out), recorded.
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn logout(&self, session: &Session) -> ServiceResult<()> {
        let (s, audit) = (session.clone(), self.audit());
        self.svc
            .storage
            .write(move |c| {
                if operators::end_session(c, &s.token_hash)? {
                    record_operator(c, &s.operator(audit), "console_logout", serde_json::json!({}))?;
                }
                Ok(())
            })
            .await
            .map_err(unavailable)
    }

    /// The front page: objects per collection, each partner's traffic, quiet partners, and
    /// credentials and certificates that expire within 30 days. Reused for 30 s.
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn overview(&self) -> ServiceResult<Arc<Overview>> {
        if let Ok(cached) = self.overview.lock() {
            if let Some((at, o)) = cached.as_ref().filter(|(at, _)| at.elapsed() < OVERVIEW_TTL) {
                let _ = at;
                return Ok(o.clone());
            }
        }
        let _turn = self.scan_turn().await?;
        let view = self.svc.view();
        let quiet_hours = self.settings.quiet_hours;
        let audit_enabled = self.audit();
        let overview = self
            .svc
            .storage
            .read(move |c| {
                let now = now_micros();
                let roots: HashMap<i64, String> = view.api_roots.iter().map(|r| (r.id, r.name.clone())).collect();
                let mut collections = Vec::new();
                for col in &view.collections {
                    collections.push(CollectionRow {
                        id: col.id.clone(),
                        title: col.title.clone(),
                        api_root: roots.get(&col.api_root_id).cloned().unwrap_or_default(),
                        derived: col.feed.is_derived(),
                        objects: storage::objects::count_latest(c, col.key)?,
                    });
                }
                let names = storage::access::partner_names(c)?;
                let mut activity: BTreeMap<String, Activity> =
                    names.values().map(|n| (n.clone(), Activity::default())).collect();
                let window = HOUR * i64::try_from(quiet_hours.max(24)).unwrap_or(24);
                let since = now - window;
                let (mut scanned, mut partial) = (0usize, false);
                // Newest first: if the scan stops at its limit, what it leaves out is the oldest.
                storage::audit::for_each_block_newest(c, since, |b| {
                    for r in block_records(&b.block.text).unwrap_or_default() {
                        scanned += 1;
                        if r.at < since || r.kind != AuditKind::Request.as_str() {
                            continue;
                        }
                        let Some(a) = r.partner.as_ref().and_then(|p| activity.get_mut(p)) else { continue };
                        let ok = r.status.is_some_and(|s| (200..300).contains(&s));
                        let (hour, day) = (r.at >= now - HOUR, r.at >= now - 24 * HOUR);
                        let n = r.object_count.unwrap_or(0);
                        // TAXII 2.0 requests are recorded as `<action>_taxii20`.
                        let action = r.action.strip_suffix("_taxii20").unwrap_or(&r.action);
                        if action == "add_objects" {
                            a.writes_hour += i64::from(hour);
                            a.writes_day += i64::from(day);
                            if ok {
                                a.stored_hour += if hour { n } else { 0 };
                                a.stored_day += if day { n } else { 0 };
                            }
                        } else if action.starts_with("get_") {
                            a.reads_hour += i64::from(hour);
                            a.reads_day += i64::from(day);
                            if ok {
                                a.served_hour += if hour { n } else { 0 };
                                a.served_day += if day { n } else { 0 };
                            }
                            let poll = matches!(action, "get_objects" | "get_manifest" | "get_object");
                            if ok && poll && a.last_poll.is_none_or(|t| r.at > t) {
                                a.last_poll = Some(r.at);
                            }
                        }
                    }
                    if scanned >= ACTIVITY_SCAN_LIMIT {
                        partial = true;
                    }
                    Ok(!partial)
                })?;
                let quiet_since = now - HOUR * i64::try_from(quiet_hours).unwrap_or(24);
                let quiet = names
                    .iter()
                    .filter(|(id, _)| view.rights.get(id).is_some_and(|m| m.values().any(|r| r.read)))
                    .filter_map(|(_, name)| {
                        let last = activity.get(name).and_then(|a| a.last_poll);
                        last.is_none_or(|t| t < quiet_since).then(|| (name.clone(), last))
                    })
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect();
                let expiring_credentials = credentials::list_all(c)?
                    .into_iter()
                    .filter(|k| k.revoked_at.is_none())
                    .filter(|k| k.expires_at.is_some_and(|e| e > now && e <= now + EXPIRING_WITHIN))
                    .collect();
                let expiring_certificates = credentials::certificates_expiring(c, now, now + EXPIRING_WITHIN)?;
                Ok(Overview {
                    computed_at: now,
                    collections,
                    activity,
                    records_scanned: scanned,
                    partial,
                    quiet,
                    quiet_hours,
                    expiring_credentials,
                    expiring_certificates,
                    audit_enabled,
                })
            })
            .await
            .map_err(unavailable)?;
        let overview = Arc::new(overview);
        if let Ok(mut cached) = self.overview.lock() {
            *cached = Some((Instant::now(), overview.clone()));
        }
        Ok(overview)
    }

    /// The newest partner requests and failed logins in the audit trail (every node's), newest
    /// first: the overview's live traffic.
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn live(&self) -> ServiceResult<Arc<Vec<AuditRecord>>> {
        if let Ok(cached) = self.live.lock() {
            if let Some((_, records)) = cached.as_ref().filter(|(at, _)| at.elapsed() < LIVE_TTL) {
                return Ok(records.clone());
            }
        }
        let records = self
            .svc
            .storage
            .read(|c| {
                let mut out: Vec<AuditRecord> = Vec::new();
                let mut blocks = 0;
                // Newest blocks until enough records are found (a block holds up to 10,000).
                storage::audit::for_each_block_newest(c, now_micros() - 24 * HOUR, |b| {
                    blocks += 1;
                    out.extend(block_records(&b.block.text).unwrap_or_default().into_iter().filter(|r| {
                        r.kind == AuditKind::Request.as_str() || r.kind == AuditKind::AuthFailure.as_str()
                    }));
                    Ok(out.len() < LIVE_RECORDS && blocks < LIVE_BLOCKS)
                })?;
                out.sort_by_key(|r| std::cmp::Reverse(r.at));
                out.truncate(LIVE_RECORDS);
                Ok(out)
            })
            .await
            .map_err(unavailable)?;
        let records = Arc::new(records);
        if let Ok(mut cached) = self.live.lock() {
            *cached = Some((Instant::now(), records.clone()));
        }
        Ok(records)
    }

    /// Partners × collections with their rights, from the access view every TAXII request uses.
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn matrix(&self) -> ServiceResult<Matrix> {
        let view = self.svc.view();
        let names = self.svc.storage.read(storage::access::partner_names).await.map_err(unavailable)?;
        let roots: HashMap<i64, String> = view.api_roots.iter().map(|r| (r.id, r.name.clone())).collect();
        let mut partners: Vec<String> = names.values().cloned().collect();
        partners.sort();
        let collections = view
            .collections
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    c.title.clone(),
                    roots.get(&c.api_root_id).cloned().unwrap_or_default(),
                    c.feed.is_derived(),
                )
            })
            .collect();
        let mut rights: HashMap<String, HashMap<String, Rights>> = HashMap::new();
        let mut sourceless = std::collections::HashSet::new();
        for (id, name) in &names {
            let who = crate::model::access::Principal::Partner { id: *id, name: name.clone() };
            let mut row = HashMap::new();
            for c in &view.collections {
                let r = view.rights(&who, c);
                // A derived collection narrows to the sources the partner may read: with none,
                // its grant serves nothing.
                if r.read && view.readable_sources(&who, c) == Some(0) {
                    sourceless.insert((name.clone(), c.id.clone()));
                }
                row.insert(c.id.clone(), r);
            }
            rights.insert(name.clone(), row);
        }
        Ok(Matrix { partners, collections, rights, sourceless })
    }

    /// Which of a partner's groups grant it access to a collection.
    ///
    /// # Errors
    /// `UnknownCollection` / `UnknownObject` (for an unknown partner); unavailable.
    pub async fn cell(&self, partner: &str, collection: &str) -> ServiceResult<CellDetail> {
        let matrix = self.matrix().await?;
        if !matrix.partners.iter().any(|p| p == partner) {
            return Err(ServiceError::UnknownObject(format!("no partner named '{partner}'")));
        }
        let view = self.svc.view();
        let col = view.collection(collection).ok_or(ServiceError::UnknownCollection)?;
        let (p, cid) = (partner.to_owned(), col.id.clone());
        let groups =
            self.svc.storage.read(move |c| storage::access::granting_groups(c, &p, &cid)).await.map_err(unavailable)?;
        let sources = col
            .feed
            .derived_from
            .iter()
            .map(|s| view.collection(s).map_or_else(|| s.clone(), |c| c.title.clone()))
            .collect();
        Ok(CellDetail {
            partner: partner.to_owned(),
            collection_id: col.id.clone(),
            collection_title: col.title.clone(),
            rights: matrix.rights(partner, collection),
            groups,
            public_read: col.public_read,
            sources,
        })
    }

    /// The policy as the database holds it.
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn policy_state(&self) -> ServiceResult<State> {
        self.svc.storage.read(storage::access::load_state).await.map_err(unavailable)
    }

    /// The plan `apply --dry-run` would show for a policy file (nothing is changed), recorded.
    ///
    /// # Errors
    /// `Unprocessable` with every problem of the file; unavailable.
    pub async fn preview(&self, session: &Session, text: &str, prune: bool) -> ServiceResult<Plan> {
        let policy = Policy::from_toml(text).map_err(|problems| ServiceError::Unprocessable(problems.join("\n")))?;
        let storage = self.svc.storage.clone();
        let operator = session.operator(self.audit());
        let plan = tokio::task::spawn_blocking(move || {
            super::operator::apply_policy(&storage, &operator, &policy, prune, true)
        })
        .await
        .map_err(|e| ServiceError::Internal(StorageError::Unavailable(Box::new(e))))?
        .map_err(unavailable)?;
        let changes: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
        self.record_read(session, "console_policy_preview", serde_json::json!({ "changes": changes, "prune": prune }))
            .await;
        Ok(plan)
    }

    /// Every partner's credentials and certificate identities.
    ///
    /// # Errors
    /// The database is unavailable.
    pub async fn credentials(&self) -> ServiceResult<Vec<PartnerCredentials>> {
        self.svc
            .storage
            .read(|c| {
                let mut names: Vec<String> = storage::access::partner_names(c)?.into_values().collect();
                names.sort();
                let all = credentials::list_all(c)?;
                let mut out = Vec::new();
                for partner in names {
                    let credentials = all.iter().filter(|k| k.partner == partner).cloned().collect();
                    let certificates = storage::access::partner_certificates(c, &partner)?;
                    out.push(PartnerCredentials { partner, credentials, certificates });
                }
                Ok(out)
            })
            .await
            .map_err(unavailable)
    }

    /// One credential (never its secret).
    ///
    /// # Errors
    /// `UnknownObject` for an unknown id; unavailable.
    pub async fn credential(&self, id: &str) -> ServiceResult<CredentialInfo> {
        let all = self.svc.storage.read(credentials::list_all).await.map_err(unavailable)?;
        all.into_iter().find(|k| k.id == id).ok_or_else(|| ServiceError::UnknownObject(format!("no credential {id}")))
    }

    /// After a credential change: this node drops the partner's cached logins at once (the
    /// others within `policy_refresh_ms`).
    async fn credentials_changed(&self) {
        if let Err(e) = self.svc.refresh(false).await {
            tracing::warn!(error = %e, "policy refresh after a console change failed");
        }
        if let Ok(mut cached) = self.overview.lock() {
            *cached = None;
        }
    }

    /// Revokes a credential now, recorded.
    ///
    /// # Errors
    /// `UnknownObject` for an unknown or already revoked credential; unavailable.
    pub async fn revoke(&self, session: &Session, id: &str) -> ServiceResult<()> {
        let (storage, operator, id2) = (self.svc.storage.clone(), session.operator(self.audit()), id.to_owned());
        tokio::task::spawn_blocking(move || {
            super::operator::revoke_credential(&storage, &operator, &id2, now_micros())
        })
        .await
        .map_err(|e| ServiceError::Internal(StorageError::Unavailable(Box::new(e))))?
        .map_err(|e| match e {
            StorageError::NotFound => ServiceError::UnknownObject(format!("no active credential {id}")),
            e => unavailable(e),
        })?;
        self.credentials_changed().await;
        Ok(())
    }

    /// Makes a credential expire at `at`, recorded.
    ///
    /// # Errors
    /// `UnknownObject` for an unknown credential; unavailable.
    pub async fn expire(&self, session: &Session, id: &str, at: Micros) -> ServiceResult<()> {
        let current = self.credential(id).await?;
        if current.revoked_at.is_some() {
            return Err(ServiceError::Unprocessable(format!("credential {id} is revoked; it cannot be used again")));
        }
        if let Some(e) = current.expires_at.filter(|e| *e <= now_micros() && at > *e) {
            return Err(ServiceError::Unprocessable(format!(
                "credential {id} expired at {}; a later expiry would make it usable again: create a new credential",
                format_taxii(e)
            )));
        }
        let (storage, operator, id2) = (self.svc.storage.clone(), session.operator(self.audit()), id.to_owned());
        tokio::task::spawn_blocking(move || super::operator::expire_credential(&storage, &operator, &id2, at))
            .await
            .map_err(|e| ServiceError::Internal(StorageError::Unavailable(Box::new(e))))?
            .map_err(|e| match e {
                StorageError::NotFound => ServiceError::UnknownObject(format!("no credential {id}")),
                e => unavailable(e),
            })?;
        self.credentials_changed().await;
        Ok(())
    }

    /// Creates an API key for a partner, recorded; returns (credential id, the key, shown once).
    ///
    /// # Errors
    /// `UnknownObject` for an unknown partner; unavailable.
    pub async fn create_api_key(
        &self,
        session: &Session,
        partner: &str,
        label: Option<&str>,
        expires_at: Option<Micros>,
    ) -> ServiceResult<(String, String)> {
        let (key, lookup, digest) = new_api_key();
        let (storage, operator) = (self.svc.storage.clone(), session.operator(self.audit()));
        let (p, l) = (partner.to_owned(), label.map(str::to_owned));
        let id = tokio::task::spawn_blocking(move || {
            let new = NewCredential {
                partner: &p,
                kind: "api_key",
                lookup: Some(&lookup),
                secret_hash: &digest,
                label: l.as_deref(),
                now: now_micros(),
                expires_at,
            };
            super::operator::add_credential(&storage, &operator, &new)
        })
        .await
        .map_err(|e| ServiceError::Internal(StorageError::Unavailable(Box::new(e))))?
        .map_err(|e| match e {
            StorageError::NotFound => ServiceError::UnknownObject(format!("no partner named '{partner}'")),
            e => unavailable(e),
        })?;
        self.credentials_changed().await;
        Ok((id, key))
    }

    fn export_filter(&self, names: &HashMap<i64, String>, q: &AuditQuery) -> Option<ExportFilter> {
        let partner_id = match &q.partner {
            Some(p) => Some(*names.iter().find(|(_, n)| *n == p)?.0),
            None => None,
        };
        Some(ExportFilter { since: q.since, until: q.until, partner_id, collection_id: q.collection.clone() })
    }

    /// The newest records (at most [`SEARCH_LIMIT`]) that match, newest first, and how many
    /// matched in all. Recorded.
    ///
    /// # Errors
    /// Unavailable.
    pub async fn search(&self, session: &Session, q: &AuditQuery) -> ServiceResult<(Vec<Exported>, usize)> {
        let names = self.svc.storage.read(storage::access::partner_names).await.map_err(unavailable)?;
        let Some(filter) = self.export_filter(&names, q) else { return Ok((Vec::new(), 0)) };
        let _turn = self.scan_turn().await?;
        let storage = self.svc.storage.clone();
        let action = q.action.clone().filter(|a| !a.is_empty());
        let found = tokio::task::spawn_blocking(move || {
            let mut newest: VecDeque<Exported> = VecDeque::new();
            let mut total = 0usize;
            audit::export(&storage, &filter, |e| {
                if action.as_ref().is_none_or(|a| e.record.action == *a) {
                    total += 1;
                    if newest.len() == SEARCH_LIMIT {
                        newest.pop_front();
                    }
                    newest.push_back(e);
                }
                Ok(())
            })
            .map(|()| (newest.into_iter().rev().collect::<Vec<_>>(), total))
        })
        .await
        .map_err(|e| ServiceError::Internal(StorageError::Unavailable(Box::new(e))))?
        .map_err(unavailable)?;
        self.record_read(session, "console_audit_search", query_detail(q)).await;
        Ok(found)
    }

    /// Streams the records that match as JSONL or CSV lines (a header line first for CSV), in
    /// stored order, through a bounded channel; recorded.
    ///
    /// # Errors
    /// Unavailable.
    pub async fn export(
        &self,
        session: &Session,
        q: &AuditQuery,
        csv: bool,
    ) -> ServiceResult<tokio::sync::mpsc::Receiver<String>> {
        let names = self.svc.storage.read(storage::access::partner_names).await.map_err(unavailable)?;
        let filter = self.export_filter(&names, q);
        let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
        let storage = self.svc.storage.clone();
        let action = q.action.clone().filter(|a| !a.is_empty());
        let mut detail = query_detail(q);
        if let Some(d) = detail.as_object_mut() {
            d.insert("format".into(), serde_json::json!(if csv { "csv" } else { "jsonl" }));
        }
        let permit = match tokio::time::timeout(SCAN_WAIT, self.scans_owned()).await {
            Ok(Some(p)) => p,
            _ => {
                return Err(ServiceError::Unavailable(StorageError::Unavailable(
                    "other console scans of the audit trail are running".into(),
                )))
            }
        };
        self.record_read(session, "console_audit_export", detail).await;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A client that stops reading must not hold a database connection for ever.
            let send = |line: String| -> bool {
                let deadline = Instant::now() + EXPORT_STALL;
                let mut line = line;
                loop {
                    match tx.try_send(line) {
                        Ok(()) => return true,
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                            if Instant::now() > deadline {
                                return false;
                            }
                            line = back;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            };
            if csv && !send(format!("{}\n", audit::CSV_COLUMNS.join(","))) {
                return;
            }
            let Some(filter) = filter else { return };
            let result = audit::export(&storage, &filter, |e| {
                if action.as_ref().is_some_and(|a| e.record.action != *a) {
                    return Ok(());
                }
                let line = if csv { audit::csv_line(&e) } else { serde_json::to_string(&e).unwrap_or_default() };
                // The client went away, or stopped reading: stop.
                if send(format!("{line}\n")) {
                    Ok(())
                } else {
                    Err(StorageError::Conflict("export cancelled: the client went away or stopped reading".into()))
                }
            });
            if let Err(e) = result {
                tracing::info!(error = %e, "console export ended early");
            }
        });
        Ok(rx)
    }

    /// Every delivery of an object to a partner (see [`audit::recipients`]), recorded.
    ///
    /// # Errors
    /// `BadRequest`-like `Unprocessable` for a malformed id; unavailable.
    pub async fn recipients(&self, session: &Session, object_id: &str) -> ServiceResult<Vec<Delivery>> {
        if crate::model::stix::valid_identifier(object_id).is_none() {
            return Err(ServiceError::Unprocessable(format!(
                "'{}' is not a STIX identifier such as indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                crate::model::stix::shown(object_id)
            )));
        }
        let _turn = self.scan_turn().await?;
        let (storage, id) = (self.svc.storage.clone(), object_id.to_owned());
        let found = tokio::task::spawn_blocking(move || audit::recipients(&storage, &id, None))
            .await
            .map_err(|e| ServiceError::Internal(StorageError::Unavailable(Box::new(e))))?
            .map_err(|e| match e {
                StorageError::Conflict(m) => ServiceError::Unprocessable(m),
                e => unavailable(e),
            })?;
        self.record_read(session, "console_recipients", serde_json::json!({ "object_id": object_id })).await;
        Ok(found)
    }

    /// The latest objects most recently added to a collection (an operator sees all of them).
    ///
    /// # Errors
    /// `UnknownCollection`; unavailable.
    pub async fn latest_objects(&self, session: &Session, collection: &str) -> ServiceResult<Vec<ObjectRow>> {
        let col = self.svc.view().collection(collection).cloned().ok_or(ServiceError::UnknownCollection)?;
        let rows = self
            .svc
            .storage
            .read(move |c| storage::objects::latest_added(c, col.key, LATEST_LIMIT))
            .await
            .map_err(unavailable)?;
        self.record_read(session, "console_collection_view", serde_json::json!({ "collection_id": collection })).await;
        Ok(rows
            .into_iter()
            .map(|v| ObjectRow {
                markings: markings_of(&v.body),
                id: v.stix_id,
                stix_type: v.stix_type,
                modified: v.version,
                date_added: v.date_added,
            })
            .collect())
    }

    /// Every stored version of one object in a collection, as stored (bytes in = bytes out),
    /// oldest first: (version, date added, JSON).
    ///
    /// # Errors
    /// `UnknownCollection`, `UnknownObject`; unavailable.
    pub async fn object(
        &self,
        session: &Session,
        collection: &str,
        object_id: &str,
    ) -> ServiceResult<Vec<(String, Micros, String)>> {
        let col = self.svc.view().collection(collection).cloned().ok_or(ServiceError::UnknownCollection)?;
        let id = object_id.to_ascii_lowercase();
        let rows =
            self.svc.storage.read(move |c| storage::objects::bodies_of(c, col.key, &id)).await.map_err(unavailable)?;
        if rows.is_empty() {
            return Err(ServiceError::UnknownObject(crate::model::stix::shown(object_id)));
        }
        self.record_read(
            session,
            "console_object_view",
            serde_json::json!({ "collection_id": collection, "object_id": object_id }),
        )
        .await;
        Ok(rows.into_iter().map(|v| (v.version, v.date_added, v.body)).collect())
    }
}

fn query_detail(q: &AuditQuery) -> serde_json::Value {
    serde_json::json!({
        "partner": q.partner, "collection_id": q.collection, "action": q.action,
        "since": q.since.map(format_taxii), "until": q.until.map(format_taxii),
    })
}

/// An object's markings: TLP levels by name, other marking definitions by id.
fn markings_of(body: &str) -> Vec<String> {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Tlp::levels_of(&object).into_iter().map(|t| t.name().to_owned()).collect();
    if let Some(refs) = object.get("object_marking_refs").and_then(serde_json::Value::as_array) {
        for r in refs.iter().filter_map(serde_json::Value::as_str) {
            if Tlp::of_marking(r).is_none() {
                out.push(r.to_owned());
            }
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markings_name_tlp_levels_and_keep_other_definitions() {
        let body = r#"{"type":"indicator","object_marking_refs":["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da","marking-definition--11111111-1111-4111-8111-111111111111"]}"#;
        assert_eq!(
            markings_of(body),
            vec!["TLP:GREEN".to_owned(), "marking-definition--11111111-1111-4111-8111-111111111111".to_owned()]
        );
        assert!(markings_of("not json").is_empty());
    }

    #[test]
    fn session_tokens_are_stored_hashed() {
        let t = "ab".repeat(32);
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(token_hash(&t), t);
    }
}
