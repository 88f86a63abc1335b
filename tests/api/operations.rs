//! Operating the hub: client addresses behind trusted proxies, per-partner allow-lists and
//! limits, failed-login control that cannot lock out the innocent, equal time for every failed
//! login, body and head timeouts, metrics, readiness and the drain, request ids, key rotation,
//! masked secrets. Everything through real HTTP against the real server.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

/// The value of one sample of the exposition at `/metrics` (`name{labels}` exactly as written,
/// labels in alphabetical order); 0 when absent.
fn metric(s: &TestServer, sample: &str) -> f64 {
    let r = s.get("/metrics", &Auth::None);
    assert_eq!(r.status, 200, "{}", r.text());
    sample_value(&r.text(), sample)
}

fn sample_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A policy where alice may only come from 192.0.2.0/24, bob is held to 1 request/s with a
/// burst of 3, and carol may add 5 objects a minute.
const LIMITS_POLICY: &str = r#"
[discovery]
title = "test"

[[api_roots]]
name = "r"
title = "Root"

[[partners]]
name = "alice"
allow_from = ["192.0.2.0/24", "2001:db8::/32"]
[[partners]]
name = "bob"
rate_limit = { requests_per_second = 1, burst = 3 }
[[partners]]
name = "carol"
write_limit = { objects_per_minute = 5 }
[[partners]]
name = "dave"

[[groups]]
name = "all"
members = ["alice", "bob", "carol", "dave"]

[[collections]]
id = "11111111-1111-4111-8111-111111111111"
api_root = "r"
title = "Shared"
read = ["all"]
write = ["all"]
"#;

fn limits_server(env: &[(&str, &str)]) -> TestServer {
    let s = TestServer::start_with(LIMITS_POLICY, env);
    for p in ["alice", "bob", "carol", "dave"] {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    s
}

fn from(addr: &str) -> [(&'static str, String); 1] {
    [("X-Forwarded-For", addr.to_owned())]
}

fn get_from(s: &TestServer, path: &str, auth: &Auth, headers: &[(&str, String)]) -> Resp {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.request("GET", path, auth, &h, None)
}

/// The issue's scenario: 30 wrong passwords for partner A from one address, then partner B
/// with its correct password from the same address gets 200. A's own correct password, seen
/// before, keeps working; A's API key is never limited.
#[test]
fn failed_logins_for_one_partner_never_lock_out_another_behind_the_same_address() {
    // No login cache: every request below is checked, so known-good credentials are exercised.
    let s = limits_server(&[("CONCORDIA_AUTH_CACHE_SECONDS", "0")]);
    let key = s.add_api_key("dave");
    std::thread::sleep(Duration::from_millis(300));
    s.get("/taxii2/", &as_("dave")).expect(200); // dave's password is now known good
    let statuses: Vec<u16> =
        (0..30).map(|i| s.get("/taxii2/", &Auth::basic("dave", &format!("guess-{i}"))).status).collect();
    assert!(statuses[..10].iter().all(|&c| c == 401), "{statuses:?}");
    assert!(statuses[10..].iter().all(|&c| c == 429), "over 10 a minute for (address, name): {statuses:?}");
    let r = s.get("/taxii2/", &Auth::basic("dave", "guess-again"));
    r.expect(429);
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.json()["error_code"], "too_many_failed_logins");
    // Another partner behind the same address, never logged in before: served.
    s.get("/taxii2/", &as_("bob")).expect(200);
    s.get("/taxii2/", &as_("carol")).expect(200);
    // dave's own password, known good on this node, and its API key still work.
    s.get("/taxii2/", &as_("dave")).expect(200);
    s.get("/taxii2/", &Auth::Bearer(key)).expect(200);
}

/// Guessing one name from many addresses trips the per-name limit: then an address that has
/// failed for the name gets no further try, but a fresh address is still checked, so the
/// partner's correct password is never refused because of failures elsewhere.
#[test]
fn distributed_guessing_of_one_name_never_locks_out_its_partner() {
    let s = limits_server(&[
        ("CONCORDIA_TRUSTED_PROXIES", "127.0.0.1"),
        ("CONCORDIA_LOGIN_FAILURES_PER_NAME", "20"),
        ("CONCORDIA_AUTH_CACHE_SECONDS", "0"),
    ]);
    let key = s.add_api_key("carol");
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        let r =
            get_from(&s, "/taxii2/", &Auth::basic("carol", &format!("guess-{i}")), &from(&format!("198.51.100.{i}")));
        assert_eq!(r.status, 401, "failure {i}, from its own address");
    }
    // Under attack: an address that failed for carol gets no further try...
    let r = get_from(&s, "/taxii2/", &Auth::basic("carol", "guess-x"), &from("198.51.100.3"));
    assert_eq!(r.status, 429, "{}", r.text());
    // ...but a fresh address is still checked: a wrong password is a 401, carol's own a 200.
    assert_eq!(get_from(&s, "/taxii2/", &Auth::basic("carol", "guess-y"), &from("203.0.113.1")).status, 401);
    get_from(&s, "/taxii2/", &as_("carol"), &from("203.0.113.2")).expect(200);
    // Her API key always works, and nobody else is affected.
    get_from(&s, "/taxii2/", &Auth::Bearer(key), &from("198.51.100.3")).expect(200);
    get_from(&s, "/taxii2/", &as_("bob"), &from("198.51.100.1")).expect(200);
}

/// One address trying many names is limited per address too (it could otherwise burn the
/// password-checking CPU): over the limit, only passwords known to work are checked from it.
/// IPv6 clients are counted per /64.
#[test]
fn one_address_failing_for_many_names_is_limited() {
    let s = limits_server(&[
        ("CONCORDIA_TRUSTED_PROXIES", "127.0.0.1"),
        ("CONCORDIA_LOGIN_FAILURES_PER_ADDRESS", "30"),
        ("CONCORDIA_AUTH_CACHE_SECONDS", "0"),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    get_from(&s, "/taxii2/", &as_("dave"), &from("2001:db8:1:2::1")).expect(200); // known good from now on
    for i in 0..30 {
        let r = get_from(
            &s,
            "/taxii2/",
            &Auth::basic(&format!("name-{i}"), "x"),
            &from(&format!("2001:db8:1:2::{:x}", i + 10)),
        );
        assert_eq!(r.status, 401, "failure {i}");
    }
    // Another host of the same /64, with a password never seen here: refused unchecked.
    assert_eq!(get_from(&s, "/taxii2/", &as_("bob"), &from("2001:db8:1:2::ff")).status, 429);
    // A password known to work is still checked; another network is not affected.
    get_from(&s, "/taxii2/", &as_("dave"), &from("2001:db8:1:2::ff")).expect(200);
    get_from(&s, "/taxii2/", &as_("bob"), &from("2001:db8:1:3::1")).expect(200);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Partner names do not leak through timing: an unknown name costs a verification against a
/// dummy hash, like a wrong password for a known name. The medians must be within 20%.
#[test]
fn unknown_names_and_wrong_passwords_take_the_same_time() {
    let s = limits_server(&[
        ("CONCORDIA_LOGIN_FAILURES_PER_ADDRESS_AND_NAME", "100000"),
        ("CONCORDIA_LOGIN_FAILURES_PER_NAME", "100000"),
        ("CONCORDIA_LOGIN_FAILURES_PER_ADDRESS", "100000"),
    ]);
    let time = |auth: Auth| {
        let started = Instant::now();
        assert_eq!(s.get("/taxii2/", &auth).status, 401);
        started.elapsed()
    };
    for i in 0..5 {
        time(Auth::basic("alice", &format!("warm-{i}")));
        time(Auth::basic(&format!("ghost-warm-{i}"), "x"));
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, with fresh secrets (a repeated failure is answered from the cache).
    for i in 0..41 {
        known.push(time(Auth::basic("alice", &format!("wrong-{i}"))));
        unknown.push(time(Auth::basic(&format!("nobody-{i}"), &format!("wrong-{i}"))));
    }
    let (k, u) = (median(known), median(unknown));
    let ratio = k.as_secs_f64().max(u.as_secs_f64()) / k.as_secs_f64().min(u.as_secs_f64());
    println!("login timing: known name, wrong password median {k:?}; unknown name median {u:?}; ratio {ratio:.3}");
    assert!(ratio <= 1.2, "medians differ by more than 20%: known {k:?}, unknown {u:?}");
    assert!(k > Duration::from_millis(2), "a wrong password costs a memory-hard verification ({k:?})");
}

/// A partner with two passwords (in the middle of a rotation) must not stand out either: every
/// failed password login costs as many verifications as the partner with the most passwords has.
#[test]
fn every_failed_login_costs_the_same_number_of_verifications() {
    let s = limits_server(&[]);
    let verifications = || metric(&s, "concordia_password_verifications_total");
    let cost = |auth: Auth| {
        let before = verifications();
        assert_eq!(s.get("/taxii2/", &auth).status, 401);
        verifications() - before
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cost(Auth::basic("alice", "wrong-1")), 1.0);
    assert_eq!(cost(Auth::basic("nobody", "wrong-1")), 1.0);
    s.add_password("alice", "alices-second-password");
    std::thread::sleep(Duration::from_millis(500));
    for (name, i) in [("alice", 2), ("bob", 3), ("nobody", 4), ("not a valid name!", 5)] {
        assert_eq!(cost(Auth::basic(name, &format!("wrong-{i}"))), 2.0, "{name}");
    }
}

/// A policy change invalidates only the logins it affects: changing grants keeps every cached
/// login; a partner's new credential drops that partner's logins only.
#[test]
fn policy_changes_drop_only_the_cached_logins_they_affect() {
    let s = base_server();
    std::thread::sleep(Duration::from_millis(300));
    for p in ["alice", "bob", "carol", "dave"] {
        s.get("/taxii2/", &as_(p)).expect(200);
    }
    let verifications = || metric(&s, "concordia_password_verifications_total");
    let before = verifications();
    assert!(before >= 4.0, "each login was verified once ({before})");
    // A new collection that bob may read: grants change, credentials do not.
    let changed = format!(
        "{BASE_POLICY}\n[[collections]]\nid = \"33333333-3333-4333-8333-333333333333\"\napi_root = \"r\"\ntitle = \"New\"\nread = [\"ab\"]\n"
    );
    s.apply(&changed);
    std::thread::sleep(Duration::from_millis(500));
    for p in ["alice", "bob", "carol", "dave"] {
        s.get("/taxii2/", &as_(p)).expect(200);
    }
    assert_eq!(verifications(), before, "no cached login was dropped by a change of grants");
    // bob sees the new collection at once: rights are not cached with the login.
    let cols = s.get("/r/collections/", &as_("bob"));
    assert!(cols.text().contains("33333333-3333-4333-8333-333333333333"), "{}", cols.text());
    // bob gets another password: bob's cached login goes, nobody else's.
    s.add_password("bob", "second-password-of-bob");
    std::thread::sleep(Duration::from_millis(500));
    for p in ["alice", "carol", "dave"] {
        s.get("/taxii2/", &as_(p)).expect(200);
    }
    assert_eq!(verifications(), before, "alice, carol and dave are still cached");
    s.get("/taxii2/", &as_("bob")).expect(200);
    assert!(verifications() > before, "bob's login was checked again");
}

/// `allow_from`, and the client address taken from `X-Forwarded-For` only when the peer is a
/// trusted proxy; the denial is audited with the forwarded address.
#[test]
fn allow_from_uses_the_forwarded_address_only_from_trusted_proxies() {
    let s = limits_server(&[("CONCORDIA_TRUSTED_PROXIES", "127.0.0.0/8")]);
    // Through the trusted proxy: the forwarded address decides.
    get_from(&s, "/taxii2/", &as_("alice"), &from("192.0.2.10")).expect(200);
    // The proxy writes X-Forwarded-For; a Forwarded header is the client's own and is ignored.
    get_from(&s, "/taxii2/", &as_("alice"), &[("Forwarded", "for=192.0.2.10".into())]).expect(403);
    let rfc7239 =
        limits_server(&[("CONCORDIA_TRUSTED_PROXIES", "127.0.0.0/8"), ("CONCORDIA_FORWARDED_HEADER", "forwarded")]);
    get_from(&rfc7239, "/taxii2/", &as_("alice"), &[("Forwarded", "for=\"[2001:db8::7]:4711\"".into())]).expect(200);
    get_from(&rfc7239, "/taxii2/", &as_("alice"), &from("192.0.2.10")).expect(403);
    let r = get_from(&s, "/taxii2/", &as_("alice"), &from("198.51.100.1"));
    r.expect(403);
    assert_eq!(r.json()["error_code"], "address_not_allowed");
    assert!(r.json()["description"].as_str().unwrap().contains("198.51.100.1"), "{}", r.text());
    // A client cannot prepend its way in: the rightmost untrusted hop counts.
    get_from(&s, "/taxii2/", &as_("alice"), &from("192.0.2.10, 198.51.100.1")).expect(403);
    // The proxy itself is not an allowed address.
    s.get("/taxii2/", &as_("alice")).expect(403);
    // Other partners have no allow-list.
    get_from(&s, "/taxii2/", &as_("dave"), &from("198.51.100.1")).expect(200);

    // The same header from a peer that is not a trusted proxy is ignored.
    let untrusted = limits_server(&[]);
    get_from(&untrusted, "/taxii2/", &as_("alice"), &from("192.0.2.10")).expect(403);

    // The audit trail names the forwarded address and why the request was refused.
    let denied_id = r.header("x-request-id").unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let (ok, out, err) = s.cli(&["audit", "export", "--partner", "alice"], None);
        assert!(ok, "{err}");
        let found = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|r| r["request_id"] == denied_id.as_str());
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "the denial was not recorded");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(record["client"], "198.51.100.1", "{record}");
    assert_eq!(record["status"], 403, "{record}");
    assert!(record["detail"].as_str().unwrap().contains("allow_from"), "{record}");
}

/// Request ids: a trusted proxy's `X-Request-Id` is kept and returned; anyone else's is
/// replaced by one the server makes.
#[test]
fn request_ids_come_from_trusted_proxies_or_the_server() {
    let s = limits_server(&[("CONCORDIA_TRUSTED_PROXIES", "127.0.0.1/32")]);
    let r = get_from(&s, "/taxii2/", &as_("dave"), &[("X-Request-Id", "proxy-req-42".into())]);
    assert_eq!(r.header("x-request-id"), Some("proxy-req-42"));
    let r = get_from(&s, "/taxii2/", &as_("dave"), &[("X-Request-Id", "bad id with spaces".into())]);
    assert_ne!(r.header("x-request-id"), Some("bad id with spaces"));
    let untrusted = limits_server(&[]);
    let r = get_from(&untrusted, "/taxii2/", &as_("dave"), &[("X-Request-Id", "proxy-req-42".into())]);
    let id = r.header("x-request-id").unwrap();
    assert_ne!(id, "proxy-req-42");
    assert_eq!(id.len(), 32, "{id}");
    // Every answer carries one, errors and probes included.
    assert!(untrusted.get("/nowhere/", &Auth::None).header("x-request-id").is_some());
    assert!(untrusted.get("/livez", &Auth::None).header("x-request-id").is_some());
}

/// `rate_limit`: a burst, then 429 with Retry-After and a TAXII error; other partners are not
/// affected. `write_limit`: objects per minute; an envelope over it is refused whole.
#[test]
fn rate_and_write_limits_answer_429_with_retry_after() {
    let s = limits_server(&[]);
    let statuses: Vec<u16> = (0..4).map(|_| s.get("/taxii2/", &as_("bob")).status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    let r = s.get("/taxii2/", &as_("bob"));
    r.expect(429);
    assert_eq!(r.json()["error_code"], "rate_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    s.get("/taxii2/", &as_("dave")).expect(200);
    std::thread::sleep(Duration::from_millis(1100));
    s.get("/taxii2/", &as_("bob")).expect(200);

    let path = objects_path(SHARED);
    let three = || -> Vec<Value> { (0..3).map(|_| malware(&new_id("malware"))).collect() };
    let r = s.post(&path, &as_("carol"), &json!({ "objects": three() }));
    r.expect(202);
    let r = s.post(&path, &as_("carol"), &json!({ "objects": three() }));
    r.expect(429);
    assert_eq!(r.json()["error_code"], "write_limited");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Nothing of the refused envelope was stored; dave writes as he likes.
    assert_eq!(s.read_all(&path, &as_("dave"), 100).len(), 3);
    s.post(&path, &as_("dave"), &json!({ "objects": three() })).expect(202);
    assert_eq!(metric(&s, "concordia_limited_total{limit=\"requests\"}"), 2.0);
    assert_eq!(metric(&s, "concordia_limited_total{limit=\"writes\"}"), 1.0);
}

/// A body that stops arriving is answered with a TAXII 408 after request_body_timeout_seconds,
/// and the connection is closed; so is a head that stops arriving.
#[test]
fn a_stalled_body_is_a_taxii_408_and_the_connection_closes() {
    let s = limits_server(&[
        ("CONCORDIA_REQUEST_BODY_TIMEOUT_SECONDS", "1"),
        ("CONCORDIA_REQUEST_HEADER_TIMEOUT_SECONDS", "1"),
    ]);
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nAccept: {TAXII}\r\nContent-Type: {TAXII}\r\nContent-Length: 1000\r\n\r\n{{\"objects\": [",
        objects_path(SHARED),
        basic_header("dave", "pw-dave-secret")
    );
    let started = Instant::now();
    sock.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).unwrap(); // returns only once the server closes
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let e: Value = serde_json::from_str(body).unwrap();
    assert_eq!(e["error_code"], "request_timeout");
    assert!(e["description"].as_str().unwrap().contains("stopped arriving"), "{e}");
    assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(10), "{elapsed:?}");

    let started = Instant::now();
    let r = raw_http_paced(&s.base, &[(b"GET /taxii2/ HTTP/1.1\r\nHost: x\r\n", Duration::ZERO)]).unwrap();
    r.expect_taxii_error(408);
    assert!(started.elapsed() < Duration::from_secs(5), "the 1 s head timeout applies ({:?})", started.elapsed());

    // Every request on a keep-alive connection has the head timeout, not only the first.
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    sock.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    let n = sock.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    sock.write_all(b"GET /taxii2/ HTTP/1.1\r\nHost: x\r\n").unwrap(); // and nothing more
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // A chunked body the server does not read (the request is refused first) is not drained
    // without end: the connection closes after the answer.
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: {TAXII}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"obj\r\n",
        objects_path(SHARED)
    );
    let started = Instant::now();
    sock.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "the connection was held open ({:?})", started.elapsed());
}

/// The metrics move with the requests: route patterns (never paths or ids), objects served and
/// written per collection and partner, failed logins by reason; with a token, only for it.
#[test]
fn metrics_count_requests_objects_and_failures() {
    let s = limits_server(&[]);
    let path = objects_path(SHARED);
    let id = new_id("indicator");
    s.add("r", SHARED, &as_("dave"), &[indicator(&id, "2026-01-01T00:00:00.000Z"), malware(&new_id("malware"))]);
    let route = "route=\"/{root}/collections/{collection}/objects/\"";
    let get_ok = format!("concordia_http_requests_total{{method=\"GET\",{route},status=\"200\"}}");
    let served = format!("concordia_objects_served_total{{collection=\"{SHARED}\",partner=\"bob\"}}");
    let written = format!("concordia_objects_written_total{{collection=\"{SHARED}\",partner=\"dave\"}}");
    let invalid = "concordia_auth_failures_total{reason=\"invalid\"}";
    let (g0, s0, f0) = (metric(&s, &get_ok), metric(&s, &served), metric(&s, invalid));
    assert_eq!(metric(&s, &written), 2.0);
    s.get(&path, &as_("bob")).expect(200);
    // Without the trailing slash it is the same route.
    s.get(path.trim_end_matches('/'), &as_("bob")).expect(200);
    s.get("/taxii2/", &Auth::basic("bob", "wrong")).expect(401);
    s.get(&format!("{path}{id}/"), &as_("bob")).expect(200);
    assert_eq!(metric(&s, &get_ok), g0 + 2.0);
    assert_eq!(metric(&s, &served), s0 + 5.0);
    assert_eq!(metric(&s, invalid), f0 + 1.0);
    let text = s.get("/metrics", &Auth::None).text();
    assert!(!text.contains(&id), "an object id must never be a label");
    for line in text.lines().filter(|l| l.contains("route=\"")) {
        let route = line.split("route=\"").nth(1).unwrap().split('"').next().unwrap();
        assert!(route == "unmatched" || !route.contains(SHARED), "a raw path as a label: {line}");
    }
    assert!(sample_value(&text, "concordia_sqlite_wal_bytes") >= 0.0);
    assert_eq!(sample_value(&text, "concordia_ready"), 1.0);
    assert!(text.contains("concordia_db_pool_wait_seconds_count"), "{text}");
    assert!(text.contains("concordia_validation_seconds_count 1"), "one envelope validated: {text}");

    // Without a token, only direct local clients: never through a proxy.
    let r = get_from(&s, "/metrics", &Auth::None, &from("198.51.100.1"));
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("metrics_token"));

    let guarded = limits_server(&[("CONCORDIA_METRICS_TOKEN", "scrape-token-0123456789")]);
    let r = guarded.get("/metrics", &Auth::None);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(guarded.get("/metrics", &Auth::Bearer("wrong-token-0123456789".into())).status, 401);
    let r = guarded.get("/metrics", &Auth::Bearer("scrape-token-0123456789".into()));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
}

/// `/livez` and `/readyz`; on SIGTERM `/readyz` turns 503 at once while requests are still
/// served for the grace period, then the node drains and exits.
#[test]
fn readyz_turns_503_during_the_drain_while_requests_are_still_served() {
    let mut s = limits_server(&[("CONCORDIA_SHUTDOWN_GRACE_SECONDS", "3")]);
    assert_eq!(s.get("/livez", &Auth::None).status, 200);
    let r = s.get("/readyz", &Auth::None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.get("/healthz", &Auth::None).status, 200);
    let signalled = Instant::now();
    s.signal("TERM");
    assert!(wait_until(|| s.get("/readyz", &Auth::None).status == 503), "readyz did not turn 503");
    assert!(signalled.elapsed() < Duration::from_secs(2));
    let r = s.get("/readyz", &Auth::None);
    assert!(r.text().contains("draining"), "{}", r.text());
    // Still serving during the grace period.
    s.get("/taxii2/", &as_("dave")).expect(200);
    assert_eq!(s.get("/livez", &Auth::None).status, 200);
    let m = s.get("/metrics", &Auth::None).text();
    assert_eq!(sample_value(&m, "concordia_ready"), 0.0);
    // Then it stops.
    let code = s.wait_exit(Duration::from_secs(15));
    assert!(signalled.elapsed() >= Duration::from_secs(3), "stopped before the grace period ended");
    assert_eq!(code, Some(0), "a clean exit");
}

/// The id of the key that signed a `next` token (inside its payload).
fn key_id(token: &str) -> String {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&payload).unwrap()["k"].as_str().unwrap().to_owned()
}

/// `next` tokens name their key; after `rotate-key`, tokens signed with the previous key work
/// for the grace period, and are refused with a clear message after it.
#[test]
fn next_tokens_survive_a_key_rotation_for_the_grace_period() {
    let mut s = limits_server(&[]);
    let objects: Vec<Value> = (0..3).map(|_| malware(&new_id("malware"))).collect();
    s.add("r", SHARED, &as_("dave"), &objects);
    // A second node that does not look for policy changes during the test: it learns the new
    // key only from a token that names it.
    s.extra_env.push(("CONCORDIA_POLICY_REFRESH_MS".into(), "600000".into()));
    let slow = s.another_node();
    s.extra_env.pop();
    let s = s;
    let page = |next: Option<&str>| {
        let q = next.map_or(String::new(), |n| format!("&next={}", urlencode(n)));
        s.get(&format!("{}?limit=1{q}", objects_path(SHARED)), &as_("dave"))
    };
    let first = page(None).json();
    let t1 = first["next"].as_str().unwrap().to_owned();
    let (ok, out, err) = s.cli(&["rotate-key", "--grace-hours", "1"], None);
    assert!(ok, "{err}");
    assert!(out.contains("rotated"), "{out}");
    let kid1 = key_id(&t1);
    assert!(out.contains(&kid1), "the old key id is named: {out}");
    assert!(wait_until(|| {
        let r = page(None);
        r.status == 200 && key_id(r.json()["next"].as_str().unwrap()) != kid1
    }));
    // The poller in the middle of its run goes on.
    let second = page(Some(&t1));
    second.expect(200);
    let t2 = second.json()["next"].as_str().unwrap().to_owned();
    assert_ne!(key_id(&t2), kid1, "new tokens are signed with the new key");
    // The other node has not refreshed, yet pages on with the token the first node signed.
    let r = slow.get(&format!("{}?limit=1&next={}", objects_path(SHARED), urlencode(&t2)), &as_("dave"));
    r.expect(200);
    // Rotating again within the grace period is refused unless forced...
    let (ok, _, err) = s.cli(&["rotate-key", "--grace-hours", "0"], None);
    assert!(!ok && err.contains("--force"), "{err}");
    // ...and then, with no grace, retires the second key at once; the first is unknown now.
    let (ok, _, err) = s.cli(&["rotate-key", "--grace-hours", "0", "--force"], None);
    assert!(ok, "{err}");
    let kid2 = key_id(&t2);
    assert!(wait_until(|| page(None).json()["next"].as_str().is_some_and(|n| key_id(n) != kid2)));
    let r = page(Some(&t2));
    r.expect(400);
    assert_eq!(r.json()["error_code"], "invalid_next");
    assert!(r.json()["description"].as_str().unwrap().contains("retired"), "{}", r.text());
    page(Some(&t1)).expect(400);
    // The rotations are operator actions in the audit trail.
    let (_, out, _) = s.cli(&["audit", "export"], None);
    assert_eq!(out.matches("\"rotate_key\"").count(), 2, "{out}");
}

/// A key rotated in the configuration: the old key in server_key_previous keeps its tokens
/// valid until server_key_previous_until.
#[test]
fn configured_keys_rotate_with_server_key_previous() {
    let k1 = "first-server-key-0123456789abcdef0123";
    let k2 = "second-server-key-0123456789abcdef012";
    let mut s = limits_server(&[("CONCORDIA_SERVER_KEY", k1)]);
    s.add("r", SHARED, &as_("dave"), &[malware(&new_id("malware")), malware(&new_id("malware"))]);
    let path = format!("{}?limit=1", objects_path(SHARED));
    let t1 = s.get(&path, &as_("dave")).json()["next"].as_str().unwrap().to_owned();
    let with_next = |s: &TestServer| s.get(&format!("{path}&next={}", urlencode(&t1)), &as_("dave"));
    s.extra_env = vec![
        ("CONCORDIA_SERVER_KEY".into(), k2.into()),
        ("CONCORDIA_SERVER_KEY_PREVIOUS".into(), k1.into()),
        ("CONCORDIA_SERVER_KEY_PREVIOUS_UNTIL".into(), "2099-01-01T00:00:00Z".into()),
    ];
    s.restart();
    with_next(&s).expect(200);
    s.extra_env[2].1 = "2020-01-01T00:00:00Z".into();
    s.restart();
    let r = with_next(&s);
    r.expect(400);
    assert!(r.text().contains("retired"), "{}", r.text());
    // Without the previous key the token is simply not ours.
    s.extra_env.truncate(1);
    s.restart();
    with_next(&s).expect(400);
}

/// Passwords in database URLs never print: not in check-config, not in an error.
#[test]
fn database_passwords_are_masked_and_secrets_come_from_files() {
    let out = std::process::Command::new(BIN)
        .arg("check-config")
        .env("CONCORDIA_DATABASE_URL", "postgres://hub:s3cret-pw@db.example:5432/hub?password=other-s3cret")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("postgres://hub:***@db.example:5432/hub?password=***"), "{text}");
    // An unreachable database: the error names the URL, masked.
    let out = std::process::Command::new(BIN)
        .args(["--database-url", "postgres://hub:s3cret-pw@127.0.0.1:1/hub", "migrate"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("hub:***@127.0.0.1:1"), "{text}");
    // Every secret may come from a file; both at once is refused.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-url");
    std::fs::write(&file, format!("sqlite://{}\n", dir.path().join("from-file.db").display())).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a-metrics-token-from-a-file\n").unwrap();
    let out =
        std::process::Command::new(BIN).arg("migrate").env("CONCORDIA_DATABASE_URL_FILE", &file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("from-file.db").exists());
    let out = std::process::Command::new(BIN)
        .arg("check-config")
        .env("CONCORDIA_METRICS_TOKEN_FILE", &token)
        .env("CONCORDIA_METRICS_TOKEN", "another-token-0123456789")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set metrics_token or metrics_token_file, not both"));
}

/// What `durability` promises against the death of the process: with either setting, every
/// object acknowledged (202) before a `kill -9` is there after the restart.
#[test]
fn acknowledged_writes_survive_kill_9_with_either_durability() {
    for durability in ["normal", "full"] {
        let mut s = limits_server(&[("CONCORDIA_DURABILITY", durability)]);
        let url = format!("{}{}", s.base, objects_path(SHARED));
        let auth = basic_header("dave", "pw-dave-secret");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let batch: Vec<Value> = (0..20).map(|_| malware(&new_id("malware"))).collect();
                    let ids: Vec<String> = batch.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
                    let body = serde_json::to_vec(&json!({ "objects": batch })).unwrap();
                    let r = agent
                        .post(&url)
                        .set("Authorization", &auth)
                        .set("Accept", TAXII)
                        .set("Content-Type", TAXII)
                        .send_bytes(&body);
                    match r {
                        Ok(r) if r.status() == 202 => {
                            let status: Value = r.into_json().unwrap();
                            assert_eq!(status["success_count"], 20, "{status}");
                            acknowledged.extend(ids);
                        }
                        _ => break, // the server died under this request: not acknowledged
                    }
                }
                acknowledged
            })
        };
        std::thread::sleep(Duration::from_millis(1500));
        s.stop(); // SIGKILL, in the middle of the writes
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let acknowledged = writer.join().unwrap();
        assert!(acknowledged.len() >= 100, "{durability}: only {} objects written before the kill", acknowledged.len());
        s.spawn();
        let stored: std::collections::HashSet<String> = s
            .read_all(&objects_path(SHARED), &as_("dave"), 1000)
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect();
        let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
        println!(
            "durability {durability}: {} objects acknowledged before kill -9, {} lost",
            acknowledged.len(),
            lost.len()
        );
        assert!(lost.is_empty(), "{durability}: {} acknowledged objects lost, e.g. {:?}", lost.len(), lost.first());
    }
}

/// Upgrading a database that holds objects to the integer collection key (migration
/// `integer_collection_key`) keeps every object, its versions and its position, and positions
/// go on increasing from where they were. The down migration is run first, on the same data,
/// so both directions are exercised; the versions then get their filter postings from the
/// `filter_postings` migration's backfill.
#[test]
fn upgrade_to_integer_collection_keys_keeps_every_object_and_position() {
    use diesel_migrations::MigrationHarness as _;
    let mut s = base_server();
    let id = new_id("indicator");
    let mut objs: Vec<Value> = (0..5).map(|_| indicator(&new_id("indicator"), "2021-01-01T00:00:00.000Z")).collect();
    objs.push(indicator(&id, "2021-01-01T00:00:00.000Z"));
    s.add("r", SHARED, &as_("alice"), &objs);
    s.add("r", SHARED, &as_("alice"), &[indicator(&id, "2022-01-01T00:00:00.000Z")]);
    s.add("r", PRIVATE, &as_("alice"), &[malware(&new_id("malware"))]);
    let manifest = |s: &TestServer, col: &str| -> Vec<Value> {
        let r = s.get(&format!("/r/collections/{col}/manifest/?match[version]=all"), &as_("alice"));
        r.expect(200);
        r.json()["objects"].as_array().cloned().unwrap_or_default()
    };
    let (shared_before, private_before) = (manifest(&s, SHARED), manifest(&s, PRIVATE));
    assert_eq!((shared_before.len(), private_before.len()), (7, 1));
    let versions_before = s.get(&format!("{}{id}/versions/", objects_path(SHARED)), &as_("alice")).json();

    s.stop();
    let url = concordia::storage::DbUrl::parse(&s.db_url()).unwrap();
    let mut c = concordia::storage::open(&url).unwrap();
    let mut revert = || match &mut c {
        concordia::storage::AnyConnection::Sqlite(c) => {
            c.revert_last_migration(concordia::storage::SQLITE_MIGRATIONS).unwrap().to_string()
        }
        concordia::storage::AnyConnection::Postgresql(c) => {
            c.revert_last_migration(concordia::storage::PG_MIGRATIONS).unwrap().to_string()
        }
    };
    let postings = revert();
    assert!(postings.starts_with("20261207"), "the filter postings' migration goes first: {postings}");
    let console = revert();
    assert!(console.starts_with("20261206"), "then the console's: {console}");
    let feeds = revert();
    assert!(feeds.starts_with("20261205"), "then the feeds migration: {feeds}");
    let reverted = revert();
    assert!(reverted.starts_with("20261204"), "then the integer key: {reverted}");
    // Down: the objects carry the collection id again.
    assert_eq!(
        sql_text(&s.db_url(), &format!("(SELECT count(*) || '' FROM objects WHERE collection_id = '{SHARED}')")),
        "7"
    );
    let ran = concordia::storage::migrate(&mut c).unwrap();
    assert_eq!(ran.len(), 4, "{ran:?}");
    drop(c);
    assert_eq!(
        sql_text(
            &s.db_url(),
            &format!(
                "(SELECT count(*) || '' FROM objects o JOIN collection_clock k ON k.collection_key = o.collection_key \
                 WHERE k.collection_id = '{SHARED}')"
            )
        ),
        "7"
    );

    s.spawn();
    assert_eq!(manifest(&s, SHARED), shared_before);
    assert_eq!(manifest(&s, PRIVATE), private_before);
    assert_eq!(s.get(&format!("{}{id}/versions/", objects_path(SHARED)), &as_("alice")).json(), versions_before);
    // The versions stored before the filter postings got theirs when the database was migrated
    // (unmarked objects pass a TLP ceiling: all of them, read through the postings).
    let r = s.get(&format!("/r/collections/{SHARED}/manifest/?match[version]=all&match[tlp]=white"), &as_("alice"));
    assert_eq!(r.json()["objects"].as_array().map(Vec::len), Some(7), "{}", r.text());
    // One lookup by id through the re-keyed version index, and a new version after the last.
    let r = s.get(&format!("{}{id}/", objects_path(SHARED)), &as_("alice"));
    r.expect(200);
    assert_eq!(r.json()["objects"][0]["modified"], "2022-01-01T00:00:00.000Z");
    s.add("r", SHARED, &as_("alice"), &[indicator(&id, "2023-01-01T00:00:00.000Z")]);
    let after = manifest(&s, SHARED);
    assert_eq!(after.len(), 8);
    let last_before = shared_before.iter().filter_map(|m| m["date_added"].as_str()).max().unwrap().to_owned();
    assert!(after[7]["date_added"].as_str().unwrap() > last_before.as_str(), "{after:#?}");
    assert_eq!(after[7]["version"], "2023-01-01T00:00:00.000Z");
}
