//! Partners, groups, API roots and collections: loading the access view and applying a policy.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::prelude::*;

use super::schema::{api_roots, collections, grants, group_members, objects, partner_groups, partners};
use super::{bump_generation, generation, meta_get, meta_set, Conn, StorageError, StorageResult};
use crate::model::access::{AccessView, ApiRootInfo, CollectionInfo, Rights};
use crate::model::policy::{DiscoveryPolicy, Policy, SharingPolicy};

/// Loads the whole access view (small: policy objects, not STIX data), from one snapshot.
pub fn load_view(c: &mut Conn) -> StorageResult<AccessView> {
    c.transaction(load_view_inner)
}

fn load_view_inner(c: &mut Conn) -> StorageResult<AccessView> {
    let gen = generation(c)?;
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
    let cols: Vec<(String, i64, String, Option<String>, Option<String>, i32, String)> =
        collections::table.select(collection_cols()).order(collections::id).load(c)?;
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
    Ok(AccessView {
        generation: gen,
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
            .map(|(id, api_root_id, title, description, alias, public, sharing)| CollectionInfo {
                id,
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
            })
            .collect(),
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

/// Makes the database match `policy`; returns one line per change. API roots, partners, groups,
/// memberships, collections and grants are created or updated; groups absent from the policy are
/// removed with their grants, and so are memberships and grants absent from it. Partners and
/// collections absent from the policy are kept (listed as such) unless `prune` is set; a
/// collection that still holds objects is never pruned.
pub fn apply(c: &mut Conn, policy: &Policy, prune: bool) -> StorageResult<Vec<String>> {
    let mut changes = Vec::new();

    // Discovery.
    let current = meta_get(c, "discovery")?.and_then(|d| serde_json::from_str::<DiscoveryPolicy>(&d).ok());
    if current != policy.discovery {
        match &policy.discovery {
            Some(d) => {
                meta_set(c, "discovery", &serde_json::to_string(d).unwrap_or_default())?;
                changes.push(format!("~ discovery: title '{}'", d.title));
            }
            None => {
                diesel::delete(super::schema::meta::table.filter(super::schema::meta::key.eq("discovery")))
                    .execute(c)?;
                changes.push("- discovery information".into());
            }
        }
    }

    // API roots.
    let mut root_ids: HashMap<String, i64> = HashMap::new();
    for r in &policy.api_roots {
        let existing: Option<(i64, String, Option<String>, i64)> = api_roots::table
            .filter(api_roots::name.eq(&r.name))
            .select((api_roots::id, api_roots::title, api_roots::description, api_roots::max_content_length))
            .first(c)
            .optional()?;
        let id = match existing {
            None => {
                diesel::insert_into(api_roots::table)
                    .values((
                        api_roots::name.eq(&r.name),
                        api_roots::title.eq(&r.title),
                        api_roots::description.eq(&r.description),
                        api_roots::max_content_length.eq(r.max_content_length),
                    ))
                    .execute(c)?;
                changes.push(format!("+ api root '{}' (/{}/)", r.name, r.name));
                api_roots::table.filter(api_roots::name.eq(&r.name)).select(api_roots::id).first(c)?
            }
            Some((id, title, description, mcl)) => {
                if title != r.title || description != r.description || mcl != r.max_content_length {
                    diesel::update(api_roots::table.filter(api_roots::id.eq(id)))
                        .set((
                            api_roots::title.eq(&r.title),
                            api_roots::description.eq(&r.description),
                            api_roots::max_content_length.eq(r.max_content_length),
                        ))
                        .execute(c)?;
                    changes.push(format!("~ api root '{}'", r.name));
                }
                id
            }
        };
        root_ids.insert(r.name.clone(), id);
    }

    // Partners.
    let mut partner_ids: HashMap<String, i64> = HashMap::new();
    for p in &policy.partners {
        let existing: Option<(i64, Option<String>)> = partners::table
            .filter(partners::name.eq(&p.name))
            .select((partners::id, partners::title))
            .first(c)
            .optional()?;
        let id = match existing {
            None => {
                diesel::insert_into(partners::table)
                    .values((partners::name.eq(&p.name), partners::title.eq(&p.title)))
                    .execute(c)?;
                changes.push(format!("+ partner '{}'", p.name));
                partner_id(c, &p.name)?
            }
            Some((id, title)) => {
                if title != p.title {
                    diesel::update(partners::table.filter(partners::id.eq(id)))
                        .set(partners::title.eq(&p.title))
                        .execute(c)?;
                    changes.push(format!("~ partner '{}'", p.name));
                }
                id
            }
        };
        partner_ids.insert(p.name.clone(), id);
    }
    let all_partners: Vec<(i64, String)> = partners::table.select((partners::id, partners::name)).load(c)?;
    for (id, name) in all_partners {
        if !partner_ids.contains_key(&name) {
            if prune {
                diesel::delete(group_members::table.filter(group_members::partner_id.eq(id))).execute(c)?;
                diesel::delete(super::schema::credentials::table.filter(super::schema::credentials::partner_id.eq(id)))
                    .execute(c)?;
                diesel::delete(partners::table.filter(partners::id.eq(id))).execute(c)?;
                changes.push(format!("- partner '{name}' and its credentials"));
            } else {
                changes.push(format!("= partner '{name}' is not in the policy; kept (use --prune to remove)"));
            }
        }
    }

    // Groups and memberships (fully declarative).
    let mut group_ids: HashMap<String, i64> = HashMap::new();
    for g in &policy.groups {
        let existing: Option<(i64, Option<String>)> = partner_groups::table
            .filter(partner_groups::name.eq(&g.name))
            .select((partner_groups::id, partner_groups::description))
            .first(c)
            .optional()?;
        let id = match existing {
            None => {
                diesel::insert_into(partner_groups::table)
                    .values((partner_groups::name.eq(&g.name), partner_groups::description.eq(&g.description)))
                    .execute(c)?;
                changes.push(format!("+ group '{}'", g.name));
                partner_groups::table.filter(partner_groups::name.eq(&g.name)).select(partner_groups::id).first(c)?
            }
            Some((id, description)) => {
                if description != g.description {
                    diesel::update(partner_groups::table.filter(partner_groups::id.eq(id)))
                        .set(partner_groups::description.eq(&g.description))
                        .execute(c)?;
                    changes.push(format!("~ group '{}'", g.name));
                }
                id
            }
        };
        group_ids.insert(g.name.clone(), id);
        let have: BTreeSet<i64> = group_members::table
            .filter(group_members::group_id.eq(id))
            .select(group_members::partner_id)
            .load::<i64>(c)?
            .into_iter()
            .collect();
        let mut want = BTreeMap::new();
        for m in &g.members {
            if let Some(pid) = partner_ids.get(m) {
                want.insert(*pid, m.as_str());
            }
        }
        for (pid, name) in &want {
            if !have.contains(pid) {
                diesel::insert_into(group_members::table)
                    .values((group_members::group_id.eq(id), group_members::partner_id.eq(pid)))
                    .execute(c)?;
                changes.push(format!("+ member '{name}' of group '{}'", g.name));
            }
        }
        for pid in have {
            if !want.contains_key(&pid) {
                diesel::delete(
                    group_members::table
                        .filter(group_members::group_id.eq(id))
                        .filter(group_members::partner_id.eq(pid)),
                )
                .execute(c)?;
                changes.push(format!("- member #{pid} of group '{}'", g.name));
            }
        }
    }
    let all_groups: Vec<(i64, String)> =
        partner_groups::table.select((partner_groups::id, partner_groups::name)).load(c)?;
    for (id, name) in all_groups {
        if !group_ids.contains_key(&name) {
            diesel::delete(grants::table.filter(grants::group_id.eq(id))).execute(c)?;
            diesel::delete(group_members::table.filter(group_members::group_id.eq(id))).execute(c)?;
            diesel::delete(partner_groups::table.filter(partner_groups::id.eq(id))).execute(c)?;
            changes.push(format!("- group '{name}' with its memberships and grants"));
        }
    }

    // Collections and grants.
    let mut kept = BTreeSet::new();
    for col in &policy.collections {
        let Some(&root_id) = root_ids.get(&col.api_root) else { continue };
        let existing: Option<(String, i64, String, Option<String>, Option<String>, i32, String)> = match &col.id {
            Some(id) => {
                collections::table.filter(collections::id.eq(id)).select(collection_cols()).first(c).optional()?
            }
            None => collections::table
                .filter(collections::api_root_id.eq(root_id))
                .filter(collections::title.eq(&col.title))
                .select(collection_cols())
                .first(c)
                .optional()?,
        };
        let public = i32::from(col.public);
        let sharing = serde_json::to_string(&col.sharing).unwrap_or_else(|_| "{}".into());
        let id = match existing {
            None => {
                let id = col.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                diesel::insert_into(collections::table)
                    .values((
                        collections::id.eq(&id),
                        collections::api_root_id.eq(root_id),
                        collections::title.eq(&col.title),
                        collections::description.eq(&col.description),
                        collections::alias.eq(&col.alias),
                        collections::public_read.eq(public),
                        collections::sharing.eq(&sharing),
                    ))
                    .execute(c)?;
                changes.push(format!("+ collection '{}' ({id}) in api root '{}'", col.title, col.api_root));
                id
            }
            Some((id, r, title, description, alias, p, old_sharing)) => {
                let sharing_changed =
                    serde_json::from_str::<SharingPolicy>(&old_sharing).ok().as_ref() != Some(&col.sharing);
                if r != root_id
                    || title != col.title
                    || description != col.description
                    || alias != col.alias
                    || p != public
                    || sharing_changed
                {
                    diesel::update(collections::table.filter(collections::id.eq(&id)))
                        .set((
                            collections::api_root_id.eq(root_id),
                            collections::title.eq(&col.title),
                            collections::description.eq(&col.description),
                            collections::alias.eq(&col.alias),
                            collections::public_read.eq(public),
                            collections::sharing.eq(&sharing),
                        ))
                        .execute(c)?;
                    let what = if sharing_changed { " (sharing policy)" } else { "" };
                    changes.push(format!("~ collection '{}' ({id}){what}", col.title));
                }
                id
            }
        };
        kept.insert(id.clone());
        let mut want: BTreeMap<i64, (i32, i32, &str)> = BTreeMap::new();
        for g in &col.read {
            if let Some(gid) = group_ids.get(g) {
                want.entry(*gid).or_insert((0, 0, g.as_str())).0 = 1;
            }
        }
        for g in &col.write {
            if let Some(gid) = group_ids.get(g) {
                want.entry(*gid).or_insert((0, 0, g.as_str())).1 = 1;
            }
        }
        let have: BTreeMap<i64, (i32, i32)> = grants::table
            .filter(grants::collection_id.eq(&id))
            .select((grants::group_id, grants::can_read, grants::can_write))
            .load::<(i64, i32, i32)>(c)?
            .into_iter()
            .map(|(g, r, w)| (g, (r, w)))
            .collect();
        for (gid, (r, w, name)) in &want {
            let describe = |r: i32, w: i32| match (r, w) {
                (1, 1) => "read+write",
                (1, _) => "read",
                _ => "write",
            };
            match have.get(gid) {
                None => {
                    diesel::insert_into(grants::table)
                        .values((
                            grants::collection_id.eq(&id),
                            grants::group_id.eq(gid),
                            grants::can_read.eq(r),
                            grants::can_write.eq(w),
                        ))
                        .execute(c)?;
                    changes.push(format!("+ grant {} on '{}' to group '{name}'", describe(*r, *w), col.title));
                }
                Some(&(hr, hw)) if hr != *r || hw != *w => {
                    diesel::update(
                        grants::table.filter(grants::collection_id.eq(&id)).filter(grants::group_id.eq(gid)),
                    )
                    .set((grants::can_read.eq(r), grants::can_write.eq(w)))
                    .execute(c)?;
                    changes.push(format!("~ grant on '{}' to group '{name}' is now {}", col.title, describe(*r, *w)));
                }
                Some(_) => {}
            }
        }
        for gid in have.keys() {
            if !want.contains_key(gid) {
                diesel::delete(grants::table.filter(grants::collection_id.eq(&id)).filter(grants::group_id.eq(gid)))
                    .execute(c)?;
                changes.push(format!("- grant on '{}' to group #{gid}", col.title));
            }
        }
    }
    let all_cols: Vec<(String, String)> = collections::table.select((collections::id, collections::title)).load(c)?;
    for (id, title) in all_cols {
        if kept.contains(&id) {
            continue;
        }
        let count: i64 = objects::table.filter(objects::collection_id.eq(&id)).count().get_result(c)?;
        if prune && count == 0 {
            diesel::delete(grants::table.filter(grants::collection_id.eq(&id))).execute(c)?;
            diesel::delete(collections::table.filter(collections::id.eq(&id))).execute(c)?;
            changes.push(format!("- collection '{title}' ({id})"));
        } else {
            let removed = diesel::delete(grants::table.filter(grants::collection_id.eq(&id))).execute(c)?;
            if removed > 0 {
                changes
                    .push(format!("- {removed} grant(s) on collection '{title}' ({id}), which is not in the policy"));
            }
            changes.push(format!(
                "= collection '{title}' ({id}) is not in the policy; kept with no grants ({count} object versions){}",
                if prune { "" } else { " (use --prune to remove it when empty)" }
            ));
        }
    }

    // Roots absent from the policy are kept: they may still hold collections.
    if changes.iter().any(|l| !l.starts_with('=')) {
        bump_generation(c)?;
    }
    Ok(changes)
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
) {
    (
        collections::id,
        collections::api_root_id,
        collections::title,
        collections::description,
        collections::alias,
        collections::public_read,
        collections::sharing,
    )
}

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
