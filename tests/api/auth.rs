//! Authentication: Basic passwords, API keys (Bearer and as Basic password), revocation, expiry.

use crate::helpers::*;

#[test]
fn t023_missing_or_wrong_credentials_are_401_with_a_challenge() {
    let s = base_server();
    for auth in [
        Auth::None,
        Auth::basic("alice", "wrong-password"),
        Auth::basic("nobody", "pw-nobody-secret"),
        Auth::Bearer("cnc_0123456789abcdef_notakey".into()),
        Auth::Raw("Basic %%%".into()),
        Auth::Raw("Digest username=alice".into()),
    ] {
        for path in ["/taxii2/", "/r/", "/r/collections/", &objects_path(SHARED)] {
            let r = s.get(path, &auth);
            r.expect(401);
            let challenge = r.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Basic realm="), "{challenge}");
        }
    }
}

#[test]
fn t020_api_keys_work_as_bearer_and_as_basic_password() {
    let s = base_server();
    let key = s.add_api_key("bob");
    assert!(key.starts_with("cnc_"), "{key}");
    s.get("/r/collections/", &Auth::Bearer(key.clone())).expect(200);
    // Microsoft Sentinel and other SIEMs only speak Basic: the key is the password.
    let r = s.get("/r/collections/", &Auth::basic("bob", &key));
    r.expect(200);
    assert_eq!(r.json()["collections"].as_array().unwrap().len(), 1);
    // A tampered key is refused.
    let mut bad = key.clone();
    bad.pop();
    bad.push(if key.ends_with('A') { 'B' } else { 'A' });
    s.get("/r/collections/", &Auth::Bearer(bad)).expect(401);
}

#[test]
fn revoked_and_expired_credentials_stop_working_on_the_running_server() {
    let s = base_server();
    let key = s.add_api_key("bob");
    let auth = Auth::Bearer(key.clone());
    s.get("/r/collections/", &auth).expect(200); // now cached
    let (ok, list, _) = s.cli(&["credential", "list", "bob"], None);
    assert!(ok);
    let key_id =
        list.lines().find(|l| l.contains("api_key")).and_then(|l| l.split_whitespace().next()).unwrap().to_owned();
    assert!(!list.contains(&key), "secrets are never listed");
    let (ok, _, err) = s.cli(&["credential", "revoke", &key_id], None);
    assert!(ok, "{err}");
    assert!(wait_until(|| s.get("/r/collections/", &auth).status == 401), "revocation must drop the cached login");

    // Passwords: expire one, the cached login goes too.
    s.get("/r/", &as_("alice")).expect(200);
    let (_, list, _) = s.cli(&["credential", "list", "alice"], None);
    let pw_id =
        list.lines().find(|l| l.contains("password")).and_then(|l| l.split_whitespace().next()).unwrap().to_owned();
    let (ok, _, err) = s.cli(&["credential", "expire", &pw_id], None);
    assert!(ok, "{err}");
    assert!(wait_until(|| s.get("/r/", &as_("alice")).status == 401));
    let (_, list, _) = s.cli(&["credential", "list", "alice"], None);
    assert!(list.contains("expired"), "{list}");
}

#[test]
fn keys_with_an_expiry_in_the_past_never_work() {
    let s = base_server();
    let (ok, out, err) = s.cli(&["credential", "add", "bob", "--api-key", "--expires", "2001-01-01T00:00:00Z"], None);
    assert!(ok, "{err}");
    s.get("/r/", &Auth::Bearer(out.trim().to_owned())).expect(401);
}

#[test]
fn credentials_for_unknown_partners_are_refused_by_the_cli() {
    let s = base_server();
    let (ok, _, err) = s.cli(&["credential", "add", "mallory", "--api-key"], None);
    assert!(!ok);
    assert!(err.contains("partner not found"), "{err}");
    let (ok, _, err) = s.cli(&["credential", "add", "bob", "--password-stdin"], Some("short\n"));
    assert!(!ok);
    assert!(err.contains("at least 8"), "{err}");
}

#[test]
fn password_hashes_are_not_stored_in_clear() {
    let s = base_server();
    let hash = sql_text(&s.db_url(), "(select secret_hash from credentials where kind = 'password' limit 1)");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    if !s.is_postgres() {
        let db = std::fs::read(s.dir.path().join("concordia.db")).unwrap();
        let wal = std::fs::read(s.dir.path().join("concordia.db-wal")).unwrap_or_default();
        for blob in [&db, &wal] {
            assert!(!String::from_utf8_lossy(blob).contains("pw-alice-secret"));
        }
    }
    let clear = sql_text(
        &s.db_url(),
        "(select cast(count(*) as text) from credentials where secret_hash like '%pw-alice-secret%')",
    );
    assert_eq!(clear, "0");
}

#[test]
fn anonymous_read_serves_public_collections_only_when_enabled() {
    let policy = format!(
        "{BASE_POLICY}\n[[collections]]\nid = \"44444444-4444-4444-8444-444444444444\"\napi_root = \"r\"\ntitle = \"Advisories\"\nread = [\"a\"]\nwrite = [\"a\"]\npublic = true\n"
    );
    let public = "44444444-4444-4444-8444-444444444444";
    // Off by default: public collections still need credentials.
    let off = TestServer::start(&policy);
    off.get(&objects_path(public), &Auth::None).expect(401);
    let on = TestServer::start_with(&policy, &[("CONCORDIA_ANONYMOUS_READ", "true")]);
    on.add_password("alice", "pw-alice-secret");
    on.add("r", public, &as_("alice"), &[malware(&new_id("malware"))]);
    let r = on.get(&objects_path(public), &Auth::None);
    r.expect(200);
    assert_eq!(r.json()["objects"].as_array().unwrap().len(), 1);
    let cols = on.get("/r/collections/", &Auth::None);
    cols.expect(200);
    assert_eq!(cols.json()["collections"].as_array().unwrap().len(), 1, "only the public collection is listed");
    assert_eq!(cols.json()["collections"][0]["can_write"], false);
    // Everything else asks for credentials, whether it exists or not.
    on.get(&objects_path(SHARED), &Auth::None).expect(401);
    on.get(&objects_path("33333333-3333-4333-8333-333333333333"), &Auth::None).expect(401);
    on.post(&objects_path(public), &Auth::None, &serde_json::json!({"objects": [malware(&new_id("malware"))]}))
        .expect(401);
    // Wrong credentials are still refused, never downgraded to anonymous.
    on.get(&objects_path(public), &Auth::basic("alice", "wrong-password")).expect(401);
}
