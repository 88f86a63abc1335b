//! Concordia's pure core: what the TAXII server computes without I/O.
//! - [`model`]: TAXII resources, filters, the signed `next` cursor, timestamps, the sharing
//!   policy and its plans, access views, audit records, I-JSON checks.
//! - [`stix`]: STIX 2.1 validation (our own JSON Schemas, the rules, STIX Patterning).
//!
//! The server crate (`concordia`) re-exports both, so `concordia::model` and `concordia::stix`
//! are these modules.

#![cfg_attr(test, allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod model;
pub mod stix;
