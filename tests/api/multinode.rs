//! Several stateless nodes on one PostgreSQL: concurrent writers and pollers on different nodes.
//! Every poller must end with every acknowledged object exactly once, tokens minted by one node
//! work on another, and no partner sees anything outside its grants. Needs CONCORDIA_TEST_PG;
//! in CI (CI=true) its absence is a failure, not a skip.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::*;

fn need_pg() -> bool {
    if test_pg().is_some() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "CI must run the multi-node test: set CONCORDIA_TEST_PG");
    eprintln!("multinode: CONCORDIA_TEST_PG not set; run .ci/run for the PostgreSQL tests");
    false
}

fn post(base: &str, auth: &str, body: &[u8]) -> u16 {
    ureq::post(&format!("{base}{}", objects_path(SHARED)))
        .set("Authorization", auth)
        .set("Accept", TAXII)
        .set("Content-Type", TAXII)
        .send_bytes(body)
        .map(|r| r.status())
        .unwrap_or_else(|e| panic!("post: {e}"))
}

/// Polls one node with `added_after` + `next` (limit 13) until it has caught up; returns the new
/// resume point.
fn poll(node: &TestServer, who: &Auth, after: &Option<String>, seen: &mut Vec<String>) -> Option<String> {
    let mut next: Option<String> = None;
    let mut last = after.clone();
    loop {
        let mut url = format!("{}?limit=13", objects_path(SHARED));
        if let Some(a) = after {
            url.push_str(&format!("&added_after={a}"));
        }
        if let Some(n) = &next {
            url.push_str(&format!("&next={}", urlencode(n)));
        }
        let r = node.get(&url, who);
        r.expect(200);
        if let Some(l) = r.header("x-taxii-date-added-last") {
            last = Some(l.to_owned());
        }
        let page = r.json();
        for o in page["objects"].as_array().into_iter().flatten() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => return last,
        }
    }
}

#[test]
fn three_nodes_on_one_postgres_never_lose_or_repeat_objects() {
    if !need_pg() {
        return;
    }
    let a = base_server();
    let b = a.another_node();
    let c = a.another_node();
    let nodes = [&a, &b, &c];
    let basic = "Basic YWxpY2U6cHctYWxpY2Utc2VjcmV0"; // alice:pw-alice-secret
    let (writers, envelopes, per) = (4usize, 12usize, 9usize);
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let acked: Vec<String> = std::thread::scope(|scope| {
        let finished = &finished;
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let base = nodes[w % 3].base.clone();
                scope.spawn(move || {
                    let mut ids = Vec::new();
                    for _ in 0..envelopes {
                        let objs: Vec<Value> = (0..per).map(|_| malware(&new_id("malware"))).collect();
                        let body = serde_json::to_vec(&json!({ "objects": objs })).unwrap();
                        assert_eq!(post(&base, basic, &body), 202);
                        ids.extend(objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
                    }
                    finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    ids
                })
            })
            .collect();
        // Three pollers, one per node, polling while the writers write.
        let pollers: Vec<_> = nodes
            .iter()
            .map(|node| {
                scope.spawn(move || {
                    let mut seen = Vec::new();
                    let mut after = None;
                    loop {
                        let done = finished.load(std::sync::atomic::Ordering::SeqCst) == writers;
                        after = poll(node, &as_("bob"), &after, &mut seen);
                        if done {
                            // One more poll after every writer had finished.
                            poll(node, &as_("bob"), &after, &mut seen);
                            return seen;
                        }
                    }
                })
            })
            .collect();
        let seen_by: Vec<Vec<String>> = pollers.into_iter().map(|p| p.join().unwrap()).collect();
        let acked: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let mut want = acked.clone();
        want.sort();
        for (i, seen) in seen_by.iter().enumerate() {
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), seen.len(), "poller on node {i} saw an object twice");
            let mut got = seen.clone();
            got.sort();
            assert_eq!(got, want, "poller on node {i} missed objects");
        }
        acked
    });
    assert_eq!(acked.len(), writers * envelopes * per);
    eprintln!("multinode: {} objects acknowledged, each seen exactly once by 3 pollers on 3 nodes", acked.len());

    // The same objects posted to three nodes at once: all accepted, each stored once, one latest.
    let same: Vec<Value> = (0..20).map(|_| malware(&new_id("malware"))).collect();
    let body = serde_json::to_vec(&json!({ "objects": same })).unwrap();
    std::thread::scope(|scope| {
        for n in nodes {
            let (base, body) = (n.base.clone(), &body);
            scope.spawn(move || assert_eq!(post(&base, basic, body), 202));
        }
    });
    let ids: Vec<&str> = same.iter().map(|o| o["id"].as_str().unwrap()).collect();
    let m = a
        .get(&format!("/r/collections/{SHARED}/manifest/?match[version]=all&match[id]={}", ids.join(",")), &as_("bob"));
    assert_eq!(m.json()["objects"].as_array().unwrap().len(), 20, "stored once each");

    // A next token minted by one node works on another; statuses are readable on every node.
    let page = a.get(&format!("{}?limit=5", objects_path(SHARED)), &as_("bob")).json();
    let next = page["next"].as_str().unwrap();
    b.get(&format!("{}?limit=5&next={}", objects_path(SHARED), urlencode(next)), &as_("bob")).expect(200);
    let st = a.add("r", SHARED, &as_("alice"), &[malware(&new_id("malware"))]);
    c.get(&format!("/r/status/{}/", st["id"].as_str().unwrap()), &as_("alice")).expect(200);
    // Isolation holds on every node; policy and credential changes reach every node.
    for n in nodes {
        n.get(&objects_path(SHARED), &as_("dave")).expect(404);
        n.get(&objects_path(PRIVATE), &as_("bob")).expect(404);
    }
    let key = a.add_api_key("bob");
    for n in nodes {
        assert!(wait_until(|| n.get("/r/collections/", &Auth::Bearer(key.clone())).status == 200));
    }
}
