//! HTTPS: the server's certificate and, for mutual TLS, the client-certificate verifier, both
//! swapped in place when their files change (or on SIGHUP) so that new handshakes use the new
//! files while established connections carry on; and what a verified client certificate says.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use anyhow::Context as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::config::{ClientAuth, TlsSettings};
use crate::model::access::PeerCertificate;

/// Called when a client certificate is refused during the handshake: its fingerprint and why.
pub type OnRefused = Arc<dyn Fn(String, String) + Send + Sync>;

/// `sha256:<hex>` of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Short names of the subject attributes partners' patterns may name, by OID.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    ("2.5.4.5", "serialNumber"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("2.5.4.9", "street"),
    ("2.5.4.12", "title"),
    ("2.5.4.42", "GN"),
    ("2.5.4.4", "SN"),
];

/// What a (verified) client certificate says about its holder.
pub fn peer_certificate(der: &[u8]) -> PeerCertificate {
    use x509_parser::extensions::GeneralName;
    let mut out = PeerCertificate { fingerprint: fingerprint(der), ..PeerCertificate::default() };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return out };
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let name = ATTRIBUTE_NAMES.iter().find(|(o, _)| *o == oid).map_or(oid.as_str(), |(_, n)| n).to_owned();
            if let Ok(value) = attr.as_str() {
                out.subject.push((name, value.to_owned()));
            }
        }
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.sans.push(format!("dns:{d}")),
                GeneralName::RFC822Name(e) => out.sans.push(format!("email:{e}")),
                GeneralName::URI(u) => out.sans.push(format!("uri:{u}")),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.sans.push(format!("ip:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    out.not_after = cert.validity().not_after.timestamp().saturating_mul(1_000_000);
    out
}

fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", cert.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", cert.display());
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading the private key in {}", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let ck = CertifiedKey::from_der(certs, key, &provider)
        .context("the TLS certificate and key do not match or are unsupported")?;
    Ok(Arc::new(ck))
}

fn load_verifier(ca: &Path, crl: Option<&Path>, mode: ClientAuth) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    let cas = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", ca.display()))?;
    let (added, ignored) = roots.add_parsable_certificates(cas);
    anyhow::ensure!(added > 0, "{} holds no usable CA certificate ({ignored} unusable)", ca.display());
    let mut builder = WebPkiClientVerifier::builder(Arc::new(roots));
    if let Some(crl) = crl {
        let crls = CertificateRevocationListDer::pem_file_iter(crl)
            .with_context(|| format!("reading {}", crl.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing CRLs in {}", crl.display()))?;
        // A CA without a CRL in the file is not a reason to refuse its certificates.
        builder = builder.with_crls(crls).allow_unknown_revocation_status();
    }
    if mode == ClientAuth::Optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().context("building the client-certificate verifier")
}

/// The server certificate, swapped on reload.
#[derive(Debug)]
struct ReloadingCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.0.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        })
    }
}

/// The client-certificate verifier, swapped on reload; reports refused certificates.
struct ReloadingVerifier {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    on_refused: Option<OnRefused>,
}

impl std::fmt::Debug for ReloadingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingVerifier").field("mandatory", &self.mandatory).finish()
    }
}

impl ReloadingVerifier {
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl ClientCertVerifier for ReloadingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: clients send the certificate they are configured with.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let result = self.current().verify_client_cert(end_entity, intermediates, now);
        if let (Err(e), Some(report)) = (&result, &self.on_refused) {
            report(fingerprint(end_entity), e.to_string());
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// The TLS files and what was loaded from them.
pub struct Tls {
    settings: TlsSettings,
    cert: Arc<ReloadingCert>,
    verifier: Option<Arc<ReloadingVerifier>>,
    /// Modification times of the files as last loaded (or last tried).
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

fn stamps_of(files: &[&PathBuf]) -> Vec<Option<SystemTime>> {
    files.iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect()
}

impl Tls {
    /// Loads the certificate, key and (for mutual TLS) CA bundle and CRLs.
    ///
    /// # Errors
    /// A file is missing or unusable.
    pub fn load(settings: &TlsSettings, on_refused: Option<OnRefused>) -> anyhow::Result<Tls> {
        let cert = Arc::new(ReloadingCert(RwLock::new(load_certified_key(&settings.cert, &settings.key)?)));
        let verifier = match (&settings.client_ca, settings.client_auth) {
            (Some(ca), mode) if mode != ClientAuth::Off => Some(Arc::new(ReloadingVerifier {
                current: RwLock::new(load_verifier(ca, settings.crl.as_deref(), mode)?),
                mandatory: mode == ClientAuth::Required,
                on_refused,
            })),
            _ => None,
        };
        let tls = Tls { settings: settings.clone(), cert, verifier, stamps: Mutex::new(Vec::new()) };
        *tls.stamps_lock() = stamps_of(&tls.files());
        Ok(tls)
    }

    fn files(&self) -> Vec<&PathBuf> {
        let s = &self.settings;
        [Some(&s.cert), Some(&s.key), s.client_ca.as_ref(), s.crl.as_ref()].into_iter().flatten().collect()
    }

    fn stamps_lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<SystemTime>>> {
        match self.stamps.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The rustls configuration: TLS 1.3 and 1.2, AEAD suites only, no 0-RTT (T-004); the
    /// certificate and verifier inside it follow reloads.
    pub fn server_config(&self) -> rustls::ServerConfig {
        let builder =
            rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12]);
        let builder = match &self.verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        };
        // (actix adds the ALPN protocols, h2 and http/1.1.)
        builder.with_cert_resolver(self.cert.clone())
    }

    /// Reloads every file if any changed since the last load (or always, with `force`).
    /// Established connections keep what they negotiated; new handshakes use the new files.
    /// A file that does not load leaves the previous configuration in place.
    ///
    /// # Errors
    /// What is wrong with the new files.
    pub fn reload(&self, force: bool) -> anyhow::Result<bool> {
        let now = stamps_of(&self.files());
        if !force && *self.stamps_lock() == now {
            return Ok(false);
        }
        // Whatever happens, these files are not tried again until they change again.
        *self.stamps_lock() = now;
        let key = load_certified_key(&self.settings.cert, &self.settings.key)?;
        let verifier = match (&self.verifier, &self.settings.client_ca) {
            (Some(_), Some(ca)) => Some(load_verifier(ca, self.settings.crl.as_deref(), self.settings.client_auth)?),
            _ => None,
        };
        match self.cert.0.write() {
            Ok(mut k) => *k = key,
            Err(p) => *p.into_inner() = key,
        }
        if let (Some(v), Some(new)) = (&self.verifier, verifier) {
            match v.current.write() {
                Ok(mut c) => *c = new,
                Err(p) => *p.into_inner() = new,
            }
        }
        Ok(true)
    }
}
