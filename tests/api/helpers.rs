//! Test harness: a real `concordia` process on 127.0.0.1:0 with a fresh SQLite file, provisioned
//! through the real CLI, and a plain HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_concordia");
pub const TAXII: &str = "application/taxii+json;version=2.1";

/// A running server and its database.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    child: Option<Child>,
    pub extra_env: Vec<(String, String)>,
    db_url: String,
    /// The PostgreSQL server and database this server created (dropped with it).
    pg_database: Option<(String, String)>,
}

/// `CONCORDIA_TEST_PG=postgres://user@host:port` runs every test on a fresh PostgreSQL database
/// of that server instead of a fresh SQLite file.
pub fn test_pg() -> Option<String> {
    std::env::var("CONCORDIA_TEST_PG").ok().filter(|v| !v.is_empty()).map(|v| v.trim_end_matches('/').to_owned())
}

fn pg_admin(base: &str, sql: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut c = diesel::pg::PgConnection::establish(&format!("{base}/postgres"))
        .unwrap_or_else(|e| panic!("CONCORDIA_TEST_PG is set but PostgreSQL is not reachable at {base}: {e}"));
    diesel::sql_query(sql).execute(&mut c).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs a one-value SQL query on a server's database (either backend).
pub fn sql_text(db_url: &str, sql: &str) -> String {
    use diesel::RunQueryDsl;
    let url = concordia::storage::DbUrl::parse(db_url).unwrap();
    let mut c = concordia::storage::open(&url).unwrap();
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(sql)).get_result(&mut c).unwrap()
}

/// Runs one SQL statement on a server's database (either backend); the error text if it fails.
pub fn sql_exec(db_url: &str, sql: &str) -> Result<usize, String> {
    use diesel::RunQueryDsl;
    let url = concordia::storage::DbUrl::parse(db_url).unwrap();
    let mut c = concordia::storage::open(&url).unwrap();
    diesel::sql_query(sql).execute(&mut c).map_err(|e| e.to_string())
}

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
    Raw(String),
}

impl Auth {
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic(user.to_owned(), password.to_owned())
    }

    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic(u, p) => {
                Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))))
            }
            Auth::Bearer(k) => Some(format!("Bearer {k}")),
            Auth::Raw(h) => Some(h.clone()),
        }
    }
}

/// A response: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status and that the body is a TAXII resource with the TAXII content type.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        assert_eq!(self.header("content-type"), Some(TAXII), "every response is application/taxii+json;version=2.1");
        if status >= 400 {
            let e = self.json();
            assert!(e["title"].is_string(), "error resource needs a title: {e}");
            assert_eq!(e["http_status"], Value::String(status.to_string()), "http_status matches (T-252)");
        }
        self
    }
}

impl TestServer {
    /// Provisions `policy` into a fresh database and starts the server.
    pub fn start(policy: &str) -> TestServer {
        Self::start_with(policy, &[])
    }

    pub fn start_with(policy: &str, env: &[(&str, &str)]) -> TestServer {
        Self::start_on(test_pg().as_deref(), policy, env)
    }

    /// Like [`TestServer::start_with`], on a fresh database of the PostgreSQL server `pg`
    /// (`postgres://user@host:port`), or on a fresh SQLite file when `pg` is `None`.
    pub fn start_on(pg: Option<&str>, policy: &str, env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db_url, pg_database) = match pg.map(str::to_owned) {
            Some(base) => {
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                pg_admin(&base, &format!("CREATE DATABASE {name}"));
                (format!("{base}/{name}"), Some((base, name)))
            }
            None => (format!("sqlite://{}", dir.path().join("concordia.db").display()), None),
        };
        let mut s = TestServer {
            dir,
            base: String::new(),
            child: None,
            extra_env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            db_url,
            pg_database,
        };
        s.apply(policy);
        s.spawn();
        s
    }

    pub fn db_url(&self) -> String {
        self.db_url.clone()
    }

    pub fn is_postgres(&self) -> bool {
        self.db_url.starts_with("postgres")
    }

    /// Another server process on the same database (another node behind a load balancer).
    pub fn another_node(&self) -> TestServer {
        let mut s = TestServer {
            dir: tempfile::tempdir().expect("tempdir"),
            base: String::new(),
            child: None,
            extra_env: self.extra_env.clone(),
            db_url: self.db_url.clone(),
            pg_database: None,
        };
        s.spawn();
        s
    }

    /// Runs the CLI against this server's database.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(BIN);
        cmd.arg("--database-url").arg(self.db_url()).args(args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn concordia");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn apply(&self, policy: &str) -> String {
        let path: PathBuf = self.dir.path().join("policy.toml");
        std::fs::write(&path, policy).expect("write policy");
        let (ok, out, err) = self.cli(&["apply", path.to_str().expect("utf-8 path")], None);
        assert!(ok, "apply failed: {out}{err}");
        out
    }

    pub fn add_password(&self, partner: &str, password: &str) {
        let (ok, out, err) =
            self.cli(&["credential", "add", partner, "--password-stdin"], Some(&format!("{password}\n")));
        assert!(ok, "credential add failed: {out}{err}");
    }

    pub fn add_api_key(&self, partner: &str) -> String {
        let (ok, out, err) = self.cli(&["credential", "add", partner, "--api-key"], None);
        assert!(ok, "credential add failed: {out}{err}");
        out.trim().to_owned()
    }

    /// Starts (or restarts) the server process on a free loopback port.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.arg("--database-url").arg(self.db_url()).args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"]);
        // SIGTERM stops at once (tests of the drain set their own grace period). Some tests
        // send requests as fast as a release build answers them, faster than the default rate
        // limit allows any partner; the limits have their own tests (operations.rs), which set
        // them in the policy.
        cmd.env("CONCORDIA_POLICY_REFRESH_MS", "100")
            .env("CONCORDIA_SHUTDOWN_GRACE_SECONDS", "0")
            .env("CONCORDIA_RATE_LIMIT_REQUESTS_PER_SECOND", "1000000")
            .env("CONCORDIA_RATE_LIMIT_BURST", "1000000")
            .env("RUST_LOG", "warn");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut base = None;
        while Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("concordia listening on ") {
                        base = Some(url.trim().to_owned());
                        break;
                    }
                }
                _ => break,
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.base = base.expect("server did not report its address");
        self.child = Some(child);
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("the server is running")
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the server.
    pub fn signal(&self, name: &str) {
        let ok =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().expect("kill").success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits up to `timeout` for the server to exit by itself; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("the server is running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status.code();
            }
            assert!(Instant::now() < deadline, "the server did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        auth: &Auth,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{}", self.base, path) };
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
        let mut req = agent.request(method, &url);
        if let Some(h) = auth.header() {
            req = req.set("Authorization", &h);
        }
        let mut has_accept = false;
        for (k, v) in headers {
            has_accept |= k.eq_ignore_ascii_case("accept");
            req = req.set(k, v);
        }
        if !has_accept {
            req = req.set("Accept", TAXII);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .iter()
            .filter_map(|n| resp.header(n).map(|v| (n.to_lowercase(), v.to_owned())))
            .collect();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).expect("read body");
        Resp { status, headers, body }
    }

    pub fn get(&self, path: &str, auth: &Auth) -> Resp {
        self.request("GET", path, auth, &[], None)
    }

    pub fn post(&self, path: &str, auth: &Auth, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).expect("json");
        self.request("POST", path, auth, &[("Content-Type", TAXII)], Some(&bytes))
    }

    pub fn delete(&self, path: &str, auth: &Auth) -> Resp {
        self.request("DELETE", path, auth, &[], None)
    }

    /// Posts objects and asserts they were all stored.
    pub fn add(&self, root: &str, collection: &str, auth: &Auth, objects: &[Value]) -> Value {
        let r = self.post(
            &format!("/{root}/collections/{collection}/objects/"),
            auth,
            &serde_json::json!({ "objects": objects }),
        );
        r.expect(202);
        let s = r.json();
        assert_eq!(s["failure_count"], 0, "{s}");
        s
    }

    /// Follows `next` to the end; returns every object and checks page invariants.
    pub fn read_all(&self, path: &str, auth: &Auth, limit: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let url = match &next {
                None => format!("{path}{sep}limit={limit}"),
                Some(n) => format!("{path}{sep}limit={limit}&next={}", urlencode(n)),
            };
            let r = self.get(&url, auth);
            r.expect(200);
            let page = r.json();
            let objs = page["objects"].as_array().cloned().unwrap_or_default();
            assert!(objs.len() <= limit, "page larger than limit (T-205)");
            if page["more"] == Value::Bool(true) {
                assert!(page["next"].is_string(), "more without next");
            }
            out.extend(objs);
            match page["next"].as_str() {
                Some(n) if page["more"] == Value::Bool(true) => next = Some(n.to_owned()),
                _ => break,
            }
        }
        out
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if let Some((base, name)) = self.pg_database.take() {
            pg_admin(&base, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A fresh STIX 2.1 indicator.
pub fn indicator(id: &str, modified: &str) -> Value {
    serde_json::json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": id,
        "created": "2020-01-01T00:00:00.000Z",
        "modified": modified,
        "name": "test indicator",
        "pattern": "[ipv4-addr:value = '192.0.2.1']",
        "pattern_type": "stix",
        "valid_from": "2020-01-01T00:00:00Z"
    })
}

pub fn new_id(ty: &str) -> String {
    format!("{ty}--{}", uuid::Uuid::new_v4())
}

pub fn malware(id: &str) -> Value {
    serde_json::json!({
        "type": "malware",
        "spec_version": "2.1",
        "id": id,
        "created": "2020-01-01T00:00:00.000Z",
        "modified": "2020-01-01T00:00:00.000Z",
        "name": "test malware",
        "is_family": false
    })
}

/// A policy with one API root `r` and the given partners, groups and collections.
pub const BASE_POLICY: &str = r#"
[discovery]
title = "test"

[[api_roots]]
name = "r"
title = "Root"
max_content_length = 100000

[[partners]]
name = "alice"
[[partners]]
name = "bob"
[[partners]]
name = "carol"
[[partners]]
name = "dave"

[[groups]]
name = "ab"
members = ["alice", "bob"]
[[groups]]
name = "a"
members = ["alice"]
[[groups]]
name = "c"
members = ["carol"]

# alice: read+write; bob: read only; carol: write only; dave: nothing.
[[collections]]
id = "11111111-1111-4111-8111-111111111111"
api_root = "r"
title = "Shared"
read = ["ab"]
write = ["a", "c"]

[collections.sharing]
spec_versions = ["2.1", "2.0"]

# only alice sees this one
[[collections]]
id = "22222222-2222-4222-8222-222222222222"
api_root = "r"
title = "Alice only"
read = ["a"]
write = ["a"]
"#;

pub const SHARED: &str = "11111111-1111-4111-8111-111111111111";
pub const PRIVATE: &str = "22222222-2222-4222-8222-222222222222";

/// Starts a server with [`BASE_POLICY`] and a password per partner (`pw-<name>`).
pub fn base_server() -> TestServer {
    let s = TestServer::start(BASE_POLICY);
    for p in ["alice", "bob", "carol", "dave"] {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    s
}

pub fn as_(p: &str) -> Auth {
    Auth::basic(p, &format!("pw-{p}-secret"))
}

pub fn objects_path(collection: &str) -> String {
    format!("/r/collections/{collection}/objects/")
}

pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A response read off a raw socket.
#[derive(Debug, Clone)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `error_code` of a TAXII error resource, or "" when the body is not one.
    pub fn error_code(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error_code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Asserts a TAXII error resource with this status.
    #[track_caller]
    pub fn expect_taxii_error(&self, status: u16) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "status; body {text}");
        assert_eq!(self.header("content-type"), Some(TAXII), "Content-Type of a {status}; body {text}");
        let e: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        assert!(e["title"].is_string(), "{e}");
        assert_eq!(e["http_status"], Value::String(status.to_string()), "{e}");
        assert!(e["description"].as_str().is_some_and(|d| d.len() > 20), "a description that says what to fix: {e}");
        e
    }
}

/// Sends `parts` over one connection to the server at `base` (`http://host:port`), pausing after
/// each part as given, and reads one response: up to its Content-Length, or to the end of the
/// connection. `None` if the server closed the connection without answering.
pub fn raw_http_paced(base: &str, parts: &[(&[u8], Duration)]) -> Option<RawResp> {
    use std::io::Read;
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    for (bytes, pause) in parts {
        // The server may answer (and close) before everything is sent.
        if sock.write_all(bytes).is_err() {
            break;
        }
        std::thread::sleep(*pause);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let length = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse::<usize>().ok());
    loop {
        if length.is_some_and(|n| body.len() >= n) {
            break;
        }
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    if let Some(n) = length {
        body.truncate(n);
    }
    Some(RawResp { status, headers, body })
}

/// Sends one raw request and reads the response (see [`raw_http_paced`]).
pub fn raw_http(base: &str, request: &[u8]) -> Option<RawResp> {
    raw_http_paced(base, &[(request, Duration::ZERO)])
}

/// `Authorization` header value for HTTP Basic.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// xorshift64*: deterministic, seeded, no dependency (the property tests' random policies).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
