//! Partners, groups, API roots and collections: loading the access view and applying a policy.

use std::collections::HashMap;

use diesel::prelude::*;
use sha2::{Digest as _, Sha256};

use super::schema::{
    api_roots, collection_clock, collections, credentials, grants, group_members, objects, partner_certificates,
    partner_groups, partners,
};
use super::{bump_generation, generation, meta_get, meta_set, per_backend, Conn, StorageError, StorageResult};
use crate::model::access::{AccessView, ApiRootInfo, CollectionInfo, Rights};
use crate::model::plan::{
    ApiRootState, Change, CollectionSettings, CollectionState, GroupState, PartnerState, Plan, State,
};
use crate::model::policy::{certificate_identity, DiscoveryPolicy, PartnerLimits, SharingPolicy};

/// Loads the whole access view (small: policy objects, not STIX data), from one snapshot.
pub fn load_view(c: &mut Conn) -> StorageResult<AccessView> {
    c.transaction(load_view_inner)
}

fn load_view_inner(c: &mut Conn) -> StorageResult<AccessView> {
    let gen = generation(c)?;
    let feed_gen = super::feed_generation(c)?;
    let discovery = meta_get(c, "discovery")?.and_then(|d| serde_json::from_str::<DiscoveryPolicy>(&d).ok());
    let roots: Vec<(i64, String, String, Option<String>, i64)> = api_roots::table
        .select((
            api_roots::id,
            api_roots::name,
            api_roots::title,
            api_roots::description,
            api_roots::max_content_length,
        ))
        .order(api_roots::name)
        .load(c)?;
    let cols: Vec<CollectionRow> = collections::table.select(collection_cols()).order(collections::id).load(c)?;
    let keys: HashMap<String, i64> = collection_keys(c)?.into_iter().collect();
    let rows: Vec<(i64, String, i32, i32)> = grants::table
        .inner_join(group_members::table.on(group_members::group_id.eq(grants::group_id)))
        .select((group_members::partner_id, grants::collection_id, grants::can_read, grants::can_write))
        .load(c)?;
    let mut rights: HashMap<i64, HashMap<String, Rights>> = HashMap::new();
    for (partner, coll, r, w) in rows {
        let e = rights.entry(partner).or_default().entry(coll).or_default();
        e.read |= r != 0;
        e.write |= w != 0;
    }
    let partner_rows: Vec<(i64, String, String)> =
        partners::table.select((partners::id, partners::name, partners::limits)).load(c)?;
    let names: HashMap<i64, String> = partner_rows.iter().map(|(id, name, _)| (*id, name.clone())).collect();
    // Written only by `apply` from a validated policy; a row that cannot be read means the
    // strictest reading: no address allowed, until the policy is applied again.
    let limits = partner_rows
        .iter()
        .map(|(id, name, l)| {
            let parsed = serde_json::from_str(l).unwrap_or_else(|_| {
                tracing::error!(partner = %name, "stored limits unreadable; the partner is refused until `concordia apply`");
                // 0.0.0.0/32: never a client's address.
                let nowhere = ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED));
                PartnerLimits { allow_from: vec![nowhere], ..PartnerLimits::default() }
            });
            (*id, parsed)
        })
        .collect();
    let creds: Vec<(i64, String, Option<i64>, Option<i64>, String)> = credentials::table
        .select((
            credentials::partner_id,
            credentials::id,
            credentials::expires_at,
            credentials::revoked_at,
            credentials::kind,
        ))
        .order((credentials::partner_id, credentials::id))
        .load(c)?;
    let now = crate::model::time::now_micros();
    let mut passwords: HashMap<i64, usize> = HashMap::new();
    for (partner, _, expires, revoked, kind) in &creds {
        if kind == "password" && revoked.is_none() && expires.is_none_or(|e| e > now) {
            *passwords.entry(*partner).or_default() += 1;
        }
    }
    let max_passwords = passwords.values().copied().max().unwrap_or(1);
    let login_state = names
        .iter()
        .map(|(id, name)| {
            let mut h = Sha256::new();
            h.update(name.as_bytes());
            for (_, cid, expires, revoked, _) in creds.iter().filter(|r| r.0 == *id) {
                h.update(format!("\0{cid}\0{expires:?}\0{revoked:?}").as_bytes());
            }
            (*id, h.finalize().into())
        })
        .collect();
    let certs: Vec<(i64, String, String)> = partner_certificates::table
        .select((partner_certificates::partner_id, partner_certificates::kind, partner_certificates::pattern))
        .order((partner_certificates::partner_id, partner_certificates::kind, partner_certificates::pattern))
        .load(c)?;
    let certificates = certs
        .into_iter()
        .filter_map(|(id, kind, pattern)| Some((id, names.get(&id)?.clone(), certificate_identity(&kind, &pattern)?)))
        .collect();
    Ok(AccessView {
        generation: gen,
        feed_generation: feed_gen,
        certificates,
        limits,
        login_state,
        max_passwords,
        discovery,
        api_roots: roots
            .into_iter()
            .map(|(id, name, title, description, max_content_length)| ApiRootInfo {
                id,
                name,
                title,
                description,
                max_content_length,
            })
            .collect(),
        collections: cols
            .into_iter()
            .map(|(id, api_root_id, title, description, alias, public, sharing, feed)| {
                // Every collection gets its clock row (and key) where it is created, in `apply`,
                // and clock rows are never deleted.
                let key = *keys.get(&id).ok_or_else(|| {
                    StorageError::Conflict(format!("collection {id} has no key: run `concordia migrate`"))
                })?;
                Ok(CollectionInfo {
                    id,
                    key,
                    api_root_id,
                    title,
                    description,
                    alias,
                    public_read: public != 0,
                    // Written only by `apply` from a validated policy; a row it cannot read falls
                    // back to the strictest reading (no custom content, 2.1 only).
                    sharing: serde_json::from_str(&sharing).unwrap_or(SharingPolicy {
                        custom_objects: false,
                        custom_properties: false,
                        ..SharingPolicy::default()
                    }),
                    // Likewise written only by `apply`; unreadable, it is no feed at all.
                    feed: serde_json::from_str(&feed).unwrap_or_default(),
                })
            })
            .collect::<StorageResult<_>>()?,
        rights,
        anonymous_read: false,
    })
}

/// Whether the database holds any partner or object (so a demo must not be loaded into it).
pub fn holds_data(c: &mut Conn) -> StorageResult<bool> {
    let partners: i64 = partners::table.count().get_result(c)?;
    let objects: i64 = objects::table.count().get_result(c)?;
    Ok(partners > 0 || objects > 0)
}

/// Looks up a partner id by name.
pub fn partner_id(c: &mut Conn, name: &str) -> StorageResult<i64> {
    partners::table
        .filter(partners::name.eq(name))
        .select(partners::id)
        .first(c)
        .optional()?
        .ok_or(StorageError::NotFound)
}

/// Partner id -> name, for display.
pub fn partner_names(c: &mut Conn) -> StorageResult<HashMap<i64, String>> {
    let rows: Vec<(i64, String)> = partners::table.select((partners::id, partners::name)).load(c)?;
    Ok(rows.into_iter().collect())
}

/// The stored provisioning, for [`Plan::compute`].
///
/// # Errors
/// Database failures.
pub fn load_state(c: &mut Conn) -> StorageResult<State> {
    let discovery = meta_get(c, "discovery")?.and_then(|d| serde_json::from_str::<DiscoveryPolicy>(&d).ok());
    let roots: Vec<(i64, String, String, Option<String>, i64)> = api_roots::table
        .select((
            api_roots::id,
            api_roots::name,
            api_roots::title,
            api_roots::description,
            api_roots::max_content_length,
        ))
        .order(api_roots::name)
        .load(c)?;
    let root_names: HashMap<i64, String> = roots.iter().map(|r| (r.0, r.1.clone())).collect();
    let names = partner_names(c)?;
    let certs: Vec<(i64, String, String)> = partner_certificates::table
        .select((partner_certificates::partner_id, partner_certificates::kind, partner_certificates::pattern))
        .load(c)?;
    let partners: Vec<(i64, String, Option<String>, String)> = partners::table
        .select((partners::id, partners::name, partners::title, partners::limits))
        .order(partners::name)
        .load(c)?;
    let groups: Vec<(i64, String, Option<String>)> = partner_groups::table
        .select((partner_groups::id, partner_groups::name, partner_groups::description))
        .order(partner_groups::name)
        .load(c)?;
    let group_names: HashMap<i64, String> = groups.iter().map(|g| (g.0, g.1.clone())).collect();
    let members: Vec<(i64, i64)> =
        group_members::table.select((group_members::group_id, group_members::partner_id)).load(c)?;
    let grant_rows: Vec<(String, i64, i32, i32)> =
        grants::table.select((grants::collection_id, grants::group_id, grants::can_read, grants::can_write)).load(c)?;
    let ids: HashMap<i64, String> = collection_keys(c)?.into_iter().map(|(id, key)| (key, id)).collect();
    let counts: Vec<(i64, i64)> = objects::table
        .group_by(objects::collection_key)
        .select((objects::collection_key, diesel::dsl::count_star()))
        .load(c)?;
    let counts: HashMap<String, i64> =
        counts.into_iter().filter_map(|(key, n)| Some((ids.get(&key)?.clone(), n))).collect();
    let cols: Vec<CollectionRow> = collections::table.select(collection_cols()).order(collections::id).load(c)?;
    Ok(State {
        discovery,
        api_roots: roots
            .into_iter()
            .map(|(_, name, title, description, max_content_length)| ApiRootState {
                name,
                title,
                description,
                max_content_length,
            })
            .collect(),
        partners: partners
            .into_iter()
            .map(|(id, name, title, limits)| PartnerState {
                certificates: certs.iter().filter(|c| c.0 == id).map(|c| (c.1.clone(), c.2.clone())).collect(),
                name,
                title,
                limits: serde_json::from_str(&limits).ok(),
            })
            .collect(),
        groups: groups
            .into_iter()
            .map(|(id, name, description)| GroupState {
                members: members.iter().filter(|m| m.0 == id).filter_map(|m| names.get(&m.1).cloned()).collect(),
                name,
                description,
            })
            .collect(),
        collections: cols
            .into_iter()
            .map(|(id, root, title, description, alias, public, sharing, feed)| CollectionState {
                api_root: root_names.get(&root).cloned().unwrap_or_default(),
                grants: grant_rows
                    .iter()
                    .filter(|g| g.0 == id)
                    .filter_map(|g| group_names.get(&g.1).map(|n| (n.clone(), (g.2 != 0, g.3 != 0))))
                    .collect(),
                objects: counts.get(&id).copied().unwrap_or(0),
                sharing: serde_json::from_str(&sharing).ok(),
                feed: serde_json::from_str(&feed).ok(),
                id,
                title,
                description,
                alias,
                public: public != 0,
            })
            .collect(),
    })
}

fn id_of<T>(found: Option<T>, what: &str) -> StorageResult<T> {
    found.ok_or_else(|| StorageError::Conflict(format!("{what} vanished while the plan was applied")))
}

fn api_root_id(c: &mut Conn, name: &str) -> StorageResult<i64> {
    let id = api_roots::table.filter(api_roots::name.eq(name)).select(api_roots::id).first(c).optional()?;
    id_of(id, &format!("api root '{name}'"))
}

fn group_id(c: &mut Conn, name: &str) -> StorageResult<i64> {
    let id =
        partner_groups::table.filter(partner_groups::name.eq(name)).select(partner_groups::id).first(c).optional()?;
    id_of(id, &format!("group '{name}'"))
}

/// Carries out a plan (inside a write transaction) and bumps the policy generation, so running
/// servers reload the policy.
///
/// A derived collection that is rebuilt hands the versions it held to `withdrawn` (in
/// batches, inside the transaction) before they go; `None` when nobody keeps them.
///
/// # Errors
/// Database failures; nothing is changed then.
pub fn apply_plan(
    c: &mut Conn,
    plan: &Plan,
    withdrawn: Option<&mut super::objects::WithdrawnSink<'_>>,
) -> StorageResult<()> {
    let mut rebuilds: Vec<&CollectionSettings> = Vec::new();
    for change in &plan.changes {
        match change {
            Change::SetDiscovery(d) => meta_set(c, "discovery", &serde_json::to_string(d).unwrap_or_default())?,
            Change::RemoveDiscovery => {
                diesel::delete(super::schema::meta::table.filter(super::schema::meta::key.eq("discovery")))
                    .execute(c)?;
            }
            Change::AddApiRoot(r) => {
                diesel::insert_into(api_roots::table)
                    .values((
                        api_roots::name.eq(&r.name),
                        api_roots::title.eq(&r.title),
                        api_roots::description.eq(&r.description),
                        api_roots::max_content_length.eq(r.max_content_length),
                    ))
                    .execute(c)?;
            }
            Change::UpdateApiRoot(r) => {
                diesel::update(api_roots::table.filter(api_roots::name.eq(&r.name)))
                    .set((
                        api_roots::title.eq(&r.title),
                        api_roots::description.eq(&r.description),
                        api_roots::max_content_length.eq(r.max_content_length),
                    ))
                    .execute(c)?;
            }
            Change::AddPartner { name, title, limits } => {
                diesel::insert_into(partners::table)
                    .values((partners::name.eq(name), partners::title.eq(title), partners::limits.eq(limits.to_json())))
                    .execute(c)?;
            }
            Change::UpdatePartner { name, title, limits } => {
                diesel::update(partners::table.filter(partners::name.eq(name)))
                    .set((partners::title.eq(title), partners::limits.eq(limits.to_json())))
                    .execute(c)?;
            }
            Change::RemovePartner { name } => {
                let id = partner_id(c, name)?;
                diesel::delete(group_members::table.filter(group_members::partner_id.eq(id))).execute(c)?;
                diesel::delete(credentials::table.filter(credentials::partner_id.eq(id))).execute(c)?;
                diesel::delete(partner_certificates::table.filter(partner_certificates::partner_id.eq(id)))
                    .execute(c)?;
                diesel::delete(partners::table.filter(partners::id.eq(id))).execute(c)?;
            }
            Change::AddCertificate { partner, kind, pattern } => {
                let id = partner_id(c, partner)?;
                diesel::insert_into(partner_certificates::table)
                    .values((
                        partner_certificates::partner_id.eq(id),
                        partner_certificates::kind.eq(kind),
                        partner_certificates::pattern.eq(pattern),
                    ))
                    .execute(c)?;
            }
            Change::RemoveCertificate { partner, kind, pattern } => {
                let id = partner_id(c, partner)?;
                diesel::delete(
                    partner_certificates::table
                        .filter(partner_certificates::partner_id.eq(id))
                        .filter(partner_certificates::kind.eq(kind))
                        .filter(partner_certificates::pattern.eq(pattern)),
                )
                .execute(c)?;
            }
            Change::AddGroup { name, description } => {
                diesel::insert_into(partner_groups::table)
                    .values((partner_groups::name.eq(name), partner_groups::description.eq(description)))
                    .execute(c)?;
            }
            Change::UpdateGroup { name, description } => {
                diesel::update(partner_groups::table.filter(partner_groups::name.eq(name)))
                    .set(partner_groups::description.eq(description))
                    .execute(c)?;
            }
            Change::RemoveGroup { name } => {
                let id = group_id(c, name)?;
                diesel::delete(grants::table.filter(grants::group_id.eq(id))).execute(c)?;
                diesel::delete(group_members::table.filter(group_members::group_id.eq(id))).execute(c)?;
                diesel::delete(partner_groups::table.filter(partner_groups::id.eq(id))).execute(c)?;
            }
            Change::AddMember { group, partner } => {
                let (g, p) = (group_id(c, group)?, partner_id(c, partner)?);
                diesel::insert_into(group_members::table)
                    .values((group_members::group_id.eq(g), group_members::partner_id.eq(p)))
                    .execute(c)?;
            }
            Change::RemoveMember { group, partner } => {
                let (g, p) = (group_id(c, group)?, partner_id(c, partner)?);
                diesel::delete(
                    group_members::table.filter(group_members::group_id.eq(g)).filter(group_members::partner_id.eq(p)),
                )
                .execute(c)?;
            }
            Change::AddCollection(s) => {
                let root = api_root_id(c, &s.api_root)?;
                diesel::insert_into(collections::table)
                    .values((
                        collections::id.eq(&s.id),
                        collections::api_root_id.eq(root),
                        collections::title.eq(&s.title),
                        collections::description.eq(&s.description),
                        collections::alias.eq(&s.alias),
                        collections::public_read.eq(i32::from(s.public)),
                        collections::sharing.eq(serde_json::to_string(&s.sharing).unwrap_or_else(|_| "{}".into())),
                        collections::feed.eq(s.feed.to_json()),
                    ))
                    .execute(c)?;
                if s.feed.is_derived() {
                    rebuilds.push(s);
                }
                // The collection's integer key and clock (kept if the id existed before).
                per_backend!(c, |c| diesel::insert_into(collection_clock::table)
                    .values((collection_clock::collection_id.eq(&s.id), collection_clock::last_date_added.eq(0i64)))
                    .on_conflict(collection_clock::collection_id)
                    .do_nothing()
                    .execute(c))?;
            }
            Change::UpdateCollection { settings: s, rebuild, .. } => {
                if *rebuild {
                    rebuilds.push(s);
                }
                let root = api_root_id(c, &s.api_root)?;
                diesel::update(collections::table.filter(collections::id.eq(&s.id)))
                    .set((
                        collections::api_root_id.eq(root),
                        collections::title.eq(&s.title),
                        collections::description.eq(&s.description),
                        collections::alias.eq(&s.alias),
                        collections::public_read.eq(i32::from(s.public)),
                        collections::sharing.eq(serde_json::to_string(&s.sharing).unwrap_or_else(|_| "{}".into())),
                        collections::feed.eq(s.feed.to_json()),
                    ))
                    .execute(c)?;
            }
            Change::RemoveCollection { id, .. } => {
                diesel::delete(grants::table.filter(grants::collection_id.eq(id))).execute(c)?;
                diesel::delete(collections::table.filter(collections::id.eq(id))).execute(c)?;
            }
            Change::Grant { collection, group, read, write, .. } => {
                let g = group_id(c, group)?;
                diesel::insert_into(grants::table)
                    .values((
                        grants::collection_id.eq(collection),
                        grants::group_id.eq(g),
                        grants::can_read.eq(i32::from(*read)),
                        grants::can_write.eq(i32::from(*write)),
                    ))
                    .execute(c)?;
            }
            Change::ChangeGrant { collection, group, read, write, .. } => {
                let g = group_id(c, group)?;
                diesel::update(
                    grants::table.filter(grants::collection_id.eq(collection)).filter(grants::group_id.eq(g)),
                )
                .set((grants::can_read.eq(i32::from(*read)), grants::can_write.eq(i32::from(*write))))
                .execute(c)?;
            }
            Change::Revoke { collection, group, .. } => {
                let g = group_id(c, group)?;
                diesel::delete(
                    grants::table.filter(grants::collection_id.eq(collection)).filter(grants::group_id.eq(g)),
                )
                .execute(c)?;
            }
        }
    }
    rebuild_derived(c, &rebuilds, withdrawn)?;
    let collections_changed = plan.changes.iter().any(|ch| {
        matches!(ch, Change::AddCollection(_) | Change::UpdateCollection { .. } | Change::RemoveCollection { .. })
    });
    if collections_changed {
        super::bump_feed_generation(c)?;
    }
    if !plan.is_empty() {
        bump_generation(c)?;
    }
    Ok(())
}

/// Fills the derived collections whose sources or filter a plan changed (and empties a derived
/// collection that became a stored one). The clocks of every source are locked before those of
/// the derived collections, as writers take them (a source, then its derived collections), so
/// that a writer either commits before the rebuild reads its source or finds the new policy.
fn rebuild_derived(
    c: &mut Conn,
    rebuilds: &[&CollectionSettings],
    mut withdrawn: Option<&mut super::objects::WithdrawnSink<'_>>,
) -> StorageResult<()> {
    if rebuilds.is_empty() {
        return Ok(());
    }
    let keys: HashMap<String, i64> = collection_keys(c)?.into_iter().collect();
    let key_of =
        |id: &str| keys.get(id).copied().ok_or_else(|| StorageError::Conflict(format!("collection {id} has no key")));
    let mut sources = Vec::new();
    let mut targets = Vec::new();
    for s in rebuilds {
        for src in &s.feed.derived_from {
            sources.push(key_of(src)?);
        }
        targets.push(key_of(&s.id)?);
    }
    super::objects::lock_clocks(c, &sources)?;
    super::objects::lock_clocks(c, &targets)?;
    let now = crate::model::time::now_micros();
    for s in rebuilds {
        let key = key_of(&s.id)?;
        // A stored collection's own objects (source_mask 0) are never thrown away by turning
        // it into a derived one.
        let own: i64 = objects::table
            .filter(objects::collection_key.eq(key))
            .filter(objects::source_mask.eq(0i64))
            .count()
            .get_result(c)?;
        if own > 0 {
            return Err(StorageError::Conflict(format!(
                "collection '{}' ({}) holds {own} object versions of its own; it cannot become a derived collection (derive a new collection from it instead)",
                s.title, s.id
            )));
        }
        let sources: Vec<(i64, i64)> = s
            .feed
            .derived_from
            .iter()
            .enumerate()
            .map(|(i, src)| Ok((key_of(src)?, 1i64 << i)))
            .collect::<StorageResult<_>>()?;
        let n =
            super::objects::rebuild_derived(c, (&s.id, key), &s.feed.filter, &sources, now, withdrawn.as_deref_mut())?;
        tracing::info!(collection = %s.id, versions = n, "derived collection filled");
    }
    Ok(())
}

/// Every collection id ever created, with its integer key (the objects' `collection_key`).
fn collection_keys(c: &mut Conn) -> StorageResult<Vec<(String, i64)>> {
    Ok(collection_clock::table.select((collection_clock::collection_id, collection_clock::collection_key)).load(c)?)
}

#[allow(clippy::type_complexity)]
fn collection_cols() -> (
    collections::id,
    collections::api_root_id,
    collections::title,
    collections::description,
    collections::alias,
    collections::public_read,
    collections::sharing,
    collections::feed,
) {
    (
        collections::id,
        collections::api_root_id,
        collections::title,
        collections::description,
        collections::alias,
        collections::public_read,
        collections::sharing,
        collections::feed,
    )
}

/// A collection row as `collection_cols` selects it.
type CollectionRow = (String, i64, String, Option<String>, Option<String>, i32, String, String);

/// What a partner can access: (api root, collection id, title, rights), for `concordia access`.
pub fn partner_access(c: &mut Conn, partner: &str) -> StorageResult<Vec<(String, String, String, Rights)>> {
    let pid = partner_id(c, partner)?;
    let mut view = load_view(c)?;
    view.anonymous_read = false;
    let who = crate::model::access::Principal::Partner { id: pid, name: partner.to_owned() };
    let mut out = Vec::new();
    for root in &view.api_roots {
        for (col, rights) in view.visible_collections(&who, root) {
            out.push((root.name.clone(), col.id.clone(), col.title.clone(), rights));
        }
    }
    Ok(out)
}

/// A partner's certificate identities (kind, pattern), for `access` and `credential list`.
///
/// # Errors
/// `NotFound` for an unknown partner; database failures.
pub fn partner_certificates(c: &mut Conn, partner: &str) -> StorageResult<Vec<(String, String)>> {
    let pid = partner_id(c, partner)?;
    Ok(partner_certificates::table
        .filter(partner_certificates::partner_id.eq(pid))
        .select((partner_certificates::kind, partner_certificates::pattern))
        .order((partner_certificates::kind, partner_certificates::pattern))
        .load(c)?)
}

/// The partner's groups with a grant on the collection: (group, read, write), by group name.
///
/// # Errors
/// `NotFound` for an unknown partner; database failures.
pub fn granting_groups(c: &mut Conn, partner: &str, collection: &str) -> StorageResult<Vec<(String, bool, bool)>> {
    use super::schema::{grants, group_members, partner_groups};
    let pid = partner_id(c, partner)?;
    let rows: Vec<(String, i32, i32)> = grants::table
        .inner_join(partner_groups::table.on(partner_groups::id.eq(grants::group_id)))
        .inner_join(group_members::table.on(group_members::group_id.eq(grants::group_id)))
        .filter(group_members::partner_id.eq(pid))
        .filter(grants::collection_id.eq(collection))
        .select((partner_groups::name, grants::can_read, grants::can_write))
        .order(partner_groups::name.asc())
        .load(c)?;
    Ok(rows.into_iter().map(|(g, r, w)| (g, r != 0, w != 0)).collect())
}
