//! Provisioning as a plan: the typed changes that make the stored state match a policy file,
//! computed without a database (`concordia apply` prints it for `--dry-run`, storage applies it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::feed::FeedSettings;
use super::policy::{ApiRootPolicy, DiscoveryPolicy, PartnerLimits, Policy, SharingPolicy};

/// An API root as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRootState {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    pub max_content_length: i64,
}

/// A partner as stored, with its certificate identities (kind, pattern).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerState {
    pub name: String,
    pub title: Option<String>,
    pub certificates: BTreeSet<(String, String)>,
    /// Allow-list and limits; `None` when the stored value cannot be read (it is then rewritten).
    pub limits: Option<PartnerLimits>,
}

/// A partner group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub name: String,
    pub description: Option<String>,
    pub members: BTreeSet<String>,
}

/// A collection as stored, with its grants (group name -> read, write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionState {
    pub id: String,
    pub api_root: String,
    pub title: String,
    pub description: Option<String>,
    pub alias: Option<String>,
    pub public: bool,
    /// `None` when the stored sharing policy cannot be read (it is then rewritten).
    pub sharing: Option<SharingPolicy>,
    /// Derived sources and filter, retention, TAXII 2.0 (`None` when unreadable: rewritten).
    pub feed: Option<FeedSettings>,
    pub grants: BTreeMap<String, (bool, bool)>,
    /// Object versions it holds (a collection holding any is never pruned).
    pub objects: i64,
}

/// Everything `apply` compares a policy with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub discovery: Option<DiscoveryPolicy>,
    pub api_roots: Vec<ApiRootState>,
    pub partners: Vec<PartnerState>,
    pub groups: Vec<GroupState>,
    pub collections: Vec<CollectionState>,
}

/// The settings of a collection that `apply` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSettings {
    pub id: String,
    pub api_root: String,
    pub title: String,
    pub description: Option<String>,
    pub alias: Option<String>,
    pub public: bool,
    pub sharing: SharingPolicy,
    pub feed: FeedSettings,
}

/// A partner's allow-list and limits, for a plan line (nothing when the defaults apply).
fn limits_note(l: &PartnerLimits) -> String {
    let mut parts = Vec::new();
    if !l.allow_from.is_empty() {
        parts.push(format!(
            "allow_from {}",
            l.allow_from.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(r) = &l.rate_limit {
        match r.burst {
            Some(b) => parts.push(format!("{} requests/s, burst {b}", r.requests_per_second)),
            None => parts.push(format!("{} requests/s", r.requests_per_second)),
        }
    }
    if let Some(w) = &l.write_limit {
        parts.push(format!("{} objects/min", w.objects_per_minute));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// One change to the stored provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    SetDiscovery(DiscoveryPolicy),
    RemoveDiscovery,
    AddApiRoot(ApiRootPolicy),
    UpdateApiRoot(ApiRootPolicy),
    AddPartner {
        name: String,
        title: Option<String>,
        limits: PartnerLimits,
    },
    UpdatePartner {
        name: String,
        title: Option<String>,
        limits: PartnerLimits,
    },
    /// `--prune`: the partner, its memberships and its credentials go.
    RemovePartner {
        name: String,
    },
    AddCertificate {
        partner: String,
        kind: String,
        pattern: String,
    },
    RemoveCertificate {
        partner: String,
        kind: String,
        pattern: String,
    },
    AddGroup {
        name: String,
        description: Option<String>,
    },
    UpdateGroup {
        name: String,
        description: Option<String>,
    },
    /// The group with its memberships and grants.
    RemoveGroup {
        name: String,
    },
    AddMember {
        group: String,
        partner: String,
    },
    RemoveMember {
        group: String,
        partner: String,
    },
    AddCollection(CollectionSettings),
    UpdateCollection {
        settings: CollectionSettings,
        sharing_changed: bool,
        /// A derived collection's sources or filter changed: its contents are rebuilt.
        rebuild: bool,
    },
    /// `--prune`, and only when it holds no object.
    RemoveCollection {
        id: String,
        title: String,
    },
    Grant {
        collection: String,
        title: String,
        group: String,
        read: bool,
        write: bool,
    },
    ChangeGrant {
        collection: String,
        title: String,
        group: String,
        read: bool,
        write: bool,
    },
    Revoke {
        collection: String,
        title: String,
        group: String,
    },
}

impl Change {
    /// Partners whose access or credentials the change may alter (`None`: every partner, e.g. a
    /// collection or group change). Running servers drop only these partners' cached logins.
    pub fn affected_partners(&self) -> Option<Vec<&str>> {
        match self {
            Change::AddPartner { name, .. } | Change::UpdatePartner { name, .. } | Change::RemovePartner { name } => {
                Some(vec![name])
            }
            Change::AddCertificate { partner, .. } | Change::RemoveCertificate { partner, .. } => Some(vec![partner]),
            Change::AddMember { partner, .. } | Change::RemoveMember { partner, .. } => Some(vec![partner]),
            Change::SetDiscovery(_) | Change::RemoveDiscovery | Change::AddApiRoot(_) | Change::UpdateApiRoot(_) => {
                Some(Vec::new())
            }
            _ => None,
        }
    }
}

fn derived_note(feed: &FeedSettings) -> String {
    match feed.derived_from.len() {
        0 => String::new(),
        1 => ", derived from 1 collection".into(),
        n => format!(", derived from {n} collections"),
    }
}

fn rights(read: bool, write: bool) -> &'static str {
    match (read, write) {
        (true, true) => "read+write",
        (true, false) => "read",
        (false, true) => "write",
        (false, false) => "nothing",
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::SetDiscovery(d) => write!(f, "~ discovery: title '{}'", d.title),
            Change::RemoveDiscovery => write!(f, "- discovery information"),
            Change::AddApiRoot(r) => write!(f, "+ api root '{}' (/{}/)", r.name, r.name),
            Change::UpdateApiRoot(r) => write!(f, "~ api root '{}'", r.name),
            Change::AddPartner { name, limits, .. } => write!(f, "+ partner '{name}'{}", limits_note(limits)),
            Change::UpdatePartner { name, limits, .. } => write!(f, "~ partner '{name}'{}", limits_note(limits)),
            Change::RemovePartner { name } => write!(f, "- partner '{name}' and its credentials"),
            Change::AddCertificate { partner, kind, pattern } => {
                write!(f, "+ certificate {kind} {pattern} identifies partner '{partner}'")
            }
            Change::RemoveCertificate { partner, kind, pattern } => {
                write!(f, "- certificate {kind} {pattern} of partner '{partner}'")
            }
            Change::AddGroup { name, .. } => write!(f, "+ group '{name}'"),
            Change::UpdateGroup { name, .. } => write!(f, "~ group '{name}'"),
            Change::RemoveGroup { name } => write!(f, "- group '{name}' with its memberships and grants"),
            Change::AddMember { group, partner } => write!(f, "+ member '{partner}' of group '{group}'"),
            Change::RemoveMember { group, partner } => write!(f, "- member '{partner}' of group '{group}'"),
            Change::AddCollection(c) => {
                write!(f, "+ collection '{}' ({}) in api root '{}'{}", c.title, c.id, c.api_root, derived_note(&c.feed))
            }
            Change::UpdateCollection { settings, sharing_changed, rebuild } => write!(
                f,
                "~ collection '{}' ({}){}{}",
                settings.title,
                settings.id,
                if *sharing_changed { " (sharing policy)" } else { "" },
                if *rebuild { " (derived contents rebuilt)" } else { "" }
            ),
            Change::RemoveCollection { id, title } => write!(f, "- collection '{title}' ({id})"),
            Change::Grant { title, group, read, write, .. } => {
                write!(f, "+ grant {} on '{title}' to group '{group}'", rights(*read, *write))
            }
            Change::ChangeGrant { title, group, read, write, .. } => {
                write!(f, "~ grant on '{title}' to group '{group}' is now {}", rights(*read, *write))
            }
            Change::Revoke { title, group, .. } => write!(f, "- grant on '{title}' to group '{group}'"),
        }
    }
}

/// The changes that make a stored state match a policy, and notes on what is kept as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// What stays although the policy does not name it (printed with `=`).
    pub kept: Vec<String>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        for k in &self.kept {
            writeln!(f, "= {k}")?;
        }
        Ok(())
    }
}

impl Plan {
    /// What `policy` changes in `state`. API roots, partners, groups, memberships, collections,
    /// grants and certificate identities are created or updated; groups absent from the policy
    /// go with their grants, and so do memberships, grants and certificates absent from it.
    /// Partners and collections absent from the policy are kept unless `prune`; a collection
    /// that holds objects is never removed. `new_id` names collections the policy gives no id.
    pub fn compute(policy: &Policy, state: &State, prune: bool, new_id: &mut dyn FnMut() -> String) -> Plan {
        let mut changes = Vec::new();
        let mut kept = Vec::new();
        let ch = &mut changes;

        if state.discovery != policy.discovery {
            ch.push(match &policy.discovery {
                Some(d) => Change::SetDiscovery(d.clone()),
                None => Change::RemoveDiscovery,
            });
        }

        for r in &policy.api_roots {
            match state.api_roots.iter().find(|s| s.name == r.name) {
                None => ch.push(Change::AddApiRoot(r.clone())),
                Some(s) => {
                    if s.title != r.title
                        || s.description != r.description
                        || s.max_content_length != r.max_content_length
                    {
                        ch.push(Change::UpdateApiRoot(r.clone()));
                    }
                }
            }
        }

        for p in &policy.partners {
            let want: BTreeSet<(String, String)> = p.certificate_rows().unwrap_or_default().into_iter().collect();
            let limits = p.limits().unwrap_or_default();
            let have = match state.partners.iter().find(|s| s.name == p.name) {
                None => {
                    ch.push(Change::AddPartner { name: p.name.clone(), title: p.title.clone(), limits });
                    BTreeSet::new()
                }
                Some(s) => {
                    if s.title != p.title || s.limits.as_ref() != Some(&limits) {
                        ch.push(Change::UpdatePartner { name: p.name.clone(), title: p.title.clone(), limits });
                    }
                    s.certificates.clone()
                }
            };
            for (kind, pattern) in want.difference(&have) {
                ch.push(Change::AddCertificate {
                    partner: p.name.clone(),
                    kind: kind.clone(),
                    pattern: pattern.clone(),
                });
            }
            for (kind, pattern) in have.difference(&want) {
                ch.push(Change::RemoveCertificate {
                    partner: p.name.clone(),
                    kind: kind.clone(),
                    pattern: pattern.clone(),
                });
            }
        }
        for s in &state.partners {
            if !policy.partners.iter().any(|p| p.name == s.name) {
                if prune {
                    ch.push(Change::RemovePartner { name: s.name.clone() });
                } else {
                    kept.push(format!("partner '{}' is not in the policy; kept (use --prune to remove)", s.name));
                }
            }
        }
        // Partners that exist once the plan is applied (memberships only name those).
        let partner_exists = |n: &str| {
            policy.partners.iter().any(|p| p.name == n) || (!prune && state.partners.iter().any(|p| p.name == n))
        };

        for g in &policy.groups {
            let want: BTreeSet<String> = g.members.iter().filter(|m| partner_exists(m)).cloned().collect();
            let have = match state.groups.iter().find(|s| s.name == g.name) {
                None => {
                    ch.push(Change::AddGroup { name: g.name.clone(), description: g.description.clone() });
                    BTreeSet::new()
                }
                Some(s) => {
                    if s.description != g.description {
                        ch.push(Change::UpdateGroup { name: g.name.clone(), description: g.description.clone() });
                    }
                    s.members.clone()
                }
            };
            for m in want.difference(&have) {
                ch.push(Change::AddMember { group: g.name.clone(), partner: m.clone() });
            }
            // (A pruned partner's memberships go with it.)
            for m in have.difference(&want).filter(|m| partner_exists(m)) {
                ch.push(Change::RemoveMember { group: g.name.clone(), partner: m.clone() });
            }
        }
        for s in &state.groups {
            if !policy.groups.iter().any(|g| g.name == s.name) {
                ch.push(Change::RemoveGroup { name: s.name.clone() });
            }
        }

        let mut kept_ids = BTreeSet::new();
        for col in &policy.collections {
            let existing = state.collections.iter().find(|s| match &col.id {
                Some(id) => s.id == *id,
                None => s.api_root == col.api_root && s.title == col.title,
            });
            let settings = CollectionSettings {
                id: existing.map(|s| s.id.clone()).or_else(|| col.id.clone()).unwrap_or_else(&mut *new_id),
                api_root: col.api_root.clone(),
                title: col.title.clone(),
                description: col.description.clone(),
                alias: col.alias.clone(),
                public: col.public,
                sharing: col.sharing.clone(),
                feed: col.feed(),
            };
            let have_grants = match existing {
                None => {
                    ch.push(Change::AddCollection(settings.clone()));
                    BTreeMap::new()
                }
                Some(s) => {
                    let sharing_changed = s.sharing.as_ref() != Some(&col.sharing);
                    let rebuild = match &s.feed {
                        Some(old) => !old.same_contents(&settings.feed),
                        None => settings.feed.is_derived(),
                    };
                    if s.api_root != col.api_root
                        || s.title != col.title
                        || s.description != col.description
                        || s.alias != col.alias
                        || s.public != col.public
                        || sharing_changed
                        || s.feed.as_ref() != Some(&settings.feed)
                    {
                        ch.push(Change::UpdateCollection { settings: settings.clone(), sharing_changed, rebuild });
                    }
                    // Grants of groups that go with this plan go with them.
                    s.grants
                        .iter()
                        .filter(|(g, _)| policy.groups.iter().any(|pg| pg.name == **g))
                        .map(|(g, r)| (g.clone(), *r))
                        .collect()
                }
            };
            kept_ids.insert(settings.id.clone());
            let mut want_grants: BTreeMap<String, (bool, bool)> = BTreeMap::new();
            for g in &col.read {
                want_grants.entry(g.clone()).or_default().0 = true;
            }
            for g in &col.write {
                want_grants.entry(g.clone()).or_default().1 = true;
            }
            for (group, &(read, write)) in &want_grants {
                let (collection, title, group) = (settings.id.clone(), col.title.clone(), group.clone());
                match have_grants.get(&group) {
                    None => ch.push(Change::Grant { collection, title, group, read, write }),
                    Some(&r) if r != (read, write) => {
                        ch.push(Change::ChangeGrant { collection, title, group, read, write })
                    }
                    Some(_) => {}
                }
            }
            for group in have_grants.keys().filter(|g| !want_grants.contains_key(*g)) {
                ch.push(Change::Revoke {
                    collection: settings.id.clone(),
                    title: col.title.clone(),
                    group: group.clone(),
                });
            }
        }
        for s in state.collections.iter().filter(|s| !kept_ids.contains(&s.id)) {
            for group in s.grants.keys().filter(|g| policy.groups.iter().any(|pg| pg.name == **g)) {
                ch.push(Change::Revoke { collection: s.id.clone(), title: s.title.clone(), group: group.clone() });
            }
            if prune && s.objects == 0 {
                ch.push(Change::RemoveCollection { id: s.id.clone(), title: s.title.clone() });
            } else {
                kept.push(format!(
                    "collection '{}' ({}) is not in the policy; kept with no grants ({} object versions){}",
                    s.title,
                    s.id,
                    s.objects,
                    if prune { "" } else { " (use --prune to remove it when empty)" }
                ));
            }
        }
        Plan { changes, kept }
    }

    /// Whether applying the plan changes nothing.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Partners whose cached logins a running server must drop after this plan (`None`: all).
    pub fn affected_partners(&self) -> Option<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for c in &self.changes {
            out.extend(c.affected_partners()?.into_iter().map(str::to_owned));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        [discovery]
        title = "hub"
        [[api_roots]]
        name = "r"
        title = "Root"
        [[partners]]
        name = "alpha"
        certificates = ["sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"]
        [[partners]]
        name = "bravo"
        [[groups]]
        name = "ab"
        members = ["alpha", "bravo"]
        [[collections]]
        id = "11111111-1111-4111-8111-111111111111"
        api_root = "r"
        title = "Shared"
        read = ["ab"]
        write = ["ab"]
        [[collections]]
        api_root = "r"
        title = "New"
        read = ["ab"]
    "#;

    fn policy() -> Policy {
        Policy::from_toml(POLICY).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("generated-{n}")
        }
    }

    #[test]
    fn from_nothing_everything_is_added_in_dependency_order() {
        let plan = Plan::compute(&policy(), &State::default(), false, &mut ids());
        let lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "~ discovery: title 'hub'",
                "+ api root 'r' (/r/)",
                "+ partner 'alpha'",
                "+ certificate fingerprint sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789 identifies partner 'alpha'",
                "+ partner 'bravo'",
                "+ group 'ab'",
                "+ member 'alpha' of group 'ab'",
                "+ member 'bravo' of group 'ab'",
                "+ collection 'Shared' (11111111-1111-4111-8111-111111111111) in api root 'r'",
                "+ grant read+write on 'Shared' to group 'ab'",
                "+ collection 'New' (generated-1) in api root 'r'",
                "+ grant read on 'New' to group 'ab'",
            ]
        );
        assert_eq!(plan.affected_partners(), None, "new collections and grants concern everyone");
    }

    /// The state the policy describes, as storage would load it after applying it.
    fn applied() -> State {
        let p = policy();
        let mut state = State { discovery: p.discovery.clone(), ..State::default() };
        state.api_roots = p
            .api_roots
            .iter()
            .map(|r| ApiRootState {
                name: r.name.clone(),
                title: r.title.clone(),
                description: r.description.clone(),
                max_content_length: r.max_content_length,
            })
            .collect();
        state.partners = p
            .partners
            .iter()
            .map(|x| PartnerState {
                name: x.name.clone(),
                title: x.title.clone(),
                certificates: x.certificate_rows().unwrap_or_default().into_iter().collect(),
                limits: x.limits().ok(),
            })
            .collect();
        state.groups = p
            .groups
            .iter()
            .map(|g| GroupState {
                name: g.name.clone(),
                description: g.description.clone(),
                members: g.members.iter().cloned().collect(),
            })
            .collect();
        for (c, id) in p.collections.iter().zip(["11111111-1111-4111-8111-111111111111", "generated-1"]) {
            let mut grants = BTreeMap::new();
            for g in &c.read {
                grants.entry(g.clone()).or_insert((false, false)).0 = true;
            }
            for g in &c.write {
                grants.entry(g.clone()).or_insert((false, false)).1 = true;
            }
            state.collections.push(CollectionState {
                id: id.into(),
                api_root: c.api_root.clone(),
                title: c.title.clone(),
                description: c.description.clone(),
                alias: c.alias.clone(),
                public: c.public,
                sharing: Some(c.sharing.clone()),
                feed: Some(c.feed()),
                grants,
                objects: 3,
            });
        }
        state
    }

    #[test]
    fn applying_twice_changes_nothing() {
        let plan = Plan::compute(&policy(), &applied(), false, &mut ids());
        assert!(plan.is_empty(), "{plan}");
        assert_eq!(plan.affected_partners(), Some(BTreeSet::new()));
    }

    #[test]
    fn removals_and_what_they_touch() {
        let text = POLICY.replace("members = [\"alpha\", \"bravo\"]", "members = [\"alpha\"]").replace(
            "certificates = [\"sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"]",
            "",
        );
        let p = Policy::from_toml(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let plan = Plan::compute(&p, &applied(), false, &mut ids());
        let lines: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "- certificate fingerprint sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789 of partner 'alpha'",
                "- member 'bravo' of group 'ab'",
            ]
        );
        let affected: Vec<String> = plan.affected_partners().unwrap_or_default().into_iter().collect();
        assert_eq!(affected, vec!["alpha", "bravo"]);
    }

    #[test]
    fn collections_absent_from_the_policy_are_kept_or_pruned_when_empty() {
        let mut state = applied();
        state.collections[1].objects = 0;
        let p = Policy::from_toml(&POLICY.replace(
            "[[collections]]\n        api_root = \"r\"\n        title = \"New\"\n        read = [\"ab\"]",
            "",
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let kept = Plan::compute(&p, &state, false, &mut ids());
        assert_eq!(
            kept.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["- grant on 'New' to group 'ab'"]
        );
        assert_eq!(kept.kept.len(), 1);
        let pruned = Plan::compute(&p, &state, true, &mut ids());
        assert!(pruned.changes.contains(&Change::RemoveCollection { id: "generated-1".into(), title: "New".into() }));
        state.collections[1].objects = 5;
        let full = Plan::compute(&p, &state, true, &mut ids());
        assert!(
            !full.changes.iter().any(|c| matches!(c, Change::RemoveCollection { .. })),
            "never a collection holding objects"
        );
    }
}
