//! Filters on every endpoint that allows them (T-200..T-220) and their malformed values.

use serde_json::{json, Value};

use crate::helpers::*;

fn ids(v: &Value) -> Vec<String> {
    v["objects"]
        .as_array()
        .map(|a| a.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn versions_of(v: &Value) -> Vec<String> {
    v["objects"]
        .as_array()
        .map(|a| a.iter().map(|o| o["modified"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn t212_t213_match_id_and_type() {
    let s = base_server();
    let (i1, i2, m1) = (new_id("indicator"), new_id("indicator"), new_id("malware"));
    s.add(
        "r",
        SHARED,
        &as_("alice"),
        &[indicator(&i1, "2020-01-01T00:00:00.000Z"), indicator(&i2, "2020-01-01T00:00:00.000Z"), malware(&m1)],
    );
    let p = objects_path(SHARED);
    let r = s.get(&format!("{p}?match[type]=malware"), &as_("bob")).json();
    assert_eq!(ids(&r), vec![m1.clone()]);
    let r = s.get(&format!("{p}?match[type]=malware,indicator"), &as_("bob")).json();
    assert_eq!(ids(&r).len(), 3);
    let r = s.get(&format!("{p}?match[id]={i2},{m1}"), &as_("bob")).json();
    assert_eq!(ids(&r), vec![i2.clone(), m1.clone()]);
    let r = s.get(&format!("{p}?match[id]={i2}&match[type]=malware"), &as_("bob"));
    assert_eq!(r.text(), "{}", "different fields are ANDed (T-209)");
    // A STIX type with no objects is an empty result, never an error (T-213).
    assert_eq!(s.get(&format!("{p}?match[type]=campaign"), &as_("bob")).text(), "{}");
    let m = s.get(&format!("/r/collections/{SHARED}/manifest/?match[type]=indicator"), &as_("bob")).json();
    assert_eq!(m["objects"].as_array().unwrap().len(), 2, "manifest filters on the objects (T-133)");
}

#[test]
fn t214_t215_match_version() {
    let s = base_server();
    let id = new_id("indicator");
    let vs = ["2020-01-01T00:00:00.000Z", "2020-02-01T00:00:00.000Z", "2020-03-01T00:00:00.000Z"];
    // Add out of order: the middle version last.
    for v in [vs[0], vs[2], vs[1]] {
        s.add("r", SHARED, &as_("alice"), &[indicator(&id, v)]);
    }
    let p = format!("{}{id}/", objects_path(SHARED));
    let get = |q: &str| versions_of(&s.get(&format!("{p}?{q}"), &as_("bob")).json());
    assert_eq!(get(""), vec![vs[2]], "default: last (T-214)");
    assert_eq!(get("match[version]=last"), vec![vs[2]]);
    assert_eq!(get("match[version]=first"), vec![vs[0]]);
    assert_eq!(get("match[version]=all"), vec![vs[0], vs[2], vs[1]], "date_added order");
    assert_eq!(get("match[version]=first,last"), vec![vs[0], vs[2]]);
    // Explicit versions compare as instants: 2020-02-01T00:00:00Z names the .000Z version (T-262).
    assert_eq!(get("match[version]=2020-02-01T00:00:00Z"), vec![vs[1]]);
    assert_eq!(get("match[version]=first,2020-02-01T00:00:00.000Z"), vec![vs[0], vs[1]]);
    // No such version of this object: 404 on Get an Object (T-183), empty on the collection.
    s.get(&format!("{p}?match[version]=1999-01-01T00:00:00Z"), &as_("bob")).expect(404);
    let none = s.get(&format!("{}?match[version]=1999-01-01T00:00:00Z", objects_path(SHARED)), &as_("bob"));
    assert_eq!(none.text(), "{}");
    let m = s.get(&format!("/r/collections/{SHARED}/manifest/?match[version]=all"), &as_("bob")).json();
    assert_eq!(m["objects"].as_array().unwrap().len(), 3);
}

#[test]
fn t218_t219_spec_version() {
    let s = base_server();
    let id = new_id("indicator");
    // A STIX 2.0 version (no spec_version, has created/modified) and a 2.1 version of one id.
    let mut v20 = indicator(&id, "2020-05-01T00:00:00.000Z");
    v20.as_object_mut().unwrap().remove("spec_version");
    let v21 = indicator(&id, "2020-01-01T00:00:00.000Z");
    s.add("r", SHARED, &as_("alice"), &[v20.clone(), v21.clone()]);
    let p = objects_path(SHARED);
    let get = |q: &str| s.get(&format!("{p}?{q}"), &as_("bob")).json()["objects"].clone();
    assert_eq!(get(""), json!([v21]), "default: latest spec version per object (T-219)");
    assert_eq!(get("match[spec_version]=2.0"), json!([v20]), "T-218");
    assert_eq!(get("match[spec_version]=2.1"), json!([v21]));
    // Over several spec versions, "last" is the newest version of the object (T-214).
    assert_eq!(get("match[spec_version]=2.0,2.1"), json!([v20]));
    assert_eq!(get("match[spec_version]=2.0,2.1&match[version]=first"), json!([v21]));
    assert_eq!(get("match[spec_version]=2.1,2.0&match[version]=all").as_array().unwrap().len(), 2);
    // An explicit version matches whatever spec version it was stored under.
    assert_eq!(get("match[version]=2020-05-01T00:00:00.000Z"), json!([v20]));
    let m = s.get(&format!("/r/collections/{SHARED}/manifest/?match[spec_version]=2.0"), &as_("bob")).json();
    assert_eq!(m["objects"][0]["media_type"], "application/stix+json;version=2.0");
}

#[test]
fn t202_added_after_is_strict_and_accepts_client_formats() {
    let s = base_server();
    let (a, b) = (new_id("malware"), new_id("malware"));
    s.add("r", SHARED, &as_("alice"), &[malware(&a)]);
    let first = s.get(&objects_path(SHARED), &as_("bob"));
    let t = first.header("x-taxii-date-added-last").unwrap().to_owned();
    s.add("r", SHARED, &as_("alice"), &[malware(&b)]);
    let after = s.get(&format!("{}?added_after={t}", objects_path(SHARED)), &as_("bob")).json();
    assert_eq!(ids(&after), vec![b.clone()], "strictly later (T-202)");
    // taxii2-client strips trailing zeros; offsets are accepted too.
    for variant in ["2000-01-01T00:00:00Z", "2000-01-01T00:00:00.1Z", "2000-01-01T02:00:00+02:00"] {
        let r = s.get(&format!("{}?added_after={}", objects_path(SHARED), urlencode(variant)), &as_("bob"));
        r.expect(200);
        assert_eq!(ids(&r.json()).len(), 2, "{variant}");
    }
}

#[test]
fn t200_malformed_parameters_are_400_with_a_reason() {
    let s = base_server();
    let p = objects_path(SHARED);
    for q in [
        "limit=0",
        "limit=-5",
        "limit=ten",
        "limit=1&limit=2",
        "added_after=yesterday",
        "added_after=2020-01-01",
        "added_after=2020-01-01T00:00:00Z&added_after=2020-01-02T00:00:00Z",
        "match[type]=indicator&match[type]=malware",
        "match[type]=",
        "match[version]=all,first",
        "match[version]=last,last",
        "match[version]=2020-13-01T00:00:00Z",
        "match[spec_version]=latest",
        "added_after=9999-12-31T23:59:59-00:01",
        "next=forged",
    ] {
        for path in [p.clone(), format!("/r/collections/{SHARED}/manifest/")] {
            let r = s.get(&format!("{path}?{q}"), &as_("alice"));
            r.expect(400);
            assert!(r.json()["description"].as_str().unwrap().len() > 10, "{q}: {}", r.text());
        }
    }
    // Unknown parameters are ignored; unknown match fields are refused (T-211 allows either:
    // a consumer whose filter was silently ignored would load the whole collection).
    s.get(&format!("{p}?foo=bar"), &as_("alice")).expect(200);
    s.get(&format!("{p}?match[color]=red"), &as_("alice")).expect(400);
}

#[test]
fn t207_limit_above_the_maximum_is_clamped() {
    let s = TestServer::start_with(BASE_POLICY, &[("CONCORDIA_MAX_PAGE_SIZE", "3")]);
    s.add_password("alice", "pw-alice-secret");
    let objs: Vec<Value> = (0..5).map(|_| malware(&new_id("malware"))).collect();
    s.add("r", SHARED, &as_("alice"), &objs);
    for q in ["", "?limit=1000", "?limit=999999999999999999999999999"] {
        let r = s.get(&format!("{}{q}", objects_path(SHARED)), &as_("alice"));
        r.expect(200);
        let page = r.json();
        assert_eq!(page["objects"].as_array().unwrap().len(), 3, "{q}");
        assert_eq!(page["more"], true);
    }
    assert_eq!(s.read_all(&objects_path(SHARED), &as_("alice"), 1000).len(), 5);
}
