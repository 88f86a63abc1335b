//! Concordia: a TAXII 2.1 server for sharing STIX 2.1 threat intelligence between partner
//! organisations, with access granted per partner group and collection.
//!
//! Layers, one direction only: `cli -> server -> http -> service -> {auth, storage} -> model`.
//! - [`model`] and [`stix`] (the `concordia-core` crate, re-exported): TAXII resources,
//!   filters, the signed `next` cursor, timestamps, the policy, STIX validation; no I/O.
//! - [`storage`]: diesel over SQLite; returns model types; the only code that knows SQL.
//! - [`auth`]: credentials to a [`model::access::Principal`], with a cache of verified logins.
//! - [`service`]: the TAXII operations; applies access rights and filters.
//! - [`http`]: the wire layer (actix-web): routes, content negotiation, error resources.
//! - [`server`], [`config`], [`cli`]: start-up, configuration and the command line.
//! - [`metrics`]: the process's Prometheus registry (like tracing, every layer may record into
//!   it; only `/metrics` reads it).

#![cfg_attr(test, allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub use concordia_core::{model, stix};

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod http;
pub mod metrics;
pub mod server;
pub mod service;
pub mod storage;
pub mod tls;
