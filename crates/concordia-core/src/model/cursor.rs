//! The `next` token: opaque to clients, self-contained, authenticated.
//!
//! A token carries the endpoint, the collection, the partner it was issued to, the original
//! filters and the position of the last item returned (`date_added` plus the unique `seq`). It is
//! signed with HMAC-SHA256 under the server key, so a forged or edited token is refused and can
//! never widen what a partner sees (T-028); no server-side state is kept, so tokens survive
//! restarts and work on every node that shares the key.
//!
//! A token (`<payload>.<tag>`, both base64url) names the key that signed it inside its payload
//! (`"k"`: a short digest of the key, not the key). After the server key is rotated, tokens
//! signed with the previous key stay valid until the end of a grace period, so that a poller in
//! the middle of a paging run is not broken; after it they are refused with a message saying to
//! restart paging. Tokens from before key ids (no `"k"`) are tried with each key; and a node of
//! the previous release verifies the new tokens too (same framing and tag; it ignores `"k"`),
//! so a rolling upgrade breaks no paging run.

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
    /// Signed with a key this node does not know (yet): another node may have rotated the key a
    /// moment ago. Answered like `Invalid` if reloading the keys does not help.
    #[error("the next token is malformed or was not issued by this server; restart paging without next")]
    UnknownKey,
    #[error("the next token was issued for another request; send it with the same collection, object and filters as the first page")]
    Mismatch,
}

/// HMAC-SHA256 of the payload (which holds the key id); HMAC takes keys of any length, so this
/// is always `Some`.
fn tag(key: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).ok()?;
    m.update(b"concordia-next-v1\0");
    m.update(payload);
    Some(m.finalize().into_bytes().get(..TAG_LEN)?.to_vec())
}

/// What a token's payload says about its key, read before the tag is checked (it only picks the
/// key to check the tag with).
#[derive(Deserialize)]
struct KeyHint {
    #[serde(default)]
    k: Option<String>,
}

/// The payload as signed: the cursor and the id of the signing key.
#[derive(Serialize)]
struct Signed<'a> {
    #[serde(flatten)]
    cursor: &'a Cursor,
    k: &'a str,
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

    /// The key with this id, and the end of its grace period if it is the previous one.
    fn find(&self, id: &str) -> Option<(&SigningKey, Option<Micros>)> {
        if self.current.id == id {
            return Some((&self.current, None));
        }
        self.previous.as_ref().filter(|(k, _)| k.id == id).map(|(k, until)| (k, Some(*until)))
    }
}

impl Cursor {
    /// Serialises and signs the cursor with the current key.
    pub fn encode(&self, keys: &KeyRing) -> String {
        let payload = serde_json::to_vec(&Signed { cursor: self, k: &keys.current.id }).unwrap_or_default();
        let t = tag(&keys.current.secret, &payload).unwrap_or_default();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(t))
    }

    /// Verifies and decodes a token at time `now`: signed with the current key, or with the
    /// previous one before the end of its grace period.
    pub fn decode(token: &str, keys: &KeyRing, now: Micros) -> Result<Cursor, CursorError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(CursorError::Invalid);
        }
        let (p, t) = token.split_once('.').ok_or(CursorError::Invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| CursorError::Invalid)?;
        let given = URL_SAFE_NO_PAD.decode(t).map_err(|_| CursorError::Invalid)?;
        let verifies = |key: &SigningKey| tag(&key.secret, &payload).is_some_and(|e| tag_matches(&given, &e));
        let hint = serde_json::from_slice::<KeyHint>(&payload).map_err(|_| CursorError::Invalid)?;
        let grace_end = match hint.k {
            Some(id) => {
                let (key, until) = keys.find(&id).ok_or(CursorError::UnknownKey)?;
                if !verifies(key) {
                    return Err(CursorError::Invalid);
                }
                until
            }
            // From before key ids: the current key, else the previous one.
            None if verifies(&keys.current) => None,
            None => match &keys.previous {
                Some((key, until)) if verifies(key) => Some(*until),
                _ => return Err(CursorError::Invalid),
            },
        };
        if grace_end.is_some_and(|until| now > until) {
            return Err(CursorError::Retired);
        }
        serde_json::from_slice(&payload).map_err(|_| CursorError::Invalid)
    }

    /// Whether the token names a signing key this ring does not know (worth reloading the keys:
    /// another node may have rotated them a moment ago).
    pub fn names_unknown_key(token: &str, keys: &KeyRing) -> bool {
        let Some((p, _)) = token.split_once('.') else { return false };
        let Ok(payload) = URL_SAFE_NO_PAD.decode(p) else { return false };
        serde_json::from_slice::<KeyHint>(&payload).ok().and_then(|h| h.k).is_some_and(|id| keys.find(&id).is_none())
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
        assert_eq!(Cursor::decode(&t, &ring(b"key"), 0), Ok(cursor()));
        let (p, _) = t.split_once('.').unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        assert_eq!(payload["k"], ring(b"key").current_id(), "the token names its key");
    }

    #[test]
    fn forged_and_edited_tokens_are_refused() {
        let keys = ring(b"key");
        let t = cursor().encode(&keys);
        assert_eq!(Cursor::decode(&t, &ring(b"other key"), 0), Err(CursorError::UnknownKey));
        let (_, tag) = t.split_once('.').unwrap();
        let resign =
            |v: serde_json::Value| format!("{}.{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap()), tag);
        let mut edited = serde_json::to_value(cursor()).unwrap();
        edited["p"] = 8.into();
        edited["k"] = keys.current_id().into();
        assert_eq!(Cursor::decode(&resign(edited.clone()), &keys, 0), Err(CursorError::Invalid));
        // The key id is covered by the tag: naming another key does not help.
        edited["p"] = 7.into();
        edited["k"] = "00000000".into();
        assert_eq!(Cursor::decode(&resign(edited), &keys, 0), Err(CursorError::UnknownKey));
        for junk in ["", ".", "..", "abc", "abc.def", "%%%.%%%", "a.b.c"] {
            assert!(Cursor::decode(junk, &keys, 0).is_err(), "{junk}");
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
        assert_eq!(Cursor::decode(&fresh, &old, 0), Err(CursorError::UnknownKey));
        assert!(Cursor::names_unknown_key(&fresh, &old));
        assert!(!Cursor::names_unknown_key(&fresh, &rotated));
        // Not a key the ring knows at all.
        assert_eq!(Cursor::decode(&cursor().encode(&ring(b"stranger")), &rotated, 0), Err(CursorError::UnknownKey));
    }

    /// The framing and tag of the previous release: its tokens verify here, and it verifies
    /// ours (it ignores "k"), so a rolling upgrade breaks no paging run.
    #[test]
    fn tokens_of_the_previous_release_and_ours_are_compatible() {
        let payload = serde_json::to_vec(&cursor()).unwrap_or_default();
        let old_token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag(b"key", &payload).unwrap_or_default())
        );
        assert_eq!(Cursor::decode(&old_token, &ring(b"key"), 0), Ok(cursor()));
        assert_eq!(Cursor::decode(&old_token, &ring(b"other"), 0), Err(CursorError::Invalid));
        assert_eq!(Cursor::decode(&old_token, &ring(b"new").with_previous(b"key", 10), 5), Ok(cursor()));
        // The previous release's decoder: one '.', the v1 tag, unknown fields ignored.
        let ours = cursor().encode(&ring(b"key"));
        let (p, t) = ours.split_once('.').unwrap();
        let p = URL_SAFE_NO_PAD.decode(p).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(t).unwrap(), tag(b"key", &p).unwrap());
        assert_eq!(serde_json::from_slice::<Cursor>(&p).unwrap(), cursor());
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
