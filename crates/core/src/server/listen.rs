//! The accept loop: every connection gets hyper's HTTP/1 with a header-read timeout (which is also
//! the keep-alive idle timeout), capped header sizes and a write-stall guard, and is admitted only
//! while the total and per-address connection caps allow. At the total cap, the oldest connection
//! that has not sent a request yet makes room for the newcomer (idle connections held open from
//! many addresses cannot keep a viewer out), and while the server is that busy a new connection
//! gets less time to send its first request.
//!
//! `axum::serve` offers none of these knobs (it runs hyper without a timer, so no header timeout at
//! all), hence this loop; it is the same hyper-util recipe axum's own "serve with hyper" example
//! follows, with the caps added.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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

/// Each connection's send buffer (the kernel doubles it): 1 MiB carries 85 Mbit/s of full
/// motion over a 10 ms round trip, and 128 clients that stop reading hold 128 MiB, not 512.
const SEND_BUFFER: usize = 512 * 1024;

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
        // Left to itself the kernel grows a send buffer to 4 MiB for a client that does not
        // read; a LAN's round trip needs a fraction of this.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
        let io = TokioIo::new(StallGuard::new(
            stream,
            limits.write_stall_timeout,
            limits.min_write_rate,
        ));
        let router = router.clone();
        let stop = stop.clone();
        let header_timeout = if slot.under_pressure {
            limits.header_timeout.min(BUSY_HEADER_TIMEOUT)
        } else {
            limits.header_timeout
        };
        tasks.spawn(async move {
            let requested = slot.requested.clone();
            let evicted = slot.evicted.clone();
            let _slot = slot;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    requested.store(true, Ordering::Release);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request)
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
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
                // Made room for a newcomer: it never sent a request, so nothing is cut short.
                () = evicted.cancelled() => Ok(()),
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

/// While the server holds this share of its connection cap, a new connection has this long to
/// send its first request (instead of the usual header timeout).
const BUSY_SHARE: f64 = 0.75;
const BUSY_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// One IPv6 /64 (one machine can have all of it) holds at most this many times the per-address
/// cap: not the per-address cap itself, since every machine on a LAN shares its /64.
const PER_PREFIX: usize = 8;

/// Open connections, in all and per address.
#[derive(Debug)]
struct Connections {
    limits: Limits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    per_address: HashMap<IpAddr, usize>,
    per_prefix: HashMap<IpAddr, usize>,
    /// Every open connection, by id.
    entries: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    address: IpAddr,
    opened: Instant,
    /// It sent a request: a client, not a held-open socket.
    requested: Arc<AtomicBool>,
    evicted: CancellationToken,
}

impl Connections {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            open: Mutex::new(Open::default()),
        }
    }

    /// A slot for a connection from `address`, or `None` when a cap is reached and no connection
    /// can make room.
    fn admit(self: &Arc<Self>, address: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.lock();
        let prefix = crate::net::machine_of(address);
        let from_address = open.per_address.get(&address).copied().unwrap_or(0);
        let from_prefix = open.per_prefix.get(&prefix).copied().unwrap_or(0);
        if from_address >= self.limits.max_connections_per_address
            || from_prefix >= self.limits.max_connections_per_address * PER_PREFIX
        {
            return None;
        }
        if open.entries.len() >= self.limits.max_connections && !open.evict_oldest_idle() {
            return None;
        }
        let under_pressure =
            (open.entries.len() + 1) as f64 >= self.limits.max_connections as f64 * BUSY_SHARE;
        open.next_id += 1;
        let id = open.next_id;
        let (requested, evicted) = (Arc::new(AtomicBool::new(false)), CancellationToken::new());
        open.entries.insert(
            id,
            Entry {
                address,
                opened: Instant::now(),
                requested: requested.clone(),
                evicted: evicted.clone(),
            },
        );
        *open.per_address.entry(address).or_default() += 1;
        *open.per_prefix.entry(prefix).or_default() += 1;
        Some(ConnectionSlot {
            connections: self.clone(),
            id,
            requested,
            evicted,
            under_pressure,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Open {
    /// Closes the oldest connection that has not sent a request; whether there was one.
    fn evict_oldest_idle(&mut self) -> bool {
        let oldest = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.requested.load(Ordering::Acquire))
            .min_by_key(|(_, entry)| entry.opened)
            .map(|(id, _)| *id);
        match oldest {
            Some(id) => {
                if let Some(entry) = self.forget(id) {
                    entry.evicted.cancel();
                }
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, id: u64) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        for (map, key) in [
            (&mut self.per_address, entry.address),
            (&mut self.per_prefix, crate::net::machine_of(entry.address)),
        ] {
            if let Some(count) = map.get_mut(&key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
        Some(entry)
    }
}

/// Held by a connection's task; dropping it frees the slot.
#[derive(Debug)]
struct ConnectionSlot {
    connections: Arc<Connections>,
    id: u64,
    requested: Arc<AtomicBool>,
    evicted: CancellationToken,
    /// The server was busy when this connection came: less time for its first request.
    under_pressure: bool,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        // Already forgotten when it was evicted.
        self.connections.lock().forget(self.id);
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
        let a2 = connections.admit(a).expect("second from a");
        assert!(
            connections.admit(a).is_none(),
            "third from a is over its cap"
        );
        let b1 = connections.admit(b).expect("b has its own cap");
        for slot in [&a1, &a2, &b1] {
            slot.requested.store(true, Ordering::Release);
        }
        assert!(connections.admit(b).is_none(), "the total cap is reached");
        drop(a1);
        assert!(connections.admit(b).is_some(), "a freed slot is reused");
    }

    #[test]
    fn at_the_cap_the_oldest_connection_without_a_request_makes_room() {
        let connections = Arc::new(Connections::new(Limits {
            max_connections: 3,
            max_connections_per_address: 3,
            ..Limits::default()
        }));
        let idle: IpAddr = [10, 0, 0, 1].into();
        let viewer: IpAddr = [10, 0, 0, 2].into();
        let first = connections.admit(idle).expect("first");
        let second = connections.admit(idle).expect("second");
        second.requested.store(true, Ordering::Release);
        let third = connections.admit(idle).expect("third");
        assert!(third.under_pressure, "three of three: busy");
        let newcomer = connections.admit(viewer).expect("room is made");
        assert!(first.evicted.is_cancelled(), "the oldest idle one went");
        assert!(!second.evicted.is_cancelled(), "one that asked stays");
        assert!(!third.evicted.is_cancelled(), "a younger idle one stays");
        drop(first);
        assert_eq!(connections.lock().entries.len(), 3, "counted once");
        newcomer.requested.store(true, Ordering::Release);
        third.requested.store(true, Ordering::Release);
        assert!(
            connections.admit(viewer).is_none(),
            "everyone has asked: nobody to evict"
        );
    }

    #[test]
    fn one_ipv6_prefix_holds_a_few_addresses_worth() {
        let connections = Arc::new(Connections::new(Limits {
            max_connections: 1000,
            max_connections_per_address: 2,
            ..Limits::default()
        }));
        let mut held = Vec::new();
        for host in 1..=PER_PREFIX as u16 {
            let address: IpAddr = format!("2001:db8::{host}").parse().expect("v6");
            held.push(connections.admit(address).expect("one"));
            held.push(connections.admit(address).expect("two"));
        }
        let more: IpAddr = "2001:db8::ffff".parse().expect("v6");
        assert!(connections.admit(more).is_none(), "the /64 is full");
        let other: IpAddr = "2001:db8:0:1::1".parse().expect("v6");
        assert!(connections.admit(other).is_some(), "another /64 is not");
    }
}
