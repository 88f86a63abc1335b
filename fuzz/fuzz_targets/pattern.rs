//! The STIX Patterning parser: any text is a pattern or a precise error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = concordia_core::stix::pattern::check(text);
    }
});
