//! The operator console under `/console/`: server-rendered HTML (maud) with a little vendored
//! htmx, over the service layer's [`Console`]. Off by default (`console = true`).
//!
//! Security: every page but the login page needs a session cookie (`Secure`, `HttpOnly`,
//! `SameSite=Strict`, path `/console`); without one the answer is a redirect to the login page,
//! never data. Partner credentials (an `Authorization` header) are ignored here. Every POST must
//! come from the console's own origin (`Origin` / `Sec-Fetch-Site`) and carry the session's CSRF
//! token. Answers carry a strict Content-Security-Policy (scripts and styles from `/console/`
//! only), `frame-ancestors 'none'` and `Cache-Control: no-store`.

// Early answers are whole pages (`HttpResponse`), returned once per request: their size does
// not matter.
#![allow(clippy::result_large_err)]

mod pages;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;

use crate::auth::operators::OperatorLoginError;
use crate::auth::secret_eq;
use crate::model::access::PeerCertificate;
use crate::model::time::{now_micros, parse_taxii, Micros};
use crate::service::audit::RequestMeta;
use crate::service::console::{AuditQuery, Console, Session};
use crate::service::ServiceError;

type Con = web::Data<Arc<Console>>;
type Page = Result<HttpResponse, Answer>;

/// A page answered early (the login redirect, an error page), through `?`.
pub struct Answer(std::cell::RefCell<Option<HttpResponse>>);

impl From<HttpResponse> for Answer {
    fn from(r: HttpResponse) -> Answer {
        Answer(std::cell::RefCell::new(Some(r)))
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("console answer")
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("console answer")
    }
}

impl actix_web::ResponseError for Answer {
    fn error_response(&self) -> HttpResponse {
        self.0.borrow_mut().take().unwrap_or_else(|| HttpResponse::InternalServerError().finish())
    }
}

/// The session cookie.
const COOKIE: &str = "concordia_console";
/// The largest form or policy upload the console reads.
const FORM_LIMIT: usize = 1 << 20;

static HTMX: &str = include_str!("assets/htmx-2.0.11.min.js");
static CSS: &str = include_str!("assets/console.css");
static ICON: &str = include_str!("assets/favicon.svg");

/// Registers the console's routes (needs `web::Data<Arc<Console>>` in the app).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(to_front)));
    cfg.service(
        web::scope("/console")
            .wrap(actix_web::middleware::from_fn(headers))
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route("/", web::get().to(overview))
            .route("/login", web::get().to(login_page))
            .route("/login", web::post().to(login))
            .route("/login/certificate", web::post().to(login_certificate))
            .route("/logout", web::post().to(logout))
            .route("/live", web::get().to(live))
            .route("/access", web::get().to(access))
            .route("/access/cell", web::get().to(cell))
            .route("/policy", web::get().to(policy))
            .route("/policy/preview", web::post().to(preview))
            .route("/credentials", web::get().to(credentials))
            .route("/credentials/api-key", web::post().to(create_api_key))
            .route("/credentials/{id}/revoke", web::get().to(confirm_revoke))
            .route("/credentials/{id}/revoke", web::post().to(revoke))
            .route("/credentials/{id}/expire", web::get().to(confirm_expire))
            .route("/credentials/{id}/expire", web::post().to(expire))
            .route("/audit", web::get().to(audit))
            .route("/audit/recipients", web::get().to(recipients))
            .route("/audit/export", web::get().to(export))
            .route("/collections/{id}", web::get().to(collection))
            .route("/collections/{id}/objects/{object}", web::get().to(object))
            .route("/assets/{name}", web::get().to(asset))
            .default_service(web::to(not_found)),
    );
}

pub async fn to_front() -> HttpResponse {
    redirect("/console/")
}

/// Security headers on every console answer.
async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    let set = |h: &mut header::HeaderMap, name: &'static str, value: &'static str| {
        h.insert(header::HeaderName::from_static(name), header::HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    Ok(res)
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to.to_owned())).finish()
}

fn html(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string())
}

fn client(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.extensions().get::<RequestMeta>().and_then(|m| m.client).or_else(|| req.peer_addr().map(|a| a.ip()))
}

fn cookie_token(req: &HttpRequest) -> Option<String> {
    req.headers().get_all(header::COOKIE).filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE).then(|| v.to_owned())
    })
}

fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("hx-request")
}

/// To the login page: a redirect, or for htmx an instruction to load it.
fn to_login(req: &HttpRequest) -> HttpResponse {
    if is_htmx(req) {
        HttpResponse::Unauthorized().insert_header(("HX-Redirect", "/console/login")).finish()
    } else {
        redirect("/console/login")
    }
}

fn error_page(session: Option<&Session>, status: StatusCode, message: &str) -> HttpResponse {
    html(status, pages::error(session, status, message))
}

fn service_error(session: &Session, e: &ServiceError) -> HttpResponse {
    let (status, message) = match e {
        ServiceError::UnknownCollection => (StatusCode::NOT_FOUND, "No such collection.".to_owned()),
        ServiceError::UnknownObject(m) => (StatusCode::NOT_FOUND, format!("Not found: {m}.")),
        ServiceError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
        ServiceError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "The database is busy; try again in a moment.".to_owned())
        }
        other => {
            tracing::error!(error = %other, "console request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "The request failed; the server log has the details.".to_owned())
        }
    };
    error_page(Some(session), status, &message)
}

/// The signed-in operator's session, or the answer that sends the browser to the login page.
async fn session(req: &HttpRequest, console: &Console) -> Result<Session, HttpResponse> {
    let Some(token) = cookie_token(req) else { return Err(to_login(req)) };
    match console.session(&token).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(to_login(req).customize_cookie_clear()),
        Err(_) => {
            Err(error_page(None, StatusCode::SERVICE_UNAVAILABLE, "The database is busy; try again in a moment."))
        }
    }
}

trait ClearCookie {
    fn customize_cookie_clear(self) -> HttpResponse;
}

impl ClearCookie for HttpResponse {
    /// Tells the browser to forget an ended session's cookie.
    fn customize_cookie_clear(mut self) -> HttpResponse {
        if let Ok(v) = header::HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
        )) {
            self.headers_mut().append(header::SET_COOKIE, v);
        }
        self
    }
}

/// Whether a state-changing request comes from the console's own pages: `Origin` (when sent)
/// names this host (or `public_url`), and `Sec-Fetch-Site` (when sent) is same-origin.
fn same_origin(req: &HttpRequest, public_origin: Option<&str>) -> bool {
    if let Some(site) = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let info = req.connection_info();
            let host = info.host();
            public_origin.is_some_and(|p| p.eq_ignore_ascii_case(origin))
                || origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")).is_some_and(|h| h == host)
        }
    }
}

/// Refuses (and records) a POST that is not the console's own (origin and CSRF token).
async fn check_post(
    req: &HttpRequest,
    console: &Console,
    session: &Session,
    token: Option<&str>,
) -> Result<(), HttpResponse> {
    let header_token = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok());
    let presented = token.or(header_token).unwrap_or_default();
    let public = console.settings().public_origin.as_deref();
    if !same_origin(req, public) || !secret_eq(presented.as_bytes(), session.csrf.as_bytes()) {
        tracing::warn!(operator = %session.name, path = req.path(), "console refused a cross-site or token-less POST");
        let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
        console.record_refused(session, req.path(), origin).await;
        return Err(error_page(
            Some(session),
            StatusCode::FORBIDDEN,
            "This request did not come from a console page (missing or wrong CSRF token, or another origin). \
             Reload the page and try again.",
        ));
    }
    Ok(())
}

/// The fields of a urlencoded form (the last value of a repeated field wins).
fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn query(req: &HttpRequest) -> std::collections::HashMap<String, String> {
    form(req.query_string().as_bytes())
}

fn non_empty(v: Option<&String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A time from a form: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` (a datetime-local field) read as UTC.
fn form_time(v: &str) -> Option<Micros> {
    let v = v.trim();
    parse_taxii(v).or_else(|| match v.len() {
        16 => parse_taxii(&format!("{v}:00Z")),
        19 => parse_taxii(&format!("{v}Z")),
        _ => None,
    })
}

/// Collection titles by id, for tables that name collections.
fn titles(console: &Console) -> std::collections::HashMap<String, String> {
    console.svc.view().collections.iter().map(|c| (c.id.clone(), c.title.clone())).collect()
}

/// Answers early with this page.
fn no(r: HttpResponse) -> Page {
    Err(r.into())
}

async fn overview(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    console.record_read(&s, "console_view", serde_json::json!({ "page": "overview" })).await;
    let o = console.overview().await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::overview(&s, &o)))
}

async fn live(req: HttpRequest, console: Con) -> Page {
    // A background poll: it must not keep an unattended session alive.
    let Some(token) = cookie_token(&req) else { return no(to_login(&req)) };
    let s = match console.peek_session(&token).await {
        Ok(Some(s)) => s,
        Ok(None) => return no(to_login(&req).customize_cookie_clear()),
        Err(e) => return no(error_page(None, StatusCode::SERVICE_UNAVAILABLE, &e.to_string())),
    };
    let records = console.live().await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::live(&records, &titles(&console))))
}

async fn login_page(req: HttpRequest, console: Con) -> Page {
    if let Some(token) = cookie_token(&req) {
        if let Ok(Some(_)) = console.session(&token).await {
            return Ok(redirect("/console/"));
        }
    }
    let cert = req.conn_data::<PeerCertificate>().is_some();
    Ok(html(StatusCode::OK, pages::login(None, cert)))
}

fn signed_in(token: &str) -> HttpResponse {
    let mut res = redirect("/console/");
    if let Ok(v) =
        header::HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/console; HttpOnly; Secure; SameSite=Strict"))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn login_refused(req: &HttpRequest, e: &OperatorLoginError) -> HttpResponse {
    let cert = req.conn_data::<PeerCertificate>().is_some();
    let (status, message) = match e {
        OperatorLoginError::Invalid => (StatusCode::UNAUTHORIZED, "Unknown operator or wrong password."),
        OperatorLoginError::Limited => {
            (StatusCode::TOO_MANY_REQUESTS, "Too many failed sign-ins from this address; wait a minute and try again.")
        }
        OperatorLoginError::Busy | OperatorLoginError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "The database is busy; try again in a moment.")
        }
    };
    let mut res = html(status, pages::login(Some(message), cert));
    if status == StatusCode::TOO_MANY_REQUESTS {
        res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
    }
    res
}

async fn login(req: HttpRequest, console: Con, body: web::Bytes) -> Page {
    if !same_origin(&req, console.settings().public_origin.as_deref()) {
        return no(error_page(None, StatusCode::FORBIDDEN, "Sign in from the console's own login page."));
    }
    let f = form(&body);
    let name = f.get("name").map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    match console.login_password(&name, &password, client(&req)).await {
        Ok((token, _)) => Ok(signed_in(&token)),
        Err(e) => no(login_refused(&req, &e)),
    }
}

async fn login_certificate(req: HttpRequest, console: Con) -> Page {
    if !same_origin(&req, console.settings().public_origin.as_deref()) {
        return no(error_page(None, StatusCode::FORBIDDEN, "Sign in from the console's own login page."));
    }
    let Some(cert) = req.conn_data::<PeerCertificate>().cloned() else {
        return no(html(
            StatusCode::UNAUTHORIZED,
            pages::login(Some("This connection presented no client certificate."), false),
        ));
    };
    match console.login_certificate(&cert.fingerprint, client(&req)).await {
        Ok((token, _)) => Ok(signed_in(&token)),
        Err(e) => no(login_refused(&req, &e)),
    }
}

async fn logout(req: HttpRequest, console: Con, body: web::Bytes) -> Page {
    let s = session(&req, &console).await?;
    check_post(&req, &console, &s, form(&body).get("csrf").map(String::as_str)).await?;
    console.logout(&s).await.map_err(|e| service_error(&s, &e))?;
    Ok(redirect("/console/login").customize_cookie_clear())
}

async fn access(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    console.record_read(&s, "console_view", serde_json::json!({ "page": "access" })).await;
    let m = console.matrix().await.map_err(|e| service_error(&s, &e))?;
    let only = non_empty(query(&req).get("collection"));
    if let Some(c) = &only {
        if !m.collections.iter().any(|(id, ..)| id == c) {
            return no(error_page(Some(&s), StatusCode::NOT_FOUND, "No such collection."));
        }
    }
    Ok(html(StatusCode::OK, pages::access(&s, &m, only.as_deref())))
}

async fn cell(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    let q = query(&req);
    let (Some(p), Some(c)) = (non_empty(q.get("partner")), non_empty(q.get("collection"))) else {
        return no(error_page(Some(&s), StatusCode::BAD_REQUEST, "Name a partner and a collection."));
    };
    let d = console.cell(&p, &c).await.map_err(|e| service_error(&s, &e))?;
    let fragment = pages::cell(&d);
    Ok(if is_htmx(&req) {
        html(StatusCode::OK, fragment)
    } else {
        html(StatusCode::OK, pages::cell_page(&s, fragment))
    })
}

async fn policy(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    console.record_read(&s, "console_view", serde_json::json!({ "page": "policy" })).await;
    let state = console.policy_state().await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::policy(&s, &state, None, "")))
}

/// Reads the preview form (multipart, for the file upload, or urlencoded): (csrf, text, prune).
async fn preview_form(req: &HttpRequest, payload: web::Payload) -> Result<(String, String, bool), String> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ct.starts_with("multipart/form-data") {
        let mut mp = actix_multipart::Multipart::new(req.headers(), payload);
        let (mut csrf, mut pasted, mut file, mut prune) = (String::new(), String::new(), Vec::new(), false);
        let mut total = 0usize;
        while let Some(field) = mp.next().await {
            let mut field = field.map_err(|e| format!("the upload could not be read: {e}"))?;
            let name = field.content_disposition().and_then(|d| d.get_name()).unwrap_or_default().to_owned();
            let mut value = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| format!("the upload could not be read: {e}"))?;
                total += chunk.len();
                if total > FORM_LIMIT {
                    return Err(format!("the policy is larger than {} KiB", FORM_LIMIT / 1024));
                }
                value.extend_from_slice(&chunk);
            }
            match name.as_str() {
                "csrf" => csrf = String::from_utf8_lossy(&value).into_owned(),
                "policy" => pasted = String::from_utf8(value).map_err(|_| "the policy is not UTF-8 text".to_owned())?,
                "file" => file = value,
                "prune" => prune = true,
                _ => {}
            }
        }
        let text = if file.is_empty() {
            pasted
        } else {
            String::from_utf8(file).map_err(|_| "the uploaded file is not UTF-8 text".to_owned())?
        };
        Ok((csrf, text, prune))
    } else {
        let body = payload.to_bytes_limited(FORM_LIMIT).await.map_err(|_| "the policy is too large".to_owned())?;
        let body = body.map_err(|e| format!("the form could not be read: {e}"))?;
        let f = form(&body);
        Ok((
            f.get("csrf").cloned().unwrap_or_default(),
            f.get("policy").cloned().unwrap_or_default(),
            f.contains_key("prune"),
        ))
    }
}

async fn preview(req: HttpRequest, console: Con, payload: web::Payload) -> Page {
    let s = session(&req, &console).await?;
    let (csrf, text, prune) = match preview_form(&req, payload).await {
        Ok(f) => f,
        Err(m) => {
            check_post(&req, &console, &s, None).await?;
            return no(error_page(Some(&s), StatusCode::BAD_REQUEST, &m));
        }
    };
    check_post(&req, &console, &s, Some(&csrf)).await?;
    let state = console.policy_state().await.map_err(|e| service_error(&s, &e))?;
    if text.trim().is_empty() {
        let r = Err("Paste a policy file or choose one to upload.".to_owned());
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, pages::policy(&s, &state, Some(&r), &text)));
    }
    match console.preview(&s, &text, prune).await {
        Ok(plan) => Ok(html(StatusCode::OK, pages::policy(&s, &state, Some(&Ok(plan)), &text))),
        Err(ServiceError::Unprocessable(m)) => {
            Ok(html(StatusCode::UNPROCESSABLE_ENTITY, pages::policy(&s, &state, Some(&Err(m)), &text)))
        }
        Err(e) => no(service_error(&s, &e)),
    }
}

async fn credentials(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    console.record_read(&s, "console_view", serde_json::json!({ "page": "credentials" })).await;
    let list = console.credentials().await.map_err(|e| service_error(&s, &e))?;
    let q = query(&req);
    let notice = q.get("done").map(|d| match d.as_str() {
        "revoked" => "Credential revoked. Its next TAXII request is refused.",
        "expired" => "Credential expiry set.",
        _ => "Done.",
    });
    Ok(html(StatusCode::OK, pages::credentials(&s, &list, notice, now_micros())))
}

async fn confirm_revoke(req: HttpRequest, console: Con, id: web::Path<String>) -> Page {
    let s = session(&req, &console).await?;
    let cred = console.credential(&id).await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::confirm_revoke(&s, &cred)))
}

async fn revoke(req: HttpRequest, console: Con, id: web::Path<String>, body: web::Bytes) -> Page {
    let s = session(&req, &console).await?;
    check_post(&req, &console, &s, form(&body).get("csrf").map(String::as_str)).await?;
    console.revoke(&s, &id).await.map_err(|e| service_error(&s, &e))?;
    Ok(redirect("/console/credentials?done=revoked"))
}

async fn confirm_expire(req: HttpRequest, console: Con, id: web::Path<String>) -> Page {
    let s = session(&req, &console).await?;
    let cred = console.credential(&id).await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::confirm_expire(&s, &cred, None)))
}

async fn expire(req: HttpRequest, console: Con, id: web::Path<String>, body: web::Bytes) -> Page {
    let s = session(&req, &console).await?;
    let f = form(&body);
    check_post(&req, &console, &s, f.get("csrf").map(String::as_str)).await?;
    let at = match non_empty(f.get("at")) {
        None => now_micros(),
        Some(t) => match form_time(&t) {
            Some(at) => at,
            None => {
                let cred = console.credential(&id).await.map_err(|e| service_error(&s, &e))?;
                let m = format!("'{}' is not a time such as 2027-01-01T00:00 (UTC)", crate::model::stix::shown(&t));
                return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, pages::confirm_expire(&s, &cred, Some(&m))));
            }
        },
    };
    console.expire(&s, &id, at).await.map_err(|e| service_error(&s, &e))?;
    Ok(redirect("/console/credentials?done=expired"))
}

async fn create_api_key(req: HttpRequest, console: Con, body: web::Bytes) -> Page {
    let s = session(&req, &console).await?;
    let f = form(&body);
    check_post(&req, &console, &s, f.get("csrf").map(String::as_str)).await?;
    let Some(partner) = non_empty(f.get("partner")) else {
        return no(error_page(Some(&s), StatusCode::UNPROCESSABLE_ENTITY, "Choose the partner the key is for."));
    };
    let label = non_empty(f.get("label"));
    if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
        return no(error_page(Some(&s), StatusCode::UNPROCESSABLE_ENTITY, "The label is longer than 200 characters."));
    }
    let expires = match non_empty(f.get("expires")) {
        None => None,
        Some(t) => Some(form_time(&t).ok_or_else(|| {
            error_page(
                Some(&s),
                StatusCode::UNPROCESSABLE_ENTITY,
                "The expiry is not a time such as 2027-01-01T00:00 (UTC).",
            )
        })?),
    };
    let (id, key) =
        console.create_api_key(&s, &partner, label.as_deref(), expires).await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::new_key(&s, &partner, &id, &key)))
}

fn audit_query(q: &std::collections::HashMap<String, String>) -> Result<AuditQuery, String> {
    let time = |k: &str| -> Result<Option<Micros>, String> {
        match non_empty(q.get(k)) {
            None => Ok(None),
            Some(t) => form_time(&t).map(Some).ok_or_else(|| {
                format!("{k} '{}' is not a time such as 2027-01-01T00:00 (UTC)", crate::model::stix::shown(&t))
            }),
        }
    };
    Ok(AuditQuery {
        partner: non_empty(q.get("partner")),
        collection: non_empty(q.get("collection")),
        action: non_empty(q.get("action")),
        since: time("since")?,
        until: time("until")?,
    })
}

async fn audit(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    let q = query(&req);
    let m = console.matrix().await.map_err(|e| service_error(&s, &e))?;
    let mut aq = match audit_query(&q) {
        Ok(aq) => aq,
        Err(msg) => return Ok(html(StatusCode::BAD_REQUEST, pages::audit(&s, &m, &q, None, Some(&msg)))),
    };
    // Without a time window, the last 24 hours.
    if aq.since.is_none() && aq.until.is_none() {
        aq.since = Some(now_micros() - 86_400_000_000);
    }
    let found = console.search(&s, &aq).await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::audit(&s, &m, &q, Some(&found), None)))
}

async fn recipients(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    let Some(id) = non_empty(query(&req).get("object_id")) else {
        return no(error_page(Some(&s), StatusCode::BAD_REQUEST, "Give an object id, such as indicator--…"));
    };
    match console.recipients(&s, &id).await {
        Ok(list) => Ok(html(StatusCode::OK, pages::recipients(&s, &id, &list, &titles(&console)))),
        Err(ServiceError::Unprocessable(m)) => no(error_page(Some(&s), StatusCode::BAD_REQUEST, &m)),
        Err(e) => no(service_error(&s, &e)),
    }
}

async fn export(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    let q = query(&req);
    let csv = match q.get("format").map(String::as_str) {
        Some("csv") => true,
        Some("jsonl") | None => false,
        Some(_) => return no(error_page(Some(&s), StatusCode::BAD_REQUEST, "format must be jsonl or csv")),
    };
    let aq = audit_query(&q).map_err(|m| error_page(Some(&s), StatusCode::BAD_REQUEST, &m))?;
    let rx = console.export(&s, &aq, csv).await.map_err(|e| service_error(&s, &e))?;
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, actix_web::Error>(web::Bytes::from(line)), rx))
    });
    let (ct, name) =
        if csv { ("text/csv; charset=utf-8", "audit.csv") } else { ("application/x-ndjson", "audit.jsonl") };
    Ok(HttpResponse::Ok()
        .content_type(ct)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"concordia-{name}\"")))
        .streaming(body))
}

async fn collection(req: HttpRequest, console: Con, id: web::Path<String>) -> Page {
    let s = session(&req, &console).await?;
    let view = console.svc.view();
    let Some(col) = view.collection(&id).cloned() else {
        return no(error_page(Some(&s), StatusCode::NOT_FOUND, "No such collection."));
    };
    let rows = console.latest_objects(&s, &id).await.map_err(|e| service_error(&s, &e))?;
    let m = console.matrix().await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::collection(&s, &col, &rows, &m)))
}

async fn object(req: HttpRequest, console: Con, path: web::Path<(String, String)>) -> Page {
    let s = session(&req, &console).await?;
    let (col_id, object_id) = path.into_inner();
    let view = console.svc.view();
    let Some(col) = view.collection(&col_id).cloned() else {
        return no(error_page(Some(&s), StatusCode::NOT_FOUND, "No such collection."));
    };
    let versions = console.object(&s, &col_id, &object_id).await.map_err(|e| service_error(&s, &e))?;
    Ok(html(StatusCode::OK, pages::object(&s, &col, &object_id, &versions)))
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    let (body, ct) = match name.as_str() {
        "htmx-2.0.11.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "favicon.svg" => (ICON, "image/svg+xml"),
        _ => return HttpResponse::NotFound().content_type("text/plain").body("no such asset"),
    };
    HttpResponse::Ok().content_type(ct).insert_header((header::CACHE_CONTROL, "public, max-age=3600")).body(body)
}

async fn not_found(req: HttpRequest, console: Con) -> Page {
    let s = session(&req, &console).await?;
    no(error_page(Some(&s), StatusCode::NOT_FOUND, "There is no such console page."))
}
