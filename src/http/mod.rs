//! The TAXII 2.1 wire layer: every route in one place, content negotiation, error resources.
//! Paths work with and without the trailing slash, without redirects (T-060).

pub mod error;
pub mod media;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;

use self::error::HttpError;
use crate::auth::AuthError;
use crate::model::access::Principal;
use crate::model::filter::{parse_query, Endpoint};
use crate::model::time::format_taxii;
use crate::model::TAXII_CONTENT_TYPE;
use crate::service::{Page, Service};

type Svc = web::Data<Arc<Service>>;
type HttpResult = Result<HttpResponse, HttpError>;

/// How much of an oversized body is read and discarded before answering 413, so that clients
/// still sending get the answer instead of a reset connection.
const DRAIN_LIMIT: i64 = 64 * 1024 * 1024;

fn both(path: &str) -> [String; 2] {
    [path.to_owned(), path.trim_end_matches('/').to_owned()]
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let not_allowed = |allow: &'static str| {
        web::to(move || async move { Err::<HttpResponse, _>(HttpError::MethodNotAllowed(allow)) })
    };
    cfg.service(web::resource(both("/healthz/")).route(web::get().to(health)).default_service(not_allowed("GET")))
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

/// Authenticates the request and checks its `Accept` header.
async fn caller(req: &HttpRequest, svc: &Service) -> Result<Principal, HttpError> {
    let auth = header_str(req, header::AUTHORIZATION);
    let who = match (auth, svc.settings().anonymous_read) {
        (None, true) => Principal::Anonymous,
        (auth, _) => match svc.auth.authenticate(auth, req.peer_addr().map(|a| a.ip())).await {
            Ok(p) => p,
            Err(AuthError::Invalid) => {
                tracing::info!(peer = ?req.peer_addr(), "authentication failed");
                return Err(HttpError::Auth(AuthError::Invalid));
            }
            Err(e) => return Err(e.into()),
        },
    };
    if !media::accepts_taxii21(header_str(req, header::ACCEPT)) {
        return Err(HttpError::NotAcceptable);
    }
    Ok(who)
}

fn taxii_json<T: serde::Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE))
        .body(serde_json::to_vec(value).unwrap_or_default())
}

fn page_response(page: Page) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    r.insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE));
    if let (Some(first), Some(last)) = (page.first, page.last) {
        r.insert_header(("X-TAXII-Date-Added-First", format_taxii(first)));
        r.insert_header(("X-TAXII-Date-Added-Last", format_taxii(last)));
    }
    r.body(page.body)
}

async fn health(svc: Svc) -> HttpResult {
    svc.storage.read(crate::storage::generation).await.map_err(|e| HttpError::Service(e.into()))?;
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, "application/json")).body("{\"status\":\"ok\"}"))
}

async fn discovery(req: HttpRequest, svc: Svc, base: web::Data<PublicBase>) -> HttpResult {
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
    let who = caller(&req, &svc).await?;
    Ok(taxii_json(&svc.api_root(&who, seg(&req, "root"))?))
}

async fn status(req: HttpRequest, svc: Svc) -> HttpResult {
    let who = caller(&req, &svc).await?;
    let body = svc.get_status(&who, seg(&req, "root"), seg(&req, "status")).await?;
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE)).body(body))
}

async fn collections(req: HttpRequest, svc: Svc) -> HttpResult {
    let who = caller(&req, &svc).await?;
    Ok(taxii_json(&svc.collections(&who, seg(&req, "root"))?))
}

async fn collection(req: HttpRequest, svc: Svc) -> HttpResult {
    let who = caller(&req, &svc).await?;
    Ok(taxii_json(&svc.get_collection(&who, seg(&req, "root"), seg(&req, "collection"))?))
}

async fn list(req: HttpRequest, svc: Svc, endpoint: Endpoint) -> HttpResult {
    let who = caller(&req, &svc).await?;
    let query = parse_query(req.query_string(), endpoint).map_err(|e| HttpError::Service(e.into()))?;
    let object = matches!(endpoint, Endpoint::Object | Endpoint::Versions).then(|| seg(&req, "object"));
    let page = svc.list(&who, endpoint, seg(&req, "root"), seg(&req, "collection"), object, query).await?;
    Ok(page_response(page))
}

async fn manifest(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Manifest).await
}

async fn get_objects(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Objects).await
}

async fn get_object(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Object).await
}

async fn versions(req: HttpRequest, svc: Svc) -> HttpResult {
    list(req, svc, Endpoint::Versions).await
}

async fn delete_object(req: HttpRequest, svc: Svc) -> HttpResult {
    let who = caller(&req, &svc).await?;
    let query = parse_query(req.query_string(), Endpoint::Delete).map_err(|e| HttpError::Service(e.into()))?;
    svc.delete_object(&who, seg(&req, "root"), seg(&req, "collection"), seg(&req, "object"), query).await?;
    Ok(HttpResponse::Ok().insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE)).finish())
}

/// Reads a request body of at most `max` bytes. Over the limit: 413, after discarding up to
/// [`DRAIN_LIMIT`] more bytes so the client can read the answer; nothing is kept in memory.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, max: i64) -> Result<Vec<u8>, HttpError> {
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
    while let Some(chunk) = payload.next().await {
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
    let who = caller(&req, &svc).await?;
    let (root, col) = (seg(&req, "root"), seg(&req, "collection"));
    let max = svc.max_content_length(&who, root, col)?;
    let ct = header_str(&req, header::CONTENT_TYPE);
    if !media::is_taxii21_content_type(ct) {
        return Err(HttpError::UnsupportedMediaType(ct.unwrap_or("none").to_owned()));
    }
    let body = read_body(&req, payload, max).await?;
    let status = svc.add_objects(&who, root, col, body).await?;
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
