//! How much the server gives any one client: the numbers behind its timeouts and caps, tunable per
//! share (the CLI exposes them; tests shorten the timeouts).

use std::time::Duration;

/// The server's timeouts and caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A connection must send a whole request head within this long, whether it is new or idle
    /// between requests (so this is also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// A response that cannot write a single byte for this long (the client stopped reading) is
    /// dropped with its connection, freeing its buffers.
    pub write_stall_timeout: Duration,
    /// Bytes per second a client must take while the server waits on it (judged over ten
    /// seconds of waiting); a slower one is dropped. A phone on poor Wi-Fi takes far more.
    pub min_write_rate: u64,
    /// Request line plus headers, in bytes; more gets 431.
    pub max_header_bytes: usize,
    /// Header fields per request; more gets 431.
    pub max_headers: usize,
    /// Path plus query, in bytes; more gets 414.
    pub max_uri_bytes: usize,
    /// Request body (only settings changes have one); more gets 413.
    pub max_body_bytes: usize,
    /// Open connections in all; past it new ones are closed at once.
    pub max_connections: usize,
    /// Open connections from one address (a browser opens six at most).
    pub max_connections_per_address: usize,
    /// Requests being answered at once, long polls included; past it, 503 with `Retry-After`.
    pub max_requests_in_flight: usize,
    /// Frame requests (pictures, updates, streams) being answered at once for one pass, and
    /// from one machine (an IPv4 address, an IPv6 /64); past it, 429. A page needs two.
    pub max_frame_requests_per_pass: usize,
    pub max_frame_requests_per_address: usize,
    /// Bytes of frame answers being sent, in all; one machine may hold an eighth of it.
    /// Past it, 503 with `Retry-After`.
    pub max_frame_bytes_in_flight: usize,
    /// Encodes and update assemblies running at once on blocking threads; more requests wait
    /// their turn on the runtime instead of each holding a thread.
    pub max_blocking_encodes: usize,
    /// How long a viewer asking for "the frame after N" waits for one before hearing "nothing
    /// new" (`204`). Long enough that a still screen costs few requests, short enough that a
    /// connection a proxy drops silently is noticed.
    pub long_poll: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(15),
            min_write_rate: 16 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_uri_bytes: 4 * 1024,
            max_body_bytes: 16 * 1024,
            max_connections: 2048,
            max_connections_per_address: 32,
            max_requests_in_flight: 1024,
            max_frame_requests_per_pass: 4,
            max_frame_requests_per_address: 16,
            max_frame_bytes_in_flight: 256 * 1024 * 1024,
            max_blocking_encodes: 4,
            long_poll: Duration::from_secs(8),
        }
    }
}
