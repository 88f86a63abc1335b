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
    assert!(out.contains("- 1 grant(s) on collection 'Alice only'"), "{out}");
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
