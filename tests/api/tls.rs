//! HTTPS with rustls: TLS 1.2 and 1.3 accepted (T-002, T-003), plain HTTP refused on a TLS port.
//! Uses the system's `openssl` to make a throwaway certificate and `curl` as the client.

use std::process::Command;

use crate::helpers::*;

#[test]
fn t002_t003_https_with_tls12_and_tls13() {
    let mut s = base_server();
    let dir = s.dir.path().to_owned();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl could not make a test certificate");
    s.stop();
    s.extra_env.push(("CONCORDIA_TLS_CERT".into(), cert.display().to_string()));
    s.extra_env.push(("CONCORDIA_TLS_KEY".into(), key.display().to_string()));
    s.spawn();
    assert!(s.base.starts_with("https://"), "{}", s.base);
    for (min, max) in [("--tlsv1.2", "1.2"), ("--tlsv1.3", "1.3")] {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&cert)
            .args([
                min,
                "--tls-max",
                max,
                "-u",
                "alice:pw-alice-secret",
                "-H",
                "Accept: application/taxii+json;version=2.1",
            ])
            .arg(format!("{}/taxii2/", s.base))
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "TLS {max}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(body.contains(&format!("\"api_roots\":[\"{}/r/\"]", s.base)), "TLS {max}: {body}");
    }
    let plain = s.base.replace("https://", "http://");
    let out = Command::new("curl").args(["-sS", "-m", "5"]).arg(format!("{plain}/taxii2/")).output().expect("curl");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("api_roots"),
        "plain HTTP must not be served on the TLS port"
    );
}
