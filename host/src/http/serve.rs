//! Serving a router on a listener so that slow and excess clients cannot
//! hold the server: `axum::serve` sets no timer, so a client that sends
//! half a request head, or a body one byte at a time, keeps its connection
//! (and a task) for as long as it likes, and nothing bounds how many such
//! connections are open.
//!
//! Each listener here has three limits (`[http]` in the routes file, see
//! [`HttpConfig`]):
//!
//! - **the request head** must arrive within `header_read_timeout_ms` of
//!   the server starting to wait for it (hyper's HTTP/1 header read
//!   timeout); this also bounds how long an idle keep-alive connection
//!   stays open. Past it the connection is closed.
//! - **the request body** must arrive whole within `body_read_timeout_ms`
//!   of its head: a total deadline, not one between reads, so a body
//!   dribbled a byte at a time is cut off too. Past it the request is
//!   answered `408 Request Timeout` and the connection closed.
//! - **at most `max_connections`** are open at once. Beyond that, the
//!   listener stops accepting: new clients wait in the kernel's accept
//!   queue until a slot frees, which the two timeouts guarantee happens.
//!   Waiting is chosen over refusing: a well-behaved client arriving while
//!   slow ones hold every slot is served a few seconds late rather than
//!   turned away, and one that cannot wait gives up on its own.
//!
//! Connections speak HTTP/1.1 only. HTTP/2 over cleartext (h2c) would need
//! limits of its own before its first frame, and no client of these APIs
//! uses it (browsers speak HTTP/2 only over TLS, which a proxy in front
//! terminates).
//!
//! On shutdown the listener closes, idle connections close at once, and
//! requests in flight get [`SHUTDOWN_GRACE`] to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::{streams, ApiError};
use crate::config::HttpConfig;

/// How long requests in flight get to finish once shutdown begins; past
/// it their connections are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The limits of one listener, from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn of(http: &HttpConfig) -> Limits {
        Limits {
            header_read_timeout: http.header_read_timeout(),
            body_read_timeout: http.body_read_timeout(),
            max_connections: http.max_connections(),
        }
    }
}

/// Serve `app` on `listener` with `limits` until `shutdown` is cancelled,
/// then let the open connections finish (up to [`SHUTDOWN_GRACE`]).
/// `name` says which listener it is, in logs.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    name: &'static str,
    shutdown: CancellationToken,
) {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.body_read_timeout,
        body_deadline,
    ));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut warned_full: Option<Instant> = None;
    loop {
        // A slot first, then a connection: at the limit, clients wait in
        // the accept queue.
        if slots.available_permits() == 0
            && warned_full.is_none_or(|at| at.elapsed() > FULL_WARNING_EVERY)
        {
            warned_full = Some(Instant::now());
            tracing::warn!(
                listener = name,
                max_connections = limits.max_connections,
                "every HTTP connection slot is in use: new clients wait until one closes \
                 (`http.max_connections`)"
            );
        }
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(name, &e).await;
                    continue;
                }
            },
        };
        // Responses are small and written whole: send them at once.
        let _ = stream.set_nodelay(true);
        let connection =
            http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(listener = name, %peer, "HTTP connection closed: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "HTTP connections still open {} s after shutdown began; dropping them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

/// How often "every slot is in use" is logged while it lasts.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// An accept that failed: a connection reset before it was accepted is
/// nothing; anything else (out of file descriptors, say) is logged, and
/// the listener pauses a moment instead of spinning on it.
async fn accept_failed(name: &str, e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(listener = name, "cannot accept an HTTP connection: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Bind `addr` for the listener called `name`, with an error naming both.
pub async fn bind(addr: SocketAddr, name: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for HTTP on {addr} ({name}): {e}"))
}

/// Middleware: the request's body must arrive within `timeout` of its
/// head. If it does not, whatever the handler answered (it saw the body
/// fail) is replaced by a 408 saying so, and the connection is closed: the
/// rest of the body is never read.
async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let streams_api = request.uri().path().starts_with(streams::PATH_PREFIX);
    let deadline = Instant::now() + timeout;
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline,
            timeout,
            sleep: None,
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    let why = format!(
        "the request body did not arrive within {} (`http.body_read_timeout_ms`)",
        duration_text(timeout)
    );
    let mut response = if streams_api {
        // That API's own style: a JSON string.
        streams::refusal(
            StatusCode::REQUEST_TIMEOUT,
            &format!("Request Timeout - {why}"),
        )
    } else {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, why).into_response()
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `5 s`, or `1500 ms` when not whole seconds.
fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A request body that fails once its deadline passes, and says so in
/// `expired`. (tower-http's `TimeoutBody` bounds the wait between two
/// reads, which a client dribbling a byte at a time never exceeds.)
struct DeadlineBody {
    inner: Body,
    deadline: Instant,
    timeout: Duration,
    /// Made on the first read: a body nobody reads needs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

/// The error a body past its deadline reads as.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct BodyTimedOut(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyTimedOut(this.timeout).into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn durations_read_in_seconds_when_whole() {
        assert_eq!(duration_text(Duration::from_secs(30)), "30 s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500 ms");
    }

    #[tokio::test]
    async fn a_body_past_its_deadline_fails_and_says_so() {
        use futures::StreamExt;
        // One part, then nothing more, ever: a client that stopped sending.
        let parts = futures::stream::once(async {
            Ok::<_, std::convert::Infallible>(Bytes::from_static(b"part"))
        })
        .chain(futures::stream::pending());
        let expired = Arc::new(AtomicBool::new(false));
        let body = DeadlineBody {
            inner: Body::from_stream(parts),
            deadline: Instant::now() + Duration::from_millis(200),
            timeout: Duration::from_millis(200),
            sleep: None,
            expired: expired.clone(),
        };
        let reading = tokio::spawn(async move { body.collect().await.map(|c| c.to_bytes()) });
        let error = reading.await.unwrap().unwrap_err();
        assert!(
            error.to_string().contains("did not arrive within 200ms"),
            "{error}"
        );
        assert!(expired.load(Ordering::Relaxed));
    }
}
