//! The metrics against a real Prometheus: `promtool check metrics` accepts the exposition, a
//! Prometheus server scrapes a running Concordia (with the bearer token), and a Concordia
//! metric is read back through Prometheus' query API.
//!
//! Needs `prometheus` and `promtool` (Debian package `prometheus`; `.ci/run` installs it) and
//! `CONCORDIA_TEST_PROMETHEUS=1`. Without the variable the test says it was skipped (CI sets it
//! and checks for the `prometheus: scraped` line); with it and no binaries, it fails.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

const TOKEN: &str = "prometheus-scrape-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the Prometheus server when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_concordia_and_promtool_accepts_the_exposition() {
    if std::env::var("CONCORDIA_TEST_PROMETHEUS").ok().as_deref() != Some("1") {
        println!("prometheus: skipped (set CONCORDIA_TEST_PROMETHEUS=1 with prometheus and promtool installed)");
        return;
    }
    let s = TestServer::start_with(BASE_POLICY, &[("CONCORDIA_METRICS_TOKEN", TOKEN)]);
    s.add_password("alice", "pw-alice-secret");
    for _ in 0..3 {
        s.get("/taxii2/", &as_("alice")).expect(200);
    }
    s.get("/taxii2/", &Auth::basic("alice", "wrong")).expect(401);

    // promtool lints the exposition (names, types, help, label syntax).
    let exposition = s.get("/metrics", &Auth::Bearer(TOKEN.into()));
    assert_eq!(exposition.status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed with CONCORDIA_TEST_PROMETHEUS=1");
    promtool.stdin.take().unwrap().write_all(&exposition.body).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A Prometheus server scrapes Concordia every second, with the bearer token.
    let dir = tempfile::tempdir().unwrap();
    let target = s.base.trim_start_matches("http://");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: concordia\n    metrics_path: /metrics\n    authorization:\n      type: Bearer\n      credentials: {TOKEN}\n    static_configs:\n      - targets: ['{target}']\n"
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let out = Command::new("promtool").arg("check").arg("config").arg(&config_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus must be installed with CONCORDIA_TEST_PROMETHEUS=1"),
    );
    let query = |q: &str| -> Option<Vec<Value>> {
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query={}", urlencode(q));
        let r = ureq::get(&url).timeout(Duration::from_secs(5)).call().ok()?;
        let v: Value = r.into_json().ok()?;
        (v["status"] == "success").then(|| v["data"]["result"].as_array().cloned().unwrap_or_default())
    };
    let value = |result: &[Value]| -> f64 {
        result.first().and_then(|r| r["value"][1].as_str()).and_then(|v| v.parse().ok()).unwrap_or(-1.0)
    };
    let wanted = r#"concordia_http_requests_total{job="concordia",route="/taxii2/",method="GET",status="200"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let scraped = loop {
        if let Some(result) = query(wanted) {
            let v = value(&result);
            if v >= 3.0 {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "Prometheus did not scrape the requests within 60 s");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(value(&query(r#"up{job="concordia"}"#).unwrap()), 1.0, "the scrape target is up");
    let failures = value(&query(r#"concordia_auth_failures_total{reason="invalid"}"#).unwrap());
    assert!(failures >= 1.0, "{failures}");
    println!(
        "prometheus: scraped concordia_http_requests_total{{route=\"/taxii2/\"}} = {scraped} through the query API"
    );
}
