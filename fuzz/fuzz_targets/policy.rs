//! The policy file: valid, or every problem reported, never a panic; a valid policy plans
//! against an empty state, and its display of the plan never panics either.
#![no_main]

use concordia_core::model::plan::{Plan, State};
use concordia_core::model::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = Policy::from_toml(text) {
        let mut n = 0;
        let plan = Plan::compute(&policy, &State::default(), false, &mut || {
            n += 1;
            format!("00000000-0000-4000-8000-{n:012}")
        });
        let _ = plan.to_string();
    }
});
