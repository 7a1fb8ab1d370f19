//! Credentials of the admin API: one bearer token, compared in constant
//! time, never logged or shown. It guards every change, and every read that
//! can show a record's contents (shadow samples, the details of a halt).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio_util::sync::CancellationToken;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// The admin token. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct AdminToken {
    /// SHA-256 of the token: what requests are compared against, so the
    /// comparison takes the same time whatever the length of a guess.
    digest: [u8; 32],
}

impl AdminToken {
    /// Shortest token accepted: a token that can be guessed is no lock.
    pub const MIN_LEN: usize = 16;

    pub fn new(token: &str) -> Result<AdminToken, String> {
        let token = token.trim();
        if token.len() < Self::MIN_LEN {
            return Err(format!(
                "the admin token must be at least {} characters (got {})",
                Self::MIN_LEN,
                token.len()
            ));
        }
        Ok(AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    pub(crate) fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&digest).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<withheld>)")
    }
}

/// The admin token in force: given once (`SWITCHYARD_ADMIN_TOKEN`), or read
/// from a file and read again when the file changes, so that an operator
/// rotates it without a restart and the old token stops working at once.
#[derive(Clone, Default)]
pub struct AdminCredential {
    token: Arc<ArcSwapOption<AdminToken>>,
    file: Option<PathBuf>,
}

impl fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminCredential")
            .field("set", &self.is_set())
            .field("file", &self.file)
            .finish()
    }
}

/// How often the token file is read again.
const TOKEN_FILE_POLL: Duration = Duration::from_secs(1);

impl AdminCredential {
    /// A token that never changes (or none: admin endpoints refused).
    pub fn fixed(token: Option<AdminToken>) -> AdminCredential {
        AdminCredential {
            token: Arc::new(ArcSwapOption::from(token.map(Arc::new))),
            file: None,
        }
    }

    /// The token in `path`, which must hold a valid one now.
    pub fn from_file(path: PathBuf) -> Result<AdminCredential, String> {
        let token = read_token_file(&path)?;
        Ok(AdminCredential {
            token: Arc::new(ArcSwapOption::from_pointee(token)),
            file: Some(path),
        })
    }

    pub fn is_set(&self) -> bool {
        self.token.load().is_some()
    }

    /// Whether `presented` is the token in force.
    pub(crate) fn matches(&self, presented: &str) -> bool {
        self.token
            .load()
            .as_ref()
            .is_some_and(|token| token.matches(presented))
    }

    /// Read the token file again every second until `stop`, and put what it
    /// holds in force when it changes. A file that becomes unreadable or
    /// holds a token too short disables the admin endpoints until it is
    /// fixed: an operator replacing a token that leaked wants the old one
    /// dead, not kept because the new one was mistyped.
    pub fn follow_file(&self, stop: CancellationToken) {
        let Some(path) = self.file.clone() else {
            return;
        };
        let token = self.token.clone();
        tokio::spawn(async move {
            let mut last = token.load().as_ref().map(|t| t.digest);
            let mut tick = tokio::time::interval(TOKEN_FILE_POLL);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let read = {
                    let path = path.clone();
                    tokio::task::spawn_blocking(move || read_token_file(&path)).await
                };
                match read {
                    Ok(Ok(new)) if Some(new.digest) != last => {
                        last = Some(new.digest);
                        token.store(Some(Arc::new(new)));
                        tracing::info!(file = %path.display(), "admin token file changed: the new token is in force, the old one no longer works");
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if last.is_some() => {
                        last = None;
                        token.store(None);
                        tracing::error!(
                            "{e}: admin endpoints are refused until the file holds a valid token"
                        );
                    }
                    Ok(Err(_)) | Err(_) => {}
                }
            }
        });
    }
}

fn read_token_file(path: &std::path::Path) -> Result<AdminToken, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the admin token file {}: {e}", path.display()))?;
    AdminToken::new(&text).map_err(|e| format!("admin token file {}: {e}", path.display()))
}

/// Middleware for mutating admin endpoints: `Authorization: Bearer TOKEN`.
pub async fn require_token(
    State(token): State<AdminCredential>,
    request: Request,
    next: Next,
) -> Response {
    if !token.is_set() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "no admin token is configured: admin changes and reads of record contents are \
             disabled (set SWITCHYARD_ADMIN_TOKEN or --admin-token-file)",
        )
        .into_response();
    }
    match presented(request.headers()) {
        Some(presented) if token.matches(presented.trim()) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is not valid"),
        None => unauthorized("this endpoint needs `Authorization: Bearer <admin token>`"),
    }
}

/// The bearer token a request presents, if any.
fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
}

/// Who reads an endpoint that anyone may read but that shows more to the
/// admin token's holder (a halt's details, which may quote a record). A
/// request presenting a token that is not the admin token is refused (401),
/// not served the open view: a typo should not look like missing data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Anyone,
    Admin,
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Reader, Response> {
        let Some(presented) = presented(&parts.headers) else {
            return Ok(Reader::Anyone);
        };
        if state.admin_token.matches(presented.trim()) {
            Ok(Reader::Admin)
        } else {
            Err(unauthorized("the bearer token is not valid"))
        }
    }
}

/// The token of an `Authorization` value; the scheme's case does not matter
/// (RFC 9110).
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_are_refused_and_debug_hides_the_token() {
        assert!(AdminToken::new("short")
            .unwrap_err()
            .contains("at least 16"));
        let token = AdminToken::new("  correct-horse-battery  ").unwrap();
        assert!(token.matches("correct-horse-battery"));
        assert!(!token.matches("correct-horse-batter"));
        assert_eq!(format!("{token:?}"), "AdminToken(<withheld>)");
    }

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
