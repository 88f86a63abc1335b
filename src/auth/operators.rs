//! Console operators' logins: an argon2 password, or a client certificate registered with the
//! operator. Failed password logins are limited as partners' are (per client address and name,
//! per address, and per name while it is under attack, over a minute; an attempt counts as a
//! failure until its password verified), and an unknown name costs what a wrong password does.

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
    /// Too many logins are being checked at once.
    #[error("too many logins are being checked; try again in a moment")]
    Busy,
    #[error("the database is busy or unreachable")]
    Unavailable(#[from] StorageError),
}

/// How long a login waits for a verification slot before it is refused as busy.
const VERIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Checks operators' credentials.
pub struct OperatorAuth {
    storage: Storage,
    limits: LoginLimits,
    by_address_and_name: Counters<(IpAddr, String)>,
    by_address: Counters<IpAddr>,
    by_name: Counters<String>,
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
            by_name: counters(),
            dummy_hash: hash_password(&random_secret_hex()).unwrap_or_default(),
            slots: tokio::sync::Semaphore::new(2),
        }
    }

    /// Counts an attempt as a failure before its password is checked (given back when it
    /// succeeds), so that concurrent attempts cannot all pass the limit; `false` when it is over
    /// a limit: failures from this address for this name, from this address for any names, or
    /// (while the name is under attack from many addresses) any earlier failure of this address
    /// for it.
    fn reserve(&self, client: Option<IpAddr>, name: &str) -> bool {
        let new = || Arc::new(AtomicU32::new(0));
        let by_name = self.by_name.get_with(name.to_owned(), new);
        let Some(ip) = client.map(address_key) else {
            by_name.fetch_add(1, Ordering::AcqRel);
            return true;
        };
        let pair = self.by_address_and_name.get_with((ip, name.to_owned()), new);
        let address = self.by_address.get_with(ip, new);
        let pair_n = pair.fetch_add(1, Ordering::AcqRel);
        let address_n = address.fetch_add(1, Ordering::AcqRel);
        let name_n = by_name.fetch_add(1, Ordering::AcqRel);
        let over = pair_n >= self.limits.per_address_and_name
            || address_n >= self.limits.per_address
            || (name_n >= self.limits.per_name && pair_n >= 1);
        if over {
            for n in [&pair, &address, &by_name] {
                let _ = n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(1)));
            }
        }
        !over
    }

    /// Gives back the failure [`OperatorAuth::reserve`] counted.
    fn release(&self, client: Option<IpAddr>, name: &str) {
        let dec = |n: Option<Arc<AtomicU32>>| {
            if let Some(n) = n {
                let _ = n.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(1)));
            }
        };
        dec(self.by_name.get(name));
        if let Some(ip) = client.map(address_key) {
            dec(self.by_address_and_name.get(&(ip, name.to_owned())));
            dec(self.by_address.get(&ip));
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
        if !self.reserve(client, name) {
            return Err(OperatorLoginError::Limited);
        }
        let Ok(Ok(_slot)) = tokio::time::timeout(VERIFY_WAIT, self.slots.acquire()).await else {
            self.release(client, name);
            return Err(OperatorLoginError::Busy);
        };
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
        .map_err(|e| StorageError::Unavailable(Box::new(e)))?;
        match found {
            Ok(Some(who)) => {
                self.release(client, name);
                Ok(who)
            }
            Ok(None) => Err(OperatorLoginError::Invalid),
            Err(e) => {
                self.release(client, name);
                Err(e.into())
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
