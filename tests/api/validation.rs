//! STIX 2.1 validation on ingest and the per-collection sharing policy.

use serde_json::{json, Value};

use crate::helpers::*;

const POLICY: &str = r#"
[[api_roots]]
name = "r"
title = "Root"

[[partners]]
name = "alice"

[[groups]]
name = "a"
members = ["alice"]

# Alliance-wide: at most TLP:AMBER, every object marked, no custom content, 2.1 only.
[[collections]]
id = "55555555-5555-4555-8555-555555555555"
api_root = "r"
title = "Strict"
read = ["a"]
write = ["a"]
[collections.sharing]
tlp_ceiling = "amber"
require_tlp = true
custom_objects = false
custom_properties = false

# Defaults: custom content accepted, no TLP rules, 2.1 only.
[[collections]]
id = "66666666-6666-4666-8666-666666666666"
api_root = "r"
title = "Open"
read = ["a"]
write = ["a"]
"#;

const STRICT: &str = "55555555-5555-4555-8555-555555555555";
const OPEN: &str = "66666666-6666-4666-8666-666666666666";
const TLP1_GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";
const TLP1_RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";
const TLP2_RED: &str = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1";
const TLP2_AMBER_STRICT: &str = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003";

fn server() -> TestServer {
    let s = TestServer::start(POLICY);
    s.add_password("alice", "pw-alice-secret");
    s
}

fn marked(marking: &str) -> Value {
    let mut m = malware(&new_id("malware"));
    m["object_marking_refs"] = json!([marking]);
    m
}

fn post(s: &TestServer, col: &str, objects: Vec<Value>) -> Value {
    let r = s.post(&objects_path(col), &as_("alice"), &json!({ "objects": objects }));
    r.expect(202);
    r.json()
}

fn failure_messages(status: &Value) -> Vec<String> {
    status["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn invalid_objects_fail_alone_with_every_problem_named() {
    let s = server();
    let good = malware(&new_id("malware"));
    let mut bad = indicator(&new_id("indicator"), "2019-01-01T00:00:00.000Z"); // modified < created
    bad["valid_until"] = json!("2019-12-31T00:00:00Z"); // before valid_from
    bad["confidence"] = json!(250);
    bad["pattern"] = json!("[ipv4-addr:value = '1.2.3.4'");
    let st = post(&s, OPEN, vec![good.clone(), bad.clone()]);
    assert_eq!(st["success_count"], 1, "{st}");
    assert_eq!(st["failure_count"], 1);
    let f = &st["failures"][0];
    assert_eq!(f["id"], bad["id"]);
    let msg = f["message"].as_str().unwrap();
    for needle in ["/modified", "/valid_until", "/confidence", "/pattern", "timestamp-order", "pattern"] {
        assert!(msg.contains(needle), "{needle} missing from: {msg}");
    }
    assert!(msg.starts_with("5 problem(s)") || msg.starts_with("4 problem(s)"), "{msg}");
    // The valid object of the same envelope was stored.
    s.get(&format!("{}{}/", objects_path(OPEN), good["id"].as_str().unwrap()), &as_("alice")).expect(200);
    s.get(&format!("{}{}/", objects_path(OPEN), bad["id"].as_str().unwrap()), &as_("alice")).expect(404);
}

#[test]
fn tlp_ceiling_and_required_marking() {
    let s = server();
    let st = post(
        &s,
        STRICT,
        vec![
            marked(TLP1_GREEN),
            marked(TLP1_RED),
            marked(TLP2_RED),
            marked(TLP2_AMBER_STRICT),
            malware(&new_id("malware")),
        ],
    );
    assert_eq!(st["success_count"], 1, "{st}");
    let msgs = failure_messages(&st);
    assert_eq!(msgs.iter().filter(|m| m.contains("above this collection's ceiling TLP:AMBER")).count(), 3, "{msgs:#?}");
    assert!(msgs.iter().any(|m| m.contains("TLP:RED")));
    assert!(msgs.iter().any(|m| m.contains("TLP:AMBER+STRICT")));
    assert!(msgs.iter().any(|m| m.contains("requires a TLP marking")), "{msgs:#?}");
    // The open collection takes all of them.
    let st = post(&s, OPEN, vec![marked(TLP1_RED), malware(&new_id("malware"))]);
    assert_eq!(st["failure_count"], 0, "{st}");
}

#[test]
fn custom_content_policy() {
    let s = server();
    let custom_obj = json!({"type": "x-acme-widget", "spec_version": "2.1", "id": new_id("x-acme-widget"),
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z", "x_acme_size": 3,
        "object_marking_refs": [TLP1_GREEN]});
    let mut custom_prop = marked(TLP1_GREEN);
    custom_prop["x_acme_score"] = json!(7);
    let st = post(&s, STRICT, vec![custom_obj.clone(), custom_prop.clone()]);
    assert_eq!(st["failure_count"], 2, "{st}");
    let msgs = failure_messages(&st);
    assert!(msgs.iter().any(|m| m.contains("custom object types such as 'x-acme-widget'")), "{msgs:#?}");
    assert!(msgs.iter().any(|m| m.contains("custom properties such as 'x_acme_score'")), "{msgs:#?}");
    let st = post(&s, OPEN, vec![custom_obj, custom_prop]);
    assert_eq!(st["failure_count"], 0, "{st}");
}

#[test]
fn spec_versions_and_media_types() {
    let s = server();
    let mut v20 = malware(&new_id("malware"));
    v20.as_object_mut().unwrap().remove("spec_version");
    let st = post(&s, OPEN, vec![v20]);
    assert!(failure_messages(&st)[0].contains("accepts spec_version 2.1 only"), "{st}");
    let col = s.get(&format!("/r/collections/{OPEN}/"), &as_("alice")).json();
    assert_eq!(col["media_types"], json!(["application/stix+json;version=2.1"]));
}

#[test]
fn policy_changes_apply_to_the_running_server() {
    let s = server();
    assert_eq!(post(&s, OPEN, vec![marked(TLP1_RED)])["failure_count"], 0);
    let stricter = POLICY.replace(
        "# Defaults: custom content accepted, no TLP rules, 2.1 only.\n[[collections]]\nid = \"66666666-6666-4666-8666-666666666666\"\napi_root = \"r\"\ntitle = \"Open\"\nread = [\"a\"]\nwrite = [\"a\"]\n",
        "[[collections]]\nid = \"66666666-6666-4666-8666-666666666666\"\napi_root = \"r\"\ntitle = \"Open\"\nread = [\"a\"]\nwrite = [\"a\"]\n[collections.sharing]\ntlp_ceiling = \"green\"\n",
    );
    assert_ne!(stricter, POLICY);
    let out = s.apply(&stricter);
    assert!(out.contains("(sharing policy)"), "{out}");
    assert!(wait_until(|| post(&s, OPEN, vec![marked(TLP1_RED)])["failure_count"] == 1));
}

#[test]
fn review_regressions_case_nesting_and_extensions() {
    let s = server();
    // An upper-case spelling of TLP:RED's id is still TLP:RED.
    let st = post(
        &s,
        STRICT,
        vec![marked(&TLP1_RED.to_ascii_uppercase().replace("MARKING-DEFINITION", "marking-definition"))],
    );
    assert_eq!(st["failure_count"], 1, "{st}");
    assert!(failure_messages(&st)[0].contains("TLP:RED"));
    // Custom content is not assumed to hold timestamps.
    let mut custom = malware(&new_id("malware"));
    custom["x_acme_schedule"] = json!({"start": "09:00", "end": "17:00"});
    assert_eq!(post(&s, OPEN, vec![custom])["failure_count"], 0);
    // Extension-definition extensions are custom content for a collection that refuses it.
    let mut ext = marked(TLP1_GREEN);
    ext["extensions"] = json!({"extension-definition--d83fce45-ef58-4c6c-a3f4-1fbc32e98c6e":
        {"extension_type": "property-extension", "rank": 5}});
    let st = post(&s, STRICT, vec![ext]);
    assert!(failure_messages(&st)[0].contains("custom extensions"), "{st}");
    // Ids differing only in the case of their hex digits are one object.
    let id = new_id("malware");
    let mut upper = malware(&id.to_ascii_uppercase().replace("MALWARE", "malware"));
    upper["name"] = json!("upper");
    assert_eq!(post(&s, OPEN, vec![upper])["success_count"], 1);
    let again = post(&s, OPEN, vec![malware(&id)]);
    assert!(again["successes"][0]["message"].as_str().unwrap_or_default().contains("already"), "{again}");
    s.get(&format!("{}{}/", objects_path(OPEN), id), &as_("alice")).expect(200);
}
