//! Who may do what: the policy as loaded from the database, resolved per partner.
//!
//! Access control lives here and only here: every service call asks [`AccessView::rights`] for
//! the caller's rights on a collection, and a collection without rights is treated exactly like
//! one that does not exist.

use std::collections::HashMap;

use super::policy::DiscoveryPolicy;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRootInfo {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub max_content_length: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionInfo {
    pub id: String,
    /// The integer key that stored objects carry instead of the id (assigned once per id).
    pub key: i64,
    pub api_root_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub alias: Option<String>,
    pub public_read: bool,
    pub sharing: super::policy::SharingPolicy,
    /// Derived sources and filter, retention, TAXII 2.0.
    pub feed: super::feed::FeedSettings,
}

/// Read and write rights of one caller on one collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
}

impl Rights {
    /// Whether the caller may know the collection exists at all.
    pub fn visible(self) -> bool {
        self.read || self.write
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Partner {
        id: i64,
        name: String,
    },
    /// No credentials, on a server with anonymous read of public collections enabled.
    Anonymous,
}

impl Principal {
    /// Id recorded with statuses and cursors (0 for anonymous).
    pub fn id(&self) -> i64 {
        match self {
            Principal::Partner { id, .. } => *id,
            Principal::Anonymous => 0,
        }
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    ApiKey,
    Certificate,
    /// No credentials (public collections with `anonymous_read`).
    Anonymous,
}

impl AuthMethod {
    /// The name the audit trail records.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Certificate => "certificate",
            AuthMethod::Anonymous => "anonymous",
        }
    }
}

/// The credential that authenticated a request, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub method: AuthMethod,
    /// The credential id, or `sha256:<hex>` of a client certificate.
    pub id: Option<String>,
}

/// An authenticated caller: who, and through which credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    pub credential: Credential,
}

impl Caller {
    /// A caller without credentials.
    pub fn anonymous() -> Caller {
        Caller { principal: Principal::Anonymous, credential: Credential { method: AuthMethod::Anonymous, id: None } }
    }
}

/// What a client certificate (already verified against `tls_client_ca` by the TLS layer) says
/// about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerCertificate {
    /// `sha256:<hex>` of the DER certificate.
    pub fingerprint: String,
    /// Subject attributes (short names such as `CN`, `O`, `C`), in certificate order.
    pub subject: Vec<(String, String)>,
    /// subjectAltName entries as `dns:…`, `email:…`, `uri:…`, `ip:…`.
    pub sans: Vec<String>,
    /// End of validity, µs since the epoch.
    pub not_after: i64,
}

/// How a partner's certificates are recognised (from the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateIdentity {
    /// The exact certificate, by `sha256:<hex>` fingerprint.
    Fingerprint(String),
    /// Every listed attribute present with a matching value (`*` matches any characters).
    Subject(Vec<(String, String)>),
    /// A subjectAltName of this kind (`dns`, `email`, `uri`, `ip`) matching the pattern.
    San(String, String),
}

/// `*` matches any run of characters; everything else literally (ASCII case-insensitively when
/// `fold`).
fn glob(pattern: &str, value: &str, fold: bool) -> bool {
    let eq = |a: u8, b: u8| if fold { a.eq_ignore_ascii_case(&b) } else { a == b };
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while vi < v.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some(pi);
                mark = vi;
                pi += 1;
            }
            Some(&c) if v.get(vi).is_some_and(|&x| eq(c, x)) => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    vi = mark;
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

impl CertificateIdentity {
    /// Whether a certificate matches.
    pub fn matches(&self, cert: &PeerCertificate) -> bool {
        match self {
            CertificateIdentity::Fingerprint(f) => *f == cert.fingerprint,
            CertificateIdentity::Subject(want) => want.iter().all(|(attr, pattern)| {
                cert.subject.iter().any(|(a, v)| a.eq_ignore_ascii_case(attr) && glob(pattern, v, false))
            }),
            CertificateIdentity::San(kind, pattern) => {
                let fold = kind == "dns" || kind == "email";
                cert.sans
                    .iter()
                    .any(|san| san.split_once(':').is_some_and(|(k, v)| k == kind && glob(pattern, v, fold)))
            }
        }
    }
}

/// The whole policy, resolved: loaded at start and reloaded when its generation changes.
#[derive(Debug, Clone, Default)]
pub struct AccessView {
    pub generation: i64,
    /// The generation of the collections' definitions (derived sources and filters): what a
    /// write to a source checks under its locks.
    pub feed_generation: i64,
    pub discovery: Option<DiscoveryPolicy>,
    pub api_roots: Vec<ApiRootInfo>,
    /// Sorted by id, the stable order of the collections list (T-112).
    pub collections: Vec<CollectionInfo>,
    /// partner id -> collection id -> rights (union over the partner's groups).
    pub rights: HashMap<i64, HashMap<String, Rights>>,
    pub anonymous_read: bool,
    /// Partners' certificate identities: (partner id, partner name, identity).
    pub certificates: Vec<(i64, String, CertificateIdentity)>,
    /// Partners' allow-lists and limits (every partner has an entry).
    pub limits: HashMap<i64, crate::model::policy::PartnerLimits>,
    /// What a cached login of each partner depends on: a digest of its name and its credentials
    /// (ids, expiry, revocation). When it changes, that partner's cached logins are dropped;
    /// other policy changes (grants, groups, collections) leave cached logins alone, since
    /// rights are resolved from the view on every request.
    pub login_state: HashMap<i64, [u8; 32]>,
    /// The most active passwords any partner has (what a failed password login is padded to).
    pub max_passwords: usize,
}

impl AccessView {
    pub fn api_root(&self, name: &str) -> Option<&ApiRootInfo> {
        self.api_roots.iter().find(|r| r.name == name)
    }

    pub fn collection(&self, id: &str) -> Option<&CollectionInfo> {
        self.collections.binary_search_by(|c| c.id.as_str().cmp(id)).ok().and_then(|i| self.collections.get(i))
    }

    /// The caller's rights on a collection.
    pub fn rights(&self, who: &Principal, collection: &CollectionInfo) -> Rights {
        let rights = match who {
            Principal::Partner { id, .. } => {
                self.rights.get(id).and_then(|m| m.get(&collection.id)).copied().unwrap_or_default()
            }
            Principal::Anonymous => Rights { read: self.anonymous_read && collection.public_read, write: false },
        };
        // A derived collection takes no writes, whatever grants a database may hold.
        Rights { write: rights.write && !collection.feed.is_derived(), ..rights }
    }

    /// Collections of an API root the caller can see, in stable order.
    pub fn visible_collections<'a>(
        &'a self,
        who: &'a Principal,
        root: &'a ApiRootInfo,
    ) -> impl Iterator<Item = (&'a CollectionInfo, Rights)> + 'a {
        self.collections
            .iter()
            .filter(move |c| c.api_root_id == root.id)
            .map(move |c| (c, self.rights(who, c)))
            .filter(|(_, r)| r.visible())
    }

    /// Every partner a client certificate identifies (a policy makes this one partner at most
    /// for fingerprints; subject and SAN patterns of several partners may overlap).
    pub fn partners_for_certificate(&self, cert: &PeerCertificate) -> Vec<Principal> {
        let mut out: Vec<Principal> = Vec::new();
        for (id, name, identity) in &self.certificates {
            if identity.matches(cert) && !out.iter().any(|p| p.id() == *id) {
                out.push(Principal::Partner { id: *id, name: name.clone() });
            }
        }
        out
    }

    /// The derived collections a write to `source` feeds, with the source's bit in each, in
    /// ascending key order (the order their clocks are locked in).
    pub fn derived_of(&self, source: &str) -> Vec<(&CollectionInfo, i64)> {
        let mut out: Vec<(&CollectionInfo, i64)> =
            self.collections.iter().filter_map(|c| c.feed.source_bit(source).map(|bit| (c, bit))).collect();
        out.sort_by_key(|(c, _)| c.key);
        out
    }

    /// What a caller who may read a derived collection sees of it: `None` for everything (it
    /// may read every source, or the collection is not derived), else the bits of the sources
    /// it may read. The grant of a derived collection narrows; it never widens.
    pub fn readable_sources(&self, who: &Principal, collection: &CollectionInfo) -> Option<i64> {
        if !collection.feed.is_derived() {
            return None;
        }
        let mut bits = 0i64;
        let mut all = true;
        for (i, source) in collection.feed.derived_from.iter().enumerate() {
            let readable = self.collection(source).is_some_and(|s| self.rights(who, s).read);
            if readable {
                bits |= 1i64 << i;
            } else {
                all = false;
            }
        }
        (!all).then_some(bits)
    }

    /// API roots where the caller has at least one collection.
    pub fn visible_roots<'a>(&'a self, who: &'a Principal) -> impl Iterator<Item = &'a ApiRootInfo> + 'a {
        self.api_roots.iter().filter(move |r| self.visible_collections(who, r).next().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> PeerCertificate {
        PeerCertificate {
            fingerprint: "sha256:ab".into(),
            subject: vec![
                ("C".into(), "AA".into()),
                ("O".into(), "CERT Alpha".into()),
                ("CN".into(), "taxii.alpha.example".into()),
            ],
            sans: vec!["dns:taxii.alpha.example".into(), "email:soc@alpha.example".into()],
            not_after: 0,
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*.alpha.example", "taxii.alpha.example", false));
        assert!(glob("a*c", "abbbc", false));
        assert!(glob("*", "", false));
        assert!(!glob("*.alpha.example", "alpha.example", false));
        assert!(!glob("abc", "abcd", false));
        assert!(glob("ABC", "abc", true));
        assert!(!glob("ABC", "abc", false));
    }

    #[test]
    fn certificate_identities() {
        let c = cert();
        assert!(CertificateIdentity::Fingerprint("sha256:ab".into()).matches(&c));
        assert!(!CertificateIdentity::Fingerprint("sha256:cd".into()).matches(&c));
        let subj = |pairs: &[(&str, &str)]| {
            CertificateIdentity::Subject(pairs.iter().map(|(a, v)| ((*a).to_owned(), (*v).to_owned())).collect())
        };
        assert!(subj(&[("CN", "*.alpha.example"), ("O", "CERT Alpha")]).matches(&c));
        assert!(!subj(&[("CN", "*.alpha.example"), ("O", "CERT Bravo")]).matches(&c));
        assert!(!subj(&[("OU", "*")]).matches(&c), "a missing attribute never matches");
        assert!(CertificateIdentity::San("dns".into(), "*.ALPHA.example".into()).matches(&c));
        assert!(CertificateIdentity::San("email".into(), "soc@alpha.example".into()).matches(&c));
        assert!(!CertificateIdentity::San("uri".into(), "*".into()).matches(&c));
    }
}
