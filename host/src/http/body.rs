//! Reading request bodies of the event APIs: the content type, a size
//! limit and, for JSON, the syntax, each refused with its own status so a
//! client knows what to fix. Each API words the answer its own way.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};

/// Default largest body of the event APIs.
pub const DEFAULT_MAX_BODY: usize = 64 << 10;

/// Why a body was refused.
#[derive(Debug, PartialEq)]
pub enum BodyError {
    /// 415: not the content type the endpoint takes.
    UnsupportedType { expected: &'static str, got: String },
    /// 413: more than `limit` bytes.
    TooLarge { limit: usize },
    /// 400: not valid JSON, or the body could not be read.
    Malformed(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::UnsupportedType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::UnsupportedType { expected, got } if got.is_empty() => {
                write!(f, "Content-Type must be {expected} (none given)")
            }
            BodyError::UnsupportedType { expected, got } => {
                write!(f, "Content-Type must be {expected} (got {got})")
            }
            BodyError::TooLarge { limit } => {
                write!(f, "the body is larger than the limit of {limit} bytes")
            }
            BodyError::Malformed(why) => write!(f, "{why}"),
        }
    }
}

/// The body, if the request's media type is `expected` (parameters such as
/// `charset` allowed) and it holds at most `limit` bytes.
pub async fn read(
    headers: &HeaderMap,
    body: Body,
    expected: &'static str,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case(expected) {
        return Err(BodyError::UnsupportedType {
            expected,
            got: content_type.to_owned(),
        });
    }
    // Refuse a declared length at once, before reading anything.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            BodyError::TooLarge { limit }
        } else {
            BodyError::Malformed(format!("the body could not be read: {e}"))
        }
    })
}

/// `bytes` parsed as JSON into `T`, with serde's message (which names the
/// line, column and, for a wrong shape, the field).
pub fn json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, BodyError> {
    serde_json::from_slice(bytes).map_err(|e| BodyError::Malformed(format!("malformed JSON: {e}")))
}
