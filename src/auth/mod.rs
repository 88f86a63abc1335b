//! Authentication: HTTP Basic (partner name + password, or + API key) and Bearer API keys.
//!
//! Passwords are stored as argon2id hashes; API keys (`cnc_<lookup>_<secret>`, 256 random bits)
//! as SHA-256 digests found by their lookup part. A memory-hard verify costs ~15 ms of CPU, so a
//! successful login is cached under an HMAC of the presented `Authorization` value (never the
//! value itself) for a short time, bounded by the credential's expiry. When a partner's
//! credentials change (added, revoked, expired, the partner removed), running servers notice
//! within `policy_refresh_ms` and drop that partner's cached logins, and only those. Failed
//! logins are cached as failures briefly too, and limited per (address, name) and per name (see
//! [`Authenticator`]), so hammering a wrong password cannot burn CPU on argon2 nor lock anyone
//! else out.

pub mod operators;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
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
    #[error("too many failed logins for this partner name; retry in a minute (a password that worked before is still accepted)")]
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

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
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

/// Constant-time comparison of two secrets or digests (the length is not hidden).
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
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

/// Expires each cached outcome at its own time (a login's expiry is bounded by its credential's).
struct CachedExpiry;

impl moka::Expiry<[u8; 32], Cached> for CachedExpiry {
    fn expire_after_create(&self, _key: &[u8; 32], value: &Cached, _now: std::time::Instant) -> Option<Duration> {
        Some(Duration::from_micros(u64::try_from(value.until.saturating_sub(now_micros())).unwrap_or(0)))
    }
}

/// How failed logins are limited (see [`Authenticator`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures per minute from one address for one partner name.
    pub per_address_and_name: u32,
    /// Failures per minute for one partner name, from all addresses; over it, an address that
    /// has failed for the name once gets no further try.
    pub per_name: u32,
    /// Failures per minute from one address, for all names.
    pub per_address: u32,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits { per_address_and_name: 10, per_name: 100, per_address: 300 }
    }
}

/// The address failures are counted under: an IPv4 address, or the /64 of an IPv6 address (one
/// host usually holds a whole /64, and could otherwise take a fresh address for every try).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// Failure counters over a one-minute window, bounded in size.
pub(crate) type Counters<K> = moka::sync::Cache<K, Arc<AtomicU32>>;

pub(crate) fn counters<K: std::hash::Hash + Eq + Send + Sync + 'static>() -> Counters<K> {
    moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build()
}

/// Checks credentials, with a cache of recent outcomes, and limits failed logins without locking
/// out the innocent.
///
/// Failed password logins are counted, for a minute, per (client address, partner name), per
/// partner name and per client address ([`LoginLimits`]). A password is not checked, and the
/// attempt gets 429 without a memory-hard verification, when its address has failed
/// `per_address_and_name` times for the name (once, while the name is under attack from many
/// addresses: over `per_name`), or `per_address` times for any names; unless the password is
/// *known good* (it verified on this node within the last day). So failures for another name,
/// or from another address, never refuse a partner's correct password; a password in use keeps
/// working even from an address that failed; and a partner's first login from a fresh address
/// is always checked, even while its name is being guessed at from elsewhere. API keys and
/// certificates are never limited (a key has 256 random bits and costs one SHA-256 to check).
///
/// Unknown names and wrong passwords cost the same: as many verifications as the partner with
/// the most active passwords has (dummy ones for an unknown name, and to pad a partner with
/// fewer), so response times do not tell which names exist.
pub struct Authenticator {
    storage: Storage,
    cache_key: [u8; 32],
    ttl_micros: Micros,
    failure_ttl_micros: Micros,
    /// Recent outcomes (successes and failures) under an HMAC of the presented credential.
    cache: moka::sync::Cache<[u8; 32], Cached>,
    /// HMACs of credentials that verified within the last day.
    known_good: moka::sync::Cache<[u8; 32], ()>,
    /// Bumped whenever cached logins are dropped: a verification that started before must not
    /// put its (possibly revoked) result back into the cache.
    epoch: AtomicU64,
    /// Bounds the memory-hard verifications running at once.
    verify_slots: tokio::sync::Semaphore,
    limits: LoginLimits,
    by_address_and_name: Counters<(IpAddr, String)>,
    by_name: Counters<String>,
    by_address: Counters<IpAddr>,
    /// A hash to verify against when the name is unknown, so it costs what a known one does.
    dummy_hash: String,
    /// Verifications every failed password login costs: the most active passwords any partner
    /// has (at least 1).
    verifications_per_failure: std::sync::atomic::AtomicUsize,
}

/// How long a request waits for a verification slot before a 503.
const VERIFY_WAIT: Duration = Duration::from_secs(5);
/// How long a credential that verified stays known good.
const KNOWN_GOOD: Duration = Duration::from_secs(86_400);

impl Authenticator {
    pub fn new(storage: Storage, ttl_seconds: u64) -> Self {
        Self::with_limits(storage, ttl_seconds, LoginLimits::default())
    }

    /// An authenticator with these failed-login limits.
    pub fn with_limits(storage: Storage, ttl_seconds: u64, limits: LoginLimits) -> Self {
        Authenticator {
            storage,
            cache_key: random_bytes::<32>(),
            ttl_micros: i64::try_from(ttl_seconds.saturating_mul(1_000_000)).unwrap_or(i64::MAX),
            failure_ttl_micros: 2_000_000,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .expire_after(CachedExpiry)
                .support_invalidation_closures()
                .build(),
            known_good: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(KNOWN_GOOD).build(),
            epoch: AtomicU64::new(0),
            verify_slots: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)),
            limits,
            by_address_and_name: counters(),
            by_name: counters(),
            by_address: counters(),
            dummy_hash: hash_password(&random_secret_hex()).unwrap_or_default(),
            verifications_per_failure: std::sync::atomic::AtomicUsize::new(1),
        }
    }

    /// Sets how many verifications a failed password login costs: the most active passwords
    /// any partner has (from the policy view).
    pub fn set_verifications_per_failure(&self, n: usize) {
        self.verifications_per_failure.store(n.clamp(1, 16), Ordering::Relaxed);
    }

    /// Drops the cached logins of these partners (their credentials changed, or they are gone)
    /// and the cached failures; everyone else's logins stay.
    pub fn forget(&self, partners: &[i64]) {
        if partners.is_empty() {
            return;
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let set: std::collections::HashSet<i64> = partners.iter().copied().collect();
        // Cached failures go too: one may be a credential that was just added.
        let _ = self
            .cache
            .invalidate_entries_if(move |_, v| v.caller.as_ref().is_none_or(|c| set.contains(&c.principal.id())));
    }

    fn digest(&self, header: &str) -> [u8; 32] {
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(&self.cache_key) {
            Ok(m) => m,
            Err(_) => std::process::abort(),
        };
        m.update(header.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// Whether a password for `name` from `peer` may not be checked (see [`Authenticator`]).
    fn limited(&self, peer: Option<IpAddr>, name: &str) -> bool {
        let count = |c: Option<Arc<AtomicU32>>| c.map_or(0, |n| n.load(Ordering::Relaxed));
        let under_attack = count(self.by_name.get(name)) >= self.limits.per_name;
        let Some(ip) = peer.map(address_key) else { return under_attack };
        let here = count(self.by_address_and_name.get(&(ip, name.to_owned())));
        let threshold = if under_attack { 1 } else { self.limits.per_address_and_name };
        here >= threshold || count(self.by_address.get(&ip)) >= self.limits.per_address
    }

    fn record_failure(&self, peer: Option<IpAddr>, name: &str) {
        let bump = |c: Arc<AtomicU32>| c.fetch_add(1, Ordering::Relaxed);
        let new = || Arc::new(AtomicU32::new(0));
        bump(self.by_name.get_with(name.to_owned(), new));
        if let Some(ip) = peer.map(address_key) {
            bump(self.by_address_and_name.get_with((ip, name.to_owned()), new));
            bump(self.by_address.get_with(ip, new));
        }
    }

    /// Turns an `Authorization` header value into the partner it authenticates, with the
    /// credential used. `peer` is the client address, for limiting failed logins.
    pub async fn authenticate(&self, header: Option<&str>, peer: Option<IpAddr>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let digest = self.digest(header);
        let now = now_micros();
        if let Some(hit) = self.cache.get(&digest) {
            if hit.until > now {
                return hit.caller.ok_or(AuthError::Invalid);
            }
        }
        let presented = parse_header(header);
        // Only passwords are limited: they cost a memory-hard verification and can be guessed.
        // API keys (256 random bits, checked with one SHA-256) are always checked, so nobody's
        // failures can get a partner's key refused.
        let password_name = match &presented {
            Some(Presented::Basic { user, secret }) if api_key_lookup(secret).is_none() => {
                Some(user.to_ascii_lowercase())
            }
            _ => None,
        };
        if let Some(name) = &password_name {
            if self.limited(peer, name) && self.known_good.get(&digest).is_none() {
                self.record_failure(peer, name);
                return Err(AuthError::TooManyFailures);
            }
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let outcome = match presented {
            None => None,
            Some(Presented::Key(key)) => self.check_key(key.to_owned(), now).await?,
            Some(Presented::Basic { user, secret }) => {
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
        match (&caller, &password_name) {
            (Some(_), Some(_)) => self.known_good.insert(digest, ()),
            (None, Some(name)) => self.record_failure(peer, name),
            _ => {}
        }
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.cache.insert(digest, Cached { caller: caller.clone(), until });
            // A `forget` between the check and the insert would miss this entry: drop it again.
            if self.epoch.load(Ordering::SeqCst) != epoch {
                self.cache.invalidate(&digest);
            }
        }
        caller.ok_or(AuthError::Invalid)
    }

    async fn check_key(&self, key: String, now: Micros) -> Result<Option<(Caller, Option<Micros>)>, AuthError> {
        let Some(lookup) = api_key_lookup(&key).map(str::to_owned) else { return Ok(None) };
        let found = self.storage.read(move |c| credentials::find_api_key(c, &lookup, now)).await?;
        Ok(found.and_then(|cred| {
            let digest = hex::encode(Sha256::digest(key.as_bytes()));
            secret_eq(digest.as_bytes(), cred.secret_hash.as_bytes()).then_some((
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
        let _slot = tokio::time::timeout(VERIFY_WAIT, self.verify_slots.acquire())
            .await
            .map_err(|_| AuthError::Busy)?
            .map_err(|_| AuthError::Busy)?;
        let storage = self.storage.clone();
        let dummy = self.dummy_hash.clone();
        let per_failure = self.verifications_per_failure.load(Ordering::Relaxed);
        let verified = tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
            // No partner has a name outside the naming rules; such a name is never sent to the
            // database (which might not even compare it: a NUL cannot be a PostgreSQL string).
            let creds = if crate::model::policy::valid_name(&user) {
                storage.read_blocking(|c| credentials::find_passwords(c, &user, now))?
            } else {
                Vec::new()
            };
            let verifications = &crate::metrics::get().password_verifications;
            let mut done = 0;
            let verify = |cred: &credentials::ActiveCredential| {
                verifications.inc();
                done += 1;
                verify_password(&cred.secret_hash, &password)
            };
            let found = creds.into_iter().find(verify);
            if found.is_none() {
                // A failure costs the same whatever the name: an unknown one, or a partner with
                // fewer passwords than the most any partner has, is padded with dummy checks.
                for _ in done..per_failure {
                    verifications.inc();
                    let _ = verify_password(&dummy, &password);
                }
            }
            Ok(found.map(|cred| {
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
    fn failures_are_counted_per_ipv4_address_and_per_ipv6_64() {
        let k = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(k("192.0.2.7"), "192.0.2.7");
        assert_eq!(k("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(k("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2::ffff"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }

    #[test]
    fn header_parsing() {
        assert!(matches!(parse_header("Basic YWxpY2U6c2VjcmV0"), Some(Presented::Basic { .. })));
        assert!(matches!(parse_header("Bearer cnc_x"), Some(Presented::Key("cnc_x"))));
        assert!(parse_header("Basic !!!").is_none());
        assert!(parse_header("Digest abc").is_none());
    }
}
