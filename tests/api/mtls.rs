//! Certificate identities (mutual TLS): real TLS handshakes from curl (and, for the reload, from
//! a rustls client that keeps its connection), with a PKI generated here: a CA, partner
//! certificates (current, expired, revoked, unknown to the policy) and a CRL; a second CA that
//! the server does not trust. OASIS interop row 3.1.3; T-013 (PKIX by default).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};

use crate::helpers::*;

/// A certificate authority that issues test certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// An issued certificate: its PEM files and the SHA-256 fingerprint of its DER form.
struct Issued {
    cert: PathBuf,
    key: PathBuf,
    der: Vec<u8>,
    fingerprint: String,
}

fn days(n: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(n)
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        p.not_before = days(-30);
        p.not_after = days(365);
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A certificate for `(CN, O)` (a client certificate, or with `server` one for 127.0.0.1).
    fn issue(
        &self,
        dir: &Path,
        name: &str,
        (cn, org): (&str, &str),
        serial: u64,
        valid: (i64, i64),
        server: bool,
    ) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::OrganizationName, org);
        p.serial_number = Some(SerialNumber::from(serial));
        p.not_before = days(valid.0);
        p.not_after = days(valid.1);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if server {
            p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            p.subject_alt_names = vec![SanType::DnsName(cn.to_owned().try_into().unwrap())];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cp, kp) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&cp, cert.pem()).unwrap();
        std::fs::write(&kp, key.serialize_pem()).unwrap();
        let der = cert.der().to_vec();
        let fingerprint = concordia::tls::fingerprint(&der);
        Issued { cert: cp, key: kp, der, fingerprint }
    }

    /// A CRL revoking these serials.
    fn crl(&self, path: &Path, serials: &[u64]) {
        let params = CertificateRevocationListParams {
            this_update: days(-1),
            next_update: days(30),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: days(-1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        std::fs::write(path, params.signed_by(&self.cert, &self.key).unwrap().pem().unwrap()).unwrap();
    }
}

/// The test PKI and a policy that maps alice by fingerprint and bob by subject pattern.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
    crl_file: PathBuf,
    server: Issued,
    alice: Issued,
    bob: Issued,
    nobody: Issued,
    expired: Issued,
    revoked: Issued,
    stranger: Issued,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Concordia test partners CA");
    let ca_file = ca.write(d, "ca.pem");
    let server = ca.issue(d, "server", ("127.0.0.1", "Hub"), 1, (-1, 30), true);
    let alice = ca.issue(d, "alice", ("taxii.alice.example", "Alice CERT"), 10, (-1, 30), false);
    let bob = ca.issue(d, "bob", ("client.bob.example", "Bob CERT"), 11, (-1, 30), false);
    let nobody = ca.issue(d, "nobody", ("client.nobody.example", "Nobody"), 12, (-1, 30), false);
    let expired = ca.issue(d, "expired", ("old.alice.example", "Alice CERT"), 13, (-30, -2), false);
    let revoked = ca.issue(d, "revoked", ("lost.alice.example", "Alice CERT"), 14, (-1, 30), false);
    let crl_file = d.join("crl.pem");
    ca.crl(&crl_file, &[14]);
    let other = Ca::new("An unknown CA");
    let stranger = other.issue(d, "stranger", ("taxii.alice.example", "Alice CERT"), 10, (-1, 30), false);
    Pki { dir, ca, ca_file, crl_file, server, alice, bob, nobody, expired, revoked, stranger }
}

fn policy(p: &Pki) -> String {
    // alice: her certificate's fingerprint (and those of the expired, revoked and unknown-CA
    // ones, which must still be refused by the handshake); bob: a subject pattern.
    BASE_POLICY
        .replace(
            "[[partners]]\nname = \"alice\"",
            &format!(
                "[[partners]]\nname = \"alice\"\ncertificates = [\"{}\", \"{}\", \"{}\", \"{}\"]",
                p.alice.fingerprint, p.expired.fingerprint, p.revoked.fingerprint, p.stranger.fingerprint
            ),
        )
        .replace(
            "[[partners]]\nname = \"bob\"",
            "[[partners]]\nname = \"bob\"\ncertificate_subjects = [\"CN=*.bob.example,O=Bob CERT\"]",
        )
}

fn server(p: &Pki, mode: &str) -> TestServer {
    let env = [
        ("CONCORDIA_TLS_CERT", p.server.cert.to_str().unwrap()),
        ("CONCORDIA_TLS_KEY", p.server.key.to_str().unwrap()),
        ("CONCORDIA_TLS_CLIENT_CA", p.ca_file.to_str().unwrap()),
        ("CONCORDIA_TLS_CRL", p.crl_file.to_str().unwrap()),
        ("CONCORDIA_CLIENT_AUTH", mode),
        ("CONCORDIA_TLS_RELOAD_SECONDS", "1"),
    ];
    let s = TestServer::start_with(&policy(p), &env);
    for who in ["alice", "bob", "carol", "dave"] {
        s.add_password(who, &format!("pw-{who}-secret"));
    }
    assert!(s.base.starts_with("https://"), "{}", s.base);
    s
}

/// curl with a client certificate (or none): `Ok((status, body))`, or `Err(curl's message)`
/// when the TLS handshake (or the connection) failed.
fn curl(
    s: &TestServer,
    p: &Pki,
    cert: Option<&Issued>,
    basic: Option<&str>,
    path: &str,
) -> Result<(u16, String), String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-m", "20", "--cacert"]).arg(&p.ca_file);
    cmd.args(["-H", "Accept: application/taxii+json;version=2.1", "-w", "\n%{http_code}"]);
    if let Some(c) = cert {
        cmd.arg("--cert").arg(&c.cert).arg("--key").arg(&c.key);
    }
    if let Some(b) = basic {
        cmd.args(["-u", b]);
    }
    let out = cmd.arg(format!("{}{path}", s.base)).output().expect("curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    Ok((code.parse().unwrap(), body.to_owned()))
}

#[test]
fn interop_3_1_3_a_certificate_authenticates_its_partner() {
    let p = pki();
    let s = server(&p, "optional");
    // By fingerprint.
    let (status, body) = curl(&s, &p, Some(&p.alice), None, "/taxii2/").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("/r/"), "alice sees her API root: {body}");
    let (status, _) = curl(&s, &p, Some(&p.alice), None, &objects_path(PRIVATE)).unwrap();
    assert_eq!(status, 200, "alice's private collection");
    // By subject pattern: bob reads the shared collection, and not alice's.
    assert_eq!(curl(&s, &p, Some(&p.bob), None, &objects_path(SHARED)).unwrap().0, 200);
    assert_eq!(curl(&s, &p, Some(&p.bob), None, &objects_path(PRIVATE)).unwrap().0, 404);
    // A certificate that maps to no partner: 401 with a TAXII error (and a reason).
    let (status, body) = curl(&s, &p, Some(&p.nobody), None, "/taxii2/").unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("identifies no partner") && body.contains(&p.nobody.fingerprint), "{body}");
    // Password partners keep working on the same port (optional mode).
    assert_eq!(curl(&s, &p, None, Some("carol:pw-carol-secret"), "/r/collections/").unwrap().0, 200);
    // No certificate and no credentials: 401.
    assert_eq!(curl(&s, &p, None, None, "/taxii2/").unwrap().0, 401);
}

#[test]
fn a_certificate_of_one_partner_with_credentials_of_another_is_refused() {
    let p = pki();
    let s = server(&p, "optional");
    let (status, body) = curl(&s, &p, Some(&p.alice), Some("bob:pw-bob-secret"), "/taxii2/").unwrap();
    assert_eq!(status, 401, "never guess between two partners: {body}");
    assert!(body.contains("different partners"), "{body}");
    // The same partner twice is fine; a wrong password beside a good certificate is not.
    assert_eq!(curl(&s, &p, Some(&p.alice), Some("alice:pw-alice-secret"), "/taxii2/").unwrap().0, 200);
    assert_eq!(curl(&s, &p, Some(&p.alice), Some("alice:wrong-password"), "/taxii2/").unwrap().0, 401);
}

#[test]
fn expired_revoked_and_unknown_ca_certificates_fail_the_handshake() {
    let p = pki();
    let s = server(&p, "optional");
    for (name, cert) in [("expired", &p.expired), ("revoked", &p.revoked), ("unknown CA", &p.stranger)] {
        let r = curl(&s, &p, Some(cert), None, "/taxii2/");
        assert!(r.is_err(), "{name}: the handshake must fail, got {r:?}");
    }
    // The refused handshakes are failed logins in the audit trail.
    std::thread::sleep(Duration::from_millis(400));
    let (ok, out, err) = s.cli(&["audit", "export"], None);
    assert!(ok, "{err}");
    for (cert, why) in [(&p.expired, "expired"), (&p.revoked, "revoked"), (&p.stranger, "issuer")] {
        let line = out
            .lines()
            .find(|l| l.contains("\"auth_failure\"") && l.contains(&cert.fingerprint))
            .unwrap_or_else(|| panic!("no record of {why}: {out}"));
        let lower = line.to_ascii_lowercase();
        assert!(line.contains("\"auth_failure\"") && line.contains("tls_handshake") && lower.contains(why), "{line}");
    }
}

#[test]
fn required_mode_refuses_a_connection_without_certificate() {
    let p = pki();
    let s = server(&p, "required");
    assert!(curl(&s, &p, None, Some("carol:pw-carol-secret"), "/taxii2/").is_err(), "no certificate, no handshake");
    assert_eq!(curl(&s, &p, Some(&p.alice), None, "/taxii2/").unwrap().0, 200);
}

/// A TLS connection from the test that stays open across requests.
struct Client {
    tls: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
}

impl Client {
    fn connect(s: &TestServer, p: &Pki, cert: &Issued) -> Result<Client, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from(p.ca.cert.der().to_vec())).unwrap();
        let key: rustls::pki_types::PrivateKeyDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_file(&cert.key).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![rustls::pki_types::CertificateDer::from(cert.der.clone())], key)
            .unwrap();
        let addr = s.base.trim_start_matches("https://");
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), "127.0.0.1".try_into().unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map_err(|e| e.to_string())?;
        }
        Ok(Client { tls })
    }

    /// The server certificate this connection negotiated.
    fn server_fingerprint(&self) -> String {
        concordia::tls::fingerprint(self.tls.conn.peer_certificates().unwrap()[0].as_ref())
    }

    /// Whether a new connection with this certificate is served (in TLS 1.3 the server refuses
    /// a client certificate after the client has finished its handshake, at the first read).
    fn accepted(s: &TestServer, p: &Pki, cert: &Issued) -> bool {
        Client::connect(s, p, cert).is_ok_and(|mut c| c.try_get("/taxii2/").is_ok())
    }

    /// One keep-alive GET; the status.
    fn get(&mut self, path: &str) -> u16 {
        self.try_get(path).unwrap()
    }

    fn try_get(&mut self, path: &str) -> Result<u16, String> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {TAXII}\r\n\r\n");
        self.tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            let n = self.tls.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the connection was closed".into());
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    return Ok(text[9..12].parse().unwrap());
                }
            }
        }
    }
}

/// Renewing the server certificate, and revoking a client certificate, take effect on new
/// handshakes (after a file change or SIGHUP) without a restart and without dropping
/// established connections.
#[test]
fn certificates_and_crls_reload_without_dropping_connections() {
    let p = pki();
    let s = server(&p, "optional");
    let mut kept = Client::connect(&s, &p, &p.alice).unwrap();
    assert_eq!(kept.get("/taxii2/"), 200);
    let old_server = kept.server_fingerprint();
    assert_eq!(old_server, p.server.fingerprint);

    // Renew the server certificate and revoke alice's, then SIGHUP.
    let renewed = p.ca.issue(p.dir.path(), "server2", ("127.0.0.1", "Hub"), 2, (-1, 60), true);
    std::fs::copy(&renewed.cert, &p.server.cert).unwrap();
    std::fs::copy(&renewed.key, &p.server.key).unwrap();
    p.ca.crl(&p.crl_file, &[14, 10]);
    s.signal("HUP");
    assert!(
        wait_until(|| Client::connect(&s, &p, &p.bob).is_ok_and(|c| c.server_fingerprint() == renewed.fingerprint)),
        "new handshakes present the renewed certificate"
    );
    assert!(!Client::accepted(&s, &p, &p.alice), "alice's certificate is revoked for new handshakes");
    // The connection made before the reload goes on.
    assert_eq!(kept.get("/r/collections/"), 200);
    assert_eq!(kept.server_fingerprint(), old_server);

    // A file change alone (no signal) is picked up too: un-revoke alice.
    std::thread::sleep(Duration::from_millis(1100));
    p.ca.crl(&p.crl_file, &[14]);
    assert!(wait_until(|| Client::accepted(&s, &p, &p.alice)), "reloaded within tls_reload_seconds");
}

#[test]
fn access_and_credential_list_show_certificate_identities() {
    let p = pki();
    let s = server(&p, "optional");
    let (ok, out, err) = s.cli(&["access", "alice"], None);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("certificate  fingerprint  {}", p.alice.fingerprint)), "{out}");
    let (ok, out, err) = s.cli(&["credential", "list", "bob"], None);
    assert!(ok, "{err}");
    assert!(out.contains("CN=*.bob.example,O=Bob CERT") && out.contains("certificate"), "{out}");
    // A request by certificate is recorded with its fingerprint.
    curl(&s, &p, Some(&p.alice), None, "/r/collections/").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let (_, out, _) = s.cli(&["audit", "export", "--partner", "alice"], None);
    assert!(
        out.lines().any(|l| l.contains("\"credential_method\":\"certificate\"") && l.contains(&p.alice.fingerprint)),
        "{out}"
    );
}

/// curl for the console over mutual TLS: (status, headers and body).
fn console_curl(
    s: &TestServer,
    p: &Pki,
    cert: &Issued,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "-m", "20", "-X", method, "--cacert"]).arg(&p.ca_file);
    cmd.arg("--cert").arg(&cert.cert).arg("--key").arg(&cert.key).args(["-w", "\n%{http_code}"]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: concordia_console={c}")]);
    }
    let out = cmd.arg(format!("{}{path}", s.base)).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

#[test]
fn an_operator_signs_in_to_the_console_with_a_client_certificate_and_partners_certificates_are_listed_before_they_expire(
) {
    let p = pki();
    let mut s = server(&p, "optional");
    s.extra_env.push(("CONCORDIA_CONSOLE".into(), "true".into()));
    s.restart();
    // The certificate that maps to no partner is an operator's.
    let (ok, _, err) = s.cli(&["operator", "add", "op-cert", "--certificate", p.nobody.cert.to_str().unwrap()], None);
    assert!(ok, "{err}");
    let (ok, out, _) = s.cli(&["operator", "list"], None);
    assert!(ok && out.contains(&p.nobody.fingerprint), "the PEM file's fingerprint: {out}");
    // A partner's certificate is not an operator's.
    let (status, page) = console_curl(&s, &p, &p.alice, "POST", "/console/login/certificate", None);
    assert_eq!(status, 401, "{page}");
    let (status, page) = console_curl(&s, &p, &p.nobody, "POST", "/console/login/certificate", None);
    assert_eq!(status, 303, "{page}");
    let cookie = page
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: concordia_console="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    // alice's certificate authenticates a TAXII request: it is noted, and it expires within 30 days.
    assert_eq!(curl(&s, &p, Some(&p.alice), None, &objects_path(PRIVATE)).unwrap().0, 200);
    assert!(wait_until(|| {
        let (status, page) = console_curl(&s, &p, &p.nobody, "GET", "/console/", Some(&cookie));
        status == 200 && page.contains("Client certificates in use") && page.contains(&p.alice.fingerprint)
    }));
    let (ok, out, _) = s.cli(&["audit", "export"], None);
    assert!(ok);
    let login = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["action"] == "console_login" && r["credential_id"] == "console:op-cert")
        .expect("the sign-in is recorded");
    assert!(login["detail"].as_str().unwrap_or_default().contains("certificate"), "{login}");
}
