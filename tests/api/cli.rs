//! Provisioning: `apply` is idempotent, `--dry-run` changes nothing, problems are all reported.

use crate::helpers::*;

#[test]
fn apply_is_idempotent_and_dry_run_changes_nothing() {
    let s = base_server();
    let again = s.apply(BASE_POLICY);
    assert!(again.contains("no changes"), "{again}");

    // Take bob out of group ab with a dry run first: nothing changes.
    let edited = BASE_POLICY.replace(r#"members = ["alice", "bob"]"#, r#"members = ["alice"]"#);
    let path = s.dir.path().join("edited.toml");
    std::fs::write(&path, &edited).unwrap();
    let (ok, out, err) = s.cli(&["apply", "--dry-run", path.to_str().unwrap()], None);
    assert!(ok, "{err}");
    assert!(out.contains("- member"), "{out}");
    assert!(out.contains("dry run"), "{out}");
    s.get(&objects_path(SHARED), &as_("bob")).expect(200);

    let (ok, out, err) = s.cli(&["apply", path.to_str().unwrap()], None);
    assert!(ok, "{err}{out}");
    assert!(
        wait_until(|| s.get(&objects_path(SHARED), &as_("bob")).status == 404),
        "bob lost access on the running server"
    );
    let (ok, out, _) = s.cli(&["access", "bob"], None);
    assert!(ok);
    assert!(out.contains("no collection"), "{out}");
    let (_, out, _) = s.cli(&["access", "alice"], None);
    assert!(out.contains(SHARED) && out.contains(PRIVATE), "{out}");
}

#[test]
fn invalid_policies_report_every_problem() {
    let s = base_server();
    let bad = r#"
        [[api_roots]]
        name = "Bad Name"
        title = "x"
        [[collections]]
        id = "11111111-1111-1111-1111-111111111111"
        api_root = "missing"
        title = "t"
        read = ["ghosts"]
    "#;
    let path = s.dir.path().join("bad.toml");
    std::fs::write(&path, bad).unwrap();
    let (ok, _, err) = s.cli(&["apply", path.to_str().unwrap()], None);
    assert!(!ok);
    for needle in ["Bad Name", "UUIDv4", "missing", "ghosts"] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}

#[test]
fn the_example_policy_applies_and_the_demo_starts() {
    let s = TestServer::start(include_str!("../../examples/alliance.toml"));
    let (ok, out, _) = s.cli(&["access", "cert-bravo"], None);
    assert!(ok);
    assert!(out.contains("Alliance indicators") && out.contains("Alpha-Bravo bilateral"), "{out}");
    assert!(!out.contains("Alpha national"), "{out}");
    let (_, out, _) = s.cli(&["access", "alpha-energy-isac"], None);
    assert!(out.contains("Alpha national") && out.contains("read "), "{out}");
}

#[test]
fn configuration_problems_are_all_reported_at_start() {
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("CONCORDIA_MAX_PAGE_SIZE", "0")
        .env("CONCORDIA_SERVER_KEY", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["non-loopback", "max_page_size", "server_key"] {
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}

#[test]
fn removing_a_collection_from_the_policy_revokes_access_on_the_running_server() {
    let s = base_server();
    s.add("r", PRIVATE, &as_("alice"), &[malware(&new_id("malware"))]);
    let start = BASE_POLICY.find("# only alice sees this one").unwrap();
    let out = s.apply(&BASE_POLICY[..start]);
    assert!(out.contains("- grant on 'Alice only' to group 'a'"), "{out}");
    assert!(out.contains("= collection 'Alice only'") && out.contains("kept with no grants"), "{out}");
    assert!(out.contains("applied 1 change(s)"), "{out}");
    assert!(wait_until(|| s.get(&objects_path(PRIVATE), &as_("alice")).status == 404));
    s.get(&objects_path(SHARED), &as_("alice")).expect(200);
}

#[test]
fn demo_refuses_a_database_that_holds_data() {
    let s = base_server();
    let (ok, _, err) = s.cli(&["serve", "--demo", "--listen", "127.0.0.1:0"], None);
    assert!(!ok);
    assert!(err.contains("empty database"), "{err}");
}

#[test]
fn validate_reports_every_problem_and_fails_on_invalid_objects() {
    let s = base_server();
    let good = indicator(&new_id("indicator"), "2020-01-01T00:00:00.000Z");
    let mut bad = malware(&new_id("malware"));
    bad["modified"] = serde_json::json!("2019-01-01T00:00:00.000Z");
    bad["confidence"] = serde_json::json!(-1);
    let bundle = serde_json::json!({"type": "bundle", "id": new_id("bundle"), "objects": [good, bad]});
    let path = s.dir.path().join("bundle.json");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let (ok, out, _) = s.cli(&["validate", path.to_str().unwrap()], None);
    assert!(!ok, "an invalid object makes validate fail");
    assert!(out.contains("/modified") && out.contains("/confidence"), "{out}");
    assert!(out.contains("2 object(s) checked, 1 invalid"), "{out}");
    let (_, json_out, _) = s.cli(&["validate", "--json", path.to_str().unwrap()], None);
    let records: serde_json::Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(records[0]["valid"], true);
    assert_eq!(records[1]["valid"], false);
    assert_eq!(records[1]["problems"].as_array().unwrap().len(), 2, "{json_out}");
    std::fs::write(&path, serde_json::to_vec(&serde_json::json!({"objects": [bundle["objects"][0]]})).unwrap())
        .unwrap();
    let (ok, out, err) = s.cli(&["validate", path.to_str().unwrap()], None);
    assert!(ok, "{out}{err}");
}

#[test]
fn import_loads_through_validation_and_records_the_partner() {
    let s = base_server();
    let objs: Vec<serde_json::Value> = (0..25).map(|_| malware(&new_id("malware"))).collect();
    let mut bad = malware(&new_id("malware"));
    bad["is_family"] = serde_json::json!("yes");
    let mut all = objs.clone();
    all.push(bad);
    let path = s.dir.path().join("import.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({"type": "bundle", "id": new_id("bundle"), "objects": all})).unwrap(),
    )
    .unwrap();
    let (ok, out, err) =
        s.cli(&["import", "--collection", SHARED, "--partner", "carol", "--batch", "10", path.to_str().unwrap()], None);
    assert!(!ok, "a refused object makes import fail");
    assert!(out.contains("25 stored, 0 already present, 1 refused (of 26)"), "{out}{err}");
    assert!(err.contains("/is_family"), "{err}");
    let got = s.read_all(&objects_path(SHARED), &as_("bob"), 7);
    assert_eq!(got.len(), 25);
    // Importing again stores nothing twice.
    let (_, out, _) = s.cli(&["import", "--collection", SHARED, "--partner", "carol", path.to_str().unwrap()], None);
    assert!(out.contains("0 stored, 25 already present"), "{out}");
}
