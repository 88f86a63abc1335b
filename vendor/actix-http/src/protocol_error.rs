//! Bodies for the error responses the HTTP/1 dispatcher writes on its own.
//!
//! Concordia patch (see `vendor/actix-http/PATCH.md`): requests that never reach a service (a
//! malformed or oversized head, a conflicting `Content-Length`, a head that arrives too slowly)
//! are answered by the dispatcher itself. Upstream those responses carry no body and no
//! `Content-Type`; with a hook installed here, they carry whatever body the application builds
//! (for Concordia, a TAXII error resource), and the hook may refine the status (e.g. 414).

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header::HeaderValue, StatusCode};

use crate::{body::BoxBody, Response};

/// Builds a response for a protocol-level error: `(status, reason)` in, `(status, content type,
/// body)` out, or `None` to keep the upstream bodiless response.
pub type ErrorBodyFn = fn(StatusCode, &str) -> Option<(StatusCode, HeaderValue, Bytes)>;

static HOOK: OnceLock<ErrorBodyFn> = OnceLock::new();

/// Why the dispatcher refused a request, carried in the refusal's extensions to the hook.
#[derive(Debug, Clone)]
pub(crate) struct Reason(pub(crate) String);

/// Installs the hook for the whole process; returns `false` if one was already installed.
pub fn set_error_body(hook: ErrorBodyFn) -> bool {
    HOOK.set(hook).is_ok()
}

/// A refusal (status only, as the dispatcher builds it), with its reason attached.
pub(crate) fn refusal(status: StatusCode, reason: String) -> Response<()> {
    let mut res = Response::with_body(status, ());
    res.extensions_mut().insert(Reason(reason));
    res
}

/// The response and body to write for a refusal built by [`refusal`] (or a plain one).
pub(crate) fn with_body(mut res: Response<()>) -> (Response<()>, BoxBody) {
    let Some(hook) = HOOK.get() else {
        return (res, BoxBody::new(()));
    };
    let reason = res.extensions().get::<Reason>().map(|r| r.0.clone()).unwrap_or_default();
    match hook(res.status(), &reason) {
        Some((status, content_type, body)) => {
            *res.status_mut() = status;
            res.headers_mut().insert(http::header::CONTENT_TYPE, content_type);
            (res, BoxBody::new(body))
        }
        None => (res, BoxBody::new(())),
    }
}
