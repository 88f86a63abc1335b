//! Authentication: HTTP Basic (partner name + password, or + API key) and Bearer API keys.
//!
//! Passwords are stored as argon2id hashes; API keys (`cnc_<lookup>_<secret>`, 256 random bits)
//! as SHA-256 digests found by their lookup part. A memory-hard verify costs ~15 ms of CPU, so a
//! successful login is cached under an HMAC of the presented `Authorization` value (never the
//! value itself) for a short time, bounded by the credential's expiry. The whole cache is dropped
//! whenever the policy generation changes (credential added, revoked or expired, policy applied),
//! which running servers notice within `policy_refresh_ms`. Failed logins are cached as failures
//! briefly too, so hammering a wrong password cannot burn CPU on argon2.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::model::access::{AuthMethod, Caller, Credential, Principal};
use crate::model::time::{now_micros, Micros};
use crate::storage::{credentials, Storage, StorageError};

/// Why a request is not authenticated. Both answer 401 with a Basic challenge.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send HTTP Basic credentials or an API key as 'Authorization: Bearer <key>'")]
    Missing,
    #[error("the credentials were not accepted")]
    Invalid,
    #[error("too many failed logins from this address; retry in a minute")]
    TooManyFailures,
    #[error("the server is busy checking credentials; retry shortly")]
    Busy,
    #[error("the client certificate ({0}) identifies no partner; ask the hub operator to list it in the policy")]
    UnknownCertificate(String),
    #[error("the client certificate ({0}) matches more than one partner's certificate patterns; the hub operator must make them distinct")]
    AmbiguousCertificate(String),
    #[error("the client certificate ({0}) and the Authorization header identify different partners; send one partner's credentials")]
    ConflictingCredentials(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Hashes a password with argon2id (random salt), as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Verifies a password against a PHC string.
pub fn verify_password(hash: &str, password: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: refuse to produce predictable secrets.
        std::process::abort();
    }
    b
}

/// A new API key: (the key to show once, its lookup id, the digest to store).
pub fn new_api_key() -> (String, String, String) {
    let lookup = hex::encode(random_bytes::<8>());
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let key = format!("cnc_{lookup}_{secret}");
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    (key, lookup, digest)
}

/// The lookup id of something that looks like one of our API keys.
fn api_key_lookup(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("cnc_")?;
    let (lookup, secret) = rest.split_once('_')?;
    (lookup.len() == 16 && lookup.bytes().all(|c| c.is_ascii_hexdigit()) && !secret.is_empty()).then_some(lookup)
}

/// Constant-time comparison of two digests.
fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random 32-byte secret, hex-encoded (server keys, demo data).
pub fn random_secret_hex() -> String {
    hex::encode(random_bytes::<32>())
}

/// What the `Authorization` header carried.
enum Presented<'a> {
    Basic { user: String, secret: String },
    Key(&'a str),
}

fn parse_header(value: &str) -> Option<Presented<'_>> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, secret) = text.split_once(':')?;
        Some(Presented::Basic { user: user.to_owned(), secret: secret.to_owned() })
    } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        Some(Presented::Key(rest))
    } else {
        None
    }
}

/// What an `Authorization` header presented, for the audit trail of a refused login: the
/// credential kind and the partner name or API key id (never a secret).
pub fn presented_identity(header: Option<&str>) -> (&'static str, String) {
    let shown = |s: &str| crate::model::stix::shown(s);
    match header.map(parse_header) {
        None => ("none", String::new()),
        Some(None) => ("unknown", "an unreadable Authorization header".into()),
        Some(Some(Presented::Basic { user, secret })) => match api_key_lookup(&secret) {
            Some(lookup) => ("api_key", format!("cnc_{lookup} (as the password of '{}')", shown(&user))),
            None => ("password", shown(&user)),
        },
        Some(Some(Presented::Key(key))) => match api_key_lookup(key) {
            Some(lookup) => ("api_key", format!("cnc_{lookup}")),
            None => ("api_key", "a key that is not a Concordia API key".into()),
        },
    }
}

#[derive(Clone)]
struct Cached {
    caller: Option<Caller>,
    until: Micros,
}

/// Checks credentials, with a cache of recent outcomes.
pub struct Authenticator {
    storage: Storage,
    cache_key: [u8; 32],
    ttl_micros: Micros,
    failure_ttl_micros: Micros,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    /// Bumped by [`Authenticator::clear`]: a verification that started before a clear must
    /// not put its (possibly revoked) result back into the cache.
    epoch: AtomicU64,
    /// Bounds the memory-hard verifications running at once.
    verify_slots: tokio::sync::Semaphore,
    /// Failed logins per client address: (count, start of the window).
    failures: Mutex<HashMap<IpAddr, (u32, Micros)>>,
}

/// Most cached entries kept; beyond it expired entries are dropped, then everything.
const CACHE_MAX: usize = 10_000;
/// Failed logins allowed per address and minute before it gets 429 without a check.
const MAX_FAILURES_PER_MINUTE: u32 = 30;
/// How long a request waits for a verification slot before a 503.
const VERIFY_WAIT: Duration = Duration::from_secs(5);

impl Authenticator {
    pub fn new(storage: Storage, ttl_seconds: u64) -> Self {
        Authenticator {
            storage,
            cache_key: random_bytes::<32>(),
            ttl_micros: i64::try_from(ttl_seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            failure_ttl_micros: 2_000_000,
            cache: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            verify_slots: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Drops every cached outcome (policy or credentials changed).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.lock().clear();
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Micros)>> {
        match self.failures.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn too_many_failures(&self, peer: Option<IpAddr>, now: Micros) -> bool {
        peer.and_then(|ip| self.failures().get(&ip).copied())
            .is_some_and(|(n, since)| now - since < 60_000_000 && n >= MAX_FAILURES_PER_MINUTE)
    }

    fn record_failure(&self, peer: Option<IpAddr>, now: Micros) {
        let Some(ip) = peer else { return };
        let mut f = self.failures();
        if f.len() >= CACHE_MAX {
            f.retain(|_, (_, since)| now - *since < 60_000_000);
        }
        let e = f.entry(ip).or_insert((0, now));
        if now - e.1 >= 60_000_000 {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Cached>> {
        match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn digest(&self, header: &str) -> [u8; 32] {
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_key) {
            Ok(m) => m,
            Err(_) => std::process::abort(),
        };
        m.update(header.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// Turns an `Authorization` header value into the partner it authenticates, with the
    /// credential used. `peer` is the client address, for limiting failed logins.
    pub async fn authenticate(&self, header: Option<&str>, peer: Option<IpAddr>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let digest = self.digest(header);
        let now = now_micros();
        if let Some(hit) = self.lock().get(&digest).cloned() {
            if hit.until > now {
                return hit.caller.ok_or(AuthError::Invalid);
            }
        }
        if self.too_many_failures(peer, now) {
            return Err(AuthError::TooManyFailures);
        }
        let Some(presented) = parse_header(header) else {
            self.record_failure(peer, now);
            return Err(AuthError::Invalid);
        };
        let epoch = self.epoch.load(Ordering::SeqCst);
        let outcome = match presented {
            Presented::Key(key) => self.check_key(key.to_owned(), now).await?,
            Presented::Basic { user, secret } => {
                if api_key_lookup(&secret).is_some() {
                    // SIEMs that speak only Basic send the API key as the password.
                    self.check_key(secret, now).await?
                } else {
                    self.check_password(user, secret, now).await?
                }
            }
        };
        let until = match &outcome {
            Some((_, expires)) => (now + self.ttl_micros).min(expires.unwrap_or(Micros::MAX)),
            None => now + self.failure_ttl_micros,
        };
        let caller = outcome.map(|(p, _)| p);
        if caller.is_none() {
            self.record_failure(peer, now);
        }
        {
            let mut cache = self.lock();
            if self.epoch.load(Ordering::SeqCst) == epoch {
                if cache.len() >= CACHE_MAX {
                    cache.retain(|_, c| c.until > now);
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                }
                cache.insert(digest, Cached { caller: caller.clone(), until });
            }
        }
        caller.ok_or(AuthError::Invalid)
    }

    async fn check_key(&self, key: String, now: Micros) -> Result<Option<(Caller, Option<Micros>)>, AuthError> {
        let Some(lookup) = api_key_lookup(&key).map(str::to_owned) else { return Ok(None) };
        let found = self.storage.read(move |c| credentials::find_api_key(c, &lookup, now)).await?;
        Ok(found.and_then(|cred| {
            let digest = hex::encode(Sha256::digest(key.as_bytes()));
            digest_eq(digest.as_bytes(), cred.secret_hash.as_bytes()).then_some((
                Caller {
                    principal: Principal::Partner { id: cred.partner_id, name: cred.partner },
                    credential: Credential { method: AuthMethod::ApiKey, id: Some(cred.id) },
                },
                cred.expires_at,
            ))
        }))
    }

    async fn check_password(
        &self,
        user: String,
        password: String,
        now: Micros,
    ) -> Result<Option<(Caller, Option<Micros>)>, AuthError> {
        // No partner has a name outside this syntax; such a name is never sent to the database
        // (which might not even compare it: a NUL cannot be a PostgreSQL string).
        if !crate::model::policy::valid_name(&user) {
            return Ok(None);
        }
        let _slot = tokio::time::timeout(VERIFY_WAIT, self.verify_slots.acquire())
            .await
            .map_err(|_| AuthError::Busy)?
            .map_err(|_| AuthError::Busy)?;
        let storage = self.storage.clone();
        let verified = tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
            let creds = storage.read_blocking(|c| credentials::find_passwords(c, &user, now))?;
            Ok(creds.into_iter().find(|cred| verify_password(&cred.secret_hash, &password)).map(|cred| {
                (
                    Caller {
                        principal: Principal::Partner { id: cred.partner_id, name: cred.partner },
                        credential: Credential { method: AuthMethod::Password, id: Some(cred.id) },
                    },
                    cred.expires_at,
                )
            }))
        })
        .await
        .map_err(|e| StorageError::Unavailable(Box::new(e)))??;
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_a_lookup_part() {
        let (key, lookup, digest) = new_api_key();
        assert_eq!(api_key_lookup(&key), Some(lookup.as_str()));
        assert_eq!(digest.len(), 64);
        assert_eq!(api_key_lookup("password123"), None);
    }

    #[test]
    fn password_hash_round_trip() {
        let h = hash_password("correct horse").unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong horse"));
    }

    #[test]
    fn header_parsing() {
        assert!(matches!(parse_header("Basic YWxpY2U6c2VjcmV0"), Some(Presented::Basic { .. })));
        assert!(matches!(parse_header("Bearer cnc_x"), Some(Presented::Key("cnc_x"))));
        assert!(parse_header("Basic !!!").is_none());
        assert!(parse_header("Digest abc").is_none());
    }
}
