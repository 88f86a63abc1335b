//! Plain domain types: TAXII resources, filters, the `next` cursor, timestamps. No I/O.

pub mod access;
pub mod audit;
pub mod cursor;
pub mod feed;
pub mod filter;
pub mod ijson;
pub mod plan;
pub mod policy;
pub mod stix;
pub mod stix20;
pub mod time;

use serde::{Deserialize, Serialize};

/// The TAXII media type every response carries (T-042).
pub const TAXII_CONTENT_TYPE: &str = "application/taxii+json;version=2.1";

/// Discovery resource (§4.1.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Discovery {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_roots: Vec<String>,
}

/// API Root resource (§4.2.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiRootResource {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub versions: Vec<String>,
    pub max_content_length: i64,
}

/// Collection resource (§5.2.1); `can_read`/`can_write` describe the caller (T-117).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionResource {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub can_read: bool,
    pub can_write: bool,
    pub media_types: Vec<String>,
}

/// Collections resource (§5.1.1): the key is omitted when empty (T-111).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionsResource {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub collections: Vec<CollectionResource>,
}

/// One entry of a status list (§4.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetail {
    pub id: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Status resource (§4.3.1). Counts always add up: success + failure + pending = total.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
    pub request_timestamp: String,
    pub total_count: u64,
    pub success_count: u64,
    pub failure_count: u64,
    pub pending_count: u64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub successes: Vec<StatusDetail>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub failures: Vec<StatusDetail>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub pendings: Vec<StatusDetail>,
}

impl Status {
    /// A completed status from the per-object outcomes.
    pub fn complete(
        id: String,
        request_timestamp: String,
        successes: Vec<StatusDetail>,
        failures: Vec<StatusDetail>,
    ) -> Self {
        let s = successes.len() as u64;
        let f = failures.len() as u64;
        Status {
            id,
            status: "complete".into(),
            request_timestamp,
            total_count: s + f,
            success_count: s,
            failure_count: f,
            pending_count: 0,
            successes,
            failures,
            pendings: Vec::new(),
        }
    }
}
