//! One object, as received, through every check of ingest: I-JSON, identity and version, the
//! STIX 2.1 schemas and rules, a strict sharing policy. Must never panic, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use concordia_core::model::policy::{SharingPolicy, Tlp};
use concordia_core::stix::Validator;
use libfuzzer_sys::fuzz_target;

fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new().unwrap_or_else(|e| panic!("the embedded schemas: {e}")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let strict = SharingPolicy {
        custom_objects: false,
        custom_properties: false,
        tlp_ceiling: Some(Tlp::Amber),
        require_tlp: true,
        spec_versions: vec!["2.1".into(), "2.0".into()],
    };
    let _ = validator().check_object(Some(&strict), text, 0);
    let _ = validator().check_object(None, text, 7);
});
