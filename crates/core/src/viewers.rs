//! Who is watching: one entry per viewer (the page's own id, or the address of a plain client),
//! kept while it has a request in flight and for a few seconds after its last one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A viewer that has asked for nothing for this long has left.
pub const VIEWER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Viewers {
    entries: Mutex<HashMap<String, Entry>>,
    /// Frame bytes handed out to every viewer ever: bandwidth is its rate of change.
    bytes_served: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    address: Option<IpAddr>,
    since: SystemTime,
    last_seen: Instant,
    in_flight: usize,
    frames: u64,
    bytes: u64,
}

/// One viewer, as the presenter sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewerInfo {
    pub address: String,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
    pub frames: u64,
    pub bytes: u64,
}

impl Viewers {
    /// Records a request from viewer `key` until the returned visit is dropped.
    pub fn visit(self: &Arc<Self>, key: String, address: Option<IpAddr>) -> Visit {
        let now = Instant::now();
        let mut entries = self.lock();
        prune(&mut entries, now);
        let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
            address,
            since: SystemTime::now(),
            last_seen: now,
            in_flight: 0,
            frames: 0,
            bytes: 0,
        });
        entry.in_flight += 1;
        entry.last_seen = now;
        Visit {
            viewers: self.clone(),
            key,
        }
    }

    /// Viewers present now.
    pub fn count(&self) -> usize {
        let mut entries = self.lock();
        prune(&mut entries, Instant::now());
        entries.len()
    }

    /// Viewers present now, earliest first.
    pub fn list(&self) -> Vec<ViewerInfo> {
        let mut entries = self.lock();
        prune(&mut entries, Instant::now());
        let mut list: Vec<ViewerInfo> = entries
            .values()
            .map(|entry| ViewerInfo {
                address: entry
                    .address
                    .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                since_unix_ms: entry
                    .since
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_millis() as u64),
                frames: entry.frames,
                bytes: entry.bytes,
            })
            .collect();
        list.sort_by_key(|viewer| viewer.since_unix_ms);
        list
    }

    /// Frame bytes served so far, to all viewers.
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn prune(entries: &mut HashMap<String, Entry>, now: Instant) {
    entries.retain(|_, entry| {
        entry.in_flight > 0 || now.saturating_duration_since(entry.last_seen) < VIEWER_TIMEOUT
    });
}

/// One request of one viewer; dropping it ends the request.
#[derive(Debug)]
pub struct Visit {
    viewers: Arc<Viewers>,
    key: String,
}

impl Visit {
    /// The request handed out a frame of `bytes` bytes.
    pub fn served(&self, bytes: usize) {
        self.viewers
            .bytes_served
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(entry) = self.viewers.lock().get_mut(&self.key) {
            entry.frames += 1;
            entry.bytes += bytes as u64;
        }
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        if let Some(entry) = self.viewers.lock().get_mut(&self.key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.last_seen = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_is_one_viewer() {
        let viewers = Arc::new(Viewers::default());
        let ip: IpAddr = [127, 0, 0, 1].into();
        let first = viewers.visit("tab-a".into(), Some(ip));
        let second = viewers.visit("tab-a".into(), Some(ip));
        let other = viewers.visit("tab-b".into(), Some(ip));
        assert_eq!(viewers.count(), 2);
        first.served(100);
        second.served(50);
        drop((first, second, other));
        let list = viewers.list();
        assert_eq!(list.len(), 2);
        let tab_a = list
            .iter()
            .find(|v| v.bytes == 150)
            .expect("tab-a's bytes add up");
        assert_eq!(tab_a.frames, 2);
        assert_eq!(tab_a.address, "127.0.0.1");
        assert_eq!(viewers.bytes_served(), 150);
    }
}
