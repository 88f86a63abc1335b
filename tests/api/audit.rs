//! The audit trail: who received what (reads recorded as page ranges, reconstructed into the
//! exact versions served), denials and failed logins, operator actions, a tamper-evident chain
//! that `audit verify` checks, triggers that refuse changes, and the kill -9 window of reads.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// The records `audit export` prints, parsed.
fn export(s: &TestServer, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "export"];
    all.extend_from_slice(args);
    let (ok, out, err) = s.cli(&all, None);
    assert!(ok, "audit export failed: {err}");
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Waits until the reads answered so far are committed (they are group-committed, in order):
/// until the record of one more request, made now, is there. Returns every record.
fn settle(s: &TestServer) -> Vec<Value> {
    let marker = s.get("/taxii2/", &as_("alice"));
    let id = marker.header("x-request-id").unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = export(s, &[]);
        if records.iter().any(|r| r["request_id"] == id.as_str()) {
            return records;
        }
        assert!(Instant::now() < deadline, "the read of request {id} was not recorded within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (partner, version) of every delivery `audit recipients` reports.
fn recipients(s: &TestServer, id: &str, version: Option<&str>) -> BTreeSet<(String, String)> {
    let mut args = vec!["audit", "recipients", id, "--json"];
    if let Some(v) = version {
        args.extend(["--version", v]);
    }
    let (ok, out, err) = s.cli(&args, None);
    assert!(ok, "{err}");
    out.lines()
        .map(|l| {
            let d: Value = serde_json::from_str(l).unwrap();
            (d["partner"].as_str().unwrap().to_owned(), d["version"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

fn verify(s: &TestServer) -> (bool, String) {
    let (ok, out, err) = s.cli(&["audit", "verify"], None);
    (ok, format!("{out}{err}"))
}

#[test]
fn recipients_name_exactly_who_was_served_which_version() {
    let s = base_server();
    let x = new_id("indicator");
    let m = new_id("malware");
    let (v1, v2) = ("2020-01-01T00:00:00.000Z", "2021-06-01T00:00:00.000Z");
    let mut batch = vec![indicator(&x, v1), malware(&m)];
    batch.extend((0..4).map(|_| indicator(&new_id("indicator"), v1)));
    s.add("r", SHARED, &as_("alice"), &batch);

    // alice pages the whole collection, two objects at a time: several pages.
    let got = s.read_all(&objects_path(SHARED), &as_("alice"), 2);
    assert_eq!(got.len(), 6);
    // bob asks only for malware.
    let r = s.get(&format!("{}?match[type]=malware", objects_path(SHARED)), &as_("bob"));
    r.expect(200);
    // carol may only write, dave sees nothing: both denied.
    s.get(&objects_path(SHARED), &as_("carol")).expect(403);
    s.get(&objects_path(PRIVATE), &as_("dave")).expect(404);
    s.get("/taxii2/", &Auth::basic("alice", "not her password")).expect(401);

    // A second version of x; bob then reads the latest versions: he gets v2, never v1.
    s.add("r", SHARED, &as_("alice"), &[indicator(&x, v2)]);
    let latest = s.read_all(&objects_path(SHARED), &as_("bob"), 100);
    assert!(latest.iter().any(|o| o["id"] == x.as_str() && o["modified"] == v2));

    let records = settle(&s);
    assert_eq!(recipients(&s, &x, None), set(&[("alice", v1), ("bob", v2)]));
    assert_eq!(recipients(&s, &x, Some(v1)), set(&[("alice", v1)]));
    assert_eq!(recipients(&s, &x, Some("2021-06-01T00:00:00Z")), set(&[("bob", v2)]), "versions compare as instants");
    assert_eq!(
        recipients(&s, &m, None),
        set(&[("alice", "2020-01-01T00:00:00.000Z"), ("bob", "2020-01-01T00:00:00.000Z")])
    );
    let (ok, out, _) = s.cli(&["audit", "recipients", &m], None);
    assert!(ok && out.contains("deliveries to 2 partner(s): alice, bob"), "{out}");

    // Every request is a record: alice's pages with their ranges and filters, the denials,
    // the failed login, the writes.
    let pages: Vec<&Value> =
        records.iter().filter(|r| r["partner"] == "alice" && r["action"] == "get_objects").collect();
    assert!(pages.len() >= 3, "one record per page: {pages:?}");
    assert!(pages.iter().all(|p| p["status"] == 200 && p["range_first"].is_i64() && p["snapshot"].is_i64()));
    assert_eq!(pages.iter().map(|p| p["object_count"].as_i64().unwrap()).sum::<i64>(), 6);
    let denied = |who: &str, status: i64| records.iter().any(|r| r["partner"] == who && r["status"] == status);
    assert!(denied("carol", 403) && denied("dave", 404), "denials are recorded");
    assert!(
        records.iter().any(|r| r["kind"] == "auth_failure" && r["credential_id"] == "alice" && r["status"] == 401),
        "failed logins are recorded"
    );
    let writes: Vec<&Value> = records.iter().filter(|r| r["action"] == "add_objects").collect();
    assert_eq!(writes.len(), 2);
    assert!(writes.iter().all(|w| w["status"] == 202 && w["credential_method"] == "password"));
    assert!(records.iter().all(|r| r["request_id"].is_string() || r["kind"] == "operator" || r["kind"] == "anchor"));

    // Exports filter by partner and collection, and come as CSV too.
    let bobs = export(&s, &["--partner", "bob"]);
    assert!(!bobs.is_empty() && bobs.iter().all(|r| r["partner"] == "bob"));
    let private = export(&s, &["--collection", PRIVATE]);
    assert!(private.iter().all(|r| r["collection_id"] == PRIVATE) && !private.is_empty());
    let (ok, csv, _) = s.cli(&["audit", "export", "--format", "csv", "--partner", "alice"], None);
    assert!(ok);
    assert!(csv.starts_with("block,chain,seq,time,kind,partner,"), "{csv}");
    assert!(csv.lines().count() > pages.len());

    let (ok, out) = verify(&s);
    assert!(ok, "{out}");
    assert!(out.contains("audit trail intact"), "{out}");
}

#[test]
fn the_trail_refuses_changes_and_verify_names_an_altered_or_removed_record() {
    let s = base_server();
    s.add("r", SHARED, &as_("alice"), &[malware(&new_id("malware"))]);
    // Three bursts of reads, committed as three blocks of the node's chain.
    let mut blocks = Vec::new();
    for _ in 0..3 {
        for _ in 0..3 {
            s.get(&objects_path(SHARED), &as_("alice")).expect(200);
        }
        let records = settle(&s);
        blocks.push(records.iter().rev().find(|r| r["action"] == "get_objects").unwrap()["block"].as_i64().unwrap());
    }
    blocks.dedup();
    assert!(blocks.len() >= 3, "reads a burst apart are committed in blocks of their own: {blocks:?}");
    let (ok, out) = verify(&s);
    assert!(ok, "{out}");
    let db = s.db_url();
    // The database itself refuses UPDATE and DELETE.
    let err = sql_exec(&db, "UPDATE audit_blocks SET records = 'x'").unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    let err = sql_exec(&db, "DELETE FROM audit_blocks").unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    if s.is_postgres() {
        let err = sql_exec(&db, "TRUNCATE audit_blocks").unwrap_err();
        assert!(err.contains("append-only"), "{err}");
    }

    // An attacker with database access drops the triggers and edits a block of reads: the
    // partner who read becomes someone else.
    let id = blocks[0];
    if s.is_postgres() {
        sql_exec(&db, "DROP TRIGGER audit_blocks_append_only ON audit_blocks").unwrap();
    } else {
        sql_exec(&db, "DROP TRIGGER audit_blocks_no_update").unwrap();
        sql_exec(&db, "DROP TRIGGER audit_blocks_no_delete").unwrap();
    }
    let edit = |from: &str, to: &str| {
        sql_exec(
            &db,
            &format!("UPDATE audit_blocks SET records = replace(records, '\"{from}\"', '\"{to}\"') WHERE id = {id}"),
        )
        .unwrap()
    };
    edit("alice", "bob");
    let (ok, out) = verify(&s);
    assert!(!ok, "verify must fail: {out}");
    assert!(out.contains(&format!("row {id} ")) && out.contains("was changed"), "names the row: {out}");

    // Put it back, and remove a later block instead: the gap is named.
    edit("bob", "alice");
    assert!(verify(&s).0, "restored");
    sql_exec(&db, &format!("DELETE FROM audit_blocks WHERE id = {}", blocks[1])).unwrap();
    let (ok, out) = verify(&s);
    assert!(!ok && out.contains("missing (removed)") && out.contains(&format!("row {}", blocks[2])), "{out}");
}

#[test]
fn removing_the_newest_records_is_detected_by_the_head_and_the_anchors() {
    let mut s = base_server();
    for _ in 0..4 {
        s.get(&objects_path(SHARED), &as_("alice")).expect(200);
    }
    settle(&s);
    // A clean stop commits the queue and anchors the chain heads in the cluster chain.
    s.signal("TERM");
    std::thread::sleep(Duration::from_millis(1500));
    s.stop();
    assert!(verify(&s).0);
    let db = s.db_url();
    if s.is_postgres() {
        sql_exec(&db, "DROP TRIGGER audit_blocks_append_only ON audit_blocks").unwrap();
    } else {
        sql_exec(&db, "DROP TRIGGER audit_blocks_no_delete").unwrap();
    }
    // The last block of the node's chain goes, and its chain's head row is rewound too.
    let max: i64 = sql_text(
        &db,
        "(SELECT CAST(MAX(b.id) AS TEXT) FROM audit_blocks b JOIN audit_chains c ON c.id = b.chain_id WHERE c.kind = 'node')",
    )
    .parse()
    .unwrap();
    let chain = sql_text(&db, &format!("(SELECT CAST(chain_id AS TEXT) FROM audit_blocks WHERE id = {max})"));
    let count = sql_text(&db, &format!("(SELECT CAST(count AS TEXT) FROM audit_blocks WHERE id = {max})"));
    sql_exec(&db, &format!("DELETE FROM audit_blocks WHERE id = {max}")).unwrap();
    let (ok, out) = verify(&s);
    assert!(!ok && out.contains(&format!("chain {chain}")), "{out}");
    sql_exec(&db, &format!("UPDATE audit_chains SET head_seq = head_seq - {count} WHERE id = {chain}")).unwrap();
    let (ok, out) = verify(&s);
    assert!(!ok && out.contains("anchor"), "the anchor still names the removed records: {out}");
}

#[test]
fn operator_actions_are_recorded_and_import_respects_write_rights() {
    let s = base_server();
    s.add_api_key("bob");
    let (ok, listing, _) = s.cli(&["credential", "list", "bob"], None);
    assert!(ok);
    let key_id = listing.lines().find(|l| l.contains("api_key")).unwrap().split_whitespace().next().unwrap().to_owned();
    let (ok, _, err) = s.cli(&["credential", "revoke", &key_id], None);
    assert!(ok, "{err}");
    let file = s.dir.path().join("bundle.json");
    std::fs::write(&file, serde_json::json!({"objects": [malware(&new_id("malware"))]}).to_string()).unwrap();
    // bob may read but not write the shared collection: refused unless --operator.
    let path = file.to_str().unwrap();
    let (ok, _, err) = s.cli(&["import", "--collection", SHARED, "--partner", "bob", path], None);
    assert!(!ok && err.contains("may not write"), "{err}");
    let (ok, out, err) = s.cli(&["import", "--collection", SHARED, "--partner", "bob", "--operator", path], None);
    assert!(ok, "{out}{err}");

    let ops = export(&s, &[]);
    let actions: Vec<&str> =
        ops.iter().filter(|r| r["kind"] == "operator").map(|r| r["action"].as_str().unwrap()).collect();
    for want in ["migrate", "apply", "credential_add", "credential_revoke", "import"] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    let apply = ops.iter().find(|r| r["action"] == "apply").unwrap();
    assert!(apply["detail"].as_str().unwrap().contains("+ collection 'Shared'"), "the change list: {apply}");
    let import = ops.iter().find(|r| r["action"] == "import").unwrap();
    assert_eq!(import["partner"], "bob");
    assert_eq!(import["object_count"], 1);
    assert!(import["detail"].as_str().unwrap().contains("\"operator_override\":true"), "{import}");
    assert!(import["credential_id"].as_str().unwrap().contains('@'), "the operator, user@host: {import}");
    assert!(verify(&s).0);
}

/// Reads are group-committed: a kill -9 can lose the records of reads answered in the last
/// commit window (100 ms) before it, never earlier ones. Measures that window.
#[test]
fn reads_answered_before_the_commit_window_survive_kill_9() {
    let mut s = base_server();
    s.add("r", SHARED, &as_("alice"), &[malware(&new_id("malware"))]);
    let mut answered: Vec<(String, Instant)> = Vec::new();
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let r = s.get(&format!("{}?limit=1", objects_path(SHARED)), &as_("alice"));
        r.expect(200);
        answered.push((r.header("x-request-id").unwrap().to_owned(), Instant::now()));
    }
    s.stop(); // SIGKILL
    let killed = Instant::now();
    let kept: BTreeSet<String> =
        export(&s, &[]).into_iter().filter_map(|r| r["request_id"].as_str().map(str::to_owned)).collect();
    let lost: Vec<Duration> =
        answered.iter().filter(|(id, _)| !kept.contains(id)).map(|(_, at)| killed - *at).collect();
    let window = lost.iter().max().copied().unwrap_or_default();
    println!(
        "audit kill -9: {} reads answered, {} recorded; the oldest unrecorded read was answered {} ms before the kill",
        answered.len(),
        answered.len() - lost.len(),
        window.as_millis()
    );
    assert!(answered.len() > 50, "enough reads to measure");
    assert!(window <= Duration::from_millis(300), "lost records older than the commit window: {window:?}");
    // What was committed still verifies.
    assert!(verify(&s).0);
}

/// Retention removes old records from the start of each chain, and the purge anchor it leaves
/// in the cluster chain lets the rest verify; removing a kept record still breaks it.
#[test]
fn retention_purges_old_records_and_the_rest_still_verifies() {
    use concordia::model::audit::AuditRecord;
    use concordia::storage::audit as store;
    let mut s = base_server();
    s.stop();
    let storage = concordia::storage::Storage::connect(&s.db_url(), 2, true).unwrap();
    let day = 86_400_000_000i64;
    let now = concordia::model::time::now_micros();
    let record =
        |at: i64| AuditRecord { at, kind: "request".into(), action: "get_objects".into(), ..AuditRecord::default() };
    let (node, col) = storage
        .write_blocking(|c| Ok((store::new_node_chain(c, "test node", now)?, store::collection_chain(c, SHARED, now)?)))
        .unwrap();
    storage
        .write_blocking(|c| {
            // Eight blocks of one record on the node's chain, one block of two on the collection's.
            for i in 0..8 {
                store::append(c, node, &[record(now - (10 - i) * day)])?;
            }
            store::append(c, col, &[record(now - 9 * day), record(now - 8 * day)])
        })
        .unwrap();
    assert!(verify(&s).0);
    // 30-day-old records: none; 5 days: the node chain's first 6 and both collection records.
    let removed = storage.write_blocking(|c| concordia::service::audit::purge(c, now - 30 * day, "test")).unwrap();
    assert_eq!(removed, 0);
    let removed = storage.write_blocking(|c| concordia::service::audit::purge(c, now - 5 * day + 1, "test")).unwrap();
    assert_eq!(removed, 6 + 2);
    let (ok, out) = verify(&s);
    assert!(ok, "{out}");
    // A later purge restates where every purged chain starts; the trail still verifies.
    storage.write_blocking(|c| store::append(c, node, &[record(now)])).unwrap();
    storage.write_blocking(|c| concordia::service::audit::purge(c, now - 3 * day, "test")).unwrap();
    assert!(verify(&s).0);
    let (ok, out, _) = s.cli(&["audit", "purge"], None);
    assert!(!ok && out.is_empty(), "without audit_retention_days nothing is purged");
    // Removing a kept record is still caught.
    let db = s.db_url();
    if s.is_postgres() {
        sql_exec(&db, "DROP TRIGGER audit_blocks_append_only ON audit_blocks").unwrap();
    } else {
        sql_exec(&db, "DROP TRIGGER audit_blocks_no_delete").unwrap();
    }
    let first = sql_text(&db, &format!("(SELECT CAST(MIN(id) AS TEXT) FROM audit_blocks WHERE chain_id = {node})"));
    sql_exec(&db, &format!("DELETE FROM audit_blocks WHERE id = {first}")).unwrap();
    let (ok, out) = verify(&s);
    assert!(!ok && out.contains(&format!("chain {node}")), "{out}");
}
