//! Integration tests: the real server over real HTTP on loopback, a real SQLite file per test.
//! Test names cite the TAXII 2.1 requirement ids (T-xxx) of ../shared/spec/taxii-2.1.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod helpers;

mod audit;
mod auth;
mod cli;
mod compression;
mod console;
mod differential;
mod endpoints;
mod feeds;
mod filters;
mod ijson;
mod ingest;
mod isolation;
mod mtls;
mod multinode;
mod operations;
mod paging;
mod plans;
mod prometheus;
mod protocol;
mod taxii20;
mod tls;
mod validation;
