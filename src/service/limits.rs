//! Abuse control on one node: per-partner request and write rates, and client-address
//! allow-lists (failed logins are limited in `auth`). Every table is bounded. Limits count per
//! node: behind a load balancer of N nodes a partner may reach N times its rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::model::access::{AccessView, Principal};
use crate::model::policy::PartnerLimits;

/// Why a request was refused before it was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The partner's `allow_from` does not include the client's address (shown, or `an unknown
    /// address`).
    NotAllowedFrom(String),
    /// Over `rate_limit` (requests) or `write_limit` (objects); retry after this long.
    RateLimited { what: &'static str, retry_after: Duration },
    /// An envelope with more objects than the partner may add in a whole minute: it can never
    /// pass; the client must split it.
    EnvelopeOverWriteLimit { objects: usize, per_minute: u32 },
    /// The partner is not in the policy this node has loaded yet (it was added a moment ago):
    /// its allow-list is unknown, so nothing is admitted until the next refresh.
    NotLoaded,
}

/// The limits that apply where a partner's policy says nothing (configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub requests_per_second: u32,
    pub burst: u32,
    pub objects_per_minute: u32,
}

impl Defaults {
    /// No practical limit (operator tools).
    pub const UNLIMITED: Defaults =
        Defaults { requests_per_second: u32::MAX, burst: u32::MAX, objects_per_minute: u32::MAX };
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// One partner's limiters and allow-list.
struct PartnerState {
    limits: PartnerLimits,
    requests: DefaultDirectRateLimiter,
    writes: DefaultDirectRateLimiter,
    /// The write limit in force (objects per minute).
    per_minute: u32,
}

impl PartnerState {
    fn new(limits: PartnerLimits, d: Defaults) -> PartnerState {
        let rate = limits.rate_limit.as_ref();
        let per_second = nz(rate.map_or(d.requests_per_second, |r| r.requests_per_second));
        let burst = nz(rate.and_then(|r| r.burst).unwrap_or(d.burst.max(per_second.get())));
        let per_minute = nz(limits.write_limit.as_ref().map_or(d.objects_per_minute, |w| w.objects_per_minute));
        PartnerState {
            requests: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            writes: RateLimiter::direct(Quota::per_minute(per_minute)),
            per_minute: per_minute.get(),
            limits,
        }
    }
}

/// How long until a limiter admits again.
fn wait(not_until: &governor::NotUntil<<DefaultClock as governor::clock::Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

/// Rates and allow-lists for every partner of the policy, and for anonymous clients by address.
pub struct Limits {
    defaults: Defaults,
    partners: RwLock<HashMap<i64, Arc<PartnerState>>>,
    /// Anonymous readers (`anonymous_read`), one limiter per client address; bounded.
    anonymous: moka::sync::Cache<IpAddr, Arc<DefaultDirectRateLimiter>>,
}

impl Limits {
    /// Limits with these defaults; [`Limits::update`] loads the partners' own.
    pub fn new(defaults: Defaults) -> Limits {
        Limits {
            defaults,
            partners: RwLock::new(HashMap::new()),
            anonymous: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// Takes the partners' limits from a (re)loaded policy. A partner whose limits did not
    /// change keeps its limiters, and with them what it has used up.
    pub fn update(&self, view: &AccessView) {
        let mut partners = match self.partners.write() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        let old = std::mem::take(&mut *partners);
        for (id, limits) in &view.limits {
            let state = match old.get(id) {
                Some(s) if s.limits == *limits => s.clone(),
                _ => Arc::new(PartnerState::new(limits.clone(), self.defaults)),
            };
            partners.insert(*id, state);
        }
    }

    /// The partner's limiters; `None` for a partner the loaded policy does not know yet.
    fn partner(&self, id: i64) -> Option<Arc<PartnerState>> {
        match self.partners.read() {
            Ok(p) => p.get(&id).cloned(),
            Err(p) => p.into_inner().get(&id).cloned(),
        }
    }

    /// Admits one request of an authenticated caller from `client`.
    ///
    /// # Errors
    /// The refusal: not from an allowed address, or over the request rate.
    pub fn admit(&self, who: &Principal, client: Option<IpAddr>) -> Result<(), Refusal> {
        let limiter = match who {
            Principal::Partner { id, .. } => {
                let state = self.partner(*id).ok_or(Refusal::NotLoaded)?;
                let allowed = state.limits.allow_from.is_empty()
                    || client.is_some_and(|ip| state.limits.allow_from.iter().any(|net| net.contains(&ip)));
                if !allowed {
                    return Err(Refusal::NotAllowedFrom(
                        client.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string()),
                    ));
                }
                return state
                    .requests
                    .check()
                    .map_err(|n| Refusal::RateLimited { what: "requests", retry_after: wait(&n) });
            }
            Principal::Anonymous => {
                let Some(ip) = client.map(crate::auth::address_key) else { return Ok(()) };
                let d = self.defaults;
                self.anonymous.get_with(ip, || {
                    Arc::new(RateLimiter::direct(
                        Quota::per_second(nz(d.requests_per_second))
                            .allow_burst(nz(d.burst.max(d.requests_per_second))),
                    ))
                })
            }
        };
        limiter.check().map_err(|n| Refusal::RateLimited { what: "requests", retry_after: wait(&n) })
    }

    /// Admits `objects` objects written by a partner (Add Objects).
    ///
    /// # Errors
    /// Over the partner's write rate (an envelope larger than a whole minute's allowance is
    /// refused outright, with a minute to wait).
    pub fn admit_write(&self, who: &Principal, objects: usize) -> Result<(), Refusal> {
        let Principal::Partner { id, .. } = who else { return Ok(()) };
        let state = self.partner(*id).ok_or(Refusal::NotLoaded)?;
        let n = nz(u32::try_from(objects).unwrap_or(u32::MAX).max(1));
        match state.writes.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refusal::RateLimited { what: "writes", retry_after: wait(&not_until) }),
            Err(_) => Err(Refusal::EnvelopeOverWriteLimit { objects, per_minute: state.per_minute }),
        }
    }
}

/// Whole seconds to tell a client in `Retry-After` (at least 1).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::{RateLimitPolicy, WriteLimitPolicy};

    fn view(limits: PartnerLimits) -> AccessView {
        let mut v = AccessView::default();
        v.limits.insert(1, limits);
        v
    }

    fn alice() -> Principal {
        Principal::Partner { id: 1, name: "alice".into() }
    }

    #[test]
    fn a_burst_then_429_with_a_wait() {
        let l = Limits::new(Defaults { requests_per_second: 1000, burst: 1000, objects_per_minute: 1000 });
        l.update(&view(PartnerLimits {
            rate_limit: Some(RateLimitPolicy { requests_per_second: 1, burst: Some(3) }),
            ..PartnerLimits::default()
        }));
        for _ in 0..3 {
            assert_eq!(l.admit(&alice(), None), Ok(()));
        }
        match l.admit(&alice(), None) {
            Err(Refusal::RateLimited { what: "requests", retry_after }) => {
                assert!(retry_after <= Duration::from_secs(1) && retry_after > Duration::ZERO)
            }
            other => panic!("{other:?}"),
        }
        // Another partner is not affected.
        let mut v = view(PartnerLimits {
            rate_limit: Some(RateLimitPolicy { requests_per_second: 1, burst: Some(3) }),
            ..PartnerLimits::default()
        });
        v.limits.insert(2, PartnerLimits::default());
        l.update(&v);
        assert_eq!(l.admit(&Principal::Partner { id: 2, name: "bob".into() }, None), Ok(()));
        assert!(l.admit(&alice(), None).is_err(), "alice's budget survives the reload");
    }

    #[test]
    fn writes_count_objects() {
        let l = Limits::new(Defaults { requests_per_second: 1000, burst: 1000, objects_per_minute: 1000 });
        l.update(&view(PartnerLimits {
            write_limit: Some(WriteLimitPolicy { objects_per_minute: 100 }),
            ..PartnerLimits::default()
        }));
        assert_eq!(l.admit_write(&alice(), 60), Ok(()));
        assert!(matches!(l.admit_write(&alice(), 60), Err(Refusal::RateLimited { what: "writes", .. })), "40 left");
        assert_eq!(
            l.admit_write(&alice(), 500),
            Err(Refusal::EnvelopeOverWriteLimit { objects: 500, per_minute: 100 }),
            "more than a minute's allowance can never pass"
        );
    }

    #[test]
    fn a_partner_the_loaded_policy_does_not_know_is_not_admitted() {
        let l = Limits::new(Defaults { requests_per_second: 1000, burst: 1000, objects_per_minute: 1000 });
        l.update(&view(PartnerLimits::default()));
        assert_eq!(l.admit(&Principal::Partner { id: 99, name: "new".into() }, None), Err(Refusal::NotLoaded));
    }

    #[test]
    fn allow_from_is_checked_against_the_client_address() {
        let l = Limits::new(Defaults { requests_per_second: 1000, burst: 1000, objects_per_minute: 1000 });
        l.update(&view(PartnerLimits {
            allow_from: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
            ..PartnerLimits::default()
        }));
        assert_eq!(l.admit(&alice(), Some("192.0.2.7".parse().unwrap())), Ok(()));
        assert_eq!(l.admit(&alice(), Some("2001:db8::1".parse().unwrap())), Ok(()));
        assert_eq!(
            l.admit(&alice(), Some("198.51.100.1".parse().unwrap())),
            Err(Refusal::NotAllowedFrom("198.51.100.1".into()))
        );
        assert!(matches!(l.admit(&alice(), None), Err(Refusal::NotAllowedFrom(_))));
    }

    #[test]
    fn unchanged_limits_keep_their_state_across_reloads() {
        let l = Limits::new(Defaults { requests_per_second: 1000, burst: 1000, objects_per_minute: 1000 });
        let limits = PartnerLimits {
            rate_limit: Some(RateLimitPolicy { requests_per_second: 1, burst: Some(1) }),
            ..PartnerLimits::default()
        };
        l.update(&view(limits.clone()));
        assert_eq!(l.admit(&alice(), None), Ok(()));
        l.update(&view(limits));
        assert!(l.admit(&alice(), None).is_err(), "a reload must not reset the budget");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
