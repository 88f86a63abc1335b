//! Requests refused below the TAXII routes, by the HTTP layer itself, still get TAXII error
//! resources with the TAXII Content-Type (T-042, T-062, T-251): spoken as raw HTTP/1.1 over a
//! socket, so that nothing in a client library tidies the request up first.

use std::time::Duration;

use crate::helpers::*;

fn post_head(extra: &str) -> String {
    format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\n{extra}\r\n",
        objects_path(SHARED),
        basic_header("alice", "pw-alice-secret"),
    )
}

#[test]
fn an_over_long_uri_is_a_taxii_414() {
    let s = base_server();
    let req = format!("GET /taxii2/?match[id]={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let r = raw_http(&s.base, req.as_bytes()).expect("an answer");
    let e = r.expect_taxii_error(414);
    assert_eq!(e["error_code"], "uri_too_long");
}

#[test]
fn a_malformed_content_length_is_a_taxii_400() {
    let s = base_server();
    for bad in
        ["Content-Length: abc\r\n", "Content-Length: -1\r\n", "Content-Length: 1 2\r\n", "Content-Length: +5\r\n"]
    {
        let r = raw_http(&s.base, post_head(bad).as_bytes()).expect("an answer");
        let e = r.expect_taxii_error(400);
        assert_eq!(e["error_code"], "malformed_request", "{bad}");
        assert!(e["description"].as_str().unwrap().contains("Content-Length"), "says what to fix: {e}");
    }
}

/// Two lengths, or a length and chunked encoding, are how requests get smuggled past proxies.
#[test]
fn conflicting_framing_headers_are_a_taxii_400() {
    let s = base_server();
    for bad in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let mut req = post_head(bad).into_bytes();
        req.extend_from_slice(b"hello");
        let r = raw_http(&s.base, &req).expect("an answer");
        let e = r.expect_taxii_error(400);
        assert_eq!(e["error_code"], "malformed_request", "{bad}");
    }
}

#[test]
fn a_malformed_chunked_body_is_a_taxii_400() {
    let s = base_server();
    for body in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\nXX\r\n", "5\r\nhelloworld\r\n0\r\n\r\n"] {
        let mut req = post_head("Transfer-Encoding: chunked\r\n").into_bytes();
        req.extend_from_slice(body.as_bytes());
        let r = raw_http(&s.base, &req).expect("an answer");
        let e = r.expect_taxii_error(400);
        assert_eq!(e["error_code"], "malformed_request", "{body:?}: {e}");
    }
    // A well-formed chunked body is accepted.
    let envelope = serde_json::json!({"objects": [indicator(&new_id("indicator"), "2020-01-01T00:00:00.000Z")]});
    let text = envelope.to_string();
    let (a, b) = text.split_at(text.len() / 2);
    let mut req = post_head("Transfer-Encoding: chunked\r\n").into_bytes();
    for part in [a, b] {
        req.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = raw_http(&s.base, &req).expect("an answer");
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn an_oversized_request_head_is_a_taxii_431() {
    let s = base_server();
    let req = format!("GET /taxii2/ HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n", "b".repeat(140_000));
    let r = raw_http(&s.base, req.as_bytes()).expect("an answer");
    r.expect_taxii_error(431);
}

#[test]
fn a_malformed_request_line_is_a_taxii_400() {
    let s = base_server();
    for bad in [
        "GET /taxii2/ HTTP/9.9\r\n\r\n",
        "G@T /taxii2/ HTTP/1.1\r\n\r\n",
        "GET /taxii2/ HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let r = raw_http(&s.base, bad.as_bytes()).expect("an answer");
        r.expect_taxii_error(400);
    }
}

/// A head that stops arriving is answered with a TAXII 408 once the request-head timeout (5 s
/// by default) has passed, and the connection is closed.
#[test]
fn a_slow_request_head_is_a_taxii_408() {
    let s = base_server();
    let started = std::time::Instant::now();
    let r = raw_http_paced(&s.base, &[(b"GET /taxii2/ HTTP/1.1\r\nHost: x\r\n", Duration::ZERO)]).expect("an answer");
    let e = r.expect_taxii_error(408);
    assert_eq!(e["error_code"], "request_timeout");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(started.elapsed() < Duration::from_secs(30), "answered within the timeout, not left hanging");
}
