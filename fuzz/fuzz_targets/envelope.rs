//! The request body of Add Objects: the container (envelope or bundle, member names unique) and
//! then the I-JSON scan of each object. Never a panic; every object the container yields is
//! well-formed JSON.
#![no_main]

use concordia_core::model::ijson;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(Some(objects)) = ijson::read_container(text) {
        for o in objects {
            let _ = ijson::check(o.get());
            assert!(serde_json::from_str::<serde_json::Value>(o.get()).is_ok() || !ijson::check(o.get()).is_empty());
        }
    }
    let _ = ijson::check(text);
});
