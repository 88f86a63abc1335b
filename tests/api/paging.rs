//! Pagination: `more`/`next`, the date-added headers, `added_after` polling, concurrent
//! writers, forged and replayed tokens, tokens across restarts.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::*;

fn add_n(s: &TestServer, n: usize) -> Vec<String> {
    let objs: Vec<Value> = (0..n).map(|_| malware(&new_id("malware"))).collect();
    s.add("r", SHARED, &as_("alice"), &objs);
    objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn t232_pages_walk_the_collection_in_date_added_order() {
    let s = base_server();
    let ids = add_n(&s, 25);
    let mut seen = Vec::new();
    let mut url = format!("{}?limit=10", objects_path(SHARED));
    let mut last_header: Option<String> = None;
    loop {
        let r = s.get(&url, &as_("bob"));
        r.expect(200);
        let page = r.json();
        let objs = page["objects"].as_array().unwrap();
        let first = r.header("x-taxii-date-added-first").unwrap().to_owned();
        let last = r.header("x-taxii-date-added-last").unwrap().to_owned();
        if let Some(prev) = &last_header {
            assert!(first > *prev, "pages are in date_added order (T-230)");
        }
        // Headers equal the first and last date_added of the page (T-236), cross-checked via the manifest.
        let m = s
            .get(
                &format!("/r/collections/{SHARED}/manifest/?match[id]={}", objs[0]["id"].as_str().unwrap()),
                &as_("bob"),
            )
            .json();
        assert_eq!(m["objects"][0]["date_added"], first.as_str());
        seen.extend(objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        last_header = Some(last);
        if page["more"] == true {
            let next = page["next"].as_str().expect("more:true always comes with next");
            url = format!("{}?limit=10&next={}", objects_path(SHARED), urlencode(next));
        } else {
            assert!(page.get("next").is_none());
            break;
        }
    }
    assert_eq!(seen, ids, "every object exactly once, in the order added");
}

#[test]
fn t234_polling_with_added_after_from_the_last_header_never_skips() {
    let s = base_server();
    let ids = add_n(&s, 30);
    // A client that ignores next and resumes from X-TAXII-Date-Added-Last (T-234).
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            None => format!("{}?limit=7", objects_path(SHARED)),
            Some(t) => format!("{}?limit=7&added_after={t}", objects_path(SHARED)),
        };
        let r = s.get(&url, &as_("bob"));
        let page = r.json();
        let Some(objs) = page["objects"].as_array() else { break };
        seen.extend(objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        after = Some(r.header("x-taxii-date-added-last").unwrap().to_owned());
    }
    assert_eq!(seen, ids);
}

#[test]
fn t028_forged_edited_and_replayed_tokens_are_400() {
    let s = base_server();
    add_n(&s, 5);
    s.add("r", PRIVATE, &as_("alice"), &[malware(&new_id("malware")), malware(&new_id("malware"))]);
    let page = s.get(&format!("{}?limit=2", objects_path(SHARED)), &as_("alice")).json();
    let next = page["next"].as_str().unwrap().to_owned();
    // Valid with or without repeating the filters.
    s.get(&format!("{}?limit=2&next={}", objects_path(SHARED), urlencode(&next)), &as_("alice")).expect(200);
    // Edited: flip one character of the payload.
    let mut edited: Vec<char> = next.chars().collect();
    edited[5] = if edited[5] == 'A' { 'B' } else { 'A' };
    let edited: String = edited.into_iter().collect();
    for (path, who, token) in [
        (objects_path(SHARED), "alice", edited.as_str()),
        (objects_path(SHARED), "alice", "not-a-token"),
        (objects_path(PRIVATE), "alice", next.as_str()), // another collection
        (objects_path(SHARED), "bob", next.as_str()),    // another partner
        (format!("/r/collections/{SHARED}/manifest/"), "alice", next.as_str()), // another endpoint
        (format!("{}?match[type]=indicator", objects_path(SHARED)), "alice", next.as_str()), // other filters
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = s.get(&format!("{path}{sep}next={}", urlencode(token)), &as_(who));
        r.expect(400);
    }
}

#[test]
fn next_tokens_survive_a_restart() {
    let mut s = base_server();
    let ids = add_n(&s, 6);
    let page = s.get(&format!("{}?limit=4", objects_path(SHARED)), &as_("bob")).json();
    let next = page["next"].as_str().unwrap().to_owned();
    s.restart();
    let rest = s.get(&format!("{}?limit=4&next={}", objects_path(SHARED), urlencode(&next)), &as_("bob"));
    rest.expect(200);
    let page = rest.json();
    let got: Vec<&str> = page["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids[4..].iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn manifest_and_versions_page_with_next_too() {
    let s = base_server();
    add_n(&s, 5);
    let m = s.read_all(&format!("/r/collections/{SHARED}/manifest/"), &as_("bob"), 2);
    assert_eq!(m.len(), 5);
    let id = new_id("indicator");
    for month in 1..=5 {
        s.add("r", SHARED, &as_("alice"), &[indicator(&id, &format!("2020-0{month}-01T00:00:00.000Z"))]);
    }
    let p = format!("{}{id}/versions/?limit=2", objects_path(SHARED));
    let first = s.get(&p, &as_("bob")).json();
    assert_eq!(first["versions"].as_array().unwrap().len(), 2);
    assert_eq!(first["more"], true);
    let second = s.get(&format!("{p}&next={}", urlencode(first["next"].as_str().unwrap())), &as_("bob")).json();
    assert_eq!(second["versions"], json!(["2020-03-01T00:00:00.000Z", "2020-04-01T00:00:00.000Z"]));
}

/// Writers add objects while a poller pages with small limits; afterwards the poller has every
/// acknowledged object exactly once (design note 1).
#[test]
fn paging_under_concurrent_writers_never_skips_or_repeats() {
    let s = base_server();
    let base = s.base.clone();
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for _ in 0..15 {
                    let objs: Vec<Value> = (0..7).map(|_| malware(&new_id("malware"))).collect();
                    let body = serde_json::to_vec(&json!({"objects": objs})).unwrap();
                    let r = ureq::post(&format!("{base}{}", objects_path(SHARED)))
                        .set("Authorization", "Basic YWxpY2U6cHctYWxpY2Utc2VjcmV0")
                        .set("Accept", TAXII)
                        .set("Content-Type", TAXII)
                        .send_bytes(&body)
                        .unwrap();
                    assert_eq!(r.status(), 202);
                    acked.extend(objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
                }
                acked
            })
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut done = false;
    let poll = |after: &Option<String>, seen: &mut Vec<String>| -> Option<String> {
        let mut next: Option<String> = None;
        let mut last = after.clone();
        loop {
            let mut url = format!("{}?limit=5", objects_path(SHARED));
            if let Some(a) = after {
                url.push_str(&format!("&added_after={a}"));
            }
            if let Some(n) = &next {
                url.push_str(&format!("&next={}", urlencode(n)));
            }
            let r = s.get(&url, &as_("bob"));
            r.expect(200);
            if let Some(l) = r.header("x-taxii-date-added-last") {
                last = Some(l.to_owned());
            }
            let page = r.json();
            if let Some(objs) = page["objects"].as_array() {
                seen.extend(objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()));
            }
            match page["next"].as_str() {
                Some(n) => next = Some(n.to_owned()),
                None => return last,
            }
        }
    };
    let mut handles = Some(writers);
    let mut acked: Vec<String> = Vec::new();
    while !done {
        after = poll(&after, &mut seen);
        if handles.as_ref().is_some_and(|h| h.iter().all(|w| w.is_finished())) {
            for h in handles.take().unwrap() {
                acked.extend(h.join().unwrap());
            }
            // One more poll after every writer finished.
            after = poll(&after, &mut seen);
            done = true;
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no object seen twice");
    let mut a = acked.clone();
    a.sort();
    let mut b = seen.clone();
    b.sort();
    assert_eq!(a.len(), 3 * 15 * 7);
    assert_eq!(b, a, "every acknowledged object seen exactly once");
}
