//! Feeds for SIEMs: the richer filters of every collection (interop checklist §3.13.2), derived
//! collections defined by a filter over source collections, revocation that reaches pollers,
//! and expiry.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::helpers::*;

const TLP_WHITE: &str = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9";
const TLP_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
const TLP_AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
const TLP_RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
const ACME: &str = "identity--0d7d7c0e-8b3a-4c38-9a4e-6c2f3f1e0a01";
const OTHER_ORG: &str = "identity--0d7d7c0e-8b3a-4c38-9a4e-6c2f3f1e0a02";

const ALLIANCE: &str = "a1a1a1a1-0000-4000-8000-000000000001";
const ALPHA: &str = "a1a1a1a1-0000-4000-8000-000000000002";
const FEED: &str = "a1a1a1a1-0000-4000-8000-0000000000f1";

/// Two stored collections and a derived "SIEM feed" over both. alice writes both sources;
/// bob reads the alliance source only; carol reads the alpha source only; dave reads the feed
/// but no source; siem reads the feed and both sources.
const FEED_POLICY: &str = r#"
[discovery]
title = "feeds"

[[api_roots]]
name = "r"
title = "Root"

[[partners]]
name = "alice"
[[partners]]
name = "bob"
[[partners]]
name = "carol"
[[partners]]
name = "dave"
[[partners]]
name = "siem"

[[groups]]
name = "writers"
members = ["alice"]
[[groups]]
name = "alliance-readers"
members = ["alice", "bob", "siem"]
[[groups]]
name = "alpha-readers"
members = ["alice", "carol", "siem"]
[[groups]]
name = "feed-readers"
members = ["bob", "carol", "dave", "siem"]

[[collections]]
id = "a1a1a1a1-0000-4000-8000-000000000001"
api_root = "r"
title = "Alliance indicators"
read = ["alliance-readers"]
write = ["writers"]

[[collections]]
id = "a1a1a1a1-0000-4000-8000-000000000002"
api_root = "r"
title = "Alpha national"
read = ["alpha-readers"]
write = ["writers"]

[[collections]]
id = "a1a1a1a1-0000-4000-8000-0000000000f1"
api_root = "r"
title = "Alliance SIEM feed"
derived_from = ["a1a1a1a1-0000-4000-8000-000000000001", "a1a1a1a1-0000-4000-8000-000000000002"]
read = ["feed-readers"]

[collections.filter]
types = ["indicator"]
tlp_max = "green"
confidence_min = 50
revoked = false
"#;

fn feed_server() -> TestServer {
    let s = TestServer::start(FEED_POLICY);
    for p in ["alice", "bob", "carol", "dave", "siem"] {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    s
}

/// An indicator with the given facets.
fn ind(id: &str, modified: &str, confidence: Option<i64>, marking: Option<&str>) -> Value {
    let mut v = indicator(id, modified);
    if let Some(c) = confidence {
        v["confidence"] = json!(c);
    }
    if let Some(m) = marking {
        v["object_marking_refs"] = json!([m]);
    }
    v
}

fn ids(v: &Value) -> BTreeSet<String> {
    v["objects"]
        .as_array()
        .map(|a| a.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Every object id of a collection, or `None` while the server does not show it (yet).
fn try_ids(s: &TestServer, collection: &str, who: &str) -> Option<BTreeSet<String>> {
    (s.get(&objects_path(collection), &as_(who)).status == 200).then(|| all_ids(s, collection, who))
}

fn all_ids(s: &TestServer, collection: &str, who: &str) -> BTreeSet<String> {
    s.read_all(&objects_path(collection), &as_(who), 2).iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

/// Interop §3.13.2 (optional filters), with the semantics of the derived-collection filter:
/// labels (any, case-insensitive), confidence bounds (objects without confidence never match
/// a bound), created_by_ref (any), TLP ceiling (unmarked objects pass); ANDed with each other
/// and with the standard filters (T-209); unknown match fields are refused (T-211 allows either).
#[test]
fn richer_filters_on_every_collection() {
    let s = base_server();
    let mk = |labels: &[&str], confidence: Option<i64>, by: Option<&str>, marking: Option<&str>| {
        let id = new_id("indicator");
        let mut v = ind(&id, "2021-01-01T00:00:00.000Z", confidence, marking);
        if !labels.is_empty() {
            v["labels"] = json!(labels);
        }
        if let Some(b) = by {
            v["created_by_ref"] = json!(b);
        }
        (id, v)
    };
    let (a, va) = mk(&["APT28", "c2"], Some(90), Some(ACME), Some(TLP_GREEN));
    let (b, vb) = mk(&["phishing"], Some(40), Some(OTHER_ORG), Some(TLP_AMBER));
    let (c, vc) = mk(&[], None, None, None);
    let (d, vd) = mk(&["c2"], Some(50), Some(ACME), Some(TLP_RED));
    let m = new_id("malware");
    let mut vm = malware(&m);
    vm["labels"] = json!(["c2"]);
    s.add("r", SHARED, &as_("alice"), &[va, vb, vc, vd, vm]);
    let p = objects_path(SHARED);
    let q = |query: &str| ids(&s.get(&format!("{p}?{query}"), &as_("bob")).json());
    assert_eq!(q("match[labels]=c2"), set(&[&a, &d, &m]));
    assert_eq!(q("match[labels]=apt28"), set(&[&a]), "labels match case-insensitively");
    assert_eq!(q("match[labels]=phishing,APT28"), set(&[&a, &b]), "several labels: any of them");
    assert_eq!(q("match[labels]=c"), set(&[]), "a label matches whole, not as a prefix");
    assert_eq!(q("match[labels]=%25"), set(&[]), "LIKE wildcards in a label are literal");
    assert_eq!(q("match[confidence-gte]=50"), set(&[&a, &d]));
    assert_eq!(q("match[confidence-lte]=50"), set(&[&b, &d]));
    assert_eq!(q("match[confidence-gte]=41&match[confidence-lte]=89"), set(&[&d]));
    assert_eq!(q(&format!("match[created_by_ref]={ACME}")), set(&[&a, &d]));
    assert_eq!(q(&format!("match[created_by_ref]={ACME},{OTHER_ORG}")), set(&[&a, &b, &d]));
    assert_eq!(q("match[tlp]=green"), set(&[&a, &c, &m]), "a ceiling; unmarked objects pass");
    assert_eq!(q("match[tlp]=white"), set(&[&c, &m]));
    assert_eq!(q("match[tlp]=amber%2Bstrict"), set(&[&a, &b, &c, &m]));
    assert_eq!(q("match[tlp]=amber+strict"), set(&[&a, &b, &c, &m]), "a literal + decodes to a space");
    assert_eq!(q("match[labels]=c2&match[type]=indicator&match[tlp]=red"), set(&[&a, &d]), "ANDed (T-209)");
    // The manifest filters on the objects its records describe (T-133).
    let man =
        s.get(&format!("/r/collections/{SHARED}/manifest/?match[labels]=c2&match[confidence-gte]=60"), &as_("bob"));
    assert_eq!(ids(&man.json()), set(&[&a]));
    // Paging keeps the filters: every match exactly once.
    let paged: Vec<String> = s
        .read_all(&format!("{p}?match[labels]=c2"), &as_("bob"), 1)
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged.len(), 3);
    assert_eq!(paged.iter().cloned().collect::<BTreeSet<_>>(), set(&[&a, &d, &m]));
    // Malformed values and unknown fields: 400 with a message that says what to fix.
    for bad in [
        "match[confidence-gte]=high",
        "match[confidence-gte]=101",
        "match[tlp]=purple",
        "match[created_by_ref]=acme",
        "match[labels]=",
        "match[colour]=red",
        "match[labels]=a&match[labels]=b",
    ] {
        let r = s.get(&format!("{p}?{bad}"), &as_("bob"));
        r.expect(400);
        assert!(r.json()["description"].as_str().unwrap().len() > 20, "{bad}: {}", r.text());
    }
    let r = s.get(&format!("{p}?match[colour]=red"), &as_("bob"));
    assert!(r.json()["description"].as_str().unwrap().contains("confidence-gte"), "it lists the fields");
}

/// The labels, confidence and TLP filters are read through their postings (`object_tags`) when
/// they match few versions and on the rows when they match many, checked against a model:
/// 1,200 indicators with random labels (some rare, one common), confidence and TLP markings, a
/// second version of some (with other facets, so that an earlier version matches where the
/// latest does not), some deleted (one version or all), read with each filter in pages of
/// several sizes, default view and `match[version]=all`, objects and manifest: every read gives
/// exactly the model's versions, in position order, each once.
#[test]
fn richer_filters_page_exactly_through_their_postings() {
    let s = base_server();
    let mut rng = Rng(0x5eed_f11e);
    let markings = [None, Some(TLP_WHITE), Some(TLP_GREEN), Some(TLP_AMBER), Some(TLP_RED)];
    // (id, modified, labels, confidence, tlp rank), in the order stored (= position order).
    type Version = (String, &'static str, Vec<&'static str>, Option<i64>, Option<i32>);
    let mut stored: Vec<Version> = Vec::new();
    let random_version = |rng: &mut Rng, id: &str, modified: &'static str| -> (Version, Value) {
        let mut labels = Vec::new();
        // Some filters match few versions (read through the postings), others many (read on
        // the rows, see `storage::objects::through_postings`): both ways are checked.
        for (label, percent) in [("rare", 2), ("blue", 4), ("green-team", 30)] {
            if rng.chance(percent) {
                labels.push(label);
            }
        }
        let confidence = (!rng.chance(20)).then(|| match rng.below(100) {
            0..5 => rng.below(11) as i64,
            5..10 => 90 + rng.below(11) as i64,
            _ => 20 + rng.below(61) as i64,
        });
        // Unmarked, white and green 2 % each, amber 14 %, red 80 %.
        let m = match rng.below(100) {
            0..2 => 0,
            2..4 => 1,
            4..6 => 2,
            6..20 => 3,
            _ => 4,
        };
        let tlp = (m > 0).then(|| [0, 0, 1, 2, 4][m]);
        let mut v = ind(id, modified, confidence, markings[m]);
        if !labels.is_empty() {
            v["labels"] = json!(labels);
        }
        ((id.to_owned(), modified, labels, confidence, tlp), v)
    };
    let ids: Vec<String> = (0..1200).map(|_| new_id("indicator")).collect();
    for chunk in ids.chunks(50) {
        let (versions, bodies): (Vec<Version>, Vec<Value>) =
            chunk.iter().map(|id| random_version(&mut rng, id, "2021-01-01T00:00:00.000Z")).unzip();
        s.add("r", SHARED, &as_("alice"), &bodies);
        stored.extend(versions);
    }
    let updated: Vec<String> = ids.iter().filter(|_| rng.chance(20)).cloned().collect();
    for chunk in updated.chunks(50) {
        let (versions, bodies): (Vec<Version>, Vec<Value>) =
            chunk.iter().map(|id| random_version(&mut rng, id, "2022-01-01T00:00:00.000Z")).unzip();
        s.add("r", SHARED, &as_("alice"), &bodies);
        stored.extend(versions);
    }
    // Deletions: every version of some objects; the second version of some updated ones.
    let p = objects_path(SHARED);
    for id in ids.iter().filter(|_| rng.chance(4)) {
        s.delete(&format!("{p}{id}/"), &as_("alice")).expect(200);
        stored.retain(|v| v.0 != *id);
    }
    for id in updated.iter().filter(|_| rng.chance(25)) {
        if stored.iter().any(|v| v.0 == *id && v.1.starts_with("2022")) {
            s.delete(&format!("{p}{id}/?match[version]=2022-01-01T00:00:00.000Z"), &as_("alice")).expect(200);
            stored.retain(|v| !(v.0 == *id && v.1.starts_with("2022")));
        }
    }
    let latest = |v: &Version| !stored.iter().any(|w| w.0 == v.0 && w.1 > v.1);
    type Pred = Box<dyn Fn(&Version) -> bool>;
    let filters: Vec<(&str, Pred)> = vec![
        ("match[labels]=rare", Box::new(|v: &Version| v.2.contains(&"rare"))),
        ("match[labels]=rare,BLUE", Box::new(|v: &Version| v.2.contains(&"rare") || v.2.contains(&"blue"))),
        ("match[labels]=green-team", Box::new(|v: &Version| v.2.contains(&"green-team"))),
        // A few versions posted, most of them rejected by the other condition: several steps.
        (
            "match[labels]=blue&match[confidence-gte]=90",
            Box::new(|v: &Version| v.2.contains(&"blue") && v.3.is_some_and(|c| c >= 90)),
        ),
        ("match[tlp]=amber", Box::new(|v: &Version| v.4.is_none_or(|t| t <= 2))),
        ("match[tlp]=green", Box::new(|v: &Version| v.4.is_none_or(|t| t <= 1))),
        ("match[tlp]=white", Box::new(|v: &Version| v.4.is_none_or(|t| t == 0))),
        ("match[tlp]=red", Box::new(|_: &Version| true)),
        ("match[confidence-gte]=90", Box::new(|v: &Version| v.3.is_some_and(|c| c >= 90))),
        ("match[confidence-lte]=10", Box::new(|v: &Version| v.3.is_some_and(|c| c <= 10))),
        (
            "match[confidence-gte]=35&match[confidence-lte]=64",
            Box::new(|v: &Version| v.3.is_some_and(|c| (35..=64).contains(&c))),
        ),
        ("match[confidence-gte]=70&match[confidence-lte]=20", Box::new(|_: &Version| false)),
        (
            "match[labels]=green-team&match[tlp]=amber&match[confidence-gte]=50",
            Box::new(|v: &Version| {
                v.2.contains(&"green-team") && v.4.is_none_or(|t| t <= 2) && v.3.is_some_and(|c| c >= 50)
            }),
        ),
    ];
    let mut checked = 0;
    for (query, pred) in &filters {
        for all_versions in [false, true] {
            let want: Vec<(String, String)> = stored
                .iter()
                .filter(|v| (all_versions || latest(v)) && pred(v))
                .map(|v| (v.0.clone(), v.1.to_owned()))
                .collect();
            let query = if all_versions { format!("{query}&match[version]=all") } else { (*query).to_owned() };
            for limit in [3, 50, 1000] {
                let got: Vec<(String, String)> = s
                    .read_all(&format!("{p}?{query}"), &as_("bob"), limit)
                    .iter()
                    .map(|o| (o["id"].as_str().unwrap().to_owned(), o["modified"].as_str().unwrap().to_owned()))
                    .collect();
                assert!(
                    got == want,
                    "{query}, limit {limit}: {} versions where the model has {} (in position order); first difference at {:?}",
                    got.len(),
                    want.len(),
                    got.iter().zip(&want).position(|(a, b)| a != b)
                );
                checked += 1;
            }
            let manifest: Vec<(String, String)> = s
                .read_all(&format!("/r/collections/{SHARED}/manifest/?{query}"), &as_("bob"), 7)
                .iter()
                .map(|o| (o["id"].as_str().unwrap().to_owned(), o["version"].as_str().unwrap().to_owned()))
                .collect();
            assert!(
                manifest == want,
                "{query}: manifest: {} records where the model has {}",
                manifest.len(),
                want.len()
            );
        }
    }
    assert_eq!(checked, filters.len() * 6);
    let share = |p: &dyn Fn(&Version) -> bool| stored.iter().filter(|v| p(v)).count() * 100 / stored.len();
    assert!(share(&|v| v.4.is_none_or(|t| t <= 1)) < 6 && share(&|v| v.2.contains(&"green-team")) > 20, "both ways");
    assert!(stored.iter().filter(|v| v.2.contains(&"rare")).count() >= 3, "the rare label is in the data");
}

/// Versions stored before the postings existed get theirs from `concordia migrate`; until that
/// is done (a node started with `--no-migrate` while another migrates), the filters are checked
/// on the rows, so nothing is missed; once done, the postings answer.
#[test]
fn filters_wait_for_the_postings_of_older_versions() {
    let s = base_server();
    let (a, b) = (new_id("indicator"), new_id("indicator"));
    let mut va = ind(&a, "2021-01-01T00:00:00.000Z", Some(90), Some(TLP_GREEN));
    va["labels"] = json!(["c2"]);
    s.add("r", SHARED, &as_("alice"), &[va, ind(&b, "2021-01-01T00:00:00.000Z", Some(10), Some(TLP_RED))]);
    let p = objects_path(SHARED);
    let q = |query: &str| ids(&s.get(&format!("{p}?{query}"), &as_("bob")).json());
    let check = |when: &str| {
        assert_eq!(q("match[labels]=c2"), set(&[&a]), "{when}");
        assert_eq!(q("match[tlp]=green"), set(&[&a]), "{when}");
        assert_eq!(q("match[confidence-lte]=50"), set(&[&b]), "{when}");
    };
    check("with postings");
    // As a database upgraded from before the postings: none, and a backfill still to do.
    let url = s.db_url();
    sql_exec(&url, "DELETE FROM object_tags").unwrap();
    let upto = sql_text(&url, "(SELECT MAX(seq) || '' FROM objects)");
    sql_exec(&url, &format!("UPDATE meta SET value = '0:{upto}' WHERE key = 'tags_backfill'")).unwrap();
    check("before the backfill: checked on the rows");
    let mut c = concordia::storage::open(&concordia::storage::DbUrl::parse(&url).unwrap()).unwrap();
    concordia::storage::migrate(&mut c).unwrap();
    assert_eq!(sql_text(&url, "(SELECT count(*) || '' FROM object_tags WHERE tag = 'l:c2')"), "1");
    assert_eq!(sql_text(&url, "(SELECT value FROM meta WHERE key = 'tags_backfill')"), format!("{upto}:{upto}"));
    check("after the backfill: through the postings");
}

/// `match[relationships-all]`: the objects named, with the relationships that refer to them
/// (as source or target) and the sightings of them; other filters still apply.
#[test]
fn relationships_all_brings_the_relationships_of_an_object() {
    let s = base_server();
    let (m, i1, i2, other) = (new_id("malware"), new_id("indicator"), new_id("indicator"), new_id("malware"));
    let rel = |src: &str, dst: &str| {
        json!({"type": "relationship", "spec_version": "2.1", "id": new_id("relationship"),
               "created": "2021-01-01T00:00:00.000Z", "modified": "2021-01-01T00:00:00.000Z",
               "relationship_type": "indicates", "source_ref": src, "target_ref": dst})
    };
    let (r1, r2, r3) = (rel(&i1, &m), rel(&m, &i2), rel(&i1, &other));
    let sighting = json!({"type": "sighting", "spec_version": "2.1", "id": new_id("sighting"),
        "created": "2021-01-01T00:00:00.000Z", "modified": "2021-01-01T00:00:00.000Z", "sighting_of_ref": m});
    s.add(
        "r",
        SHARED,
        &as_("alice"),
        &[
            malware(&m),
            malware(&other),
            indicator(&i1, "2021-01-01T00:00:00.000Z"),
            r1.clone(),
            r2.clone(),
            r3.clone(),
            sighting.clone(),
        ],
    );
    let id_of = |v: &Value| v["id"].as_str().unwrap().to_owned();
    let p = objects_path(SHARED);
    let q = |query: &str| ids(&s.get(&format!("{p}?{query}"), &as_("bob")).json());
    let want: BTreeSet<String> = [m.clone(), id_of(&r1), id_of(&r2), id_of(&sighting)].into_iter().collect();
    assert_eq!(q(&format!("match[relationships-all]={m}")), want);
    assert_eq!(
        q(&format!("match[relationships-all]={}", m.to_uppercase().replace("MALWARE", "malware"))),
        want,
        "ids compare case-insensitively"
    );
    let both: BTreeSet<String> = want.iter().cloned().chain([other.clone(), id_of(&r3)]).collect();
    assert_eq!(q(&format!("match[relationships-all]={m},{other}")), both);
    assert_eq!(
        q(&format!("match[relationships-all]={m}&match[type]=relationship")),
        [id_of(&r1), id_of(&r2)].into_iter().collect()
    );
    assert_eq!(
        q(&format!("match[relationships-all]={m}&match[id]={m},{}", id_of(&r3))),
        [m.clone()].into_iter().collect()
    );
    let man = s.get(&format!("/r/collections/{SHARED}/manifest/?match[relationships-all]={i2}"), &as_("bob")).json();
    assert_eq!(ids(&man), [id_of(&r2)].into_iter().collect(), "an object not stored still finds its relationships");
    s.get(&format!("{p}?match[relationships-all]=nonsense"), &as_("bob")).expect(400);
}

/// A derived collection holds the versions written to its sources that its filter admits,
/// reads like any collection (paging with `next`, manifest, versions, one object), and takes
/// no writes.
#[test]
fn a_derived_collection_is_a_filtered_read_only_collection() {
    let s = feed_server();
    let good_a = new_id("indicator");
    let good_b = new_id("indicator");
    let low = new_id("indicator");
    let amber = new_id("indicator");
    let unmarked = new_id("indicator");
    let m = new_id("malware");
    s.add(
        "r",
        ALLIANCE,
        &as_("alice"),
        &[
            ind(&good_a, "2021-01-01T00:00:00.000Z", Some(80), Some(TLP_GREEN)),
            ind(&low, "2021-01-01T00:00:00.000Z", Some(20), Some(TLP_GREEN)),
            ind(&amber, "2021-01-01T00:00:00.000Z", Some(80), Some(TLP_AMBER)),
            malware(&m),
        ],
    );
    s.add(
        "r",
        ALPHA,
        &as_("alice"),
        &[
            ind(&good_b, "2021-01-01T00:00:00.000Z", Some(50), None),
            ind(&unmarked, "2021-01-01T00:00:00.000Z", None, None),
        ],
    );
    assert_eq!(all_ids(&s, FEED, "siem"), set(&[&good_a, &good_b]));
    // Paging one object at a time: each exactly once, date_added strictly increasing.
    let man = s.read_all(&format!("/r/collections/{FEED}/manifest/"), &as_("siem"), 1);
    assert_eq!(man.len(), 2);
    let added: Vec<&str> = man.iter().map(|r| r["date_added"].as_str().unwrap()).collect();
    assert!(added.windows(2).all(|w| w[0] < w[1]), "{added:?}");
    // added_after the first: the second only.
    let after = s.get(&format!("{}?added_after={}", objects_path(FEED), added[0]), &as_("siem")).json();
    assert_eq!(ids(&after).len(), 1);
    // A new version in a source reaches the feed; the object and its versions read as usual.
    s.add("r", ALLIANCE, &as_("alice"), &[ind(&good_a, "2021-02-01T00:00:00.000Z", Some(85), Some(TLP_GREEN))]);
    let one = s.get(&format!("{}{good_a}/", objects_path(FEED)), &as_("siem")).json();
    assert_eq!(one["objects"][0]["modified"], "2021-02-01T00:00:00.000Z");
    let versions = s.get(&format!("{}{good_a}/versions/", objects_path(FEED)), &as_("siem")).json();
    assert_eq!(versions["versions"], json!(["2021-01-01T00:00:00.000Z", "2021-02-01T00:00:00.000Z"]));
    s.get(&format!("{}{low}/", objects_path(FEED)), &as_("siem")).expect(404);
    // The bytes of each object are those the source received.
    let src = s.get(&format!("{}{good_a}/", objects_path(ALLIANCE)), &as_("siem")).text();
    let fed = s.get(&format!("{}{good_a}/", objects_path(FEED)), &as_("siem")).text();
    assert_eq!(src, fed);
    // The collection resource says it cannot be written; writes and deletes are refused.
    let col = s.get(&format!("/r/collections/{FEED}/"), &as_("siem")).json();
    assert_eq!((col["can_read"].clone(), col["can_write"].clone()), (json!(true), json!(false)));
    let env = json!({ "objects": [ind(&new_id("indicator"), "2021-01-01T00:00:00.000Z", Some(90), None)] });
    s.post(&objects_path(FEED), &as_("siem"), &env).expect(403);
    s.delete(&format!("{}{good_a}/", objects_path(FEED)), &as_("siem")).expect(403);
}

/// The grant of a derived collection narrows, it never widens: a partner sees there only what
/// it may also read in a source the object came from.
#[test]
fn a_derived_collection_shows_only_what_a_source_lets_the_reader_see() {
    let s = feed_server();
    let (in_a, in_b, in_both) = (new_id("indicator"), new_id("indicator"), new_id("indicator"));
    let v = |id: &str| ind(id, "2021-01-01T00:00:00.000Z", Some(90), Some(TLP_GREEN));
    s.add("r", ALLIANCE, &as_("alice"), &[v(&in_a), v(&in_both)]);
    s.add("r", ALPHA, &as_("alice"), &[v(&in_b), v(&in_both)]);
    assert_eq!(all_ids(&s, FEED, "siem"), set(&[&in_a, &in_b, &in_both]));
    assert_eq!(all_ids(&s, FEED, "bob"), set(&[&in_a, &in_both]), "bob reads the alliance source only");
    assert_eq!(all_ids(&s, FEED, "carol"), set(&[&in_b, &in_both]), "carol reads the alpha source only");
    assert_eq!(all_ids(&s, FEED, "dave"), set(&[]), "dave reads no source");
    let man = s.get(&format!("/r/collections/{FEED}/manifest/"), &as_("bob")).json();
    assert_eq!(ids(&man), set(&[&in_a, &in_both]));
    // One object: 404 for a reader of neither of its sources, on every per-object endpoint.
    for path in [format!("{}{in_b}/", objects_path(FEED)), format!("{}{in_b}/versions/", objects_path(FEED))] {
        s.get(&path, &as_("bob")).expect(404);
        s.get(&path, &as_("carol")).expect(200);
    }
    // The version held by both sources is stored once in the feed; deleting it from one
    // source takes it away from that source's readers only.
    assert_eq!(s.read_all(&objects_path(FEED), &as_("siem"), 100).len(), 3);
    s.delete(&format!("{}{in_both}/", objects_path(ALLIANCE)), &as_("alice")).expect(200);
    assert_eq!(all_ids(&s, FEED, "bob"), set(&[&in_a]));
    assert_eq!(all_ids(&s, FEED, "carol"), set(&[&in_b, &in_both]));
    s.delete(&format!("{}{in_both}/", objects_path(ALPHA)), &as_("alice")).expect(200);
    assert_eq!(all_ids(&s, FEED, "siem"), set(&[&in_a, &in_b]));
}

/// Revocation reaches a consumer that polls with `added_after`: the revoking version is a new
/// version with a new `date_added`, in a stored collection and in a derived one that excludes
/// revoked objects (the revoking version of an object it holds still goes in, once).
#[test]
fn revocation_reaches_added_after_pollers() {
    let s = feed_server();
    let id = new_id("indicator");
    let never = new_id("indicator");
    s.add("r", ALLIANCE, &as_("alice"), &[ind(&id, "2021-01-01T00:00:00.000Z", Some(90), Some(TLP_GREEN))]);
    // Each poller has read everything so far.
    let marks: Vec<(&str, String)> = [ALLIANCE, FEED]
        .into_iter()
        .map(|col| {
            let first = s.get(&format!("/r/collections/{col}/manifest/"), &as_("siem")).json();
            assert_eq!(ids(&first), set(&[&id]), "{col}");
            (col, first["objects"][0]["date_added"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut revoked = ind(&id, "2021-06-01T00:00:00.000Z", Some(90), Some(TLP_GREEN));
    revoked["revoked"] = json!(true);
    // Revoked from the start: never in a feed that excludes revoked objects.
    let mut dead = ind(&never, "2021-06-01T00:00:00.000Z", Some(90), Some(TLP_GREEN));
    dead["revoked"] = json!(true);
    s.add("r", ALLIANCE, &as_("alice"), &[revoked, dead]);
    for (col, mark) in marks {
        let polled = s.get(&format!("{}?added_after={mark}", objects_path(col)), &as_("siem")).json();
        let got: Vec<&Value> = polled["objects"].as_array().unwrap().iter().filter(|o| o["id"] == id).collect();
        assert_eq!(got.len(), 1, "{col}: {polled}");
        assert_eq!(got[0]["revoked"], true);
        assert_eq!(got[0]["modified"], "2021-06-01T00:00:00.000Z");
    }
    assert!(!all_ids(&s, FEED, "siem").contains(&never));
    assert!(all_ids(&s, ALLIANCE, "siem").contains(&never));
}

/// Expiry: an indicator whose `valid_until` passes drops out of a `valid_now` feed (full reads,
/// manifests, the object itself). It gets no new version, so a poller with `added_after` sees
/// nothing new: consumers drop expired indicators by their own `valid_until` (SIEMs do).
/// Indicators not yet valid are not shown until `valid_from`; then the housekeeping gives them
/// a new position, so that a poller with `added_after` sees them.
#[test]
fn expired_indicators_drop_out_of_a_valid_now_feed() {
    let policy = FEED_POLICY.replace("revoked = false", "revoked = false\nvalid_now = true");
    let s = TestServer::start_with(&policy, &[("CONCORDIA_FEED_HOUSEKEEPING_SECONDS", "1")]);
    s.add_password("alice", "pw-alice-secret");
    s.add_password("siem", "pw-siem-secret");
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (expiring, lasting, future) = (new_id("indicator"), new_id("indicator"), new_id("indicator"));
    let mut e = ind(&expiring, "2021-01-01T00:00:00.000Z", Some(90), None);
    e["valid_until"] = json!(soon);
    let l = ind(&lasting, "2021-01-01T00:00:00.000Z", Some(90), None);
    let mut f = ind(&future, "2021-01-01T00:00:00.000Z", Some(90), None);
    f["valid_from"] = json!("2999-01-01T00:00:00Z");
    s.add("r", ALLIANCE, &as_("alice"), &[e, l, f]);
    assert_eq!(all_ids(&s, FEED, "siem"), set(&[&expiring, &lasting]));
    let mark = s.get(&format!("/r/collections/{FEED}/manifest/"), &as_("siem")).json()["objects"][1]["date_added"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(wait_until(|| !all_ids(&s, FEED, "siem").contains(&expiring)), "the expired indicator drops out");
    assert_eq!(all_ids(&s, FEED, "siem"), set(&[&lasting]));
    s.get(&format!("{}{expiring}/", objects_path(FEED)), &as_("siem")).expect(404);
    let man = s.get(&format!("/r/collections/{FEED}/manifest/"), &as_("siem")).json();
    assert_eq!(ids(&man), set(&[&lasting]));
    assert_eq!(s.get(&format!("{}?added_after={mark}", objects_path(FEED)), &as_("siem")).text(), "{}");
    // The source keeps it.
    assert!(all_ids(&s, ALLIANCE, "siem").contains(&expiring));

    // Valid in two seconds: not shown before; then at a new position after the mark of a poller
    // that polled (past its first position) while it was not valid yet.
    let (pending, after_it) = (new_id("indicator"), new_id("indicator"));
    let from = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let mut p = ind(&pending, "2021-01-01T00:00:00.000Z", Some(90), None);
    p["valid_from"] = json!(from.format(&time::format_description::well_known::Rfc3339).unwrap());
    s.add("r", ALLIANCE, &as_("alice"), &[p, ind(&after_it, "2021-01-01T00:00:00.000Z", Some(90), None)]);
    assert!(!all_ids(&s, FEED, "siem").contains(&pending), "not valid yet");
    let page = s.get(&format!("/r/collections/{FEED}/manifest/"), &as_("siem"));
    assert!(ids(&page.json()).contains(&after_it));
    let mark = page.header("x-taxii-date-added-last").unwrap().to_owned();
    let polled =
        |s: &TestServer| ids(&s.get(&format!("{}?added_after={mark}", objects_path(FEED)), &as_("siem")).json());
    assert!(wait_until(|| polled(&s).contains(&pending)), "a poller sees it once it is valid");
    assert!(all_ids(&s, FEED, "siem").contains(&pending));
}

/// A derived collection added to (or changed in) the policy is filled from what its sources
/// already hold; a stored collection that holds objects cannot become a derived one; policies
/// that would let a derived collection take writes or derive from a derived one are refused.
#[test]
fn apply_fills_and_rebuilds_derived_collections() {
    let without_feed =
        FEED_POLICY.split("[[collections]]\nid = \"a1a1a1a1-0000-4000-8000-0000000000f1\"").next().unwrap();
    let s = TestServer::start(without_feed);
    for p in ["alice", "siem"] {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    let (hi, lo) = (new_id("indicator"), new_id("indicator"));
    s.add(
        "r",
        ALLIANCE,
        &as_("alice"),
        &[ind(&hi, "2021-01-01T00:00:00.000Z", Some(90), None), ind(&lo, "2021-01-01T00:00:00.000Z", Some(60), None)],
    );
    let plan = s.apply(FEED_POLICY);
    assert!(plan.contains("derived from 2 collections"), "{plan}");
    assert!(wait_until(|| try_ids(&s, FEED, "siem") == Some(set(&[&hi, &lo]))));
    let stricter = FEED_POLICY.replace("confidence_min = 50", "confidence_min = 70");
    let plan = s.apply(&stricter);
    assert!(plan.contains("derived contents rebuilt"), "{plan}");
    assert!(wait_until(|| try_ids(&s, FEED, "siem") == Some(set(&[&hi]))));
    // The alliance collection holds objects: it cannot become derived.
    let bad = without_feed.replace(
        "title = \"Alliance indicators\"\nread = [\"alliance-readers\"]\nwrite = [\"writers\"]",
        "title = \"Alliance indicators\"\nread = [\"alliance-readers\"]\nderived_from = [\"a1a1a1a1-0000-4000-8000-000000000002\"]",
    );
    assert_ne!(bad, without_feed);
    let path = s.dir.path().join("bad.toml");
    std::fs::write(&path, &bad).unwrap();
    let (ok, out, err) = s.cli(&["apply", path.to_str().unwrap()], None);
    assert!(!ok && format!("{out}{err}").contains("cannot become a derived collection"), "{out}{err}");
    assert_eq!(all_ids(&s, ALLIANCE, "siem"), set(&[&hi, &lo]), "nothing was changed");
    for (policy, want) in [
        (
            FEED_POLICY.replace("read = [\"feed-readers\"]", "read = [\"feed-readers\"]\nwrite = [\"writers\"]"),
            "takes no writes",
        ),
        (
            FEED_POLICY
                .replace("\"a1a1a1a1-0000-4000-8000-000000000002\"]", "\"a1a1a1a1-0000-4000-8000-0000000000f1\"]"),
            "itself derived",
        ),
        (
            FEED_POLICY
                .replace("\"a1a1a1a1-0000-4000-8000-000000000002\"]", "\"a1a1a1a1-0000-4000-8000-00000000dead\"]"),
            "not the id of a collection",
        ),
        (FEED_POLICY.replace("tlp_max = \"green\"", "tlp_max = \"purple\""), "tlp_max"),
    ] {
        std::fs::write(&path, &policy).unwrap();
        let (ok, out, err) = s.cli(&["apply", path.to_str().unwrap()], None);
        assert!(!ok && format!("{out}{err}").contains(want), "{want}: {out}{err}");
    }
}

/// No derived collection is a way around a source's grants or its TLP ceiling: random grants on
/// three sources (one with a TLP:GREEN ceiling) and two derived collections over random subsets
/// of them; every partner's view of every derived collection is compared with a model: the
/// objects of the sources it may read, admitted by the filter.
#[test]
fn derived_collections_never_widen_access_for_random_policies() {
    for seed in [11u64, 23, 57] {
        let mut rng = Rng(seed);
        let partners: Vec<String> = (0..4).map(|i| format!("p{i}")).collect();
        let sources: Vec<String> = (1..=3).map(|i| format!("b0b0b0b0-0000-4000-8000-00000000000{i}")).collect();
        let derived: Vec<String> = (1..=2).map(|i| format!("b0b0b0b0-0000-4000-8000-0000000000d{i}")).collect();
        let mut policy = String::from("[discovery]\ntitle = \"prop\"\n[[api_roots]]\nname = \"r\"\ntitle = \"R\"\n");
        policy.push_str("[[partners]]\nname = \"w\"\n[[groups]]\nname = \"gw\"\nmembers = [\"w\"]\n");
        let mut readers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in &partners {
            policy
                .push_str(&format!("[[partners]]\nname = \"{p}\"\n[[groups]]\nname = \"g{p}\"\nmembers = [\"{p}\"]\n"));
        }
        for col in sources.iter().chain(&derived) {
            let r: BTreeSet<String> = partners.iter().filter(|_| rng.chance(50)).cloned().collect();
            readers.insert(col.clone(), r);
        }
        let mut feeds: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, col) in sources.iter().enumerate() {
            let groups: Vec<String> = readers[col].iter().map(|p| format!("\"g{p}\"")).collect();
            policy.push_str(&format!(
                "[[collections]]\nid = \"{col}\"\napi_root = \"r\"\ntitle = \"S{i}\"\nread = [\"gw\", {}]\nwrite = [\"gw\"]\n",
                groups.join(", ")
            ));
            if i == 0 {
                policy.push_str("[collections.sharing]\ntlp_ceiling = \"green\"\n");
            }
        }
        for (i, col) in derived.iter().enumerate() {
            let mut from: Vec<String> = sources.iter().filter(|_| rng.chance(60)).cloned().collect();
            if from.is_empty() {
                from.push(sources[i].clone());
            }
            let groups: Vec<String> = readers[col].iter().map(|p| format!("\"g{p}\"")).collect();
            policy.push_str(&format!(
                "[[collections]]\nid = \"{col}\"\napi_root = \"r\"\ntitle = \"D{i}\"\nread = [{}]\nderived_from = [{}]\n[collections.filter]\nconfidence_min = 50\n",
                groups.join(", "),
                from.iter().map(|f| format!("\"{f}\"")).collect::<Vec<_>>().join(", ")
            ));
            feeds.insert(col.clone(), from);
        }
        let s = TestServer::start(&policy);
        s.add_password("w", "pw-w-secret");
        for p in &partners {
            s.add_password(p, &format!("pw-{p}-secret"));
        }
        // Objects: random confidence and TLP, some shared by two sources.
        let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new(); // source -> admitted ids
        let mut shared_pool: Vec<Value> = Vec::new();
        for src in &sources {
            let mut batch = Vec::new();
            for _ in 0..6 {
                let id = new_id("indicator");
                let conf = if rng.chance(70) { 80 } else { 10 };
                let marking = if rng.chance(30) { TLP_RED } else { TLP_GREEN };
                batch.push(ind(&id, "2021-01-01T00:00:00.000Z", Some(conf), Some(marking)));
            }
            if let Some(v) = shared_pool.first() {
                batch.push(v.clone());
            }
            let r = s.post(&objects_path(src), &as_("w"), &json!({ "objects": batch }));
            r.expect(202);
            let status = r.json();
            let ok: BTreeSet<String> =
                status["successes"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect();
            for v in &batch {
                let id = v["id"].as_str().unwrap().to_owned();
                if ok.contains(&id) && v["confidence"].as_i64().unwrap() >= 50 {
                    held.entry(src.clone()).or_default().insert(id);
                }
            }
            if shared_pool.is_empty() {
                shared_pool.push(
                    batch
                        .iter()
                        .find(|v| v["confidence"] == 80 && v["object_marking_refs"][0] == TLP_GREEN)
                        .cloned()
                        .unwrap_or_else(|| batch[0].clone()),
                );
            }
        }
        // The TLP ceiling of the first source refused its red objects.
        assert!(held.get(&sources[0]).is_none_or(|ids| ids.iter().all(|id| {
            s.get(&format!("{}{id}/", objects_path(&sources[0])), &as_("w")).json()["objects"][0]["object_marking_refs"]
                [0]
                == TLP_GREEN
        })));
        for (d, from) in &feeds {
            for p in &partners {
                let r = s.get(&objects_path(d), &as_(p));
                if !readers[d].contains(p) {
                    r.expect(404);
                    continue;
                }
                let want: BTreeSet<String> = from
                    .iter()
                    .filter(|src| readers[*src].contains(p))
                    .flat_map(|src| held.get(src).cloned().unwrap_or_default())
                    .collect();
                assert_eq!(all_ids(&s, d, p), want, "seed {seed}: {p} reading {d} (from {from:?})");
            }
        }
    }
}

/// Retention: `concordia purge` (and every node, hourly) removes the versions added longer ago
/// than `retention_days`; with `keep_latest` the latest version of each object stays. What goes
/// also leaves the derived collections it fed, and each purge is in the audit trail, whose
/// chains still verify. The server's own run counts them in `concordia_objects_purged_total`.
#[test]
fn retention_purges_old_versions_and_records_it() {
    let policy = FEED_POLICY
        .replace(
            "title = \"Alliance indicators\"\nread = [\"alliance-readers\"]\nwrite = [\"writers\"]",
            "title = \"Alliance indicators\"\nread = [\"alliance-readers\"]\nwrite = [\"writers\"]\nretention_days = 7\nkeep_latest = true",
        )
        .replace(
            "title = \"Alpha national\"\nread = [\"alpha-readers\"]\nwrite = [\"writers\"]",
            "title = \"Alpha national\"\nread = [\"alpha-readers\"]\nwrite = [\"writers\"]\nretention_days = 7",
        );
    assert_ne!(policy, FEED_POLICY);
    let mut s = TestServer::start_with(&policy, &[("CONCORDIA_METRICS_TOKEN", "metrics-token-0123456789")]);
    for p in ["alice", "siem"] {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    let (x, y, z) = (new_id("indicator"), new_id("indicator"), new_id("indicator"));
    let v = |id: &str, m: &str| ind(id, m, Some(90), None);
    s.add(
        "r",
        ALLIANCE,
        &as_("alice"),
        &[v(&x, "2021-01-01T00:00:00.000Z"), v(&y, "2021-01-01T00:00:00.000Z"), v(&z, "2021-01-01T00:00:00.000Z")],
    );
    s.add("r", ALLIANCE, &as_("alice"), &[v(&x, "2021-02-01T00:00:00.000Z"), v(&z, "2021-02-01T00:00:00.000Z")]);
    s.add("r", ALPHA, &as_("alice"), &[v(&x, "2021-01-01T00:00:00.000Z")]);
    // The server's own first housekeeping runs a second after it starts: let it pass before
    // making anything old, so that the purge below is this test's.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Everything so far was added 8 days ago; then one fresh version of z.
    let url = s.db_url();
    let backdate = "UPDATE objects SET date_added = date_added - 691200000000 WHERE collection_key IN \
                    (SELECT collection_key FROM collection_clock WHERE collection_id IN ('a1a1a1a1-0000-4000-8000-000000000001', 'a1a1a1a1-0000-4000-8000-000000000002'))";
    sql_exec(&url, backdate).unwrap();
    s.add("r", ALLIANCE, &as_("alice"), &[v(&z, "2021-03-01T00:00:00.000Z")]);
    let versions = |s: &TestServer, col: &str, id: &str| -> Vec<String> {
        let r = s.get(&format!("{}{id}/versions/", objects_path(col)), &as_("siem"));
        if r.status == 404 {
            return Vec::new();
        }
        r.json()["versions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(versions(&s, FEED, &x).len(), 2);

    let (ok, out, err) = s.cli(&["purge"], None);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Alliance indicators (a1a1a1a1-0000-4000-8000-000000000001): 3 object versions purged"),
        "{out}"
    );
    assert!(out.contains("Alpha national (a1a1a1a1-0000-4000-8000-000000000002): 1 object versions purged"), "{out}");
    // keep_latest: x keeps its latest, y its only version; z lost both old ones.
    assert_eq!(versions(&s, ALLIANCE, &x), vec!["2021-02-01T00:00:00.000Z"]);
    assert_eq!(versions(&s, ALLIANCE, &y), vec!["2021-01-01T00:00:00.000Z"]);
    assert_eq!(versions(&s, ALLIANCE, &z), vec!["2021-03-01T00:00:00.000Z"]);
    // Without keep_latest, everything old goes.
    assert_eq!(versions(&s, ALPHA, &x), Vec::<String>::new());
    // The feed follows: x's first version was held by both sources, and both purged it.
    assert_eq!(versions(&s, FEED, &x), vec!["2021-02-01T00:00:00.000Z"]);
    assert_eq!(versions(&s, FEED, &z), vec!["2021-03-01T00:00:00.000Z"]);
    // A second run finds nothing more.
    let (_, again, _) = s.cli(&["purge"], None);
    assert!(again.contains("0 object versions purged") && !again.contains(": 3 "), "{again}");
    // In the audit trail, naming the versions; the chains still verify.
    let (ok, export, err) = s.cli(&["audit", "export"], None);
    assert!(ok, "{err}");
    let purges: Vec<&str> = export.lines().filter(|l| l.contains("\"action\":\"retention_purge\"")).collect();
    assert_eq!(purges.len(), 2, "{export}");
    // What left the feed with them is recorded in the feed's chain.
    assert!(export.lines().any(|l| l.contains("\"action\":\"feed_withdraw\"") && l.contains(FEED)), "{export}");
    assert!(purges.iter().any(|l| l.contains(&z) && l.contains("2021-02-01T00:00:00.000Z")), "{purges:?}");
    let (ok, out, err) = s.cli(&["audit", "verify"], None);
    assert!(ok, "{out}{err}");

    // The server's hourly run (its first comes right after it starts) counts what it purges.
    sql_exec(&url, backdate).unwrap();
    s.add("r", ALLIANCE, &as_("alice"), &[v(&y, "2021-04-01T00:00:00.000Z")]);
    s.restart();
    let metrics = |s: &TestServer| s.get("/metrics", &Auth::Bearer("metrics-token-0123456789".into())).text();
    assert!(
        wait_until(|| metrics(&s)
            .contains("concordia_objects_purged_total{collection=\"a1a1a1a1-0000-4000-8000-000000000001\"} 1")),
        "{}",
        metrics(&s)
    );
    assert_eq!(versions(&s, ALLIANCE, &y), vec!["2021-04-01T00:00:00.000Z"]);
    assert_eq!(versions(&s, ALLIANCE, &z), vec!["2021-03-01T00:00:00.000Z"], "the latest stays, however old");
}

/// Partners named by `audit recipients` for an object (partner names only).
fn recipients_of(s: &TestServer, id: &str) -> BTreeSet<String> {
    let (ok, out, err) = s.cli(&["audit", "recipients", id, "--json"], None);
    assert!(ok, "{err}");
    out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["partner"].as_str().unwrap().to_owned()).collect()
}

/// Waits until the reads before now are in the audit trail (they are batched).
fn settle(s: &TestServer) {
    let marker = s.get("/taxii2/", &as_("siem"));
    let id = marker.header("x-request-id").unwrap().to_owned();
    assert!(wait_until(|| {
        let (_, out, _) = s.cli(&["audit", "export"], None);
        out.contains(&id)
    }));
}

/// `audit recipients` names only who was served an object: a page with richer filters served
/// only what passed them; a derived collection served a reader only what came through a source
/// it may read; a TAXII 2.0 page counts; a purged version's deliveries are still found.
#[test]
fn recipients_follow_richer_filters_feeds_taxii20_and_purges() {
    let policy = FEED_POLICY
        .replace(
            "title = \"Alliance indicators\"\nread = [\"alliance-readers\"]\nwrite = [\"writers\"]",
            "title = \"Alliance indicators\"\nread = [\"alliance-readers\"]\nwrite = [\"writers\"]\nretention_days = 0.00004\ntaxii20 = true",
        );
    let s = TestServer::start(&policy);
    for p in ["alice", "bob", "carol", "siem"] {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    let (labelled, plain, from_alpha) = (new_id("indicator"), new_id("indicator"), new_id("indicator"));
    let mut l = ind(&labelled, "2021-01-01T00:00:00.000Z", Some(90), None);
    l["labels"] = json!(["c2"]);
    s.add("r", ALLIANCE, &as_("alice"), &[l, ind(&plain, "2021-01-01T00:00:00.000Z", Some(90), None)]);
    s.add("r", ALPHA, &as_("alice"), &[ind(&from_alpha, "2021-01-01T00:00:00.000Z", Some(90), None)]);
    // bob: the labelled ones of the alliance collection only; then the feed, which he reads
    // through the alliance source only. carol: the feed, through the alpha source only.
    assert_eq!(
        ids(&s.get(&format!("{}?match[labels]=c2", objects_path(ALLIANCE)), &as_("bob")).json()),
        set(&[&labelled])
    );
    assert_eq!(all_ids(&s, FEED, "bob"), set(&[&labelled, &plain]));
    assert_eq!(all_ids(&s, FEED, "carol"), set(&[&from_alpha]));
    // siem: the alliance collection through TAXII 2.0.
    let r = s.request(
        "GET",
        &format!("/taxii20/r/collections/{ALLIANCE}/objects/"),
        &as_("siem"),
        &[("Accept", "application/vnd.oasis.stix+json; version=2.0"), ("Range", "items=0-9")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The plain indicator has no labels (nor indicator_types): STIX 2.0 cannot carry it.
    assert_eq!(ids(&r.json()), set(&[&labelled]));
    settle(&s);
    assert_eq!(recipients_of(&s, &labelled), ["bob", "siem"].iter().map(|p| p.to_string()).collect());
    assert_eq!(
        recipients_of(&s, &plain),
        ["bob"].iter().map(|p| p.to_string()).collect(),
        "bob got it from the feed; the TAXII 2.0 page left it out"
    );
    assert_eq!(recipients_of(&s, &from_alpha), ["carol"].iter().map(|p| p.to_string()).collect(), "never bob");
    // Purged versions (retention_days = 0.00004, 3.5 s) are still found, through the purge's
    // record in the source's chain and the withdrawal's in the feed's.
    std::thread::sleep(std::time::Duration::from_millis(3600));
    let (ok, out, err) = s.cli(&["purge"], None);
    assert!(ok && out.contains("2 object versions purged"), "{out}{err}");
    assert!(all_ids(&s, ALLIANCE, "siem").is_empty());
    assert_eq!(all_ids(&s, FEED, "siem"), set(&[&from_alpha]), "purged from the source, gone from the feed");
    assert_eq!(recipients_of(&s, &labelled), ["bob", "siem"].iter().map(|p| p.to_string()).collect());
    assert_eq!(recipients_of(&s, &plain), ["bob"].iter().map(|p| p.to_string()).collect());
    let (_, export, _) = s.cli(&["audit", "export", "--collection", FEED], None);
    assert!(export.contains("feed_withdraw") && export.contains("retention_purge"), "{export}");
    let (ok, out, err) = s.cli(&["audit", "verify"], None);
    assert!(ok, "{out}{err}");
}

/// A rebuild of a derived collection (its filter changed) gives its contents new positions, and
/// what it served before is still attributed: the versions it held leave it with a
/// `feed_withdraw` record (cause `apply`) in its chain, with their old positions.
#[test]
fn a_rebuilt_feed_still_knows_who_it_served_before() {
    let s = feed_server();
    let (kept, dropped) = (new_id("indicator"), new_id("indicator"));
    s.add(
        "r",
        ALLIANCE,
        &as_("alice"),
        &[
            ind(&kept, "2021-01-01T00:00:00.000Z", Some(90), None),
            ind(&dropped, "2021-01-01T00:00:00.000Z", Some(60), None),
        ],
    );
    // bob reads the feed before the rebuild only; siem before and after.
    assert_eq!(all_ids(&s, FEED, "bob"), set(&[&kept, &dropped]));
    assert_eq!(all_ids(&s, FEED, "siem"), set(&[&kept, &dropped]));
    let plan = s.apply(&FEED_POLICY.replace("confidence_min = 50", "confidence_min = 70"));
    assert!(plan.contains("derived contents rebuilt"), "{plan}");
    assert!(wait_until(|| try_ids(&s, FEED, "siem") == Some(set(&[&kept]))));
    settle(&s);
    let both: BTreeSet<String> = ["bob", "siem"].iter().map(|p| p.to_string()).collect();
    assert_eq!(recipients_of(&s, &kept), both, "bob was served it before the rebuild only");
    assert_eq!(recipients_of(&s, &dropped), both, "no longer in the feed, served before");
    let (_, export, _) = s.cli(&["audit", "export", "--collection", FEED], None);
    let withdrawal = export.lines().find(|l| l.contains("feed_withdraw")).unwrap_or_default();
    assert!(withdrawal.contains("apply") && withdrawal.contains(&dropped), "{export}");
    let (ok, out, err) = s.cli(&["audit", "verify"], None);
    assert!(ok, "{out}{err}");
}

/// What each reader of a feed sees follows its own sources, version by version:
/// - an object with v1 from one source and v2 from another: each reader sees the newest
///   version it may read (the default view), never a version only the other source holds;
/// - the same version arriving later from a second source moves to a new position, so a reader
///   of that source polling with `added_after` receives it;
/// - the same id and version with another text from a second source: its readers are not
///   served the first source's text.
#[test]
fn each_reader_of_a_feed_sees_the_newest_version_its_sources_give() {
    let s = feed_server();
    let v = |id: &str, m: &str| ind(id, m, Some(90), Some(TLP_GREEN));
    // x: v1 in the alliance source (bob), v2 in alpha (carol).
    let x = new_id("indicator");
    s.add("r", ALLIANCE, &as_("alice"), &[v(&x, "2021-01-01T00:00:00.000Z")]);
    s.add("r", ALPHA, &as_("alice"), &[v(&x, "2021-02-01T00:00:00.000Z")]);
    let modified = |who: &str| -> Vec<String> {
        s.read_all(&objects_path(FEED), &as_(who), 10)
            .iter()
            .filter(|o| o["id"] == x.as_str())
            .map(|o| o["modified"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(modified("bob"), vec!["2021-01-01T00:00:00.000Z"]);
    assert_eq!(modified("carol"), vec!["2021-02-01T00:00:00.000Z"]);
    assert_eq!(modified("siem"), vec!["2021-02-01T00:00:00.000Z"]);
    let one = s.get(&format!("{}{x}/", objects_path(FEED)), &as_("bob")).json();
    assert_eq!(one["objects"][0]["modified"], "2021-01-01T00:00:00.000Z");
    let all = s.get(&format!("{}{x}/versions/", objects_path(FEED)), &as_("bob")).json();
    assert_eq!(all["versions"], json!(["2021-01-01T00:00:00.000Z"]), "bob never learns of v2");

    // y in the alliance source; carol (alpha only) polls past it; then alpha gets y too.
    let y = new_id("indicator");
    s.add("r", ALLIANCE, &as_("alice"), &[v(&y, "2021-01-01T00:00:00.000Z")]);
    let page = s.get(&format!("/r/collections/{FEED}/manifest/"), &as_("carol"));
    let mark = page.header("x-taxii-date-added-last").unwrap().to_owned();
    assert!(!ids(&page.json()).contains(&y));
    s.add("r", ALPHA, &as_("alice"), &[v(&y, "2021-01-01T00:00:00.000Z")]);
    let polled = s.get(&format!("{}?added_after={mark}", objects_path(FEED)), &as_("carol")).json();
    assert!(ids(&polled).contains(&y), "carol's poll after her mark brings y: {polled}");
    assert_eq!(s.read_all(&objects_path(FEED), &as_("siem"), 100).iter().filter(|o| o["id"] == y.as_str()).count(), 1);

    // z v1 in the alliance source; alpha gets a different text under the same id and version.
    let z = new_id("indicator");
    let mut za = v(&z, "2021-01-01T00:00:00.000Z");
    za["name"] = json!("alliance-only text");
    s.add("r", ALLIANCE, &as_("alice"), &[za]);
    let mut zb = v(&z, "2021-01-01T00:00:00.000Z");
    zb["name"] = json!("alpha text");
    s.add("r", ALPHA, &as_("alice"), &[zb]);
    assert!(!all_ids(&s, FEED, "carol").contains(&z), "carol is not served the alliance's text");
    let got = s.get(&format!("{}{z}/", objects_path(FEED)), &as_("bob")).json();
    assert_eq!(got["objects"][0]["name"], "alliance-only text");
    s.get(&format!("{}{z}/", objects_path(FEED)), &as_("carol")).expect(404);
}
