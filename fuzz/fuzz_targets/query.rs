//! The query string of every object endpoint: parsed or a 400 with a message, never a panic;
//! what parses survives the round trip through its canonical form (the audit trail's).
#![no_main]

use concordia_core::model::filter::{parse_query, Endpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    for endpoint in [Endpoint::Objects, Endpoint::Manifest, Endpoint::Object, Endpoint::Versions, Endpoint::Delete] {
        if let Ok(q) = parse_query(raw, endpoint) {
            if endpoint == Endpoint::Objects {
                let again = parse_query(&q.filter.to_query(), Endpoint::Objects)
                    .unwrap_or_else(|e| panic!("the canonical form of {raw:?} does not parse: {e}"));
                assert_eq!(again.filter, q.filter, "{raw:?}");
            }
        }
    }
});
