//! The accept loop: every connection gets hyper's HTTP/1 with a header-read timeout (which is also
//! the keep-alive idle timeout), capped header sizes and a write-stall guard, and is admitted only
//! while the total and per-address connection caps allow.
//!
//! `axum::serve` offers none of these knobs (it runs hyper without a timer, so no header timeout at
//! all), hence this loop; it is the same hyper-util recipe axum's own "serve with hyper" example
//! follows, with the caps added.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::limits::Limits;
use super::quiet_log::QuietLog;
use super::stall::StallGuard;

/// Serves `router` on `listener` until `stop`, then lets open requests finish for up to `grace`
/// and closes whatever is left.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
    grace: Duration,
) {
    let connections = Arc::new(Connections::new(limits));
    let refusals = QuietLog::new(Duration::from_secs(10));
    let mut tasks = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before accept: keep serving
                    // the connections we have, and try again shortly.
                    if refusals.should_log() {
                        tracing::warn!(%error, "cannot accept a connection");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = stop.cancelled() => break,
        };
        let Some(slot) = connections.admit(peer.ip()) else {
            if refusals.should_log() {
                tracing::warn!(
                    address = %peer.ip(),
                    suppressed = refusals.suppressed(),
                    "connection refused: too many open"
                );
            }
            continue;
        };
        // Frames are written whole; Nagle would only hold back their last segment.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(StallGuard::new(
            stream,
            limits.write_stall_timeout,
            limits.min_write_rate,
        ));
        let router = router.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request)
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_header_size(limits.max_header_bytes)
                .max_headers(limits.max_headers)
                // What hyper holds for a client beyond the socket: a pushed stream then asks for
                // its next update only once the client took the last, instead of lining up many.
                .max_buf_size(64 * 1024)
                .keep_alive(true);
            let mut connection = pin!(builder.serve_connection(io, service));
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                // Timeouts, resets and stalled readers: the client's doing, not worth a warning.
                tracing::debug!(error = %with_causes(&error), "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after the grace period; closing them"
        );
        tasks.abort_all();
    }
}

/// An error and what caused it, down the chain ("error writing a body to connection: the client
/// stopped reading").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Open connections, in all and per address.
#[derive(Debug)]
struct Connections {
    limits: Limits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Connections {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            open: Mutex::new(Open::default()),
        }
    }

    /// A slot for a connection from `address`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.lock();
        let from_address = open.per_address.get(&address).copied().unwrap_or(0);
        if open.total >= self.limits.max_connections
            || from_address >= self.limits.max_connections_per_address
        {
            return None;
        }
        open.total += 1;
        open.per_address.insert(address, from_address + 1);
        Some(ConnectionSlot {
            connections: self.clone(),
            address,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held by a connection's task; dropping it frees the slot.
#[derive(Debug)]
struct ConnectionSlot {
    connections: Arc<Connections>,
    address: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_address.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_address.remove(&self.address);
            }
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit, so the connection caps, not
/// the default 1024 descriptors, decide who gets in.
pub(crate) fn raise_open_file_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::debug!(to = ?limit.maximum, "raised the open-file limit"),
                Err(error) => tracing::debug!(%error, "cannot raise the open-file limit"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_in_total_and_per_address_and_free_on_drop() {
        let connections = Arc::new(Connections::new(Limits {
            max_connections: 3,
            max_connections_per_address: 2,
            ..Limits::default()
        }));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let a1 = connections.admit(a).expect("first from a");
        let _a2 = connections.admit(a).expect("second from a");
        assert!(
            connections.admit(a).is_none(),
            "third from a is over its cap"
        );
        let _b1 = connections.admit(b).expect("b has its own cap");
        assert!(connections.admit(b).is_none(), "the total cap is reached");
        drop(a1);
        assert!(connections.admit(b).is_some(), "a freed slot is reused");
    }
}
