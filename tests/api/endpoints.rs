//! Every endpoint and its resource shape, errors as TAXII error resources, trailing slashes.

use serde_json::{json, Value};

use crate::helpers::*;

#[test]
fn t080_discovery_lists_only_roots_with_visible_collections() {
    let s = base_server();
    let d = s.get("/taxii2/", &as_("alice"));
    d.expect(200);
    let d = d.json();
    assert_eq!(d["title"], "test");
    // Absolute URLs, as in every example of §4.1 (some clients use them as they are).
    assert_eq!(d["api_roots"], json!([format!("{}/r/", s.base)]), "T-083");
    // dave has no collection anywhere: no api_roots key at all (T-067, T-084).
    let d = s.get("/taxii2/", &as_("dave"));
    d.expect(200);
    assert!(d.json().get("api_roots").is_none(), "{}", d.text());
}

/// With `public_url` (e.g. behind a TLS proxy), discovery names the URL partners use, path
/// prefix included, for `default` and every API root (T-082, T-083).
#[test]
fn t083_discovery_urls_are_built_from_public_url() {
    let policy = BASE_POLICY.replace("title = \"test\"", "title = \"test\"\ndefault = \"r\"");
    let s = TestServer::start_with(&policy, &[("CONCORDIA_PUBLIC_URL", "https://taxii.example.org/hub/")]);
    s.add_password("alice", "pw-alice-secret");
    let d = s.get("/taxii2/", &as_("alice"));
    d.expect(200);
    let d = d.json();
    assert_eq!(d["api_roots"], json!(["https://taxii.example.org/hub/r/"]));
    assert_eq!(d["default"], "https://taxii.example.org/hub/r/");
}

/// Behind a TLS proxy without `public_url`, the URLs name the host the request names, with
/// https; a Host header that is not a host name is not echoed.
#[test]
fn t083_behind_a_proxy_without_public_url_discovery_follows_the_host_header() {
    let s = TestServer::start_with(BASE_POLICY, &[("CONCORDIA_BEHIND_TLS_PROXY", "true")]);
    s.add_password("alice", "pw-alice-secret");
    let with_host = |host: &str| {
        let r = s.request("GET", "/taxii2/", &as_("alice"), &[("Host", host)], None);
        r.expect(200);
        r.json()["api_roots"].clone()
    };
    assert_eq!(with_host("taxii.example.org:8443"), json!(["https://taxii.example.org:8443/r/"]));
    let port = s.base.rsplit(':').next().unwrap().to_owned();
    assert_eq!(with_host("evil.example/<script>"), json!([format!("https://127.0.0.1:{port}/r/")]));
}

#[test]
fn t091_api_root_resource() {
    let s = base_server();
    let r = s.get("/r/", &as_("bob"));
    r.expect(200);
    let r = r.json();
    assert_eq!(r["title"], "Root");
    assert_eq!(r["versions"], json!(["application/taxii+json;version=2.1"]), "T-093");
    assert_eq!(r["max_content_length"], 100000, "T-094");
    // Unknown root and a root the partner has no collection in answer alike.
    let unknown = s.get("/nope/", &as_("dave"));
    unknown.expect(404);
    let hidden = s.get("/r/", &as_("dave"));
    hidden.expect(404);
    assert_eq!(unknown.body, hidden.body);
}

#[test]
fn t110_t116_collections_describe_the_caller() {
    let s = base_server();
    let cols = s.get("/r/collections/", &as_("alice"));
    cols.expect(200);
    let cols = cols.json()["collections"].as_array().cloned().unwrap();
    let ids: Vec<&str> = cols.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![SHARED, PRIVATE], "stable order by id (T-112)");
    for c in &cols {
        assert_eq!(c["can_read"], true);
        assert_eq!(c["can_write"], true);
        assert_eq!(c["media_types"][0], "application/stix+json;version=2.1");
    }
    let bob = s.get("/r/collections/", &as_("bob")).json();
    assert_eq!(bob["collections"].as_array().unwrap().len(), 1);
    assert_eq!(bob["collections"][0]["can_read"], true);
    assert_eq!(bob["collections"][0]["can_write"], false);
    let carol = s.get(&format!("/r/collections/{SHARED}/"), &as_("carol"));
    carol.expect(200);
    assert_eq!(carol.json()["can_read"], false);
    assert_eq!(carol.json()["can_write"], true);
}

#[test]
fn t115_hidden_collection_answers_like_an_unknown_one() {
    let s = base_server();
    let hidden = s.get(&format!("/r/collections/{PRIVATE}/"), &as_("bob"));
    hidden.expect(404);
    let unknown = s.get("/r/collections/33333333-3333-4333-8333-333333333333/", &as_("bob"));
    unknown.expect(404);
    assert_eq!(hidden.body, unknown.body, "no partner can learn another's collection exists");
    for suffix in ["objects/", "manifest/", "objects/indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f/"] {
        let h = s.get(&format!("/r/collections/{PRIVATE}/{suffix}"), &as_("bob"));
        let u = s.get(&format!("/r/collections/33333333-3333-4333-8333-333333333333/{suffix}"), &as_("bob"));
        h.expect(404);
        assert_eq!(h.body, u.body, "{suffix}");
    }
    let post = s.post(&objects_path(PRIVATE), &as_("bob"), &json!({"objects": [malware(&new_id("malware"))]}));
    post.expect(404);
    assert_eq!(post.body, unknown.body);
}

#[test]
fn t100_status_is_durable_and_private_to_its_submitter() {
    let mut s = base_server();
    let id = new_id("indicator");
    let st = s.add("r", SHARED, &as_("alice"), &[indicator(&id, "2020-01-01T00:00:00.000Z")]);
    assert_eq!(st["status"], "complete");
    let sid = st["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&sid).unwrap().get_version_num() == 4, "T-070");
    s.restart();
    let again = s.get(&format!("/r/status/{sid}/"), &as_("alice"));
    again.expect(200);
    assert_eq!(again.json(), st, "the status survives a restart unchanged");
    s.get(&format!("/r/status/{sid}/"), &as_("bob")).expect(404);
    s.get("/r/status/not-a-uuid/", &as_("alice")).expect(404);
    s.get(&format!("/r/status/{}/", uuid::Uuid::new_v4()), &as_("alice")).expect(404);
}

#[test]
fn t140_t170_t190_objects_object_versions_manifest() {
    let s = base_server();
    let id = new_id("indicator");
    let v1 = indicator(&id, "2020-01-01T00:00:00.000Z");
    let v2 = indicator(&id, "2020-02-01T00:00:00.000Z");
    s.add("r", SHARED, &as_("alice"), std::slice::from_ref(&v1));
    s.add("r", SHARED, &as_("alice"), std::slice::from_ref(&v2));
    let all = s.get(&objects_path(SHARED), &as_("bob"));
    all.expect(200);
    assert_eq!(all.json()["objects"], json!([v2]), "latest version only by default (T-214)");
    let first = all.header("x-taxii-date-added-first").unwrap();
    assert_eq!(first.len(), 27, "microsecond TAXII timestamp (T-260): {first}");
    assert!(first.ends_with('Z'));

    let one = s.get(&format!("{}{id}/?match[version]=all", objects_path(SHARED)), &as_("bob"));
    one.expect(200);
    assert_eq!(one.json()["objects"], json!([v1, v2]));
    let versions = s.get(&format!("{}{id}/versions/", objects_path(SHARED)), &as_("bob"));
    versions.expect(200);
    assert_eq!(versions.json()["versions"], json!(["2020-01-01T00:00:00.000Z", "2020-02-01T00:00:00.000Z"]));
    assert!(versions.header("x-taxii-date-added-last").is_some(), "T-236");

    let manifest = s.get(&format!("/r/collections/{SHARED}/manifest/?match[version]=all"), &as_("bob"));
    manifest.expect(200);
    let records = manifest.json()["objects"].as_array().cloned().unwrap();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["id"], id.as_str());
        assert_eq!(r["media_type"], "application/stix+json;version=2.1");
        assert_eq!(r["date_added"].as_str().unwrap().len(), 27);
    }
    assert_eq!(manifest.header("x-taxii-date-added-first"), records[0]["date_added"].as_str());
    assert_eq!(manifest.header("x-taxii-date-added-last"), records[1]["date_added"].as_str());

    let unknown = format!("{}{}/", objects_path(SHARED), new_id("indicator"));
    s.get(&unknown, &as_("bob")).expect(404);
    s.get(&format!("{unknown}versions/"), &as_("bob")).expect(404);
}

#[test]
fn t143_empty_results_are_empty_resources() {
    let s = base_server();
    for path in [objects_path(SHARED), format!("/r/collections/{SHARED}/manifest/")] {
        let r = s.get(&path, &as_("alice"));
        r.expect(200);
        assert_eq!(r.text(), "{}", "{path}");
        assert!(r.header("x-taxii-date-added-first").is_none());
    }
    // A partner with no collections sees {} for the collections list (T-111)? It cannot see the
    // root at all; alice with a filter that matches nothing gets an empty envelope.
    let r = s.get(&format!("{}?match[type]=campaign", objects_path(SHARED)), &as_("alice"));
    r.expect(200);
    assert_eq!(r.text(), "{}");
}

#[test]
fn t182_delete_permission_matrix_and_effect() {
    let s = base_server();
    let id = new_id("indicator");
    s.add("r", SHARED, &as_("alice"), &[indicator(&id, "2020-01-01T00:00:00.000Z")]);
    s.add("r", SHARED, &as_("alice"), &[indicator(&id, "2020-03-01T00:00:00.000Z")]);
    let path = format!("{}{id}/", objects_path(SHARED));
    s.delete(&path, &as_("bob")).expect(403); // read only
    s.delete(&path, &as_("carol")).expect(403); // write only
    s.delete(&path, &as_("dave")).expect(404); // neither
                                               // Delete one version, then the rest.
    let r = s.delete(&format!("{path}?match[version]=2020-03-01T00:00:00.000Z"), &as_("alice"));
    r.expect(200);
    assert!(r.body.is_empty(), "DELETE answers with no payload (T-180)");
    // That version is gone: asking for it is a 404 now (T-183), the other one remains.
    s.get(&format!("{path}?match[version]=2020-03-01T00:00:00.000Z"), &as_("alice")).expect(404);
    let left = s.get(&format!("{path}?match[version]=all"), &as_("alice")).json();
    assert_eq!(left["objects"].as_array().unwrap().len(), 1);
    assert_eq!(left["objects"][0]["modified"], "2020-01-01T00:00:00.000Z", "the older version is now the latest");
    s.delete(&path, &as_("alice")).expect(200);
    s.get(&path, &as_("alice")).expect(404); // T-183
    assert_eq!(s.get(&objects_path(SHARED), &as_("alice")).text(), "{}");
    s.delete(&path, &as_("alice")).expect(404);
}

#[test]
fn t060_paths_work_without_trailing_slash() {
    let s = base_server();
    let id = new_id("malware");
    let r = s.post(&format!("/r/collections/{SHARED}/objects"), &as_("alice"), &json!({"objects": [malware(&id)]}));
    r.expect(202);
    for path in [
        "/taxii2".to_owned(),
        "/r".to_owned(),
        "/r/collections".to_owned(),
        format!("/r/collections/{SHARED}"),
        format!("/r/collections/{SHARED}/manifest"),
        format!("/r/collections/{SHARED}/objects"),
        format!("/r/collections/{SHARED}/objects/{id}"),
        format!("/r/collections/{SHARED}/objects/{id}/versions"),
    ] {
        let with = s.get(&format!("{path}/"), &as_("alice"));
        let without = s.get(&path, &as_("alice"));
        with.expect(200);
        without.expect(200);
        assert_eq!(with.body, without.body, "{path}");
    }
}

#[test]
fn t062_every_error_is_a_taxii_error_resource() {
    let s = base_server();
    s.get("/no/such/endpoint/here/at/all/x/y/", &as_("alice")).expect(404);
    let r = s.request("PUT", &objects_path(SHARED), &as_("alice"), &[], Some(b"{}"));
    r.expect(405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    s.request("PATCH", "/taxii2/", &as_("alice"), &[], None).expect(405);
    s.get("/taxii2/", &Auth::None).expect(401);
    s.get("/taxii2/", &as_("alice").clone()).expect(200);
    let r = s.request("GET", "/taxii2/", &as_("alice"), &[("Accept", "application/json")], None);
    r.expect(406);
}

#[test]
fn t040_content_negotiation() {
    let s = base_server();
    for accept in [
        "application/taxii+json;version=2.1",
        "application/taxii+json",
        "application/taxii+json; version=2.1",
        "application/xml, application/taxii+json;version=2.1;q=0.5",
        "*/*",
        "application/*",
    ] {
        s.request("GET", "/r/collections/", &as_("alice"), &[("Accept", accept)], None).expect(200);
    }
    for accept in ["application/vnd.oasis.taxii+json; version=2.0", "application/taxii+json;version=2.0", "text/html"] {
        s.request("GET", "/r/collections/", &as_("alice"), &[("Accept", accept)], None).expect(406);
    }
    let body = serde_json::to_vec(&json!({"objects": [malware(&new_id("malware"))]})).unwrap();
    for ct in [
        "application/taxii+json",
        "application/taxii+json;version=2.1",
        "application/taxii+json; version=2.1; charset=utf-8",
    ] {
        s.request("POST", &objects_path(SHARED), &as_("alice"), &[("Content-Type", ct)], Some(&body)).expect(202);
    }
    for ct in ["application/json", "application/taxii+json;version=2.0", "text/plain"] {
        s.request("POST", &objects_path(SHARED), &as_("alice"), &[("Content-Type", ct)], Some(&body)).expect(415);
    }
}

#[test]
fn bytes_in_are_bytes_out() {
    let s = base_server();
    let id = new_id("indicator");
    // Odd spacing, key order and unicode: stored and served exactly as sent.
    let raw = format!(
        r#"{{ "objects" : [ {{"spec_version":"2.1",   "type":"indicator","id":"{id}","created":"2020-01-01T00:00:00.000Z","modified":"2020-01-01T00:00:00.000Z","name":"Ünïcødé \u00e9 ✓","pattern":"[ipv4-addr:value = '192.0.2.1']","pattern_type":"stix","valid_from":"2020-01-01T00:00:00Z","x_num":1.50}} ] }}"#
    );
    let r = s.request("POST", &objects_path(SHARED), &as_("alice"), &[("Content-Type", TAXII)], Some(raw.as_bytes()));
    r.expect(202);
    let start = raw.find("{\"spec_version\"").unwrap();
    let end = raw.rfind('}').unwrap();
    let object = raw[start..raw[..end].rfind('}').unwrap() + 1].to_owned();
    let got = s.get(&format!("{}{id}/", objects_path(SHARED)), &as_("bob"));
    got.expect(200);
    assert!(got.text().contains(&object), "served {} but sent {object}", got.text());
    let _: Value = got.json();
}
