//! The `next` token: opaque to clients, self-contained, authenticated.
//!
//! A token carries the endpoint, the collection, the partner it was issued to, the original
//! filters and the position of the last item returned (`date_added` plus the unique `seq`). It is
//! signed with HMAC-SHA256 under the server key, so a forged or edited token is refused and can
//! never widen what a partner sees (T-028); no server-side state is kept, so tokens survive
//! restarts and work on every node that shares the key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::filter::{Endpoint, Filter};
use super::time::Micros;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted; anything longer cannot have been issued by us.
const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Bytes of the HMAC tag kept in the token (128 bits).
const TAG_LEN: usize = 16;

/// Where a page ended, and for whom and what it was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "e")]
    pub endpoint: Endpoint,
    #[serde(rename = "c")]
    pub collection: String,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(rename = "p")]
    pub partner: i64,
    #[serde(rename = "f")]
    pub filter: Filter,
    #[serde(rename = "d")]
    pub date_added: Micros,
    #[serde(rename = "s")]
    pub seq: i64,
}

/// Why a token was refused. The HTTP layer answers 400 for every variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("the next token is malformed or was not issued by this server; restart paging without next")]
    Invalid,
    #[error("the next token was issued for another request; send it with the same collection, object and filters as the first page")]
    Mismatch,
}

/// HMAC-SHA256 of the payload; HMAC takes keys of any length, so this is always `Some`.
fn tag(key: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).ok()?;
    m.update(b"concordia-next-v1\0");
    m.update(payload);
    Some(m.finalize().into_bytes().get(..TAG_LEN)?.to_vec())
}

impl Cursor {
    /// Serialises and signs the cursor.
    pub fn encode(&self, key: &[u8]) -> String {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        let t = tag(key, &payload).unwrap_or_default();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(t))
    }

    /// Verifies and decodes a token.
    pub fn decode(token: &str, key: &[u8]) -> Result<Cursor, CursorError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CursorError::Invalid);
        }
        let (p, t) = token.split_once('.').ok_or(CursorError::Invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| CursorError::Invalid)?;
        let given = URL_SAFE_NO_PAD.decode(t).map_err(|_| CursorError::Invalid)?;
        let expected = tag(key, &payload).ok_or(CursorError::Invalid)?;
        // Constant-time comparison.
        let diff =
            given.len() ^ expected.len() | given.iter().zip(&expected).fold(0u8, |a, (x, y)| a | (x ^ y)) as usize;
        if diff != 0 || given.len() != TAG_LEN {
            return Err(CursorError::Invalid);
        }
        serde_json::from_slice(&payload).map_err(|_| CursorError::Invalid)
    }

    /// Checks that a decoded cursor belongs to this request: same endpoint, collection, object
    /// and partner, and — when the request repeats filters — the same filters.
    pub fn check(
        &self,
        endpoint: Endpoint,
        collection: &str,
        object: Option<&str>,
        partner: i64,
        filter: Option<&Filter>,
    ) -> Result<(), CursorError> {
        let same = self.endpoint == endpoint
            && self.collection == collection
            && self.object.as_deref() == object
            && self.partner == partner
            && filter.is_none_or(|f| *f == self.filter);
        if same {
            Ok(())
        } else {
            Err(CursorError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            endpoint: Endpoint::Objects,
            collection: "c1".into(),
            object: None,
            partner: 7,
            filter: Filter::default(),
            date_added: 1_700_000_000_000_000,
            seq: 42,
        }
    }

    #[test]
    fn round_trip() {
        let t = cursor().encode(b"key");
        assert_eq!(Cursor::decode(&t, b"key"), Ok(cursor()));
    }

    #[test]
    fn forged_and_edited_tokens_are_refused() {
        let t = cursor().encode(b"key");
        assert_eq!(Cursor::decode(&t, b"other key"), Err(CursorError::Invalid));
        let mut edited = cursor();
        edited.partner = 8;
        let (_, tag) = t.split_once('.').unwrap_or_default();
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&edited).unwrap_or_default()), tag);
        assert_eq!(Cursor::decode(&forged, b"key"), Err(CursorError::Invalid));
        for junk in ["", ".", "abc", "abc.def", "%%%.%%%"] {
            assert_eq!(Cursor::decode(junk, b"key"), Err(CursorError::Invalid));
        }
    }

    #[test]
    fn replay_elsewhere_is_a_mismatch() {
        let c = cursor();
        assert!(c.check(Endpoint::Objects, "c1", None, 7, None).is_ok());
        assert!(c.check(Endpoint::Manifest, "c1", None, 7, None).is_err());
        assert!(c.check(Endpoint::Objects, "c2", None, 7, None).is_err());
        assert!(c.check(Endpoint::Objects, "c1", None, 8, None).is_err());
        let other = Filter { types: vec!["indicator".into()], ..Filter::default() };
        assert!(c.check(Endpoint::Objects, "c1", None, 7, Some(&other)).is_err());
    }
}
