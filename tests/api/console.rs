//! The operator console (issue 15) over real HTTP: sessions, CSRF, the login limit, idle
//! timeout, the pages' data, and that the console never shows data without a session. The
//! journeys in a real browser are in tests/browser (run by .ci/run).

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const OPERATOR: &str = "op-anna";
const OPERATOR_PW: &str = "console-password-1";

/// A browser-like client of the console: no redirects followed, one cookie kept.
struct Browser {
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    content_type: String,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser { base: base.to_owned(), cookie: None, csrf: None }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<(&str, &[u8])>) -> Page {
        let agent = ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(60)).build();
        let mut req = agent.request(method, &format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", &format!("concordia_console={c}"));
        }
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some((ct, b)) => req.set("Content-Type", ct).send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let page = Page {
            status: resp.status(),
            location: resp.header("location").map(str::to_owned),
            set_cookie: resp.header("set-cookie").map(str::to_owned),
            content_type: resp.header("content-type").unwrap_or_default().to_owned(),
            body: resp.into_string().unwrap_or_default(),
        };
        if let Some(sc) = &page.set_cookie {
            let value = sc.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_owned());
            self.cookie = value.filter(|v| !v.is_empty());
        }
        if let Some(t) = csrf_in(&page.body) {
            self.csrf = Some(t);
        }
        page
    }

    fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, &[], None)
    }

    /// A form POST as the console's own page sends it (same origin, with the CSRF token).
    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone().unwrap_or_default();
        all.push(("csrf", &csrf));
        let body = form(&all);
        let origin = self.base.clone();
        self.send("POST", path, &[("Origin", &origin)], Some(("application/x-www-form-urlencoded", body.as_bytes())))
    }

    fn login(&mut self, name: &str, password: &str) -> Page {
        let body = form(&[("name", name), ("password", password)]);
        let origin = self.base.clone();
        let page = self.send(
            "POST",
            "/console/login",
            &[("Origin", &origin)],
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        );
        if page.status == 303 {
            // The front page carries the session's CSRF token (in the sign-out form).
            let front = self.get("/console/");
            assert_eq!(front.status, 200, "{}", front.body);
        }
        page
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

fn csrf_in(html: &str) -> Option<String> {
    let at = html.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    Some(html.get(at..at + 64)?.to_owned())
}

/// BASE_POLICY with a password for every partner, the console on, and one operator.
fn console_server(env: &[(&str, &str)]) -> TestServer {
    let mut all = vec![("CONCORDIA_CONSOLE", "true")];
    all.extend_from_slice(env);
    let s = TestServer::start_with(BASE_POLICY, &all);
    for p in ["alice", "bob", "carol", "dave"] {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    let (ok, out, err) = s.cli(&["operator", "add", OPERATOR, "--password-stdin"], Some(&format!("{OPERATOR_PW}\n")));
    assert!(ok, "operator add: {out}{err}");
    s
}

fn signed_in(s: &TestServer) -> Browser {
    let mut b = Browser::new(&s.base);
    let p = b.login(OPERATOR, OPERATOR_PW);
    assert_eq!(p.status, 303, "login: {}", p.body);
    b
}

fn audit_actions(s: &TestServer) -> Vec<serde_json::Value> {
    let (ok, out, err) = s.cli(&["audit", "export"], None);
    assert!(ok, "{err}");
    out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Every console page, and the export.
fn console_paths() -> Vec<String> {
    vec![
        "/console/".into(),
        "/console".into(),
        "/console/access".into(),
        format!("/console/access?collection={SHARED}"),
        format!("/console/access/cell?partner=alice&collection={SHARED}"),
        "/console/policy".into(),
        "/console/credentials".into(),
        "/console/audit".into(),
        "/console/audit/recipients?object_id=indicator--11111111-1111-4111-8111-111111111111".into(),
        "/console/audit/export?format=csv".into(),
        "/console/audit/export?format=jsonl".into(),
        format!("/console/collections/{SHARED}"),
        format!("/console/collections/{SHARED}/objects/indicator--11111111-1111-4111-8111-111111111111"),
        "/console/live".into(),
        "/console/no-such-page".into(),
        "/console/credentials/x/revoke".into(),
    ]
}

#[test]
fn the_console_is_off_by_default() {
    let s = base_server();
    // `/console/` is then an API root's URL, and no API root may be named console.
    let r = s.get("/console/", &as_("alice"));
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("<html"), "no console page when it is off");
    assert_eq!(s.get("/console/login", &Auth::None).status, 404);
    let (ok, _, err) = s.cli(&["operator", "add", "x-op", "--password-stdin"], Some("long-enough-password\n"));
    assert!(ok, "operators can be provisioned before the console is turned on: {err}");
}

#[test]
fn without_a_session_every_console_page_redirects_to_the_login_page_and_partner_credentials_do_not_open_it() {
    let s = console_server(&[]);
    let alice = basic_header("alice", "pw-alice-secret");
    for path in console_paths() {
        for (what, headers) in [
            ("no credentials", vec![]),
            ("a partner's Basic credentials", vec![("Authorization", alice.as_str())]),
            (
                "a forged session cookie",
                vec![("Cookie", "concordia_console=00000000000000000000000000000000000000000000000000000000000000ff")],
            ),
        ] {
            let mut b = Browser::new(&s.base);
            let p = b.send("GET", &path, &headers, None);
            assert_eq!(p.status, 303, "{path} with {what}: {}", p.body);
            let to = p.location.unwrap_or_default();
            assert!(to == "/console/login" || (path == "/console" && to == "/console/"), "{path}: to {to}");
            assert!(p.body.is_empty(), "{path} with {what} answered data: {}", p.body);
        }
    }
    // A partner's name and password are not an operator's.
    let mut b = Browser::new(&s.base);
    let p = b.login("alice", "pw-alice-secret");
    assert_eq!(p.status, 401);
    assert!(p.body.contains(r#"role="alert""#) && p.body.contains("Unknown operator or wrong password"));
    assert!(p.set_cookie.is_none());
    // A POST without a session changes nothing.
    let id = credential_id(&s, "bob");
    let p = Browser::new(&s.base).send(
        "POST",
        &format!("/console/credentials/{id}/revoke"),
        &[],
        Some(("application/x-www-form-urlencoded", b"csrf=x")),
    );
    assert_eq!(p.status, 303);
    s.get(&objects_path(SHARED), &as_("bob")).expect(200);
}

#[test]
fn an_operator_signs_in_with_a_secure_cookie_and_signs_out_and_both_are_audited() {
    let s = console_server(&[]);
    let mut b = Browser::new(&s.base);
    let bad = b.login(OPERATOR, "wrong-password-123");
    assert_eq!(bad.status, 401);
    assert!(bad.body.contains(r#"role="alert""#));
    let p = b.login(OPERATOR, OPERATOR_PW);
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/console/"));
    let cookie = p.set_cookie.expect("a session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let token = b.cookie.clone().expect("token");
    assert_eq!(token.len(), 64);
    let stored = sql_text(&s.db_url(), "(SELECT token_hash FROM console_sessions)");
    assert!(!stored.contains(&token), "the database keeps only a hash of the token");
    for path in ["/console/", "/console/access", "/console/policy", "/console/credentials", "/console/audit"] {
        let page = b.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert!(page.content_type.starts_with("text/html"));
        assert!(page.body.contains(&format!("Signed in as <strong>{OPERATOR}</strong>")));
    }
    // Sign out needs the token too.
    let saved = b.csrf.take();
    assert_eq!(b.post("/console/logout", &[]).status, 403);
    b.csrf = saved;
    let out = b.post("/console/logout", &[]);
    assert_eq!(out.status, 303);
    assert_eq!(out.location.as_deref(), Some("/console/login"));
    b.cookie = Some(token);
    assert_eq!(b.get("/console/").status, 303, "the old cookie no longer opens the console");

    let records = audit_actions(&s);
    let by = |action: &str| records.iter().filter(|r| r["action"] == action).cloned().collect::<Vec<_>>();
    let logins = by("console_login");
    assert!(logins.iter().any(|r| r["kind"] == "operator" && r["credential_id"] == format!("console:{OPERATOR}")));
    // The failed sign-in goes through the node's appender: committed within its window.
    assert!(
        wait_until(|| audit_actions(&s).iter().any(|r| r["action"] == "console_login" && r["kind"] == "auth_failure")),
        "the failed login is recorded: {logins:?}"
    );
    assert_eq!(by("console_logout").len(), 1);
    assert!(records.iter().any(|r| r["action"] == "operator_add"));
}

fn credential_id(s: &TestServer, partner: &str) -> String {
    let (ok, out, err) = s.cli(&["credential", "list", partner], None);
    assert!(ok, "{err}");
    out.lines().nth(1).and_then(|l| l.split_whitespace().next()).expect("a credential").to_owned()
}

#[test]
fn revoking_a_credential_refuses_cross_site_posts_and_then_the_partners_next_request_gets_401() {
    let s = console_server(&[]);
    let mut b = signed_in(&s);
    let id = credential_id(&s, "bob");
    s.get(&objects_path(SHARED), &as_("bob")).expect(200);
    let confirm = b.get(&format!("/console/credentials/{id}/revoke"));
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Revoke credential") && confirm.body.contains(&id));
    let path = format!("/console/credentials/{id}/revoke");
    let csrf = b.csrf.clone().expect("csrf");
    // A cross-site form post carries the cookie (same site, other port) but not the token.
    let body = b"csrf=wrong";
    let p =
        b.send("POST", &path, &[("Origin", "http://evil.example")], Some(("application/x-www-form-urlencoded", body)));
    assert_eq!(p.status, 403);
    // The right token from another origin, or marked cross-site by the browser: refused too.
    let with_token = format!("csrf={csrf}");
    for headers in [
        vec![("Origin", "http://localhost:1")],
        vec![("Origin", "null")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Sec-Fetch-Site", "same-site")],
    ] {
        let p = b.send("POST", &path, &headers, Some(("application/x-www-form-urlencoded", with_token.as_bytes())));
        assert_eq!(p.status, 403, "{headers:?}");
        assert!(p.body.contains("CSRF"));
    }
    s.get(&objects_path(SHARED), &as_("bob")).expect(200);
    assert!(
        wait_until(|| audit_actions(&s).iter().any(|r| r["action"] == "console_refused_post"
            && r["kind"] == "auth_failure"
            && r["credential_id"] == format!("console:{OPERATOR}"))),
        "refused POSTs are in the audit trail"
    );
    // From the console's own page: revoked; bob's next request is refused at once.
    let done = b.post(&path, &[]);
    assert_eq!(done.status, 303, "{}", done.body);
    s.get(&objects_path(SHARED), &as_("bob")).expect(401);
    let list = b.get("/console/credentials?done=revoked");
    assert!(list.body.contains(r#"role="status""#));
    assert!(list.body.contains("revoked"));
    // Revoking again: not an active credential.
    assert_eq!(b.post(&path, &[]).status, 404);
    let rec = audit_actions(&s).into_iter().find(|r| r["action"] == "credential_revoke").expect("recorded");
    assert_eq!(rec["credential_id"], format!("console:{OPERATOR}"));
    assert!(rec["detail"].as_str().unwrap_or_default().contains(&id));
}

#[test]
fn an_api_key_created_in_the_console_is_shown_once_and_works_and_expiring_a_credential_ends_it() {
    let s = console_server(&[]);
    let mut b = signed_in(&s);
    let p = b.post("/console/credentials/api-key", &[("partner", "bob"), ("label", "siem <feed>"), ("expires", "")]);
    assert_eq!(p.status, 200, "{}", p.body);
    let at = p.body.find("cnc_").expect("the key is shown");
    let key: String =
        p.body[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    s.get(&objects_path(SHARED), &Auth::Bearer(key.clone())).expect(200);
    let list = b.get("/console/credentials");
    assert!(!list.body.contains(&key), "the key is never shown again");
    assert!(list.body.contains("siem &lt;feed&gt;"), "labels are escaped");
    // Expire it now.
    let (ok, out, _) = s.cli(&["credential", "list", "bob"], None);
    assert!(ok);
    let key_id = out.lines().find(|l| l.contains("api_key")).and_then(|l| l.split_whitespace().next()).expect("id");
    let bad = b.post(&format!("/console/credentials/{key_id}/expire"), &[("at", "tomorrow")]);
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains(r#"role="alert""#));
    assert_eq!(b.post(&format!("/console/credentials/{key_id}/expire"), &[("at", "")]).status, 303);
    s.get(&objects_path(SHARED), &Auth::Bearer(key)).expect(401);
    // An unknown partner.
    assert_eq!(b.post("/console/credentials/api-key", &[("partner", "nobody")]).status, 404);
    // An expired credential cannot be made usable again by a later expiry.
    let again = b.post(&format!("/console/credentials/{key_id}/expire"), &[("at", "2099-01-01T00:00")]);
    assert_eq!(again.status, 422, "{}", again.body);
    assert!(again.body.contains("create a new credential"));
}

#[test]
fn a_session_ends_after_the_idle_timeout() {
    let s = console_server(&[("CONCORDIA_CONSOLE_IDLE_TIMEOUT_SECONDS", "2")]);
    let mut b = signed_in(&s);
    assert_eq!(b.get("/console/access").status, 200);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(b.get("/console/access").status, 200, "use keeps the session alive");
    std::thread::sleep(Duration::from_millis(3000));
    let p = b.get("/console/access");
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/console/login"));
    assert!(p.body.is_empty());
    // An overview left open polls the live traffic every 5 s: that is not use.
    let mut b = signed_in(&s);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(b.send("GET", "/console/live", &[("HX-Request", "true")], None).status, 200);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let p = b.send("GET", "/console/live", &[("HX-Request", "true")], None);
    assert_eq!(p.status, 401, "the poll finds the session ended");
    assert!(p.body.is_empty());
    assert_eq!(b.get("/console/").status, 303);
}

#[test]
fn failed_operator_logins_are_limited_per_address_and_name() {
    let s = console_server(&[("CONCORDIA_LOGIN_FAILURES_PER_ADDRESS_AND_NAME", "3")]);
    let mut b = Browser::new(&s.base);
    for _ in 0..3 {
        assert_eq!(b.login(OPERATOR, "wrong-password-123").status, 401);
    }
    let p = b.login(OPERATOR, OPERATOR_PW);
    assert_eq!(p.status, 429, "over the limit even the right password waits");
    assert!(p.body.contains("Too many failed sign-ins"));
    // Another name from the same address is not locked out by these failures.
    let (ok, _, err) = s.cli(&["operator", "add", "op-ben", "--password-stdin"], Some("another-password-1\n"));
    assert!(ok, "{err}");
    assert_eq!(Browser::new(&s.base).login("op-ben", "another-password-1").status, 303);
}

#[test]
fn the_access_matrix_names_each_partners_rights_and_the_groups_that_grant_them() {
    let s = console_server(&[]);
    let mut b = signed_in(&s);
    let m = b.get("/console/access");
    for (label, _) in [
        ("alice on Shared: read+write", ()),
        ("bob on Shared: read", ()),
        ("carol on Shared: write", ()),
        ("dave on Shared: none", ()),
        ("bob on Alice only: none", ()),
    ] {
        assert!(m.body.contains(&format!(r#"aria-label="{label}""#)), "missing {label}");
    }
    let one = b.get(&format!("/console/access?collection={SHARED}"));
    let list_at = one.body.find(r#"aria-label="Partners who can read""#).expect("the readers list");
    let list = &one.body[list_at..one.body[list_at..].find("</ul>").map_or(one.body.len(), |e| list_at + e)];
    assert!(list.contains("alice") && list.contains("bob"));
    assert!(!list.contains("carol") && !list.contains("dave"));
    let cell = b.get(&format!("/console/access/cell?partner=bob&collection={SHARED}"));
    assert_eq!(cell.status, 200);
    assert!(cell.body.contains("Groups granting bob access to Shared"));
    assert!(cell.body.contains("<li>ab: read</li>"), "{}", cell.body);
    // htmx asks for the fragment only.
    let frag = b.send(
        "GET",
        &format!("/console/access/cell?partner=alice&collection={PRIVATE}"),
        &[("HX-Request", "true")],
        None,
    );
    assert!(frag.body.starts_with("<section"), "{}", frag.body);
    assert!(frag.body.contains("<li>a: read+write</li>"));
    assert_eq!(b.get(&format!("/console/access/cell?partner=nobody&collection={SHARED}")).status, 404);
    assert_eq!(b.get("/console/access?collection=nope").status, 404);
}

#[test]
fn the_policy_preview_shows_the_plan_and_changes_nothing() {
    let s = console_server(&[]);
    let mut b = signed_in(&s);
    let changed = format!("{BASE_POLICY}\n[[partners]]\nname = \"erin\"\n");
    let p = b.post("/console/policy/preview", &[("policy", &changed)]);
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains(r#"aria-label="Changes""#));
    assert!(p.body.contains("erin"), "{}", p.body);
    let (ok, _, _) = s.cli(&["access", "erin"], None);
    assert!(!ok, "a preview applies nothing");
    let same = b.post("/console/policy/preview", &[("policy", BASE_POLICY)]);
    assert!(same.body.contains("No changes"));
    let bad = b.post("/console/policy/preview", &[("policy", "[[partners]\nname=")]);
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains(r#"role="alert""#));
    // As an uploaded file (multipart), as the browser sends it.
    let csrf = b.csrf.clone().expect("csrf");
    let boundary = "XyZboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.toml\"\r\nContent-Type: application/toml\r\n\r\n{changed}\r\n--{boundary}--\r\n"
    );
    let origin = s.base.clone();
    let up = b.send(
        "POST",
        "/console/policy/preview",
        &[("Origin", &origin)],
        Some((&format!("multipart/form-data; boundary={boundary}"), body.as_bytes())),
    );
    assert_eq!(up.status, 200, "{}", up.body);
    assert!(up.body.contains("erin"));
    // Recorded through the node's appender, committed within its window.
    assert!(wait_until(|| audit_actions(&s).iter().any(|r| r["action"] == "console_policy_preview")));
}

#[test]
fn the_recipients_of_an_object_a_partner_just_polled_and_the_collection_views() {
    let s = console_server(&[]);
    let id = new_id("indicator");
    let mut obj = indicator(&id, "2026-01-01T00:00:00.000Z");
    obj["name"] = json!("<script>alert(1)</script>");
    s.add("r", SHARED, &as_("alice"), &[obj]);
    s.get(&objects_path(SHARED), &as_("bob")).expect(200);
    let mut b = signed_in(&s);
    // The read's record is committed within the audit window.
    assert!(wait_until(|| {
        let p = b.get(&format!("/console/audit/recipients?object_id={id}"));
        p.status == 200 && p.body.contains("<th scope=\"row\">bob</th>")
    }));
    let p = b.get(&format!("/console/audit/recipients?object_id={id}"));
    assert!(p.body.contains(&format!("Recipients of {id}")));
    assert!(!p.body.contains("<th scope=\"row\">dave</th>"));
    assert_eq!(b.get("/console/audit/recipients?object_id=not-an-id").status, 400);
    let col = b.get(&format!("/console/collections/{SHARED}"));
    assert!(col.body.contains(&id));
    let one = b.get(&format!("/console/collections/{SHARED}/objects/{id}"));
    assert_eq!(one.status, 200);
    assert!(one.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "object text is escaped");
    assert!(!one.body.contains("<script>alert(1)"));
    // The audit search and its exports.
    let search = b.get("/console/audit?partner=bob&action=get_objects");
    assert!(search.body.contains("record(s) match"));
    assert!(search.body.contains("get_objects"));
    let csv = b.get("/console/audit/export?format=csv&partner=bob");
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"));
    assert!(csv.body.starts_with("block,chain,seq,time,kind,partner"));
    assert!(csv.body.lines().skip(1).all(|l| l.contains(",bob,")), "{}", csv.body);
    // A name typed at the login page reaches the trail; in a CSV it must not become a formula.
    assert_eq!(Browser::new(&s.base).login("=1+2", "whatever-it-is").status, 401);
    assert!(wait_until(|| {
        let csv = b.get("/console/audit/export?format=csv&action=console_login");
        csv.body.contains(",'=1+2,") && !csv.body.contains(",=1+2,")
    }));
    let jsonl = b.get("/console/audit/export?format=jsonl");
    assert!(jsonl.body.lines().count() >= 2);
    assert!(jsonl.body.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    let actions: Vec<String> =
        audit_actions(&s).iter().map(|r| r["action"].as_str().unwrap_or_default().to_owned()).collect();
    for a in ["console_recipients", "console_collection_view", "console_object_view", "console_audit_export"] {
        assert!(wait_until(|| audit_actions(&s).iter().any(|r| r["action"] == a)), "{a} not recorded: {actions:?}");
    }
    // The overview counts the object and bob's poll.
    let o = b.get("/console/");
    assert!(o.body.contains("Objects per collection"));
}

#[test]
fn the_console_on_its_own_listener_is_not_on_the_taxii_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let s = console_server(&[("CONCORDIA_CONSOLE_LISTEN", listen.as_str())]);
    let r = s.get("/console/login", &Auth::None);
    assert_eq!(r.status, 404, "no console on the TAXII listener");
    let base = format!("http://{listen}");
    let mut b = Browser::new(&base);
    assert!(wait_until(|| b.get("/console/login").status == 200));
    assert_eq!(b.login(OPERATOR, OPERATOR_PW).status, 303);
    assert_eq!(b.get("/console/access").status, 200);
    let taxii = Browser::new(&base).send(
        "GET",
        "/taxii2/",
        &[("Authorization", &basic_header("alice", "pw-alice-secret"))],
        None,
    );
    assert_eq!(taxii.status, 404, "no TAXII on the console listener");
}

#[test]
fn operator_accounts_on_the_command_line() {
    let s = console_server(&[]);
    let (ok, _, err) = s.cli(&["operator", "add", "short-op", "--password-stdin"], Some("short\n"));
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, _, err) = s.cli(&["operator", "add", OPERATOR, "--password-stdin"], Some("yet-another-password\n"));
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = s.cli(&["operator", "add", "Bad Name", "--password-stdin"], Some("yet-another-password\n"));
    assert!(!ok && err.contains("not a valid operator name"), "{err}");
    let fp = format!("sha256:{}", "ab".repeat(32));
    let (ok, _, err) = s.cli(&["operator", "add", "cert-op", "--certificate", &fp], None);
    assert!(ok, "{err}");
    let (ok, out, _) = s.cli(&["operator", "list"], None);
    assert!(ok && out.contains(OPERATOR) && out.contains(&fp));
    // A certificate-only operator has no password that opens the console.
    assert_eq!(Browser::new(&s.base).login("cert-op", "").status, 401);
    let mut b = signed_in(&s);
    let (ok, _, err) = s.cli(&["operator", "remove", OPERATOR], None);
    assert!(ok, "{err}");
    assert_eq!(b.get("/console/").status, 303, "removing an operator ends its sessions");
    let (ok, _, err) = s.cli(&["operator", "remove", OPERATOR], None);
    assert!(!ok && err.contains("not found"));
    assert!(audit_actions(&s).iter().any(|r| r["action"] == "operator_remove"));
}
