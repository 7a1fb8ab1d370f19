//! Personal data encrypted per data subject by the host (crypto-shredding).
//!
//! The host keeps one data key per subject; a plugin hands it values and
//! gets back tokens (strings starting with [`TOKEN_PREFIX`]) and never sees a
//! key. Erasing a subject on the host destroys its key, after which every
//! token made for that subject, wherever it was written, decrypts to
//! nothing. Each token is bound to the `field` it was made for, the JSON
//! Pointer of its place in the record (`/payload/email`), so a token copied
//! to another field does not decrypt there.
//!
//! Plugins call the host through the [`Subjects`] trait rather than the raw
//! imports, so that their logic runs in native unit tests: the imports exist
//! only inside a WebAssembly host, and [`HostSubjects`] panics anywhere else.
//! With the `testing` feature, [`FakeSubjects`] is an in-memory stand-in that
//! behaves like the host: tokens bound to their field, tampering detected,
//! subjects that can be erased.
//!
//! ```
//! use switchyard_guest::subjects::{self, Subjects};
//!
//! fn seal_email(host: &dyn Subjects, user: &str, email: &str) -> Result<String, subjects::SubjectError> {
//!     let json = serde_json::to_vec(email).expect("a string encodes");
//!     host.encrypt(user, "/email", &json)
//! }
//! ```

use std::fmt;

use crate::bindings::switchyard::plugin::subjects as host;
use crate::{Error, Outcome};

/// How every token the host makes now starts.
pub const TOKEN_PREFIX: &str = "sy:v2:";

/// How a key reference (the record key standing for a subject) starts.
pub const KEY_REF_PREFIX: &str = "sy:key:";

/// Whether `s` has the shape of a token of any format the host has made
/// (`sy:v<digits>:`), whether or not it would open. Tokens of older formats
/// count: the host refuses them, and a plugin must not mistake one for a
/// plain value.
pub fn is_token(s: &str) -> bool {
    format_end(s).is_some()
}

/// The length of `s`'s `sy:v<digits>:` prefix, if it has one.
fn format_end(s: &str) -> Option<usize> {
    let rest = s.strip_prefix("sy:v")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0 && rest.as_bytes().get(digits) == Some(&b':')).then_some(4 + digits + 1)
}

/// The id of the key a token was made with: the subject lifetime it
/// belongs to. Tokens of one subject share it, so a plugin can tell that
/// two tokens (or a token and a [key reference](key_ref_key)) belong to the
/// same subject without decrypting either. `None` if `s` is not a token.
pub fn token_key(s: &str) -> Option<&str> {
    let rest = &s[format_end(s)?..];
    Some(rest.split_once(':').map_or(rest, |(key, _)| key))
}

/// The key id of a key reference (`sy:key:<id>`), if `s` is one.
pub fn key_ref_key(s: &str) -> Option<&str> {
    s.strip_prefix(KEY_REF_PREFIX).filter(|id| !id.is_empty())
}

/// Why the host could not do a subject operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectError {
    /// Subject encryption is not configured on the host (no master key):
    /// the same on every retry.
    Unavailable(String),
    /// The token is not a token, was tampered with, or was not made for
    /// this field.
    Invalid(String),
    /// The key store did not answer in time; the same call may succeed later.
    Retryable(String),
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectError::Unavailable(m) => write!(f, "unavailable: {m}"),
            SubjectError::Invalid(m) => write!(f, "invalid: {m}"),
            SubjectError::Retryable(m) => write!(f, "retryable: {m}"),
        }
    }
}

impl std::error::Error for SubjectError {}

impl From<host::SubjectError> for SubjectError {
    fn from(e: host::SubjectError) -> Self {
        match e {
            host::SubjectError::Unavailable(m) => SubjectError::Unavailable(m),
            host::SubjectError::Invalid(m) => SubjectError::Invalid(m),
            host::SubjectError::Retryable(m) => SubjectError::Retryable(m),
        }
    }
}

impl SubjectError {
    /// The failure of a record whose processing needed this operation;
    /// `context` says which step, e.g. `encrypting /payload/email`.
    ///
    /// `Retryable` is a retryable failure: the host retries the record with
    /// backoff. `Unavailable` is fatal, and the message tells the operator
    /// what to configure: no record needing subjects can pass until then.
    /// `Invalid` is fatal too: it is the answer to a token the plugin did
    /// not check first, or to a subject the host refuses, and retrying gives
    /// the same answer. A plugin for which an invalid token is a fault of the
    /// record (decrypting tokens read from it) rejects the record instead.
    pub fn into_failure(self, context: &str) -> Outcome {
        Outcome::Fail(match self {
            SubjectError::Retryable(m) => Error::Retryable(format!(
                "{context}: the subject key store cannot answer now ({m}); the record can be tried \
                 again"
            )),
            SubjectError::Unavailable(m) => Error::Fatal(format!(
                "{context}: subject encryption is not available on this host ({m}); \
                 configure [subjects] with a master key"
            )),
            SubjectError::Invalid(m) => {
                Error::Fatal(format!("{context}: the host refused the request ({m})"))
            }
        })
    }
}

/// The subject operations of the host, as a trait so that plugin logic can
/// be given [`HostSubjects`] in a component and a fake in unit tests.
pub trait Subjects {
    /// A token for `plaintext` (typically a field's JSON text), encrypted
    /// for `subject` and bound to `field`, the JSON Pointer of its place in
    /// the record.
    fn encrypt(&self, subject: &str, field: &str, plaintext: &[u8])
        -> Result<String, SubjectError>;

    /// The plaintext of `token`, made for the same `field`; `None` when its
    /// subject has been erased.
    fn decrypt(&self, token: &str, field: &str) -> Result<Option<Vec<u8>>, SubjectError>;

    /// A reference to the subject's current key (`sy:key:...`): the same for
    /// all of the subject's events until it is erased, and not its id.
    fn key_ref(&self, subject: &str) -> Result<String, SubjectError>;

    /// A pseudonym of the subject (`sy:ps:...`), stable while its key lives
    /// and linked to nobody once the subject is erased.
    fn pseudonym(&self, subject: &str) -> Result<String, SubjectError>;
}

/// The host's `subjects` imports. Only usable inside a WebAssembly host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSubjects;

impl Subjects for HostSubjects {
    fn encrypt(
        &self,
        subject: &str,
        field: &str,
        plaintext: &[u8],
    ) -> Result<String, SubjectError> {
        host::encrypt(subject, field, plaintext).map_err(Into::into)
    }

    fn decrypt(&self, token: &str, field: &str) -> Result<Option<Vec<u8>>, SubjectError> {
        host::decrypt(token, field).map_err(Into::into)
    }

    fn key_ref(&self, subject: &str) -> Result<String, SubjectError> {
        host::key_ref(subject).map_err(Into::into)
    }

    fn pseudonym(&self, subject: &str) -> Result<String, SubjectError> {
        host::pseudonym(subject).map_err(Into::into)
    }
}

/// [`HostSubjects::encrypt`].
pub fn encrypt(subject: &str, field: &str, plaintext: &[u8]) -> Result<String, SubjectError> {
    HostSubjects.encrypt(subject, field, plaintext)
}

/// [`HostSubjects::decrypt`].
pub fn decrypt(token: &str, field: &str) -> Result<Option<Vec<u8>>, SubjectError> {
    HostSubjects.decrypt(token, field)
}

/// [`HostSubjects::key_ref`].
pub fn key_ref(subject: &str) -> Result<String, SubjectError> {
    HostSubjects.key_ref(subject)
}

/// [`HostSubjects::pseudonym`].
pub fn pseudonym(subject: &str) -> Result<String, SubjectError> {
    HostSubjects.pseudonym(subject)
}

#[cfg(any(test, feature = "testing"))]
pub use fake::FakeSubjects;

#[cfg(any(test, feature = "testing"))]
mod fake {
    use std::cell::RefCell;
    use std::collections::hash_map::DefaultHasher;
    use std::collections::{HashMap, HashSet};
    use std::hash::{Hash, Hasher};

    use super::{SubjectError, Subjects, TOKEN_PREFIX};

    /// An in-memory stand-in for the host's subject service, for unit tests.
    ///
    /// Like the host, it gives each subject a key when first seen, binds
    /// each token to its field, refuses tokens it did not make (any edit of
    /// a token makes it unknown) as `Invalid`, and after [`erase`] decrypts
    /// the subject's tokens to `None` and gives the subject a new key (so a
    /// new key ref and pseudonym) when it is seen again. Tokens are
    /// deterministic: the same calls in the same order give the same tokens.
    /// Each `encrypt` gives a new token, as encryption with a fresh nonce
    /// would.
    ///
    /// [`erase`]: FakeSubjects::erase
    #[derive(Debug, Default)]
    pub struct FakeSubjects {
        state: RefCell<State>,
    }

    #[derive(Debug, Default)]
    struct State {
        /// The current key of each subject that has one.
        keys: HashMap<String, u32>,
        /// Keys handed out so far; the next key is this number.
        issued: u32,
        /// Keys destroyed by erasing their subject.
        erased: HashSet<u32>,
        /// Every token made, with what it seals.
        tokens: HashMap<String, Sealed>,
        /// When set, every call fails with this.
        failure: Option<SubjectError>,
    }

    #[derive(Debug)]
    struct Sealed {
        key: u32,
        field: String,
        plaintext: Vec<u8>,
    }

    impl State {
        fn key_of(&mut self, subject: &str) -> u32 {
            if let Some(key) = self.keys.get(subject) {
                return *key;
            }
            let key = self.issued;
            self.issued += 1;
            self.keys.insert(subject.to_owned(), key);
            key
        }

        fn check(&self) -> Result<(), SubjectError> {
            self.failure.clone().map_or(Ok(()), Err)
        }
    }

    impl FakeSubjects {
        /// A service with no subjects yet.
        pub fn new() -> Self {
            Self::default()
        }

        /// Erase `subject`: destroy its key, as `DELETE /admin/subjects/{id}`
        /// does on the host.
        pub fn erase(&self, subject: &str) {
            let mut state = self.state.borrow_mut();
            if let Some(key) = state.keys.remove(subject) {
                state.erased.insert(key);
            }
        }

        /// Make every later call fail with `failure` (`None` to answer again).
        pub fn set_failure(&self, failure: Option<SubjectError>) {
            self.state.borrow_mut().failure = failure;
        }
    }

    impl Subjects for FakeSubjects {
        fn encrypt(
            &self,
            subject: &str,
            field: &str,
            plaintext: &[u8],
        ) -> Result<String, SubjectError> {
            let mut state = self.state.borrow_mut();
            state.check()?;
            let key = state.key_of(subject);
            let serial = state.tokens.len();
            let mut tag = DefaultHasher::new();
            (serial, key, field, plaintext).hash(&mut tag);
            let token = format!("{TOKEN_PREFIX}fake{key}:{serial}-{:016x}", tag.finish());
            state.tokens.insert(
                token.clone(),
                Sealed {
                    key,
                    field: field.to_owned(),
                    plaintext: plaintext.to_vec(),
                },
            );
            Ok(token)
        }

        fn decrypt(&self, token: &str, field: &str) -> Result<Option<Vec<u8>>, SubjectError> {
            let state = self.state.borrow();
            state.check()?;
            let Some(sealed) = state.tokens.get(token) else {
                return Err(SubjectError::Invalid("token failed authentication".into()));
            };
            if sealed.field != field {
                return Err(SubjectError::Invalid(format!(
                    "token was not made for field {field}"
                )));
            }
            if state.erased.contains(&sealed.key) {
                return Ok(None);
            }
            Ok(Some(sealed.plaintext.clone()))
        }

        fn key_ref(&self, subject: &str) -> Result<String, SubjectError> {
            let mut state = self.state.borrow_mut();
            state.check()?;
            Ok(format!("sy:key:fake{}", state.key_of(subject)))
        }

        fn pseudonym(&self, subject: &str) -> Result<String, SubjectError> {
            let mut state = self.state.borrow_mut();
            state.check()?;
            Ok(format!("sy:ps:fake{}", state.key_of(subject)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_string_with_a_format_prefix_of_any_version() {
        assert!(is_token("sy:v2:abc"));
        assert!(is_token("sy:v1:abc"));
        assert!(is_token("sy:v12:abc"));
        assert!(is_token(TOKEN_PREFIX));
        for not in [
            "",
            "sy:v2",
            "sy:v:abc",
            "sy:vx:abc",
            "SY:V2:abc",
            " sy:v2:abc",
            "sy:key:1",
            "sy:ps:1",
        ] {
            assert!(!is_token(not), "{not:?}");
        }
    }

    #[test]
    fn the_key_of_a_token_and_of_a_key_reference_can_be_compared() {
        assert_eq!(token_key("sy:v2:KEY1:body"), Some("KEY1"));
        assert_eq!(token_key("sy:v1:KEY1:body"), Some("KEY1"));
        assert_eq!(token_key("sy:v2:"), Some(""));
        assert_eq!(token_key("plain"), None);
        assert_eq!(key_ref_key("sy:key:KEY1"), Some("KEY1"));
        assert_eq!(key_ref_key("sy:key:"), None);
        assert_eq!(key_ref_key("KEY1"), None);
        let fake = FakeSubjects::new();
        let token = fake.encrypt("u-1", "/email", b"1").unwrap();
        let reference = fake.key_ref("u-1").unwrap();
        assert_eq!(token_key(&token), key_ref_key(&reference));
        let other = fake.encrypt("u-2", "/email", b"1").unwrap();
        assert_ne!(token_key(&other), key_ref_key(&reference));
    }

    #[test]
    fn fake_tokens_round_trip_bound_to_their_field() {
        let fake = FakeSubjects::new();
        let token = fake.encrypt("u-1", "/email", b"\"a@b.c\"").unwrap();
        assert!(is_token(&token), "{token}");
        assert!(!token.contains("a@b.c"), "{token}");
        assert_eq!(
            fake.decrypt(&token, "/email").unwrap().as_deref(),
            Some(&b"\"a@b.c\""[..])
        );
        // Another place, or an edited token, is refused.
        assert!(matches!(
            fake.decrypt(&token, "/phone"),
            Err(SubjectError::Invalid(m)) if m.contains("/phone")
        ));
        let mut edited = token.clone();
        edited.pop();
        edited.push('!');
        assert!(matches!(
            fake.decrypt(&edited, "/email"),
            Err(SubjectError::Invalid(_))
        ));
        // A fresh token per call, the same sequence on a fresh service.
        let again = fake.encrypt("u-1", "/email", b"\"a@b.c\"").unwrap();
        assert_ne!(token, again);
        assert_eq!(
            FakeSubjects::new()
                .encrypt("u-1", "/email", b"\"a@b.c\"")
                .unwrap(),
            token
        );
    }

    #[test]
    fn erasing_a_subject_shreds_its_tokens_and_gives_it_a_new_key() {
        let fake = FakeSubjects::new();
        let alice = fake.encrypt("alice", "/f", b"1").unwrap();
        let bob = fake.encrypt("bob", "/f", b"2").unwrap();
        let (ref_before, ps_before) = (
            fake.key_ref("alice").unwrap(),
            fake.pseudonym("alice").unwrap(),
        );
        assert!(ref_before.starts_with("sy:key:") && ps_before.starts_with("sy:ps:"));
        assert_eq!(fake.key_ref("alice").unwrap(), ref_before, "stable");
        assert_ne!(fake.key_ref("bob").unwrap(), ref_before);

        fake.erase("alice");
        assert_eq!(fake.decrypt(&alice, "/f").unwrap(), None);
        assert_eq!(
            fake.decrypt(&bob, "/f").unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_ne!(fake.key_ref("alice").unwrap(), ref_before);
        assert_ne!(fake.pseudonym("alice").unwrap(), ps_before);
        let reborn = fake.encrypt("alice", "/f", b"3").unwrap();
        assert_eq!(
            fake.decrypt(&reborn, "/f").unwrap().as_deref(),
            Some(&b"3"[..])
        );
    }

    #[test]
    fn a_set_failure_answers_every_call_until_cleared() {
        let fake = FakeSubjects::new();
        let token = fake.encrypt("u", "/f", b"1").unwrap();
        let busy = SubjectError::Retryable("busy".into());
        fake.set_failure(Some(busy.clone()));
        assert_eq!(fake.encrypt("u", "/f", b"1"), Err(busy.clone()));
        assert_eq!(fake.decrypt(&token, "/f"), Err(busy.clone()));
        assert_eq!(fake.key_ref("u"), Err(busy.clone()));
        assert_eq!(fake.pseudonym("u"), Err(busy));
        fake.set_failure(None);
        assert!(fake.decrypt(&token, "/f").unwrap().is_some());
    }

    #[test]
    fn errors_become_failures_of_the_kind_the_host_routes_right() {
        let fail = |e: SubjectError| match e.into_failure("encrypting /email") {
            Outcome::Fail(error) => error,
            other => panic!("expected a failure, got {other:?}"),
        };
        match fail(SubjectError::Retryable("timeout".into())) {
            Error::Retryable(m) => assert!(
                m.starts_with(
                    "encrypting /email: the subject key store cannot answer now (timeout)"
                ),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        match fail(SubjectError::Unavailable("no master key".into())) {
            Error::Fatal(m) => assert_eq!(
                m,
                "encrypting /email: subject encryption is not available on this host \
                 (no master key); configure [subjects] with a master key"
            ),
            other => panic!("{other:?}"),
        }
        match fail(SubjectError::Invalid("bad subject".into())) {
            Error::Fatal(m) => assert_eq!(
                m,
                "encrypting /email: the host refused the request (bad subject)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn host_errors_convert_kind_for_kind() {
        for (from, to) in [
            (
                host::SubjectError::Unavailable("a".into()),
                SubjectError::Unavailable("a".into()),
            ),
            (
                host::SubjectError::Invalid("b".into()),
                SubjectError::Invalid("b".into()),
            ),
            (
                host::SubjectError::Retryable("c".into()),
                SubjectError::Retryable("c".into()),
            ),
        ] {
            assert_eq!(SubjectError::from(from), to);
        }
    }
}
