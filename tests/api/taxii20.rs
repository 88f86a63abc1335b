//! The read-only TAXII 2.0 view (`/taxii20/`): discovery and collections limited to what the
//! policy opens to 2.0, objects as STIX 2.0 bundles paged with `Range` / `Content-Range`, every
//! object exactly once, writes refused, the 2.1 URLs unchanged.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::*;

const STIX20: &str = "application/vnd.oasis.stix+json; version=2.0";
const TAXII20: &str = "application/vnd.oasis.taxii+json; version=2.0";

fn policy() -> String {
    BASE_POLICY.replace(
        "[collections.sharing]\nspec_versions = [\"2.1\", \"2.0\"]",
        "taxii20 = true\n\n[collections.sharing]\nspec_versions = [\"2.1\", \"2.0\"]",
    )
}

/// Checks a status (the 2.1 helper's `expect` also checks the 2.1 media type).
fn status(r: &Resp, want: u16) {
    assert_eq!(r.status, want, "{}", r.text());
}

fn get20(s: &TestServer, path: &str, who: &str, accept: &str, range: Option<&str>) -> Resp {
    let mut headers = vec![("Accept", accept)];
    if let Some(r) = range {
        headers.push(("Range", r));
    }
    s.request("GET", path, &as_(who), &headers, None)
}

#[test]
fn the_taxii20_view_pages_every_object_once_with_ranges() {
    let p = policy();
    assert_ne!(p, BASE_POLICY);
    let s = TestServer::start(&p);
    for who in ["alice", "bob", "dave"] {
        s.add_password(who, &format!("pw-{who}-secret"));
    }
    // 25 indicators (two versions of one), a malware without labels (left out: 2.0 requires
    // them), a grouping (no such type in 2.0), and a private object.
    let mut ids: Vec<String> = Vec::new();
    let mut objs: Vec<Value> = Vec::new();
    for _ in 0..25 {
        let id = new_id("indicator");
        let mut v = indicator(&id, "2021-01-01T00:00:00.000Z");
        v["indicator_types"] = json!(["malicious-activity"]);
        objs.push(v);
        ids.push(id);
    }
    let mut newer = indicator(&ids[0], "2021-06-01T00:00:00.000Z");
    newer["indicator_types"] = json!(["malicious-activity"]);
    let grouping = json!({"type": "grouping", "spec_version": "2.1", "id": new_id("grouping"), "created": "2021-01-01T00:00:00.000Z",
        "modified": "2021-01-01T00:00:00.000Z", "context": "suspicious-activity", "object_refs": [ids[1].clone()]});
    s.add("r", SHARED, &as_("alice"), &objs);
    s.add("r", SHARED, &as_("alice"), &[newer, malware(&new_id("malware")), grouping]);
    s.add("r", PRIVATE, &as_("alice"), &[indicator(&new_id("indicator"), "2021-01-01T00:00:00.000Z")]);

    // Discovery and collections: only what is open to 2.0, with 2.0 media types.
    let d = get20(&s, "/taxii20/", "bob", TAXII20, None);
    status(&d, 200);
    assert_eq!(d.header("content-type"), Some(TAXII20));
    assert!(d.json()["api_roots"][0].as_str().unwrap().ends_with("/taxii20/r/"), "{}", d.text());
    let cols = get20(&s, "/taxii20/r/collections/", "alice", TAXII20, None).json();
    let listed: Vec<&str> = cols["collections"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(listed, vec![SHARED], "the collection not opened to 2.0 is not listed");
    assert_eq!(cols["collections"][0]["can_write"], false);
    assert_eq!(cols["collections"][0]["media_types"], json!([STIX20]));
    status(&get20(&s, &format!("/taxii20/r/collections/{PRIVATE}/objects/"), "alice", STIX20, None), 404);
    status(&get20(&s, "/taxii20/r/", "dave", TAXII20, None), 404);
    let api_root = get20(&s, "/taxii20/r/", "bob", TAXII20, None).json();
    assert_eq!(api_root["versions"], json!(["taxii-2.0"]));

    // Paging with Range: 10 at a time; every object once, as STIX 2.0. The range counts the
    // 26 latest versions of 2.0 types (the malware among them, which cannot be served).
    let url = format!("/taxii20/r/collections/{SHARED}/objects/");
    let mut seen: Vec<String> = Vec::new();
    let mut start = 0;
    loop {
        let r = get20(&s, &url, "bob", STIX20, Some(&format!("items={start}-{}", start + 9)));
        if r.status == 416 {
            assert_eq!(r.header("content-range"), Some("items */26"));
            break;
        }
        assert_eq!(r.status, 206, "{}", r.text());
        assert_eq!(r.header("content-type"), Some(STIX20));
        let cr = r.header("content-range").unwrap().to_owned();
        let bundle = r.json();
        assert_eq!(bundle["type"], "bundle");
        assert_eq!(bundle["spec_version"], "2.0");
        for o in bundle["objects"].as_array().cloned().unwrap_or_default() {
            assert!(o.get("spec_version").is_none() && o.get("pattern_type").is_none(), "{o}");
            assert_eq!(o["labels"], json!(["malicious-activity"]));
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        assert!(cr.starts_with(&format!("items {start}-")) && cr.ends_with("/26"), "{cr}");
        start += 10;
    }
    assert_eq!(seen.len(), 25, "each indicator once; the malware and the grouping left out");
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 25);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), ids.iter().cloned().collect::<BTreeSet<_>>());
    // A range that does not continue the last one (counted from the start) gives the same items.
    let again = get20(&s, &url, "bob", STIX20, Some("items=20-24")).json();
    let again: Vec<&str> = again["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(again, seen[20..25].iter().map(String::as_str).collect::<Vec<_>>());
    // Without Range: the first page, whole (200), with its Content-Range.
    let all = get20(&s, &url, "bob", STIX20, None);
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-range"), Some("items 0-25/26"));

    // One object: the latest version; the manifest lists its versions.
    let one = get20(&s, &format!("{url}{}/", ids[0]), "bob", STIX20, None).json();
    assert_eq!(one["objects"][0]["modified"], "2021-06-01T00:00:00.000Z");
    let man =
        get20(&s, &format!("/taxii20/r/collections/{SHARED}/manifest/"), "bob", TAXII20, Some("items=0-99")).json();
    let entry = man["objects"].as_array().unwrap().iter().find(|e| e["id"] == ids[0].as_str()).unwrap();
    assert_eq!(entry["versions"], json!(["2021-01-01T00:00:00.000Z", "2021-06-01T00:00:00.000Z"]));
    assert_eq!(entry["media_types"], json!([STIX20]));
    status(&get20(&s, &format!("{url}{}/", new_id("indicator")), "bob", STIX20, None), 404);

    // Writes stay TAXII 2.1; 2.1 media types are not served here, nor 2.0 on the 2.1 URLs.
    let w = s.request("POST", &url, &as_("alice"), &[("Content-Type", STIX20), ("Accept", TAXII20)], Some(b"{}"));
    assert_eq!(w.status, 403, "{}", w.text());
    assert_eq!(w.header("content-type"), Some(TAXII20));
    assert!(w.text().contains("TAXII 2.1"));
    status(&get20(&s, &url, "bob", "application/taxii+json;version=2.1", None), 406);
    status(&get20(&s, &objects_path(SHARED), "bob", STIX20, None), 406);
    // Malformed ranges are a 400, as a TAXII 2.0 error.
    let bad = get20(&s, &url, "bob", STIX20, Some("items=9-3"));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("content-type"), Some(TAXII20));
}
