//! Add Objects: per-object failures, duplicates, malformed and oversized bodies, atomicity.

use serde_json::{json, Value};

use crate::helpers::*;

#[test]
fn t153_t159_each_object_succeeds_or_fails_on_its_own() {
    let s = base_server();
    let good = new_id("indicator");
    let dup = new_id("malware");
    s.add("r", SHARED, &as_("alice"), &[malware(&dup)]);
    let body = json!({"objects": [
        indicator(&good, "2020-01-01T00:00:00.000Z"),
        {"type": "indicator", "spec_version": "2.1"},
        {"type": "indicator", "id": "indicator--not-a-uuid"},
        {"type": "malware", "id": new_id("indicator")},
        malware(&dup),
        [1, 2, 3],
        {"type": "indicator", "id": new_id("indicator"), "modified": "last tuesday"},
    ]});
    let r = s.post(&objects_path(SHARED), &as_("alice"), &body);
    r.expect(202);
    let st = r.json();
    assert_eq!(st["status"], "complete");
    assert_eq!(st["total_count"], 7);
    assert_eq!(st["success_count"], 2, "{st}");
    assert_eq!(st["failure_count"], 5, "{st}");
    assert_eq!(st["pending_count"], 0);
    assert_eq!(st["successes"].as_array().unwrap().len(), 2);
    assert_eq!(st["failures"].as_array().unwrap().len(), 5);
    assert!(st.get("pendings").is_none(), "empty lists are omitted (T-067)");
    let messages: Vec<&str> =
        st["failures"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.contains("no 'id'")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("'modified'")), "{messages:?}");
    // The duplicate is a success and is stored once (T-153).
    let m =
        s.get(&format!("/r/collections/{SHARED}/manifest/?match[version]=all&match[id]={dup}"), &as_("alice")).json();
    assert_eq!(m["objects"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.get(&format!("{}{good}/", objects_path(SHARED)), &as_("bob")).json()["objects"][0]["id"],
        good.as_str()
    );
}

#[test]
fn objects_without_timestamps_are_versioned_by_the_server() {
    let s = base_server();
    let ip = json!({"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--ff26c055-6336-5bc5-b98d-13d6226742dd", "value": "198.51.100.3"});
    let st = s.add("r", SHARED, &as_("alice"), std::slice::from_ref(&ip));
    let version = st["successes"][0]["version"].as_str().unwrap().to_owned();
    assert_eq!(version.len(), 27, "a TAXII timestamp: {version}");
    let again = s.add("r", SHARED, &as_("alice"), std::slice::from_ref(&ip));
    assert_eq!(again["successes"][0]["version"], version.as_str(), "re-posting is a duplicate with the same version");
    let v = s.get(&format!("{}{}/versions/", objects_path(SHARED), ip["id"].as_str().unwrap()), &as_("bob")).json();
    assert_eq!(v["versions"], json!([version]));
}

#[test]
fn t157_bodies_that_are_not_envelopes() {
    let s = base_server();
    let p = objects_path(SHARED);
    let send = |body: &[u8]| s.request("POST", &p, &as_("alice"), &[("Content-Type", TAXII)], Some(body));
    send(b"{\"objects\": [").expect(400); // truncated JSON
    send(b"not json").expect(400);
    send(b"{\"objects\": [{\"id\": \"\xff\xfe\"}]}").expect(400); // invalid UTF-8
                                                                  // Deep nesting inside an object: that object fails on its own, the server stays up.
    let deep = format!("{{\"objects\":[{{\"x\":{}{}}}]}}", "[".repeat(5000), "]".repeat(5000));
    let r = send(deep.as_bytes());
    r.expect(202);
    assert_eq!(r.json()["failure_count"], 1);
    assert!(r.text().contains("deeper than"), "{}", r.text());
    send(b"[]").expect(422);
    send(b"{}").expect(422);
    send(b"{\"objects\": []}").expect(422);
    send(b"{\"objects\": 5}").expect(422);
    send(b"").expect(400);
    assert_eq!(s.get(&p, &as_("alice")).text(), "{}", "nothing was stored");
}

#[test]
fn bundles_are_accepted_like_envelopes() {
    let s = base_server();
    let id = new_id("malware");
    let bundle = json!({"type": "bundle", "id": new_id("bundle"), "objects": [malware(&id)]});
    let r = s.post(&objects_path(SHARED), &as_("alice"), &bundle);
    r.expect(202);
    assert_eq!(r.json()["success_count"], 1);
}

#[test]
fn t155_bodies_over_max_content_length_are_413() {
    let s = base_server(); // max_content_length = 100000
    let p = objects_path(SHARED);
    let mut objs = Vec::new();
    while serde_json::to_vec(&json!({"objects": objs})).unwrap().len() < 100_000 {
        objs.push(indicator(&new_id("indicator"), "2020-01-01T00:00:00.000Z"));
    }
    let big = serde_json::to_vec(&json!({"objects": objs})).unwrap();
    let r = s.request("POST", &p, &as_("alice"), &[("Content-Type", TAXII)], Some(&big));
    r.expect(413);
    assert!(r.json()["description"].as_str().unwrap().contains("100000"));
    // Exactly at the limit is accepted (T-095): pad with spaces.
    objs.pop();
    let mut fit = serde_json::to_vec(&json!({"objects": objs})).unwrap();
    fit.resize(100_000, b' ');
    s.request("POST", &p, &as_("alice"), &[("Content-Type", TAXII)], Some(&fit)).expect(202);
    // Far over the limit: refused as soon as the limit is passed; the rest is discarded unread.
    let huge = vec![b' '; 20 * 1024 * 1024];
    let r = s.request("POST", &p, &as_("alice"), &[("Content-Type", TAXII)], Some(&huge));
    assert_eq!(r.status, 413);
}

#[test]
fn t152_write_rights_are_enforced() {
    let s = base_server();
    let body = json!({"objects": [malware(&new_id("malware"))]});
    s.post(&objects_path(SHARED), &as_("bob"), &body).expect(403); // read-only
    s.post(&objects_path(SHARED), &as_("dave"), &body).expect(404); // no access
                                                                    // carol can write and read her status, but not read objects.
    let r = s.post(&objects_path(SHARED), &as_("carol"), &body);
    r.expect(202);
    let sid = r.json()["id"].as_str().unwrap().to_owned();
    s.get(&format!("/r/status/{sid}/"), &as_("carol")).expect(200);
    s.get(&objects_path(SHARED), &as_("carol")).expect(403);
    s.get(&format!("/r/collections/{SHARED}/manifest/"), &as_("carol")).expect(403);
    s.get(&format!("/r/status/{sid}/"), &as_("alice")).expect(404);
    // A write-only partner learns nothing from duplicates: they look like new objects.
    let dup = r.json()["successes"][0].clone();
    let again = s.post(&objects_path(SHARED), &as_("carol"), &body);
    again.expect(202);
    assert_eq!(again.json()["successes"][0], dup, "same answer as the first time");
    assert!(again.json()["successes"][0].get("message").is_none());
    let as_reader = s.post(&objects_path(SHARED), &as_("alice"), &body).json();
    assert!(as_reader["successes"][0]["message"].as_str().unwrap().contains("already"));
}

#[test]
fn every_version_records_who_added_it() {
    let s = base_server();
    let id = new_id("malware");
    s.add("r", SHARED, &as_("carol"), &[malware(&id)]);
    // Read the database directly: the object row names carol's partner id.
    let who = sql_text(
        &s.db_url(),
        &format!("(select p.name from objects o join partners p on p.id = o.added_by where o.stix_id = '{id}')"),
    );
    assert_eq!(who, "carol");
}

#[test]
fn concurrent_envelopes_are_all_stored() {
    let s = base_server();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let base = s.base.clone();
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for _ in 0..10 {
                    let objs: Vec<Value> = (0..20).map(|_| malware(&new_id("malware"))).collect();
                    ids.extend(objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
                    let body = serde_json::to_vec(&json!({"objects": objs})).unwrap();
                    let r = ureq::post(&format!("{base}{}", objects_path(SHARED)))
                        .set("Authorization", &format!("Basic {}", base64_basic("alice", "pw-alice-secret")))
                        .set("Accept", TAXII)
                        .set("Content-Type", TAXII)
                        .send_bytes(&body)
                        .unwrap_or_else(|e| panic!("thread {t}: {e}"));
                    assert_eq!(r.status(), 202);
                }
                ids
            })
        })
        .collect();
    let mut all: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.sort();
    let mut got: Vec<String> = s
        .read_all(&objects_path(SHARED), &as_("bob"), 37)
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, all);
}

fn base64_basic(u: &str, p: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
}
