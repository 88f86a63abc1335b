//! Console operators' logins: an argon2 password, or a client certificate registered with the
//! operator. Failed password logins are limited as partners' are (per client address and name,
//! and per address, over a minute), and an unknown name costs what a wrong password does.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::{address_key, counters, hash_password, random_secret_hex, verify_password, Counters, LoginLimits};
use crate::storage::{operators, Storage, StorageError};

/// Why an operator login failed.
#[derive(Debug, thiserror::Error)]
pub enum OperatorLoginError {
    /// Unknown name, wrong password, or a certificate no operator holds (never which).
    #[error("unknown operator or wrong password")]
    Invalid,
    /// Too many failures from this address for this name (or for any names) this minute.
    #[error("too many failed logins; try again in a minute")]
    Limited,
    #[error("the database is busy or unreachable")]
    Unavailable(#[from] StorageError),
}

/// Checks operators' credentials.
pub struct OperatorAuth {
    storage: Storage,
    limits: LoginLimits,
    by_address_and_name: Counters<(IpAddr, String)>,
    by_address: Counters<IpAddr>,
    dummy_hash: String,
    /// Bounds the memory-hard verifications running at once.
    slots: tokio::sync::Semaphore,
}

impl OperatorAuth {
    pub fn new(storage: Storage, limits: LoginLimits) -> OperatorAuth {
        OperatorAuth {
            storage,
            limits,
            by_address_and_name: counters(),
            by_address: counters(),
            dummy_hash: hash_password(&random_secret_hex()).unwrap_or_default(),
            slots: tokio::sync::Semaphore::new(2),
        }
    }

    fn limited(&self, client: Option<IpAddr>, name: &str) -> bool {
        let Some(ip) = client.map(address_key) else { return false };
        let over = |n: Option<Arc<AtomicU32>>, limit: u32| n.is_some_and(|n| n.load(Ordering::Relaxed) >= limit);
        over(self.by_address_and_name.get(&(ip, name.to_owned())), self.limits.per_address_and_name)
            || over(self.by_address.get(&ip), self.limits.per_address)
    }

    fn failed(&self, client: Option<IpAddr>, name: &str) {
        if let Some(ip) = client.map(address_key) {
            let new = || Arc::new(AtomicU32::new(0));
            self.by_address_and_name.get_with((ip, name.to_owned()), new).fetch_add(1, Ordering::Relaxed);
            self.by_address.get_with(ip, new).fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Checks an operator's name and password; returns (operator id, name).
    ///
    /// # Errors
    /// [`OperatorLoginError`]: invalid (the same for an unknown name), limited, or unavailable.
    pub async fn password(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<(i64, String), OperatorLoginError> {
        if self.limited(client, name) {
            return Err(OperatorLoginError::Limited);
        }
        let _slot = self.slots.acquire().await.map_err(|_| OperatorLoginError::Invalid)?;
        let storage = self.storage.clone();
        let dummy = self.dummy_hash.clone();
        let (user, secret) = (name.to_owned(), password.to_owned());
        let found = tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
            let row = if crate::model::policy::valid_name(&user) {
                storage.read_blocking(|c| operators::find(c, &user))?
            } else {
                None
            };
            crate::metrics::get().password_verifications.inc();
            Ok(match row {
                Some(op) => match &op.password_hash {
                    Some(hash) if verify_password(hash, &secret) => Some((op.id, op.name)),
                    Some(_) => None,
                    None => {
                        // A certificate-only operator: no password opens it, at the same cost.
                        let _ = verify_password(&dummy, &secret);
                        None
                    }
                },
                None => {
                    let _ = verify_password(&dummy, &secret);
                    None
                }
            })
        })
        .await
        .map_err(|e| StorageError::Unavailable(Box::new(e)))??;
        match found {
            Some(who) => Ok(who),
            None => {
                self.failed(client, name);
                Err(OperatorLoginError::Invalid)
            }
        }
    }

    /// The operator holding this client certificate (`sha256:<hex>`, verified by the TLS layer).
    ///
    /// # Errors
    /// `Invalid` when no operator holds it; `Unavailable`.
    pub async fn certificate(&self, fingerprint: &str) -> Result<(i64, String), OperatorLoginError> {
        let fp = fingerprint.to_owned();
        self.storage.read(move |c| operators::find_by_certificate(c, &fp)).await?.ok_or(OperatorLoginError::Invalid)
    }
}
