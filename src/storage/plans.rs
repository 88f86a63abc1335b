//! The plans of the hot queries, for the plan tests: `EXPLAIN` wrapped around the very query
//! objects the storage code runs (same builders, same binds), so a test sees what the server's
//! own statements would do on this database, with its statistics as they are.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Integer, Text};

use super::objects::{
    bodies_query, bodies_query_at, exists_query, nth_position_query, postings_query, rows_query, stored_versions,
    versions_query, PageQuery,
};
use super::{AnyConnection, Conn, StorageResult};
use crate::model::filter::Filter;

/// `EXPLAIN …` around a query; `ST` is what the database answers with.
struct Explain<Q, ST> {
    prefix: &'static str,
    query: Q,
    _answer: PhantomData<ST>,
}

impl<Q, ST> QueryId for Explain<Q, ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, ST, DB> QueryFragment<DB> for Explain<Q, ST>
where
    DB: Backend,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        self.query.walk_ast(out.reborrow())
    }
}

impl<Q, ST> Query for Explain<Q, ST> {
    type SqlType = ST;
}

impl<Q, ST, C> RunQueryDsl<C> for Explain<Q, ST> {}

/// One hot query's plan: PostgreSQL's `EXPLAIN (FORMAT JSON)` (with `ANALYZE, BUFFERS` when
/// asked: the query then really runs), or SQLite's `EXPLAIN QUERY PLAN` lines.
#[derive(Debug, Clone)]
pub struct HotPlan {
    pub name: &'static str,
    pub plan: String,
}

/// Explains every hot query on `collection`, with `ids` (up to 500, as an envelope's lookup) as
/// the ids looked up, `ids[0]` as the one object, and `after` as a paging position (the
/// postings read are those of the label `rare`).
///
/// # Errors
/// Database failures.
pub fn explain_hot_queries(
    c: &mut Conn,
    collection: i64,
    ids: &[String],
    after: i64,
    analyze: bool,
) -> StorageResult<Vec<HotPlan>> {
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let one = id_refs.first().copied().unwrap_or("indicator--00000000-0000-4000-8000-000000000000");
    let default = Filter::default();
    let by_ids = Filter { ids: ids.iter().take(10).cloned().collect(), ..Filter::default() };
    let typed = Filter { types: vec!["indicator".to_owned()], ..Filter::default() };
    let related = Filter { relationships_all: vec![one.to_owned()], ..Filter::default() };
    let authored =
        Filter { created_by: vec!["identity--00000000-0000-4000-8000-000000000000".to_owned()], ..Filter::default() };
    let labelled = Filter { labels: vec!["rare".to_owned()], ..Filter::default() };
    let page = |object, filter, after| PageQuery {
        collection,
        object,
        filter,
        after,
        fetch: 1001,
        sources: None,
        valid_at: None,
        plans: None,
    };
    let (p_object, p_ids, p_first, p_after, p_type, p_related, p_authored) = (
        page(Some(one), &default, None),
        page(None, &by_ids, None),
        page(None, &default, None),
        page(None, &default, Some(after)),
        page(None, &typed, Some(after)),
        page(None, &related, None),
        page(None, &authored, Some(after)),
    );
    let p_labelled = page(None, &labelled, Some(after));
    // What a step of postings gives: (position, seq) of 100 versions.
    let posted: Vec<(i64, i64)> = (1..=100).map(|i| (after + i * 1000, after + i * 1000)).collect();
    let mut out = Vec::new();
    macro_rules! explain {
        ($name:expr, $query:expr) => {{
            let plan = run(c, $query, analyze)?;
            out.push(HotPlan { name: $name, plan });
        }};
    }
    explain!("envelope lookup", stored_versions(collection, &id_refs));
    explain!("object", bodies_query(&p_object));
    explain!("match[id] page", bodies_query(&p_ids));
    explain!("first page", bodies_query(&p_first));
    explain!("page after a position", bodies_query(&p_after));
    explain!("match[type] page after a position", bodies_query(&p_type));
    explain!("manifest page after a position", rows_query(&p_after));
    explain!("exists", exists_query(collection, one));
    explain!("versions", versions_query(collection, one));
    explain!("match[relationships-all] page", bodies_query(&p_related));
    explain!("match[created_by_ref] page after a position", bodies_query(&p_authored));
    explain!("postings of a label after a position", postings_query(collection, "l:rare", Some(after), 1001));
    explain!("match[labels] page: the posted versions by seq", bodies_query_at(&p_labelled, Some(posted)));
    // The density probe of a filtered page: how far its first step of postings reaches.
    explain!(
        "position of the 512th version after a position",
        nth_position_query(collection, Some(after), i64::MAX, 512)
    );
    Ok(out)
}

fn run<Q>(c: &mut Conn, query: Q, analyze: bool) -> StorageResult<String>
where
    Q: QueryFragment<super::MultiBackend>,
{
    Ok(match c {
        AnyConnection::Postgresql(_) => {
            let prefix = if analyze { "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " } else { "EXPLAIN (FORMAT JSON) " };
            let e: Explain<Q, Text> = Explain { prefix, query, _answer: PhantomData };
            e.get_result::<String>(c)?
        }
        AnyConnection::Sqlite(_) => {
            let e: Explain<Q, (Integer, Integer, Integer, Text)> =
                Explain { prefix: "EXPLAIN QUERY PLAN ", query, _answer: PhantomData };
            let rows: Vec<(i32, i32, i32, String)> = e.load(c)?;
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
        }
    })
}
