//! The TAXII 2.1 wire layer: every route in one place, content negotiation, error resources.
//! Paths work with and without the trailing slash, without redirects (T-060).

pub mod client;
pub mod coding;
pub mod console;
pub mod error;
pub mod media;
pub mod taxii20;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;
use tracing::Instrument as _;

use self::error::HttpError;
use crate::auth::AuthError;
use crate::model::access::{Caller, PeerCertificate, Principal};
use crate::model::audit::{AuditKind, AuditRecord};
use crate::model::filter::{parse_query, Endpoint};
use crate::model::time::{format_taxii, now_micros};
use crate::model::TAXII_CONTENT_TYPE;
use crate::service::audit::RequestMeta;
use crate::service::{Page, Service};

type Svc = web::Data<Arc<Service>>;
type HttpResult = Result<HttpResponse, HttpError>;

/// What the wire layer needs from the configuration.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Proxies whose forwarding headers and request ids are believed.
    pub proxies: client::TrustedProxies,
    /// Bearer token `/metrics` requires, if any.
    pub metrics_token: Option<String>,
    /// Longest pause while a request body arrives (the whole body: 30 times this).
    pub body_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            proxies: client::TrustedProxies::default(),
            metrics_token: None,
            body_timeout: Duration::from_secs(10),
        }
    }
}

type Settings = web::Data<HttpSettings>;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// How much of an oversized body is read and discarded before answering 413, so that clients
/// still sending get the answer instead of a reset connection.
const DRAIN_LIMIT: i64 = 64 * 1024 * 1024;

fn both(path: &str) -> [String; 2] {
    [path.to_owned(), path.trim_end_matches('/').to_owned()]
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Before the TAXII 2.1 routes, whose `/{root}/` would take `/taxii20/`.
    taxii20::configure(cfg);
    let not_allowed = |allow: &'static str| {
        web::to(move || async move { Err::<HttpResponse, _>(HttpError::MethodNotAllowed(allow)) })
    };
    cfg.service(web::resource(both("/healthz/")).route(web::get().to(health)).default_service(not_allowed("GET")))
        .service(web::resource(both("/livez/")).route(web::get().to(livez)).default_service(not_allowed("GET")))
        .service(web::resource(both("/readyz/")).route(web::get().to(readyz)).default_service(not_allowed("GET")))
        .service(web::resource("/metrics").route(web::get().to(metrics)).default_service(not_allowed("GET")))
        .service(web::resource(both("/taxii2/")).route(web::get().to(discovery)).default_service(not_allowed("GET")))
        .service(web::resource(both("/{root}/")).route(web::get().to(api_root)).default_service(not_allowed("GET")))
        .service(
            web::resource(both("/{root}/status/{status}/"))
                .route(web::get().to(status))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both("/{root}/collections/"))
                .route(web::get().to(collections))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both("/{root}/collections/{collection}/"))
                .route(web::get().to(collection))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both("/{root}/collections/{collection}/manifest/"))
                .route(web::get().to(manifest))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource(both("/{root}/collections/{collection}/objects/"))
                .route(web::get().to(get_objects))
                .route(web::post().to(add_objects))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource(both("/{root}/collections/{collection}/objects/{object}/"))
                .route(web::get().to(get_object))
                .route(web::delete().to(delete_object))
                .default_service(not_allowed("GET, DELETE")),
        )
        .service(
            web::resource(both("/{root}/collections/{collection}/objects/{object}/versions/"))
                .route(web::get().to(versions))
                .default_service(not_allowed("GET")),
        );
}

/// The answer for URLs no route matches.
pub async fn no_route() -> HttpResult {
    Err(HttpError::NoRoute)
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn seg<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.match_info().get(name).unwrap_or_default()
}

/// What the audit trail needs to know of a request, gathered while it is answered; the
/// [`audit_layer`] turns it into the request's record once the status is known.
#[derive(Debug, Default)]
struct AuditNote {
    action: &'static str,
    caller: Option<Caller>,
    /// A refused login: (credential method, what was presented, why, and what the
    /// Authorization header presented beside a certificate).
    failure: Option<(&'static str, String, String, Option<String>)>,
    api_root: Option<String>,
    collection: Option<String>,
    object: Option<String>,
    filters: Option<String>,
    page: Option<Page>,
    /// Why an authenticated request was refused before it was served (allow-list, limits).
    refused: Option<String>,
    /// A write recorded itself inside its transaction.
    recorded: bool,
}

fn note(req: &HttpRequest, f: impl FnOnce(&mut AuditNote)) {
    let mut ext = req.extensions_mut();
    match ext.get_mut::<AuditNote>() {
        Some(n) => f(n),
        None => {
            let mut n = AuditNote::default();
            f(&mut n);
            ext.insert(n);
        }
    }
}

/// A path segment as the audit trail keeps it: as given when it is a name or id the server
/// could hold, else escaped (a NUL or a control character never reaches the database).
fn audit_segment(value: &str, valid: bool) -> String {
    if valid {
        value.to_owned()
    } else {
        crate::model::stix::shown(value)
    }
}

/// Starts a request's audit note: the operation and the API root, collection and object named.
fn begin(req: &HttpRequest, action: &'static str) {
    let root = req.match_info().get("root").map(|r| audit_segment(r, crate::model::policy::valid_name(r)));
    let collection = req.match_info().get("collection").map(|c| audit_segment(c, uuid::Uuid::parse_str(c).is_ok()));
    let object = req.match_info().get("object").map(|o| {
        let lower = o.to_ascii_lowercase();
        let valid = crate::model::stix::valid_identifier(&lower).is_some();
        audit_segment(if valid { &lower } else { o }, valid)
    });
    let span = tracing::Span::current();
    if let Some(c) = &collection {
        span.record("collection", c.as_str());
    }
    note(req, |n| {
        n.action = action;
        n.api_root = root;
        n.collection = collection;
        n.object = object;
    });
}

/// This request's id and client address (set by [`audit_layer`]).
fn meta(req: &HttpRequest) -> RequestMeta {
    req.extensions().get::<RequestMeta>().cloned().unwrap_or_default()
}

/// Authenticates the request and checks its `Accept` header.
async fn caller(req: &HttpRequest, svc: &Service) -> Result<Principal, HttpError> {
    Ok(authenticated(req, svc).await?.principal)
}

/// Authenticates the request (password, API key or client certificate) and checks its `Accept`
/// header; notes the outcome for the audit trail.
async fn authenticated(req: &HttpRequest, svc: &Service) -> Result<Caller, HttpError> {
    let caller = authenticated_only(req, svc).await?;
    if !media::accepts_taxii21(header_str(req, header::ACCEPT)) {
        return Err(HttpError::NotAcceptable);
    }
    Ok(caller)
}

/// [`authenticated`] without the `Accept` check (the TAXII 2.0 view checks its own types).
async fn authenticated_only(req: &HttpRequest, svc: &Service) -> Result<Caller, HttpError> {
    let auth = header_str(req, header::AUTHORIZATION);
    let client = meta(req).client;
    let cert = req.conn_data::<PeerCertificate>();
    let caller = match svc.authenticate(auth, client, cert).await {
        Ok(c) => c,
        Err(e) => {
            if !matches!(e, AuthError::Storage(_) | AuthError::Busy) {
                let (method, presented, beside) = match cert {
                    Some(c) => {
                        let header = auth.map(|a| {
                            let (kind, who) = crate::auth::presented_identity(Some(a));
                            format!("{kind} {who}")
                        });
                        ("certificate", c.fingerprint.clone(), header)
                    }
                    None => {
                        let (kind, who) = crate::auth::presented_identity(auth);
                        (kind, who, None)
                    }
                };
                let reason = e.to_string();
                tracing::info!(client = %client.map(|c| c.to_string()).unwrap_or_default(), credential.method = method, "authentication failed");
                note(req, |n| n.failure = Some((method, presented, reason, beside)));
            }
            let m = crate::metrics::get();
            m.auth_failures.with_label_values(&[auth_failure_reason(&e)]).inc();
            if matches!(e, AuthError::TooManyFailures) {
                m.limited.with_label_values(&["logins"]).inc();
            }
            return Err(e.into());
        }
    };
    if let Principal::Partner { name, .. } = &caller.principal {
        tracing::Span::current().record("partner", name.as_str());
    }
    note(req, |n| n.caller = Some(caller.clone()));
    if let Err(refusal) = svc.limits.admit(&caller.principal, client) {
        let limit = match &refusal {
            crate::service::limits::Refusal::NotAllowedFrom(_) => "allow_from",
            crate::service::limits::Refusal::RateLimited { what, .. } => what,
            crate::service::limits::Refusal::EnvelopeOverWriteLimit { .. } => "writes",
            crate::service::limits::Refusal::NotLoaded => "not_loaded",
        };
        crate::metrics::get().limited.with_label_values(&[limit]).inc();
        tracing::info!(client = %client.map(|c| c.to_string()).unwrap_or_default(), limit, "request refused by a limit");
        note(req, |n| n.refused = Some(limit.to_owned()));
        return Err(HttpError::Service(refusal.into()));
    }
    Ok(caller)
}

/// The `reason` label of a failed login.
fn auth_failure_reason(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "missing",
        AuthError::Invalid => "invalid",
        AuthError::TooManyFailures => "too_many_failures",
        AuthError::Busy => "busy",
        AuthError::UnknownCertificate(_) => "unknown_certificate",
        AuthError::AmbiguousCertificate(_) => "ambiguous_certificate",
        AuthError::ConflictingCredentials(_) => "conflicting_credentials",
        AuthError::Storage(_) => "unavailable",
    }
}

/// A new request id: 64 random bits drawn once per process and a counter (unique, and cheaper
/// than drawing random bits for every request).
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    format!("{prefix:016x}{:016x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The `route` label of a request: the pattern it matched, with a trailing slash (both
/// spellings are one route), or `unmatched`. Never the raw path.
fn route_label(req: &HttpRequest) -> String {
    match req.match_pattern() {
        Some(p) if p.ends_with('/') => p,
        Some(p) => p + "/",
        None => "unmatched".to_owned(),
    }
}

/// The `method` label: one of the methods TAXII uses, else `other`.
fn method_label(m: &actix_web::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// Every request passes here: its client address (the peer, or what a trusted proxy forwarded),
/// its id (a trusted proxy's `X-Request-Id`, else a new one; returned as `X-Request-Id`), a
/// tracing span carrying the id, partner and collection for every log line of the request, the
/// access log line, the request metrics, and, for TAXII requests, the audit record once the
/// answer is known: the caller, what was asked and what was served.
pub async fn request_layer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let peer = req.peer_addr().map(|a| a.ip());
    let settings = req.app_data::<Settings>().cloned().unwrap_or_default();
    let client = settings.proxies.client(peer, req.headers());
    let request_id = settings.proxies.request_id(peer, req.headers()).unwrap_or_else(new_request_id);
    let meta = RequestMeta { request_id, client };
    req.extensions_mut().insert(meta.clone());
    let svc = req.app_data::<Svc>().cloned();
    let span = tracing::info_span!(
        "request",
        request_id = %meta.request_id,
        partner = tracing::field::Empty,
        collection = tracing::field::Empty,
    );
    let mut res = next.call(req).instrument(span.clone()).await?;
    if let Ok(v) = header::HeaderValue::from_str(&meta.request_id) {
        res.headers_mut().insert(header::HeaderName::from_static("x-request-id"), v);
    }
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    let (route, method) = (route_label(res.request()), method_label(res.request().method()));
    let m = crate::metrics::get();
    m.requests.with_label_values(&[route.as_str(), method, &status.to_string()]).inc();
    m.request_seconds.with_label_values(&[route.as_str(), method]).observe(elapsed.as_secs_f64());
    let note = res.request().extensions_mut().remove::<AuditNote>();
    {
        let _entered = span.enter();
        let r = res.request();
        let ms = elapsed.as_secs_f64() * 1000.0;
        let client = client.map(|c| c.to_string()).unwrap_or_default();
        if note.is_some() {
            tracing::info!(client, method = %r.method(), path = r.path(), status, ms, "request");
        } else {
            // Probes and scrapes: not worth a line each at the default level.
            tracing::debug!(client, method = %r.method(), path = r.path(), status, ms, "request");
        }
    }
    let (Some(svc), Some(n)) = (svc, note) else { return Ok(res) };
    let partner_label = match n.caller.as_ref().map(|c| &c.principal) {
        Some(Principal::Partner { name, .. }) => name.as_str(),
        _ => "anonymous",
    };
    if let (Some(p), Some(col), 200 | 206) = (&n.page, &n.collection, status) {
        m.objects_served.with_label_values(&[col.as_str(), partner_label]).inc_by(p.count as u64);
    }
    if svc.audit.enabled() && !n.recorded {
        let status = i32::from(status);
        let record = match (&n.caller, n.failure) {
            (Some(caller), _) => {
                let mut r = svc.request_record(
                    caller,
                    &meta,
                    n.action,
                    n.api_root.as_deref(),
                    n.collection.as_deref(),
                    n.object.as_deref(),
                );
                r.status = Some(status);
                r.filters = n.filters;
                if let Some(limit) = n.refused {
                    r.detail = Some(serde_json::json!({ "refused_by": limit }).to_string());
                }
                if let Some(p) = n.page.filter(|_| (200..300).contains(&status)) {
                    if p.sources.is_some() || !p.omitted.is_empty() {
                        let detail =
                            crate::service::audit::PageDetail { sources: p.sources, omitted: p.omitted.clone() };
                        r.detail = serde_json::to_string(&detail).ok();
                    }
                    r.filters = Some(p.filter.to_query());
                    r.object_count = Some(i64::try_from(p.count).unwrap_or(i64::MAX));
                    r.range_first = p.first;
                    r.range_last = p.last;
                    r.snapshot = p.snapshot;
                }
                Some(r)
            }
            (None, Some((method, presented, reason, beside))) => Some(AuditRecord {
                at: now_micros(),
                kind: AuditKind::AuthFailure.as_str().into(),
                credential_method: Some(method.into()),
                credential_id: Some(presented),
                client: meta.client.map(|c| c.to_string()),
                action: n.action.into(),
                api_root: n.api_root,
                collection_id: n.collection,
                object_id: n.object,
                request_id: Some(meta.request_id.clone()),
                status: Some(status),
                detail: Some(serde_json::json!({ "reason": reason, "authorization": beside }).to_string()),
                ..AuditRecord::default()
            }),
            (None, None) => None,
        };
        if let Some(r) = record {
            svc.audit.record(r).await;
        }
    }
    Ok(res)
}

fn taxii_json<T: serde::Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE))
        .body(serde_json::to_vec(value).unwrap_or_default())
}

/// The response for a page; the page keeps what the audit trail needs, not the body.
fn page_response(page: &mut Page) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    r.insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE));
    if let (Some(first), Some(last)) = (page.first, page.last) {
        r.insert_header(("X-TAXII-Date-Added-First", format_taxii(first)));
        r.insert_header(("X-TAXII-Date-Added-Last", format_taxii(last)));
    }
    r.body(std::mem::take(&mut page.body))
}

fn probe_answer(ok: Result<(), &'static str>) -> HttpResponse {
    let mut r = match ok {
        Ok(()) => HttpResponse::Ok(),
        Err(_) => HttpResponse::ServiceUnavailable(),
    };
    r.insert_header((header::CONTENT_TYPE, "application/json")).insert_header((header::CACHE_CONTROL, "no-store"));
    match ok {
        Ok(()) => r.body("{\"status\":\"ok\"}"),
        Err(why) => r.body(serde_json::json!({ "status": "unavailable", "reason": why }).to_string()),
    }
}

/// `/healthz` (kept for existing probes): the process serves and its database answers.
async fn health(svc: Svc) -> HttpResponse {
    probe_answer(svc.database_ok(READY_TIMEOUT).await)
}

/// `/livez`: the process serves requests (nothing else is checked; restart it if this fails).
async fn livez() -> HttpResponse {
    probe_answer(Ok(()))
}

/// `/readyz`: send this node traffic. 503 while it drains before stopping, or when its database
/// does not answer within two seconds.
async fn readyz(svc: Svc) -> HttpResponse {
    probe_answer(svc.ready(READY_TIMEOUT).await)
}

/// `/metrics`: the Prometheus exposition; with `metrics_token`, only for `Authorization:
/// Bearer <token>`; without, only to a client on this machine connecting directly (the
/// exposition names partners and collections: it must not leak through a proxy).
async fn metrics(req: HttpRequest, svc: Svc, settings: Settings) -> HttpResponse {
    let text = |status: actix_web::http::StatusCode, body: &'static str| {
        HttpResponse::build(status).insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8")).body(body)
    };
    if settings.metrics_token.is_none() {
        let local = req.peer_addr().is_some_and(|a| a.ip().to_canonical().is_loopback());
        let forwarded = req.headers().contains_key("x-forwarded-for") || req.headers().contains_key("forwarded");
        if !local || forwarded {
            return text(
                actix_web::http::StatusCode::FORBIDDEN,
                "without metrics_token, /metrics answers only clients on this machine connecting directly; set metrics_token and scrape with 'Authorization: Bearer <token>'\n",
            );
        }
    }
    if let Some(token) = &settings.metrics_token {
        let given = header_str(&req, header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .unwrap_or_default();
        if !crate::auth::secret_eq(given.as_bytes(), token.as_bytes()) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"concordia-metrics\""))
                .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body("metrics need 'Authorization: Bearer <metrics_token>'\n");
        }
    }
    svc.sample_gauges();
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(crate::metrics::get().render())
}

async fn discovery(req: HttpRequest, svc: Svc, base: web::Data<PublicBase>) -> HttpResult {
    begin(&req, "discovery");
    let who = caller(&req, &svc).await?;
    Ok(taxii_json(&svc.discovery(&who, &base.for_request(&req))))
}

/// The base of the absolute URLs the server emits (discovery's `default` and `api_roots`): what
/// partners type, not necessarily the address the server listens on.
#[derive(Debug, Clone)]
pub enum PublicBase {
    /// `public_url`, or `scheme://address` when the server listens on one address.
    Fixed(String),
    /// Listening on every address, or behind a proxy with no `public_url`: the host the request
    /// names (its `Host` header), with this scheme; `fallback` when it names none usable.
    FromHost { scheme: &'static str, fallback: String },
}

impl PublicBase {
    /// The base for one request, without a trailing slash.
    pub fn for_request(&self, req: &HttpRequest) -> String {
        match self {
            PublicBase::Fixed(base) => base.clone(),
            PublicBase::FromHost { scheme, fallback } => {
                // HTTP/2 carries the host in the URI (:authority), HTTP/1.1 in the Host header.
                let host = req
                    .uri()
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned));
                match host.filter(|h| is_authority(h)) {
                    Some(h) => format!("{scheme}://{h}"),
                    None => fallback.clone(),
                }
            }
        }
    }
}

/// Whether `h` is `host[:port]`: a DNS name or IPv4 address, or a bracketed IPv6 address.
fn is_authority(h: &str) -> bool {
    let (host, port) = match h.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) => {
                if v6.is_empty() || !v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.') {
                    return false;
                }
                ("v6", port)
            }
            None => return false,
        },
        None => match h.split_once(':') {
            Some((host, port)) => (host, if port.is_empty() { "!" } else { h.get(host.len()..).unwrap_or("!") }),
            None => (h, ""),
        },
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-');
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

async fn api_root(req: HttpRequest, svc: Svc) -> HttpResult {
    begin(&req, "get_api_root");
    let who = caller(&req, &svc).await?;
    Ok(taxii_json(&svc.api_root(&who, seg(&req, "root"))?))
}

async fn status(req: HttpRequest, svc: Svc) -> HttpResult {
    begin(&req, "get_status");
    let who = caller(&req, &svc).await?;
    let body = svc.get_status(&who, seg(&req, "root"), seg(&req, "status")).await?;
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE)).body(body))
}

async fn collections(req: HttpRequest, svc: Svc) -> HttpResult {
    begin(&req, "get_collections");
    let who = caller(&req, &svc).await?;
    Ok(taxii_json(&svc.collections(&who, seg(&req, "root"))?))
}

async fn collection(req: HttpRequest, svc: Svc) -> HttpResult {
    begin(&req, "get_collection");
    let who = caller(&req, &svc).await?;
    Ok(taxii_json(&svc.get_collection(&who, seg(&req, "root"), seg(&req, "collection"))?))
}

/// The query string as the audit trail keeps it when it did not parse (bounded, escaped).
fn raw_query(req: &HttpRequest) -> Option<String> {
    let q = req.query_string();
    (!q.is_empty()).then(|| crate::model::stix::shown(&q.chars().take(1000).collect::<String>()))
}

async fn list(req: HttpRequest, svc: Svc, endpoint: Endpoint, action: &'static str) -> HttpResult {
    begin(&req, action);
    let who = caller(&req, &svc).await?;
    note(&req, |n| n.filters = raw_query(&req));
    let query = parse_query(req.query_string(), endpoint).map_err(|e| HttpError::Service(e.into()))?;
    let object = matches!(endpoint, Endpoint::Object | Endpoint::Versions).then(|| seg(&req, "object"));
    let mut page = svc.list(&who, endpoint, seg(&req, "root"), seg(&req, "collection"), object, query).await?;
    let response = page_response(&mut page);
    note(&req, |n| n.page = Some(page));
    Ok(response)
}

async fn manifest(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Manifest, "get_manifest").await
}

async fn get_objects(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Objects, "get_objects").await
}

async fn get_object(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Object, "get_object").await
}

async fn versions(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Versions, "get_object_versions").await
}

async fn delete_object(req: HttpRequest, svc: Svc) -> HttpResult {
    begin(&req, "delete_object");
    let caller = authenticated(&req, &svc).await?;
    note(&req, |n| n.filters = raw_query(&req));
    let query = parse_query(req.query_string(), Endpoint::Delete).map_err(|e| HttpError::Service(e.into()))?;
    let (root, col, obj) = (seg(&req, "root"), seg(&req, "collection"), seg(&req, "object"));
    svc.delete_object(&caller, &meta(&req), root, col, obj, query).await?;
    note(&req, |n| n.recorded = svc.settings().audit);
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE)).finish())
}

/// Reads a request body of at most `max` bytes. Over the limit: 413, after discarding up to
/// [`DRAIN_LIMIT`] more bytes so the client can read the answer; nothing is kept in memory.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, max: i64) -> Result<Vec<u8>, HttpError> {
    let pause = req.app_data::<Settings>().map_or(Duration::from_secs(10), |s| s.body_timeout);
    let deadline = Instant::now() + pause * 30;
    let declared = match header_str(req, header::CONTENT_LENGTH) {
        Some(v) => {
            Some(v.trim().parse::<i64>().map_err(|_| HttpError::BadRequest("Content-Length is not a number".into()))?)
        }
        None => None,
    };
    let too_large = declared.is_some_and(|n| n > max);
    if too_large && declared.is_some_and(|n| n > max.saturating_add(DRAIN_LIMIT)) {
        return Err(HttpError::TooLarge(max));
    }
    let cap = usize::try_from(declared.unwrap_or(0).clamp(0, max)).unwrap_or(0);
    let mut body = Vec::with_capacity(cap);
    let mut seen: i64 = 0;
    let mut over = too_large;
    loop {
        let wait = pause.min(deadline.saturating_duration_since(Instant::now()));
        let chunk = match tokio::time::timeout(wait, payload.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) if Instant::now() >= deadline => {
                return Err(HttpError::BodyTimeout(format!(
                    "the request body did not arrive within {} s",
                    (pause * 30).as_secs()
                )))
            }
            Err(_) => {
                return Err(HttpError::BodyTimeout(format!(
                    "the request body stopped arriving for {} s (request_body_timeout_seconds)",
                    pause.as_secs()
                )))
            }
        };
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::EncodingCorrupted => HttpError::MalformedRequest(
                "the request body's chunked encoding is malformed; send well-formed chunks (size line in hex, CRLF, data, CRLF) or a Content-Length"
                    .into(),
            ),
            e => HttpError::BadRequest(format!("the request body could not be read: {e}")),
        })?;
        seen = seen.saturating_add(i64::try_from(chunk.len()).unwrap_or(i64::MAX));
        if seen > max {
            over = true;
            body = Vec::new();
            if seen > max.saturating_add(DRAIN_LIMIT) {
                break;
            }
            continue;
        }
        if !over {
            body.extend_from_slice(&chunk);
        }
    }
    if over {
        return Err(HttpError::TooLarge(max));
    }
    Ok(body)
}

async fn add_objects(req: HttpRequest, payload: web::Payload, svc: Svc) -> HttpResult {
    begin(&req, "add_objects");
    let caller = authenticated(&req, &svc).await?;
    let who = &caller.principal;
    let (root, col) = (seg(&req, "root"), seg(&req, "collection"));
    let max = svc.max_content_length(who, root, col)?;
    let ct = header_str(&req, header::CONTENT_TYPE);
    if !media::is_taxii21_content_type(ct) {
        return Err(HttpError::UnsupportedMediaType(ct.unwrap_or("none").to_owned()));
    }
    let coding = coding::request_coding(&req)?;
    let body = read_body(&req, payload, max).await?;
    let body = match coding {
        coding::BodyCoding::Identity => body,
        coding::BodyCoding::Gzip => tokio::task::spawn_blocking(move || coding::inflate(&body, max))
            .await
            .map_err(crate::service::ServiceError::from)??,
    };
    let status = svc.add_objects(&caller, &meta(&req), root, col, body).await.inspect_err(|e| {
        let what = match e {
            crate::service::ServiceError::Limited { what, .. } => Some(*what),
            crate::service::ServiceError::EnvelopeOverWriteLimit { .. } => Some("writes"),
            _ => None,
        };
        if let Some(what) = what {
            crate::metrics::get().limited.with_label_values(&[what]).inc();
            note(&req, |n| n.refused = Some(what.to_owned()));
        }
    })?;
    note(&req, |n| n.recorded = svc.settings().audit);
    let partner = match who {
        Principal::Partner { name, .. } => name.as_str(),
        Principal::Anonymous => "anonymous",
    };
    let m = crate::metrics::get();
    m.objects_written.with_label_values(&[col, partner]).inc_by(status.success_count);
    m.objects_refused.with_label_values(&[col, partner]).inc_by(status.failure_count);
    tracing::info!(
        api_root = root,
        collection.id = col,
        principal.id = who.id(),
        object.count = status.total_count,
        object.failures = status.failure_count,
        "objects added"
    );
    Ok(HttpResponse::Accepted()
        .insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE))
        .body(serde_json::to_vec(&status).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        for ok in ["taxii.example.org", "h:8443", "127.0.0.1:8080", "[::1]:8080", "[2001:db8::1]"] {
            assert!(is_authority(ok), "{ok}");
        }
        for bad in
            ["", "h:", "h:abc", "h:123456", "a b", "h/x", "[::1", "[]:80", "evil.example/path", "h:80:80", "x\u{0}"]
        {
            assert!(!is_authority(bad), "{bad}");
        }
    }
}
