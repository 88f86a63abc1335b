//! `HttpError` and the TAXII error resource (§3.6.1). The only place that picks status codes.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::model::TAXII_CONTENT_TYPE;
use crate::service::ServiceError;

/// Everything a TAXII request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the Accept header allows no TAXII 2.1 media type; send Accept: application/taxii+json;version=2.1")]
    NotAcceptable,
    /// On the TAXII 2.0 view.
    #[error("the Accept header allows no TAXII 2.0 media type here; send Accept: application/vnd.oasis.taxii+json; version=2.0 (application/vnd.oasis.stix+json; version=2.0 for objects), or use the TAXII 2.1 URLs")]
    NotAcceptable20,
    #[error("Content-Type must be application/taxii+json;version=2.1 (got '{0}')")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than this API root's max_content_length of {0} bytes; send smaller envelopes")]
    TooLarge(i64),
    /// A compressed body that inflates beyond `max_content_length` (the limit applies to the
    /// decompressed size: a gzip bomb is refused, never inflated into memory).
    #[error("the request body, once decompressed, is larger than this API root's max_content_length of {0} bytes; send smaller envelopes")]
    InflatesTooLarge(i64),
    /// A `Content-Encoding` other than gzip or identity.
    #[error("Content-Encoding '{0}' is not supported; send the body uncompressed or with Content-Encoding: gzip")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    BadRequest(String),
    /// The request's HTTP framing is broken (e.g. malformed chunked encoding).
    #[error("{0}")]
    MalformedRequest(String),
    #[error("no TAXII endpoint at this URL")]
    NoRoute,
    #[error("this method is not allowed at this URL; allowed: {0}")]
    MethodNotAllowed(&'static str),
    /// The request body stalled (no byte for `request_body_timeout_seconds`) or took too long.
    #[error("{0}; the connection is closed, send the request again")]
    BodyTimeout(String),
}

/// The TAXII error resource.
#[derive(Serialize)]
struct ErrorResource<'a> {
    title: &'a str,
    description: String,
    error_code: &'a str,
    http_status: String,
}

impl HttpError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ServiceError as S;
        match self {
            HttpError::Service(e) => match e {
                S::Unauthenticated => (StatusCode::UNAUTHORIZED, "Unauthorized", "authentication_required"),
                S::UnknownApiRoot => (StatusCode::NOT_FOUND, "Not Found", "unknown_api_root"),
                // Hidden and unknown collections share this exact answer.
                S::UnknownCollection => (StatusCode::NOT_FOUND, "Not Found", "unknown_collection"),
                S::UnknownObject(_) => (StatusCode::NOT_FOUND, "Not Found", "unknown_object"),
                S::UnknownStatus => (StatusCode::NOT_FOUND, "Not Found", "unknown_status"),
                S::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden", "forbidden"),
                S::BadQuery(_) => (StatusCode::BAD_REQUEST, "Bad Request", "invalid_query_parameter"),
                S::BadCursor(_) => (StatusCode::BAD_REQUEST, "Bad Request", "invalid_next"),
                S::MalformedBody(_) => (StatusCode::BAD_REQUEST, "Bad Request", "malformed_body"),
                S::DuplicateMember(_) => (StatusCode::BAD_REQUEST, "Bad Request", "duplicate_member"),
                S::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Unprocessable Entity", "not_an_envelope"),
                S::AddressNotAllowed(_) => (StatusCode::FORBIDDEN, "Forbidden", "address_not_allowed"),
                S::Limited { what: "writes", .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "write_limited")
                }
                S::Limited { .. } => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "rate_limited"),
                S::EnvelopeOverWriteLimit { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", "too_many_objects")
                }
                S::PolicyNotLoaded => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "unavailable"),
                S::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "unavailable"),
                S::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "internal_error"),
            },
            HttpError::Auth(AuthError::Storage(_) | AuthError::Busy) => {
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "unavailable")
            }
            HttpError::Auth(AuthError::TooManyFailures) => {
                (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "too_many_failed_logins")
            }
            HttpError::Auth(_) => (StatusCode::UNAUTHORIZED, "Unauthorized", "authentication_required"),
            HttpError::NotAcceptable | HttpError::NotAcceptable20 => {
                (StatusCode::NOT_ACCEPTABLE, "Not Acceptable", "not_acceptable")
            }
            HttpError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type", "unsupported_media_type")
            }
            HttpError::TooLarge(_) | HttpError::InflatesTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", "too_large")
            }
            HttpError::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type", "unsupported_content_encoding")
            }
            HttpError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad Request", "bad_request"),
            HttpError::MalformedRequest(_) => (StatusCode::BAD_REQUEST, "Bad Request", "malformed_request"),
            HttpError::NoRoute => (StatusCode::NOT_FOUND, "Not Found", "no_endpoint"),
            HttpError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", "method_not_allowed")
            }
            HttpError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "Request Timeout", "request_timeout"),
        }
    }
}

/// Builds a TAXII error response.
pub fn error_response(status: StatusCode, title: &str, error_code: &str, description: String) -> HttpResponse {
    let body = ErrorResource { title, description, error_code, http_status: status.as_u16().to_string() };
    let mut r = HttpResponse::build(status);
    r.insert_header((header::CONTENT_TYPE, TAXII_CONTENT_TYPE));
    if status == StatusCode::UNAUTHORIZED {
        r.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"concordia\", Bearer realm=\"concordia\""));
    }
    r.body(serde_json::to_vec(&body).unwrap_or_default())
}

/// The TAXII error resource for a request the HTTP layer refused before any route saw it (see
/// `actix_http::protocol_error`): a malformed or oversized head, conflicting `Content-Length`,
/// malformed chunked encoding, a head that arrived too slowly.
pub fn protocol_error_body(
    status: StatusCode,
    reason: &str,
) -> Option<(StatusCode, header::HeaderValue, actix_web::web::Bytes)> {
    let (status, title, code, description) = match status {
        StatusCode::BAD_REQUEST if reason.contains("too long") => (
            StatusCode::URI_TOO_LONG,
            "URI Too Long",
            "uri_too_long",
            "the request URI is longer than the 65534 bytes this server reads; send fewer or shorter query parameters \
             (for many ids, several requests)"
                .to_owned(),
        ),
        StatusCode::BAD_REQUEST => (
            status,
            "Bad Request",
            "malformed_request",
            format!(
                "the request could not be read as HTTP/1.1 ({}); send one Content-Length with a plain number (or \
                 Transfer-Encoding: chunked, not both), well-formed header lines and a valid request line",
                reason.to_ascii_lowercase().trim_end_matches('.')
            ),
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            status,
            "Request Header Fields Too Large",
            "request_head_too_large",
            "the request line and headers are larger than the 128 KiB (or 96 headers) this server reads; send \
             fewer or shorter headers"
                .to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            status,
            "Request Timeout",
            "request_timeout",
            "the request head did not arrive in time; the connection is closed, send the request again".to_owned(),
        ),
        _ => return None,
    };
    let body = ErrorResource { title, description, error_code: code, http_status: status.as_u16().to_string() };
    let bytes = serde_json::to_vec(&body).ok()?;
    Some((status, header::HeaderValue::from_static(TAXII_CONTENT_TYPE), actix_web::web::Bytes::from(bytes)))
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, title, code) = self.parts();
        let description = match self {
            HttpError::Service(ServiceError::Internal(e)) => {
                tracing::error!(error = ?e, "request failed");
                "the server could not complete the request; it has been logged".to_owned()
            }
            HttpError::Service(ServiceError::Unavailable(e)) | HttpError::Auth(AuthError::Storage(e)) => {
                tracing::warn!(error = %e, "database unavailable");
                "the server is busy or its database is unavailable; retry shortly".to_owned()
            }
            // Hidden and unknown collections: one fixed text, so nothing leaks (T-029).
            HttpError::Service(ServiceError::UnknownCollection) => "no such collection in this API root".to_owned(),
            HttpError::Service(ServiceError::UnknownApiRoot) => "no such API root".to_owned(),
            other => other.to_string(),
        };
        let mut response = error_response(status, title, code, description);
        if let HttpError::MethodNotAllowed(allow) = self {
            response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        if matches!(self, HttpError::Auth(AuthError::TooManyFailures)) {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        }
        if matches!(self, HttpError::Service(ServiceError::PolicyNotLoaded)) {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if let HttpError::Service(ServiceError::Limited { retry_after, .. }) = self {
            let secs = crate::service::limits::retry_after_seconds(*retry_after);
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if matches!(self, HttpError::UnsupportedEncoding(_)) {
            // RFC 9110 §15.5.16: name the codings that are accepted.
            response.headers_mut().insert(header::ACCEPT_ENCODING, header::HeaderValue::from_static("gzip, identity"));
        }
        if matches!(self, HttpError::BodyTimeout(_)) {
            // The rest of the body may still come: the connection cannot carry another request.
            response.head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        }
        response
    }
}
