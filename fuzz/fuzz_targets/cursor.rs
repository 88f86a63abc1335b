//! `next` tokens: anything a client sends is refused or decodes to what was signed; a decoded
//! token re-encodes to one that decodes alike, and a token signed with a retired key is refused
//! once its grace period is over.
#![no_main]

use concordia_core::model::cursor::{Cursor, CursorError, KeyRing};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let keys = KeyRing::new(b"fuzzing key fuzzing key fuzzing key!").with_previous(b"the retired key, still in grace", 1_000);
    match Cursor::decode(token, &keys, 0) {
        Ok(cursor) => {
            let again = Cursor::decode(&cursor.encode(&keys), &keys, i64::MAX).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, cursor);
        }
        Err(CursorError::Retired) => panic!("nothing is retired before the grace period ends"),
        Err(_) => {}
    }
});
