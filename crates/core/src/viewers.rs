//! Who is watching: one entry per viewer (the page's own id, or the address of a plain client),
//! kept while it has a request in flight and for a few seconds after its last one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::admission::Access;

/// A viewer that has asked for nothing for this long has left: the same time capture goes on
/// without requests.
pub const VIEWER_TIMEOUT: Duration = crate::demand::LINGER;

/// The share admits no more viewers ([`crate::Settings::max_viewers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the share has as many viewers as it admits")]
pub struct ShareFull;

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
    /// What to name it by to admit or remove it.
    pub id: String,
    pub address: String,
    /// "Firefox on Android", when its page joined; "unknown" for plain clients.
    pub browser: String,
    /// `admitted` (watching) or `waiting` (to be let in).
    pub access: Access,
    /// When it arrived, in milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
    pub frames: u64,
    pub bytes: u64,
}

impl Viewers {
    /// Records a request until the returned visit is dropped. `page_id` is the handle of the
    /// browser's pass, `None` for a plain client (counted by its address). A new viewer past
    /// `limit` is refused.
    pub fn visit(
        self: &Arc<Self>,
        page_id: Option<&str>,
        address: Option<IpAddr>,
        limit: usize,
    ) -> Result<Visit, ShareFull> {
        let now = Instant::now();
        let mut entries = self.lock();
        prune(&mut entries, now);
        let key = viewer_key(page_id, address);
        if !entries.contains_key(&key) && entries.len() >= limit {
            return Err(ShareFull);
        }
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
        Ok(Visit {
            viewers: self.clone(),
            key,
        })
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
            .iter()
            .map(|(key, entry)| ViewerInfo {
                id: key.clone(),
                browser: "unknown".to_owned(),
                access: Access::Admitted,
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

    /// The page ids (pass handles) of the viewers present now.
    pub fn page_ids(&self) -> std::collections::HashSet<String> {
        let mut entries = self.lock();
        prune(&mut entries, Instant::now());
        entries
            .keys()
            .filter_map(|key| key.strip_prefix("id:"))
            .map(str::to_owned)
            .collect()
    }

    /// The address viewer `key` comes from.
    pub fn address_of(&self, key: &str) -> Option<IpAddr> {
        self.lock().get(key).and_then(|entry| entry.address)
    }

    /// Drops every viewer at `address` from the list (it was removed).
    pub fn forget_address(&self, address: Option<IpAddr>) {
        if address.is_some() {
            self.lock().retain(|_, entry| entry.address != address);
        }
    }

    /// Frame bytes served so far, to all viewers.
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A viewer is its page's id when it sends a sane one, else its address.
fn viewer_key(page_id: Option<&str>, address: Option<IpAddr>) -> String {
    match page_id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            format!("id:{id}")
        }
        _ => address.map_or_else(|| "unknown".to_owned(), |ip| format!("ip:{ip}")),
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
        self.count(bytes, 1);
    }

    /// Bytes that are not a frame (sound): counted in the share's bytes and the viewer's.
    pub fn served_bytes(&self, bytes: usize) {
        self.count(bytes, 0);
    }

    fn count(&self, bytes: usize, frames: u64) {
        self.viewers
            .bytes_served
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(entry) = self.viewers.lock().get_mut(&self.key) {
            entry.frames += frames;
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
        let first = viewers.visit(Some("tab-a"), Some(ip), 50).expect("room");
        let second = viewers.visit(Some("tab-a"), Some(ip), 50).expect("room");
        let other = viewers.visit(Some("tab-b"), Some(ip), 50).expect("room");
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

    #[test]
    fn viewer_key_prefers_a_sane_page_id() {
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        assert_eq!(viewer_key(Some("tab-42"), ip), "id:tab-42");
        assert_eq!(viewer_key(Some("<script>"), ip), "ip:10.0.0.9");
        assert_eq!(viewer_key(Some(&"a".repeat(65)), ip), "ip:10.0.0.9");
        assert_eq!(viewer_key(None, ip), "ip:10.0.0.9");
        assert_eq!(viewer_key(None, None), "unknown");
    }

    #[test]
    fn the_limit_refuses_newcomers_only() {
        let viewers = Arc::new(Viewers::default());
        let visits: Vec<Visit> = (1..=3u8)
            .map(|n| {
                let ip: IpAddr = [10, 0, 1, n].into();
                viewers.visit(None, Some(ip), 3).expect("room")
            })
            .collect();
        let late: IpAddr = [10, 0, 2, 1].into();
        assert_eq!(viewers.visit(None, Some(late), 3).err(), Some(ShareFull));
        // Someone already in is never refused.
        assert!(viewers.visit(None, Some([10, 0, 1, 1].into()), 3).is_ok());
        drop(visits);
    }

    #[test]
    fn page_ids_are_the_passes_watching() {
        let viewers = Arc::new(Viewers::default());
        let ip: IpAddr = [10, 0, 0, 1].into();
        let _a = viewers.visit(Some("1a2b3c4d"), Some(ip), 10).expect("room");
        let _b = viewers.visit(None, Some(ip), 10).expect("room");
        assert_eq!(
            viewers.page_ids(),
            std::collections::HashSet::from(["1a2b3c4d".to_owned()])
        );
    }
}
