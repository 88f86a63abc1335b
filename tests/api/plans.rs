//! The hot queries' plans cannot be traded away by the statistics: one large collection that
//! the statistics know (ANALYZE), one collection they do not (loaded afterwards), and every hot
//! query of the server, built by the server's own code, explained on that database.
//!
//! Before the version index was keyed by an expression that only lookups by id use, PostgreSQL
//! looked up an envelope's ids in such a collection through a position or type index and
//! filtered the whole collection (252 ms for 500 ids at 259k rows; here about 190 ms at 200k).

use std::time::Instant;

use serde_json::{json, Value};

use crate::helpers::*;

const BIG: i64 = 150_000;
const SMALL: i64 = 100_000;

/// Rows inserted straight into `objects` (the plans only need the shape of the data).
fn fill(s: &TestServer, collection: &str, first: i64, count: i64) {
    let id = if s.is_postgres() {
        "'indicator--00000000-0000-4000-8000-' || lpad(n::text, 12, '0')"
    } else {
        "'indicator--00000000-0000-4000-8000-' || substr('000000000000' || n, -12, 12)"
    };
    let sql = format!(
        "WITH RECURSIVE g(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM g WHERE n < {last}) \
         INSERT INTO objects (collection_key, stix_id, stix_type, version, version_key, spec_version, date_added, \
         is_last, is_first, last_any, first_any, spec_latest, latest, added_by, body) \
         SELECT (SELECT collection_key FROM collection_clock WHERE collection_id = '{collection}'), {id}, 'indicator', '2020-01-01T00:00:00.000Z', '00000001577836800000000', '2.1', n, \
         1, 1, 1, 1, 1, 1, 1, '{body}' FROM g",
        last = first + count - 1,
        body = "x".repeat(600),
    );
    sql_exec(&s.db_url(), &sql).unwrap();
    // Their filter postings: every version unmarked (`t:-`), every 1000th labelled `rare`.
    let postings = format!(
        "WITH RECURSIVE g(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM g WHERE n < {last}) \
         INSERT INTO object_tags (collection_key, tag, date_added, seq) \
         SELECT (SELECT collection_key FROM collection_clock WHERE collection_id = '{collection}'), 't:-', n, n FROM g \
         UNION ALL SELECT (SELECT collection_key FROM collection_clock WHERE collection_id = '{collection}'), 'l:rare', n, n \
         FROM g WHERE n % 1000 = 0",
        last = first + count - 1,
    );
    sql_exec(&s.db_url(), &postings).unwrap();
}

/// The integer key the server gave a collection (`CollectionInfo::key`, from the access view).
fn key_of(c: &mut concordia::storage::Conn, collection: &str) -> i64 {
    let view = concordia::storage::access::load_view(c).unwrap();
    view.collections.iter().find(|col| col.id == collection).map(|col| col.key).unwrap()
}

fn ids(first: i64, count: i64) -> Vec<String> {
    (first..first + count).map(|n| format!("indicator--00000000-0000-4000-8000-{n:012}")).collect()
}

/// Every node of a PostgreSQL JSON plan: (node type, index name or else relation name).
fn pg_nodes(plan: &Value, out: &mut Vec<(String, String)>) {
    let t = plan["Node Type"].as_str().unwrap_or("").to_owned();
    let on = plan["Index Name"].as_str().or(plan["Relation Name"].as_str()).unwrap_or("");
    out.push((t, on.to_owned()));
    for child in plan["Plans"].as_array().into_iter().flatten() {
        pg_nodes(child, out);
    }
}

fn pg_buffers(plan: &Value) -> u64 {
    ["Shared Hit Blocks", "Shared Read Blocks"].iter().map(|k| plan[k].as_u64().unwrap_or(0)).sum()
}

#[test]
fn hot_queries_keep_their_index_whatever_the_statistics_say() {
    // Room for an envelope of 500 objects.
    let s = TestServer::start(&BASE_POLICY.replace("max_content_length = 100000", "max_content_length = 10000000"));
    s.add_password("alice", "pw-alice-secret");
    let url = s.db_url();
    if s.is_postgres() {
        // Deterministic statistics: only the ANALYZE below collects them.
        sql_exec(&url, "ALTER TABLE objects SET (autovacuum_enabled = false)").unwrap();
    }
    fill(&s, SHARED, 1, BIG);
    sql_exec(&url, "ANALYZE").unwrap();
    // Loaded after the statistics were taken: they believe this collection is empty.
    fill(&s, PRIVATE, 1_000_000, SMALL);
    sql_exec(&url, &format!("UPDATE collection_clock SET last_date_added = 1000000 WHERE collection_id = '{PRIVATE}'"))
        .unwrap();

    // The server's own write path: an envelope of 500 ids, half of them stored already.
    let mut objs: Vec<Value> = ids(1_000_000, 250).iter().map(|id| indicator(id, "2021-01-01T00:00:00.000Z")).collect();
    objs.extend((0..250).map(|_| indicator(&new_id("indicator"), "2021-01-01T00:00:00.000Z")));
    let t = Instant::now();
    let r = s.post(&objects_path(PRIVATE), &as_("alice"), &json!({ "objects": objs }));
    r.expect(202);
    assert_eq!(r.json()["success_count"], 500, "{}", r.text());
    println!("plans: an envelope of 500 objects into the collection the statistics do not know: {:?}", t.elapsed());

    let mut c = concordia::storage::open(&concordia::storage::DbUrl::parse(&url).unwrap()).unwrap();
    let lookup = ids(1_000_000 + SMALL / 2, 500);
    let by_id = ["envelope lookup", "object", "match[id] page", "exists", "versions"];
    let backend = if s.is_postgres() { "postgresql" } else { "sqlite" };
    let private = key_of(&mut c, PRIVATE);
    let plans =
        concordia::storage::plans::explain_hot_queries(&mut c, private, &lookup, 1_000_000 + SMALL / 2, true).unwrap();
    assert_eq!(plans.len(), 14);
    // The object and what refers to it: the version index and the two reference indexes.
    let related = ["objects_version", "objects_source_ref", "objects_target_ref"];
    for p in &plans {
        let keyed_by_id = by_id.contains(&p.name);
        let by_reference = p.name.starts_with("match[relationships-all]");
        // The richer filters: the postings' primary key, one range per key, in position order;
        // then the versions it gave, through the primary key (by seq).
        let postings = p.name.starts_with("postings");
        let at_positions = p.name.contains("posted versions by seq");
        if s.is_postgres() {
            let top: Value = serde_json::from_str(&p.plan).unwrap();
            let plan = &top[0]["Plan"];
            let mut nodes = Vec::new();
            pg_nodes(plan, &mut nodes);
            let scans: Vec<&(String, String)> =
                nodes.iter().filter(|(t, _)| t.contains("Scan") && !t.contains("Subquery")).collect();
            // (The clock table, two rows, may well be read whole.)
            if postings {
                assert!(
                    scans.iter().all(|(t, i)| t.starts_with("Index") && i == "object_tags_pkey")
                        && !nodes.iter().any(|(t, _)| t == "Sort"),
                    "{}: not a range of the postings' key: {nodes:?}",
                    p.name
                );
                let buffers = pg_buffers(plan);
                println!("plans: {backend}: {}: {buffers} buffers", p.name);
                assert!(buffers < 200, "{}: {buffers} buffers", p.name);
                continue;
            }
            assert!(
                !nodes.iter().any(|(t, on)| t == "Seq Scan" && on == "objects"),
                "{}: a sequential scan of objects: {nodes:?}",
                p.name
            );
            let on_objects: Vec<&&(String, String)> = scans.iter().filter(|(_, i)| i.starts_with("objects_")).collect();
            assert!(!on_objects.is_empty(), "{}: no index scan on objects: {nodes:?}", p.name);
            if at_positions {
                assert!(
                    on_objects.iter().all(|(_, i)| i.ends_with("_pkey")) && on_objects.len() == 1,
                    "{}: not through the primary key: {nodes:?}",
                    p.name
                );
            } else if by_reference {
                assert!(
                    on_objects.iter().all(|(_, i)| related.contains(&i.as_str())) && on_objects.len() == 3,
                    "{}: not through the version and reference indexes: {nodes:?}",
                    p.name
                );
            } else if keyed_by_id {
                assert!(
                    on_objects.iter().all(|(_, i)| i == "objects_version"),
                    "{}: looked up by id but not through objects_version: {nodes:?}",
                    p.name
                );
            } else {
                assert!(
                    on_objects.iter().all(|(_, i)| i != "objects_version"),
                    "{}: a page walked the version index: {nodes:?}",
                    p.name
                );
                assert!(
                    !nodes.iter().any(|(t, _)| t == "Sort"),
                    "{}: the page is sorted, not read in order: {nodes:?}",
                    p.name
                );
                if p.name.starts_with("match[type]") {
                    assert!(on_objects.iter().all(|(_, i)| i == "objects_type_latest"), "{}: {nodes:?}", p.name);
                }
                if p.name.starts_with("match[created_by_ref]") {
                    assert!(on_objects.iter().all(|(_, i)| i == "objects_created_by"), "{}: {nodes:?}", p.name);
                }
            }
            let (ms, buffers) = (top[0]["Execution Time"].as_f64().unwrap(), pg_buffers(plan));
            println!("plans: {backend}: {}: {on_objects:?}, {buffers} buffers, {ms:.2} ms", p.name);
            if p.name == "envelope lookup" {
                // 500 probes of a few pages each; filtering the collection reads every page of it.
                assert!(buffers < 4_000, "{}: {buffers} buffers", p.name);
                assert!(ms < 50.0, "{}: {ms:.1} ms for 500 ids", p.name);
            } else {
                assert!(buffers < 1_000, "{}: {buffers} buffers", p.name);
            }
        } else {
            println!("plans: {backend}: {}: {}", p.name, p.plan.replace('\n', "; "));
            assert!(
                !p.plan.lines().any(|l| l.starts_with("SCAN objects")),
                "{}: a full scan of objects: {}",
                p.name,
                p.plan
            );
            if postings {
                assert!(
                    p.plan
                        .contains("SEARCH object_tags USING PRIMARY KEY (collection_key=? AND tag=? AND date_added>?)")
                        && !p.plan.contains("TEMP B-TREE"),
                    "{}: {}",
                    p.name,
                    p.plan
                );
            } else if at_positions {
                assert!(
                    p.plan.contains("SEARCH objects USING INTEGER PRIMARY KEY (rowid=?)"),
                    "{}: {}",
                    p.name,
                    p.plan
                );
            } else if by_reference {
                for index in related {
                    assert!(p.plan.contains(&format!("INDEX {index} (")), "{}: {}", p.name, p.plan);
                }
            } else if keyed_by_id {
                assert!(p.plan.contains("INDEX objects_version ("), "{}: {}", p.name, p.plan);
            } else {
                assert!(!p.plan.contains("objects_version"), "{}: {}", p.name, p.plan);
                assert!(!p.plan.contains("TEMP B-TREE FOR ORDER BY"), "{}: sorted: {}", p.name, p.plan);
                if p.name.starts_with("match[type]") {
                    assert!(p.plan.contains("INDEX objects_type_latest ("), "{}: {}", p.name, p.plan);
                }
                if p.name.starts_with("match[created_by_ref]") {
                    assert!(p.plan.contains("INDEX objects_created_by ("), "{}: {}", p.name, p.plan);
                }
            }
        }
    }
    println!("plans: {backend}: {} hot queries keep their index", plans.len());
}

#[derive(diesel::QueryableByName, Debug)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    runs: i64,
}

/// The hot reads are prepared statements that a connection parses once and runs again (diesel's
/// statement cache): every shape below, run three times on one connection, is one prepared
/// statement that ran three times. (PostgreSQL only: `pg_prepared_statements`.)
#[test]
fn hot_reads_are_prepared_once_per_connection() {
    let s = base_server();
    if !s.is_postgres() {
        println!("plans: sqlite: prepared statements are checked on PostgreSQL only");
        return;
    }
    let objs: Vec<Value> = (0..5).map(|_| indicator(&new_id("indicator"), "2021-01-01T00:00:00.000Z")).collect();
    s.add("r", SHARED, &as_("alice"), &objs);
    let ids: Vec<String> = objs.iter().map(|o| o["id"].as_str().unwrap().to_owned()).collect();
    let mut c = concordia::storage::open(&concordia::storage::DbUrl::parse(&s.db_url()).unwrap()).unwrap();
    use concordia::model::filter::Filter;
    use concordia::storage::objects::{self as o, PageQuery};
    let default = Filter::default();
    let by_ids = Filter { ids: ids.clone(), ..Filter::default() };
    let typed = Filter { types: vec!["indicator".into()], added_after: Some(1), ..Filter::default() };
    let shared = key_of(&mut c, SHARED);
    let shapes = 6;
    for _ in 0..3 {
        for (object, filter) in [(None, &default), (None, &by_ids), (None, &typed), (Some(ids[0].as_str()), &default)] {
            let p = PageQuery {
                collection: shared,
                object,
                filter,
                after: None,
                fetch: 1001,
                sources: None,
                valid_at: None,
                plans: None,
            };
            assert!(!o::page_with_bodies(&mut c, &p, 1 << 20).unwrap().rows.is_empty());
        }
        let p = PageQuery {
            collection: shared,
            object: None,
            filter: &default,
            after: Some(1),
            fetch: 101,
            sources: None,
            valid_at: None,
            plans: None,
        };
        assert_eq!(o::page(&mut c, &p).unwrap().rows.len(), 5);
        assert_eq!(o::versions_of(&mut c, shared, &ids[1]).unwrap().len(), 1);
    }
    let concordia::storage::AnyConnection::Postgresql(pg) = &mut c else { unreachable!() };
    let prepared: Vec<Prepared> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements \
             WHERE statement LIKE '%FROM \"objects\"%'",
        ),
        pg,
    )
    .unwrap();
    for p in &prepared {
        println!("plans: postgresql: prepared, ran {} times: {}", p.runs, &p.statement[..p.statement.len().min(120)]);
    }
    assert_eq!(prepared.len(), shapes, "one prepared statement per shape: {prepared:#?}");
    assert!(prepared.iter().all(|p| p.runs == 3), "each ran three times: {prepared:#?}");
    println!("plans: postgresql: hot reads prepared once per connection ({shapes} shapes)");
}
