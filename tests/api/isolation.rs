//! Partner isolation property test: random partners, groups, grants and operations; every
//! response is compared with a model of who may see what (design note 6).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::helpers::*;

struct Model {
    partners: Vec<String>,
    roots: Vec<String>,
    /// collection id -> (root, readers, writers)
    collections: BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)>,
    /// collection id -> object ids stored there
    objects: BTreeMap<String, BTreeSet<String>>,
}

impl Model {
    fn rights(&self, partner: &str, col: &str) -> (bool, bool) {
        let (_, r, w) = &self.collections[col];
        (r.contains(partner), w.contains(partner))
    }
    fn visible_roots(&self, partner: &str) -> BTreeSet<String> {
        self.collections
            .iter()
            .filter(|(id, _)| {
                let (r, w) = self.rights(partner, id);
                r || w
            })
            .map(|(_, (root, _, _))| root.clone())
            .collect()
    }
}

fn build(seed: u64) -> (String, Model) {
    let mut rng = Rng(seed);
    let partners: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
    let roots = vec!["east".to_owned(), "west".to_owned()];
    let groups: Vec<(String, BTreeSet<String>)> =
        (0..4).map(|g| (format!("g{g}"), partners.iter().filter(|_| rng.chance(35)).cloned().collect())).collect();
    let mut policy = String::from("[discovery]\ntitle = \"prop\"\n");
    for r in &roots {
        policy += &format!("[[api_roots]]\nname = \"{r}\"\ntitle = \"{r}\"\n");
    }
    for p in &partners {
        policy += &format!("[[partners]]\nname = \"{p}\"\n");
    }
    for (g, members) in &groups {
        let m: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
        policy += &format!("[[groups]]\nname = \"{g}\"\nmembers = [{}]\n", m.join(","));
    }
    let mut collections = BTreeMap::new();
    for c in 0..5 {
        let id = uuid::Uuid::new_v4().to_string();
        let root = roots[rng.below(roots.len())].clone();
        let read: Vec<usize> = (0..groups.len()).filter(|_| rng.chance(30)).collect();
        let write: Vec<usize> = (0..groups.len()).filter(|_| rng.chance(30)).collect();
        let names = |v: &Vec<usize>| v.iter().map(|i| format!("\"{}\"", groups[*i].0)).collect::<Vec<_>>().join(",");
        policy += &format!(
            "[[collections]]\nid = \"{id}\"\napi_root = \"{root}\"\ntitle = \"c{c}\"\nread = [{}]\nwrite = [{}]\n",
            names(&read),
            names(&write)
        );
        let members =
            |v: &Vec<usize>| v.iter().flat_map(|i| groups[*i].1.iter().cloned()).collect::<BTreeSet<String>>();
        collections.insert(id, (root, members(&read), members(&write)));
    }
    let model = Model { partners, roots, collections, objects: BTreeMap::new() };
    (policy, model)
}

fn check_partner(s: &TestServer, m: &Model, p: &str, statuses: &BTreeMap<String, (String, String)>) {
    let auth = as_(p);
    // Discovery lists exactly the roots with a visible collection.
    let d = s.get("/taxii2/", &auth);
    d.expect(200);
    let listed: BTreeSet<String> = d.json()["api_roots"]
        .as_array()
        .map(|a| {
            a.iter().map(|r| r.as_str().unwrap().trim_start_matches(&s.base).trim_matches('/').to_owned()).collect()
        })
        .unwrap_or_default();
    assert_eq!(listed, m.visible_roots(p), "discovery for {p}");
    for root in &m.roots {
        let r = s.get(&format!("/{root}/collections/"), &auth);
        if !m.visible_roots(p).contains(root) {
            r.expect(404);
            continue;
        }
        r.expect(200);
        let got: BTreeMap<String, (bool, bool)> = r.json()["collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["id"].as_str().unwrap().to_owned(), (c["can_read"] == true, c["can_write"] == true)))
            .collect();
        let want: BTreeMap<String, (bool, bool)> = m
            .collections
            .iter()
            .filter(|(_, (r, _, _))| r == root)
            .map(|(id, _)| (id.clone(), m.rights(p, id)))
            .filter(|(_, (r, w))| *r || *w)
            .collect();
        assert_eq!(got, want, "collections of {root} for {p}");
    }
    for (id, (root, _, _)) in &m.collections {
        let (read, write) = m.rights(p, id);
        let col = s.get(&format!("/{root}/collections/{id}/"), &auth);
        let objects = s.get(&format!("/{root}/collections/{id}/objects/?match[version]=all"), &auth);
        let manifest = s.get(&format!("/{root}/collections/{id}/manifest/"), &auth);
        match (read, write) {
            (false, false) => {
                col.expect(404);
                objects.expect(404);
                manifest.expect(404);
            }
            (false, true) => {
                col.expect(200);
                objects.expect(403);
                manifest.expect(403);
            }
            (true, _) => {
                col.expect(200);
                objects.expect(200);
                let got: BTreeSet<String> = objects.json()["objects"]
                    .as_array()
                    .map(|a| a.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default();
                assert_eq!(&got, m.objects.get(id).unwrap_or(&BTreeSet::new()), "objects of {id} for {p}");
            }
        }
        // The same collection under the other root never answers.
        for other in m.roots.iter().filter(|r| *r != root) {
            let r = s.get(&format!("/{other}/collections/{id}/"), &auth);
            assert!(r.status == 404, "{p} saw {id} under {other}");
        }
    }
    // Statuses are visible to their submitter only.
    for (sid, (owner, root)) in statuses {
        let r = s.get(&format!("/{root}/status/{sid}/"), &auth);
        if owner == p {
            r.expect(200);
        } else {
            assert_eq!(r.status, 404, "{p} read {owner}'s status");
        }
    }
}

fn run(seed: u64) {
    let (policy, mut m) = build(seed);
    let s = TestServer::start(&policy);
    for p in &m.partners {
        s.add_password(p, &format!("pw-{p}-secret"));
    }
    let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut statuses = BTreeMap::new();
    let ids: Vec<String> = m.collections.keys().cloned().collect();
    // Random writes, each checked against the model.
    for _ in 0..20 {
        let p = m.partners[rng.below(m.partners.len())].clone();
        let col = ids[rng.below(ids.len())].clone();
        let root = m.collections[&col].0.clone();
        let obj = malware(&new_id("malware"));
        let r = s.post(&format!("/{root}/collections/{col}/objects/"), &as_(&p), &json!({"objects": [obj.clone()]}));
        match m.rights(&p, &col) {
            (_, true) => {
                r.expect(202);
                statuses.insert(r.json()["id"].as_str().unwrap().to_owned(), (p.clone(), root.clone()));
                m.objects.entry(col.clone()).or_default().insert(obj["id"].as_str().unwrap().to_owned());
            }
            (true, false) => {
                r.expect(403);
            }
            (false, false) => {
                r.expect(404);
            }
        }
        // Deletes by partners without both rights must never remove anything.
        if rng.chance(30) {
            if let Some(victim) = m.objects.get(&col).and_then(|o| o.iter().next().cloned()) {
                let d = s.delete(&format!("/{root}/collections/{col}/objects/{victim}/"), &as_(&p));
                match m.rights(&p, &col) {
                    (true, true) => {
                        d.expect(200);
                        m.objects.get_mut(&col).unwrap().remove(&victim);
                    }
                    (false, false) => {
                        d.expect(404);
                    }
                    _ => {
                        d.expect(403);
                    }
                }
            }
        }
    }
    for p in &m.partners {
        check_partner(&s, &m, p, &statuses);
    }
    let _: Value = Value::Null;
}

#[test]
fn partner_isolation_holds_for_random_policies() {
    for seed in [0x5EED_0001u64, 0xC0FF_EE02, 0xBADC_0DE3, 0x1234_5678_9ABC] {
        run(seed);
    }
}
