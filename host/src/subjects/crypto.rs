//! The cryptography of subject encryption: the master key and what is
//! derived from it, data keys, field tokens, wrapped keys and pseudonyms.
//!
//! ```text
//!  master key (32 bytes, operator's secret)
//!    ├─ HKDF "wrap"  ─► wrapping key: XChaCha20-Poly1305 over each data key,
//!    │                  and over the index key
//!    └─ HKDF "index" ─► the index key of a store first opened with this
//!                       master key. The index key makes HMAC(subject id) =
//!                       the subject's index, so the key store finds a
//!                       subject's keys without holding its id. It outlives
//!                       a rotation of the master key: the store keeps it
//!                       wrapped under every master key that opens it.
//!  data key (32 random bytes per subject lifetime, named by a random key id)
//!    ├─ XChaCha20-Poly1305 over each field ─► token "sy:v2:<key id>:<nonce+ciphertext>"
//!    │    associated data: key id, scope and the field's JSON Pointer, so a
//!    │    token altered, moved to another field, or carried to another topic
//!    │    fails authentication
//!    └─ HMAC "pseudonym" ─► "sy:ps:<...>", linked to nobody once the key is gone
//! ```
//!
//! A token's **scope** is where it may be read: the topic the route that
//! made it writes to. The host fixes both ends, never a plugin: `encrypt`
//! binds a token to its route's sink topic, `decrypt` opens it only for a
//! batch read from that topic. A token lifted from one topic and written
//! into another (posted to a public API whose route writes elsewhere, say)
//! does not open there, whatever field it is put in.
//!
//! Nonces are 192 random bits: collisions are negligible at any volume, so
//! no nonce state is kept. Keys are wiped from memory when dropped.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Every token made now starts with this; plugins recognise tokens by it.
pub const TOKEN_PREFIX: &str = "sy:v2:";
/// Tokens of the first format: bound to their field but not to a scope.
/// Refused, so that no token can be read outside the topic it was made for.
pub const LEGACY_TOKEN_PREFIX: &str = "sy:v1:";
/// A key reference (a record key standing for a subject) starts with this.
pub const KEY_REF_PREFIX: &str = "sy:key:";
/// A pseudonym starts with this.
pub const PSEUDONYM_PREFIX: &str = "sy:ps:";

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_ID_LEN: usize = 16;

/// Why a token or a wrapped key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not a token of this format (or of another version).
    #[error("not a switchyard token")]
    Malformed,
    /// A token of the first format, which was not bound to a scope.
    #[error(
        "a token of the first format (sy:v1), made before tokens were bound to the topic \
         they are written to; it is not accepted"
    )]
    Legacy,
    /// The ciphertext does not authenticate under its key for this field
    /// and scope: altered, truncated, copied from another field, or carried
    /// from another topic.
    #[error(
        "the token failed authentication (tampered with, or not made for this field of this \
         topic)"
    )]
    Tampered,
}

/// The operator's master key. Never printed.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<withheld>)")
    }
}

impl MasterKey {
    /// A short public name of this key: the first 8 bytes of an HMAC of a
    /// fixed text, in hex. It says which key the key store was written
    /// with, and reveals nothing of the key.
    pub fn fingerprint(&self) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        mac.update(b"switchyard master key fingerprint v1");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// Parse 32 bytes given as 64 hex digits (`openssl rand -hex 32`) or as
    /// base64. Errors describe the text's shape, never the text.
    pub fn parse(text: &str) -> Result<MasterKey, String> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode_to_slice(text, &mut bytes[..]).map_err(|e| e.to_string())?;
            return Ok(MasterKey(bytes));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map(Zeroizing::new);
        match decoded {
            Ok(decoded) if decoded.len() == 32 => {
                bytes.copy_from_slice(&decoded);
                Ok(MasterKey(bytes))
            }
            _ => Err(format!(
                "the master key must be 32 bytes, as 64 hex digits (e.g. `openssl rand -hex 32`) \
                 or base64; got {} characters that are neither",
                text.chars().count()
            )),
        }
    }

    /// A random key, for stores that live only in memory.
    pub fn random() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut bytes[..]);
        MasterKey(bytes)
    }
}

/// The keys a master key gives: its wrapping key, and the store's index
/// key.
pub struct KeyRing {
    wrap: XChaCha20Poly1305,
    index: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

impl KeyRing {
    /// The ring of a store first opened with `master`: the index key
    /// derived from it.
    pub fn new(master: &MasterKey) -> KeyRing {
        KeyRing::with_index(master, KeyRing::index_key_of(master))
    }

    /// The index key of a store first opened with `master`.
    pub fn index_key_of(master: &MasterKey) -> Zeroizing<[u8; 32]> {
        let hkdf = Hkdf::<Sha256>::new(None, &master.0[..]);
        let mut index = Zeroizing::new([0u8; 32]);
        hkdf.expand(b"switchyard subject index v1", &mut index[..])
            .expect("32 bytes is a valid HKDF output length");
        index
    }

    /// This ring's index key, for a ring of another master key over the
    /// same store.
    pub fn index_key(&self) -> Zeroizing<[u8; 32]> {
        self.index.clone()
    }

    /// The ring of `master` over a store whose index key is `index` (kept
    /// from the master key the store was first opened with).
    pub fn with_index(master: &MasterKey, index: Zeroizing<[u8; 32]>) -> KeyRing {
        let hkdf = Hkdf::<Sha256>::new(None, &master.0[..]);
        let mut wrap = Zeroizing::new([0u8; 32]);
        hkdf.expand(b"switchyard subject key wrapping v1", &mut wrap[..])
            .expect("32 bytes is a valid HKDF output length");
        KeyRing {
            wrap: XChaCha20Poly1305::new((&*wrap).into()),
            index,
            fingerprint: master.fingerprint(),
        }
    }

    /// The fingerprint of the master key this ring wraps with.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The index key, sealed under this ring's master key, for the store to
    /// keep.
    pub fn wrap_index_key(&self) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .wrap
            .encrypt(
                &nonce,
                Payload {
                    msg: &self.index[..],
                    aad: INDEX_KEY_AAD,
                },
            )
            .expect("encryption into a Vec cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// The index key sealed by [`KeyRing::wrap_index_key`] under `master`.
    pub fn unwrap_index_key(
        master: &MasterKey,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(CryptoError::Tampered);
        }
        let ring = KeyRing::with_index(master, Zeroizing::new([0u8; 32]));
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            ring.wrap
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: INDEX_KEY_AAD,
                    },
                )
                .map_err(|_| CryptoError::Tampered)?,
        );
        let mut index = Zeroizing::new([0u8; 32]);
        index.copy_from_slice(&plain);
        Ok(index)
    }

    /// The subject's index: the same for the same id under the same master
    /// key, and nothing an outsider can reverse.
    pub fn subject_index(&self, subject: &str) -> SubjectIndex {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.index[..])
            .expect("HMAC takes any key length");
        mac.update(subject.as_bytes());
        SubjectIndex(mac.finalize().into_bytes().into())
    }

    /// `key` sealed for storage, bound to its id and subject index.
    pub fn wrap(&self, id: &KeyId, index: &SubjectIndex, key: &DataKey) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = wrap_aad(id, index);
        let sealed = self
            .wrap
            .encrypt(
                &nonce,
                Payload {
                    msg: &key.0[..],
                    aad: &aad,
                },
            )
            .expect("encryption into a Vec cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// The data key sealed by [`KeyRing::wrap`]; fails for another master
    /// key, id or subject, or altered bytes.
    pub fn unwrap(
        &self,
        id: &KeyId,
        index: &SubjectIndex,
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(CryptoError::Tampered);
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let aad = wrap_aad(id, index);
        let plain = Zeroizing::new(
            self.wrap
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| CryptoError::Tampered)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(DataKey(key))
    }
}

const INDEX_KEY_AAD: &[u8] = b"switchyard index key v1";

fn wrap_aad(id: &KeyId, index: &SubjectIndex) -> Vec<u8> {
    [b"switchyard wrapped key v1\0".as_slice(), &id.0, &index.0].concat()
}

/// HMAC of a subject id under the index key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubjectIndex(pub [u8; 32]);

impl SubjectIndex {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn decode(text: &str) -> Option<SubjectIndex> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(SubjectIndex(bytes.try_into().ok()?))
    }
}

/// The random id of one data key (one subject lifetime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    pub fn random() -> KeyId {
        let mut id = [0u8; KEY_ID_LEN];
        OsRng.fill_bytes(&mut id);
        KeyId(id)
    }

    /// 22 URL-safe characters.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn decode(text: &str) -> Option<KeyId> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(KeyId(bytes.try_into().ok()?))
    }

    /// The key reference records of this subject lifetime are keyed by.
    pub fn key_ref(&self) -> String {
        format!("{KEY_REF_PREFIX}{}", self.encode())
    }
}

/// One subject's data key. Wiped from memory when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<withheld>)")
    }
}

impl DataKey {
    pub fn random() -> DataKey {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        DataKey(key)
    }

    /// The token of `plaintext` at `field` (a JSON Pointer), readable in
    /// `scope` only.
    pub fn encrypt(&self, id: &KeyId, scope: &str, field: &str, plaintext: &[u8]) -> String {
        let cipher = XChaCha20Poly1305::new((&*self.0).into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = token_aad(id, scope, field);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("encryption into a Vec cannot fail");
        let mut body = Vec::with_capacity(NONCE_LEN + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        format!(
            "{TOKEN_PREFIX}{}:{}",
            id.encode(),
            URL_SAFE_NO_PAD.encode(body)
        )
    }

    /// The plaintext of `token` (already parsed) at `field`, read in
    /// `scope`.
    pub fn decrypt(&self, token: &Token, scope: &str, field: &str) -> Result<Vec<u8>, CryptoError> {
        let cipher = XChaCha20Poly1305::new((&*self.0).into());
        let (nonce, sealed) = token.body.split_at(NONCE_LEN);
        let aad = token_aad(&token.key, scope, field);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered)
    }

    /// The subject's pseudonym for this key's lifetime.
    pub fn pseudonym(&self) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]).expect("HMAC takes any key length");
        mac.update(b"switchyard pseudonym v1");
        let mut digest: [u8; 32] = mac.finalize().into_bytes().into();
        let text = format!(
            "{PSEUDONYM_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(&digest[..16])
        );
        digest.zeroize();
        text
    }
}

/// What a token is bound to besides its key. The scope's length comes
/// first, so that no scope and field can be split another way.
fn token_aad(id: &KeyId, scope: &str, field: &str) -> Vec<u8> {
    let scope_len = u32::try_from(scope.len()).unwrap_or(u32::MAX).to_be_bytes();
    [
        b"switchyard field token v2\0".as_slice(),
        &id.0,
        &scope_len,
        scope.as_bytes(),
        field.as_bytes(),
    ]
    .concat()
}

/// A token taken apart: which key, and the nonce with the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub key: KeyId,
    body: Vec<u8>,
}

impl Token {
    pub fn parse(text: &str) -> Result<Token, CryptoError> {
        if text.starts_with(LEGACY_TOKEN_PREFIX) {
            return Err(CryptoError::Legacy);
        }
        let rest = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(CryptoError::Malformed)?;
        let (key, body) = rest.split_once(':').ok_or(CryptoError::Malformed)?;
        let key = KeyId::decode(key).ok_or(CryptoError::Malformed)?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Malformed)?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        Ok(Token { key, body })
    }
}

/// Whether `s` has the shape of a token of any format (`sy:v<digits>:`),
/// whether or not it would open.
pub fn is_token_shaped(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("sy:v") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest.as_bytes().get(digits) == Some(&b':')
}

/// The JSON Pointers of the strings in the JSON document `json` that have
/// the shape of a token, at most `limit` of them; empty for a document
/// without any, or for bytes that are not JSON (nothing to find in them).
///
/// Records that arrive over HTTP are checked with this: tokens are made by
/// switchyard for a topic and have no business coming from a client. The
/// bytes are scanned first, so that a body without a token is not parsed: a
/// token's text needs its prefix, or a `\u` escape that could spell it.
pub fn token_pointers(json: &[u8], limit: usize) -> Vec<String> {
    if memchr::memmem::find(json, b"sy:v").is_none() && memchr::memmem::find(json, b"\\u").is_none()
    {
        return Vec::new();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    collect_tokens(&value, &mut String::new(), limit, &mut found);
    found
}

fn collect_tokens(
    value: &serde_json::Value,
    at: &mut String,
    limit: usize,
    found: &mut Vec<String>,
) {
    use serde_json::Value;
    if found.len() >= limit {
        return;
    }
    let below = |at: &mut String, name: &str, value: &Value, found: &mut Vec<String>| {
        let len = at.len();
        at.push('/');
        at.push_str(&name.replace('~', "~0").replace('/', "~1"));
        collect_tokens(value, at, limit, found);
        at.truncate(len);
    };
    match value {
        Value::String(s) if is_token_shaped(s) => found.push(if at.is_empty() {
            String::from("/")
        } else {
            at.clone()
        }),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                below(at, &i.to_string(), item, found);
            }
        }
        Value::Object(object) => {
            for (name, item) in object {
                below(at, name, item, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn master_keys_parse_from_hex_or_base64_and_never_show() {
        let a = MasterKey::parse(HEX).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(HEX).unwrap());
        let b = MasterKey::parse(&b64).unwrap();
        assert_eq!(a.0[..], b.0[..]);
        assert_eq!(format!("{a:?}"), "MasterKey(<withheld>)");
        for bad in ["", "short", &HEX[..62], &format!("{HEX}00")] {
            let err = MasterKey::parse(bad).unwrap_err();
            assert!(err.contains("must be 32 bytes"), "{err}");
            assert!(
                bad.len() < 8 || !err.contains(bad),
                "the key shows in: {err}"
            );
        }
    }

    #[test]
    fn a_token_round_trips_only_at_its_own_field_in_its_own_scope_and_unaltered() {
        let key = DataKey::random();
        let id = KeyId::random();
        let token = key.encrypt(&id, "internal", "/payload/email", br#""ada@example.com""#);
        assert!(token.starts_with(TOKEN_PREFIX), "{token}");
        assert!(!token.contains("ada"), "{token}");
        let parsed = Token::parse(&token).unwrap();
        assert_eq!(parsed.key, id);
        assert_eq!(
            key.decrypt(&parsed, "internal", "/payload/email").unwrap(),
            br#""ada@example.com""#
        );
        // Moved to another field.
        assert_eq!(
            key.decrypt(&parsed, "internal", "/payload/phone"),
            Err(CryptoError::Tampered)
        );
        // Carried to another topic, at the same field.
        assert_eq!(
            key.decrypt(&parsed, "user-events", "/payload/email"),
            Err(CryptoError::Tampered)
        );
        // Scope and field cannot be split another way.
        let split = key.encrypt(&id, "a", "b/c", b"1");
        let split = Token::parse(&split).unwrap();
        assert_eq!(key.decrypt(&split, "ab", "/c"), Err(CryptoError::Tampered));
        // Another key.
        assert_eq!(
            DataKey::random().decrypt(&parsed, "internal", "/payload/email"),
            Err(CryptoError::Tampered)
        );
        // One character of the ciphertext changed.
        let mut altered = token.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = Token::parse(std::str::from_utf8(&altered).unwrap()).unwrap();
        assert_eq!(
            key.decrypt(&altered, "internal", "/payload/email"),
            Err(CryptoError::Tampered)
        );
        // Two encryptions of the same value differ (random nonces).
        assert_ne!(
            token,
            key.encrypt(&id, "internal", "/payload/email", br#""ada@example.com""#)
        );
    }

    #[test]
    fn malformed_tokens_are_told_apart_from_tampered_ones() {
        for bad in [
            "ada@example.com",
            "sy:v2:",
            "sy:v2:nokey",
            "sy:v2:short:AAAA",
            "sy:v3:AAAAAAAAAAAAAAAAAAAAAA:AAAA",
            "sy:v2:AAAAAAAAAAAAAAAAAAAAAA:not base64!",
        ] {
            assert_eq!(Token::parse(bad), Err(CryptoError::Malformed), "{bad}");
        }
        // The first format is told apart: it is refused for what it is.
        assert_eq!(
            Token::parse("sy:v1:AAAAAAAAAAAAAAAAAAAAAA:AAAA"),
            Err(CryptoError::Legacy)
        );
    }

    #[test]
    fn tokens_are_found_in_json_documents_escaped_or_not() {
        assert!(is_token_shaped("sy:v2:abc"));
        assert!(is_token_shaped("sy:v1:"));
        assert!(is_token_shaped("sy:v10:x"));
        for not in [
            "sy:v:",
            "sy:vx:",
            "sy:v2",
            "xsy:v2:",
            "sy:key:abc",
            "sy:ps:abc",
            "",
        ] {
            assert!(!is_token_shaped(not), "{not}");
        }
        let doc = br#"{"a":"sy:v2:k:b","b":[1,{"c~/d":"sy:v1:x:y"}],"e":"plain","f":"sy:key:k"}"#;
        assert_eq!(token_pointers(doc, 10), ["/a", "/b/1/c~0~1d"]);
        assert_eq!(token_pointers(doc, 1), ["/a"]);
        // Escaped so that the bytes never show the prefix.
        let escaped = br#"{"a":{"b":"\u0073y:v2:k:b"}}"#;
        assert_eq!(token_pointers(escaped, 10), ["/a/b"]);
        assert_eq!(token_pointers(br#""sy:v2:k:b""#, 10), ["/"]);
        // Nothing to find: no prefix, or not JSON.
        assert!(token_pointers(br#"{"a":"sy:key:k","u":"\u00e9"}"#, 10).is_empty());
        assert!(token_pointers(b"sy:v2: not json", 10).is_empty());
    }

    #[test]
    fn wrapped_keys_open_only_under_their_master_id_and_subject() {
        let ring = KeyRing::new(&MasterKey::parse(HEX).unwrap());
        let (id, index) = (KeyId::random(), ring.subject_index("u-1"));
        let key = DataKey::random();
        let wrapped = ring.wrap(&id, &index, &key);
        let opened = ring.unwrap(&id, &index, &wrapped).unwrap();
        assert_eq!(opened.0[..], key.0[..]);
        let other_ring = KeyRing::new(&MasterKey::random());
        assert!(other_ring.unwrap(&id, &index, &wrapped).is_err());
        assert!(ring.unwrap(&KeyId::random(), &index, &wrapped).is_err());
        assert!(ring
            .unwrap(&id, &ring.subject_index("u-2"), &wrapped)
            .is_err());
        assert!(ring.unwrap(&id, &index, &wrapped[1..]).is_err());
    }

    #[test]
    fn the_index_key_outlives_the_master_key_it_was_made_with() {
        let (old, new) = (MasterKey::random(), MasterKey::random());
        assert_ne!(old.fingerprint(), new.fingerprint());
        assert_eq!(old.fingerprint(), old.fingerprint());
        assert_eq!(old.fingerprint().len(), 16);
        let first = KeyRing::new(&old);
        let sealed = first.wrap_index_key();
        assert!(KeyRing::unwrap_index_key(&new, &sealed).is_err());
        let index = KeyRing::unwrap_index_key(&old, &sealed).unwrap();
        // Another master key over the same index key: the same subject
        // indexes, its own wrapping.
        let rotated = KeyRing::with_index(&new, index);
        assert_eq!(rotated.subject_index("u-1"), first.subject_index("u-1"));
        assert_eq!(rotated.fingerprint(), new.fingerprint());
        let (id, key) = (KeyId::random(), DataKey::random());
        let wrapped = first.wrap(&id, &first.subject_index("u-1"), &key);
        assert!(rotated
            .unwrap(&id, &first.subject_index("u-1"), &wrapped)
            .is_err());
        let resealed = KeyRing::unwrap_index_key(&new, &rotated.wrap_index_key()).unwrap();
        assert_eq!(
            KeyRing::with_index(&new, resealed).subject_index("u-2"),
            first.subject_index("u-2")
        );
    }

    #[test]
    fn indexes_are_stable_per_master_key_and_pseudonyms_per_data_key() {
        let ring = KeyRing::new(&MasterKey::parse(HEX).unwrap());
        assert_eq!(ring.subject_index("u-1"), ring.subject_index("u-1"));
        assert_ne!(ring.subject_index("u-1"), ring.subject_index("u-2"));
        let again = KeyRing::new(&MasterKey::parse(HEX).unwrap());
        assert_eq!(ring.subject_index("u-1"), again.subject_index("u-1"));
        let other = KeyRing::new(&MasterKey::random());
        assert_ne!(ring.subject_index("u-1"), other.subject_index("u-1"));

        let key = DataKey::random();
        assert_eq!(key.pseudonym(), key.pseudonym());
        assert!(key.pseudonym().starts_with(PSEUDONYM_PREFIX));
        assert_ne!(key.pseudonym(), DataKey::random().pseudonym());
        let id = KeyId::random();
        assert_eq!(KeyId::decode(&id.encode()), Some(id));
        assert!(id.key_ref().starts_with(KEY_REF_PREFIX));
    }
}
