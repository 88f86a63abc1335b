//! The `next` token: opaque to clients, self-contained, authenticated.
//!
//! A token carries the endpoint, the collection, the partner it was issued to, the original
//! filters and the position of the last item returned (`date_added` plus the unique `seq`). It is
//! signed with HMAC-SHA256 under the server key, so a forged or edited token is refused and can
//! never widen what a partner sees (T-028); no server-side state is kept, so tokens survive
//! restarts and work on every node that shares the key.
//!
//! A token names the key that signed it (`<key id>.<payload>.<tag>`; the id is a short digest of
//! the key, not the key). After the server key is rotated, tokens signed with the previous key
//! stay valid until the end of a grace period, so that a poller in the middle of a paging run is
//! not broken; after it they are refused with a message saying to restart paging.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use sha2::Digest as _;

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
    #[error("the next token was signed with a server key that has since been retired; restart paging without next")]
    Retired,
    #[error("the next token was issued for another request; send it with the same collection, object and filters as the first page")]
    Mismatch,
}

/// HMAC-SHA256 of the payload, under a domain string and the key id (empty for version 1
/// tokens, which named no key); HMAC takes keys of any length, so this is always `Some`.
fn tag(key: &[u8], kid: &str, payload: &[u8]) -> Option<Vec<u8>> {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).ok()?;
    if kid.is_empty() {
        m.update(b"concordia-next-v1\0");
    } else {
        m.update(b"concordia-next-v2\0");
        m.update(kid.as_bytes());
        m.update(b"\0");
    }
    m.update(payload);
    Some(m.finalize().into_bytes().get(..TAG_LEN)?.to_vec())
}

/// Constant-time comparison of a token's tag with the expected one.
fn tag_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == TAG_LEN
        && expected.len() == TAG_LEN
        && given.iter().zip(expected).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

/// One signing key and its id.
#[derive(Clone, PartialEq, Eq)]
struct SigningKey {
    /// The first 8 hex digits of SHA-256("concordia-key-id" || key): names the key, reveals
    /// nothing of it.
    id: String,
    secret: Vec<u8>,
}

impl SigningKey {
    fn new(secret: &[u8]) -> SigningKey {
        let digest = sha2::Sha256::new().chain_update(b"concordia-key-id\0").chain_update(secret).finalize();
        SigningKey { id: hex::encode(digest.get(..4).unwrap_or_default()), secret: secret.to_vec() }
    }
}

/// The keys that sign and verify `next` tokens: the current one, and the one it replaced with
/// the end of its grace period.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRing {
    current: SigningKey,
    previous: Option<(SigningKey, Micros)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.id)
            .field("previous", &self.previous.as_ref().map(|(k, until)| (&k.id, until)))
            .finish()
    }
}

impl KeyRing {
    /// Signs with `current` only.
    pub fn new(current: &[u8]) -> KeyRing {
        KeyRing { current: SigningKey::new(current), previous: None }
    }

    /// Also accepts tokens signed with `previous` until `until`.
    #[must_use]
    pub fn with_previous(mut self, previous: &[u8], until: Micros) -> KeyRing {
        self.previous = Some((SigningKey::new(previous), until));
        self
    }

    /// The id of the key that signs new tokens.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// The retired key's id and the end of its grace period.
    pub fn previous(&self) -> Option<(&str, Micros)> {
        self.previous.as_ref().map(|(k, until)| (k.id.as_str(), *until))
    }
}

impl Cursor {
    /// Serialises and signs the cursor with the current key.
    pub fn encode(&self, keys: &KeyRing) -> String {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        let kid = &keys.current.id;
        let t = tag(&keys.current.secret, kid, &payload).unwrap_or_default();
        format!("{kid}.{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(t))
    }

    /// Verifies and decodes a token at time `now`: signed with the current key, or with the
    /// previous one before the end of its grace period.
    pub fn decode(token: &str, keys: &KeyRing, now: Micros) -> Result<Cursor, CursorError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CursorError::Invalid);
        }
        let mut parts = token.split('.');
        let (kid, p, t) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(kid), Some(p), Some(t), None) => (kid, p, t),
            // Version 1, before tokens named their key: signed with the key then current.
            (Some(p), Some(t), None, None) => ("", p, t),
            _ => return Err(CursorError::Invalid),
        };
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| CursorError::Invalid)?;
        let given = URL_SAFE_NO_PAD.decode(t).map_err(|_| CursorError::Invalid)?;
        let verifies = |key: &SigningKey| tag(&key.secret, kid, &payload).is_some_and(|e| tag_matches(&given, &e));
        let current = (kid.is_empty() || kid == keys.current.id) && verifies(&keys.current);
        let previous =
            || keys.previous.as_ref().filter(|(k, _)| kid.is_empty() || kid == k.id).is_some_and(|(k, _)| verifies(k));
        if !current {
            if !previous() {
                return Err(CursorError::Invalid);
            }
            if keys.previous.as_ref().is_some_and(|(_, until)| now > *until) {
                return Err(CursorError::Retired);
            }
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

    fn ring(key: &[u8]) -> KeyRing {
        KeyRing::new(key)
    }

    #[test]
    fn round_trip() {
        let t = cursor().encode(&ring(b"key"));
        assert!(t.starts_with(&format!("{}.", ring(b"key").current_id())), "{t}");
        assert_eq!(Cursor::decode(&t, &ring(b"key"), 0), Ok(cursor()));
    }

    #[test]
    fn forged_and_edited_tokens_are_refused() {
        let keys = ring(b"key");
        let t = cursor().encode(&keys);
        assert_eq!(Cursor::decode(&t, &ring(b"other key"), 0), Err(CursorError::Invalid));
        let mut edited = cursor();
        edited.partner = 8;
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&edited).unwrap_or_default()),
            parts[2]
        );
        assert_eq!(Cursor::decode(&forged, &keys, 0), Err(CursorError::Invalid));
        // The key id is covered by the tag: naming another key does not help.
        let renamed = format!("00000000.{}.{}", parts[1], parts[2]);
        assert_eq!(Cursor::decode(&renamed, &keys, 0), Err(CursorError::Invalid));
        for junk in ["", ".", "..", "...", "abc", "abc.def", "%%%.%%%", "a.b.c.d"] {
            assert_eq!(Cursor::decode(junk, &keys, 0), Err(CursorError::Invalid));
        }
    }

    #[test]
    fn the_previous_key_is_accepted_until_its_grace_period_ends() {
        let old = ring(b"old key");
        let t = cursor().encode(&old);
        let rotated = ring(b"new key").with_previous(b"old key", 1_000);
        assert_ne!(old.current_id(), rotated.current_id());
        assert_eq!(Cursor::decode(&t, &rotated, 999), Ok(cursor()));
        assert_eq!(Cursor::decode(&t, &rotated, 1_001), Err(CursorError::Retired));
        // New tokens are signed with the new key.
        let fresh = cursor().encode(&rotated);
        assert_eq!(Cursor::decode(&fresh, &rotated, 5_000), Ok(cursor()));
        assert_eq!(Cursor::decode(&fresh, &old, 0), Err(CursorError::Invalid));
        // Not a key the ring knows at all.
        assert_eq!(Cursor::decode(&cursor().encode(&ring(b"stranger")), &rotated, 0), Err(CursorError::Invalid));
    }

    #[test]
    fn version_1_tokens_still_verify() {
        let payload = serde_json::to_vec(&cursor()).unwrap_or_default();
        let v1 = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag(b"key", "", &payload).unwrap_or_default())
        );
        assert_eq!(Cursor::decode(&v1, &ring(b"key"), 0), Ok(cursor()));
        assert_eq!(Cursor::decode(&v1, &ring(b"other"), 0), Err(CursorError::Invalid));
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
