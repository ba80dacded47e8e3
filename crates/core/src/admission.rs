//! Who may watch, beyond holding the URL: the optional PIN (with its tries limited per address),
//! the presenter's approval of each new viewer, and removal.
//!
//! A browser that passes gets a *pass*: a random secret in an HttpOnly, SameSite=Strict cookie
//! scoped to its share's path. The presenter sees passes by a short public handle, never by the
//! secret. Removing a viewer revokes its pass and shuts its address out until the share ends (a
//! cleared cookie must not be a way back in).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::settings::Pin;

/// The cookie that carries a pass.
pub const PASS_COOKIE: &str = "screenshare_pass";
/// Passes kept at most (waiting and admitted); past it, new ones are refused as "full".
const MAX_PASSES: usize = 1_000;
/// Passes one address may hold (tabs, a few people behind one NAT).
const PASSES_PER_ADDRESS: usize = 8;
/// Viewers waiting to be let in, at most; past it the one whose page asked longest ago makes room
/// (a real page asks every 2 s, a flood of joins that never asks again goes first). The
/// presenter's list stays readable however many join.
const MAX_WAITING: usize = 64;
/// New passes one source may ask for at once, then one more every [`JOIN_REFILL`]: a page asks
/// once, and again only when its pass was lost.
const SOURCE_JOINS: f64 = 8.0;
const JOIN_REFILL: Duration = Duration::from_secs(15);
/// A pass nobody used for this long is forgotten (a waiting page asks every 2 s).
const PASS_IDLE: Duration = Duration::from_secs(60);
/// Wrong PINs one source (an IPv4 address, an IPv6 /64) may try at once; after that, one more
/// every [`SOURCE_REFILL`]. A bucket that refills slowly, not a window that resets: guessing at
/// the edge of a window gains nothing.
const SOURCE_TRIES: f64 = 5.0;
const SOURCE_REFILL: Duration = Duration::from_secs(120);
/// Wrong PINs the whole share allows at once, then one more every [`SHARE_REFILL`]: many
/// addresses guessing together get no further than about 1,440 tries a day, which leaves a
/// six-digit PIN standing for about a year on average.
const SHARE_TRIES: f64 = 20.0;
const SHARE_REFILL: Duration = Duration::from_secs(60);
/// How long the presenter is told of an attack after the share's allowance last ran out.
const UNDER_ATTACK_FOR: Duration = Duration::from_secs(60);
/// Sources whose tries are remembered at most; past it, those with a full bucket are forgotten.
const MAX_TRIED_SOURCES: usize = 10_000;

/// What a browser may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Watch.
    Admitted,
    /// Type the PIN first.
    NeedPin,
    /// Ask to join (the presenter approves each viewer); nothing asked yet.
    NeedJoin,
    /// Asked; the presenter has not let it in yet.
    Waiting,
    /// The presenter removed it.
    Removed,
}

/// The share's rules for getting in.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub pin: Option<Pin>,
    pub require_approval: bool,
}

/// A refused attempt to join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    /// No PIN given where one is needed (not counted as a wrong try).
    #[error("this share needs its PIN")]
    PinNeeded,
    #[error("wrong PIN")]
    WrongPin,
    #[error("too many wrong PINs from this address; try again in {} s", .retry_after.as_secs().max(1))]
    TooManyTries { retry_after: Duration },
    /// Wrong PINs from many addresses at once: an address that has tried wrong PINs itself waits
    /// while the share's own allowance refills (one that has not still gets its tries).
    #[error("too many wrong PINs are being tried on this share; try again in {} s", .retry_after.as_secs().max(1))]
    ShareUnderAttack { retry_after: Duration },
    #[error("too many joins from this address; try again in {} s", .retry_after.as_secs().max(1))]
    TooManyJoins { retry_after: Duration },
    #[error("the presenter removed this viewer")]
    Removed,
    #[error("too many viewers are waiting or watching")]
    Full,
}

/// A successful join: where the browser stands, and the pass to set as its cookie if new.
#[derive(Debug)]
pub struct Joined {
    pub access: Access,
    pub new_pass: Option<String>,
}

/// What a request carries in: its pass (if valid) and the access that gives.
#[derive(Debug, Clone)]
pub struct Gate {
    pub access: Access,
    /// The pass's public handle, when the request carried a known pass.
    pub handle: Option<String>,
}

/// A pass as the presenter sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PassInfo {
    pub id: String,
    pub address: String,
    pub browser: String,
    pub access: Access,
    pub since_unix_ms: u64,
}

#[derive(Debug)]
struct Pass {
    handle: String,
    address: Option<IpAddr>,
    browser: String,
    access: Access,
    since: SystemTime,
    last_seen: Instant,
    /// The addresses the pass was used from (within its source), so removal shuts out each.
    used_from: HashSet<IpAddr>,
}

/// Addresses remembered per pass: an IPv6 machine uses a few (privacy addresses), not more.
const USED_FROM_KEPT: usize = 16;

/// Tries left, refilling at a steady rate up to a cap.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Self {
            tokens: capacity,
            at: now,
        }
    }

    /// Tries left at `now`.
    fn level(&mut self, capacity: f64, refill: Duration, now: Instant) -> f64 {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / refill.as_secs_f64();
        self.tokens = (self.tokens + gained).min(capacity);
        self.at = now;
        self.tokens
    }

    /// How long until a whole try is back.
    fn wait(&self, refill: Duration) -> Duration {
        refill.mul_f64((1.0 - self.tokens).max(0.0))
    }
}

#[derive(Debug)]
struct Inner {
    /// By secret.
    passes: HashMap<String, Pass>,
    /// Addresses shut out until the share ends.
    removed_addresses: HashSet<IpAddr>,
    /// Wrong-PIN tries left, per source.
    tries: HashMap<IpAddr, Bucket>,
    /// Wrong-PIN tries left for the whole share.
    share_tries: Bucket,
    /// Wrong PINs so far, for the presenter.
    wrong_pins: u64,
    /// When the share's allowance of wrong tries last ran out: the presenter is told.
    share_tries_ran_out: Option<Instant>,
    /// New passes left, per source.
    joins: HashMap<IpAddr, Bucket>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            passes: HashMap::new(),
            removed_addresses: HashSet::new(),
            tries: HashMap::new(),
            share_tries: Bucket::full(SHARE_TRIES, Instant::now()),
            wrong_pins: 0,
            share_tries_ran_out: None,
            joins: HashMap::new(),
        }
    }
}

#[derive(Debug)]
pub struct Admission {
    inner: Mutex<Inner>,
    /// Bumped on every removal, so waiting requests can re-check and end at once.
    removals: watch::Sender<u64>,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            removals: watch::Sender::new(0),
        }
    }
}

impl Admission {
    /// Where a request with `pass` from `address` stands under `rules`.
    pub fn check(&self, pass: Option<&str>, address: Option<IpAddr>, rules: &Rules) -> Gate {
        let mut inner = self.lock();
        let now = Instant::now();
        let source = source_of(address);
        // A pass opens the share only from the address (IPv6: the /64) it was given to: copied
        // to another machine it is no pass at all.
        let known = pass
            .and_then(|secret| inner.passes.get_mut(secret))
            .filter(|pass| source_of(pass.address) == source);
        let handle = known.as_ref().map(|pass| pass.handle.clone());
        let pass_access = known.map(|pass| {
            pass.last_seen = now;
            if let Some(ip) = address
                && pass.used_from.len() < USED_FROM_KEPT
            {
                pass.used_from.insert(ip);
            }
            pass.access
        });
        let removed = pass_access == Some(Access::Removed)
            || address.is_some_and(|ip| inner.removed_addresses.contains(&ip));
        let access = if removed {
            Access::Removed
        } else if rules.pin.is_none() && !rules.require_approval {
            Access::Admitted
        } else {
            match pass_access {
                Some(access) => access,
                None if rules.pin.is_some() => Access::NeedPin,
                None => Access::NeedJoin,
            }
        };
        Gate { access, handle }
    }

    /// A browser asks to join, with `pin` if it typed one. Gives it a pass (waiting for the
    /// presenter, or admitted) unless it already holds one.
    pub fn join(
        &self,
        pass: Option<&str>,
        address: Option<IpAddr>,
        browser: &str,
        pin: Option<&str>,
        rules: &Rules,
    ) -> Result<Joined, JoinRefusal> {
        let mut inner = self.lock();
        let now = Instant::now();
        let source = source_of(address);
        if address.is_some_and(|ip| inner.removed_addresses.contains(&ip)) {
            return Err(JoinRefusal::Removed);
        }
        // A pass from another address is ignored: that machine joins on its own.
        if let Some(existing) = pass
            .and_then(|secret| inner.passes.get_mut(secret))
            .filter(|pass| source_of(pass.address) == source)
        {
            existing.last_seen = now;
            if existing.access == Access::Removed {
                return Err(JoinRefusal::Removed);
            }
            return Ok(Joined {
                access: existing.access,
                new_pass: None,
            });
        }
        if let Some(expected) = &rules.pin {
            let attempt = pin.ok_or(JoinRefusal::PinNeeded)?;
            check_pin(&mut inner, address, expected, attempt, now)?;
        }
        prune(&mut inner.passes, now);
        let open = rules.pin.is_none() && !rules.require_approval;
        let from_address = inner
            .passes
            .values()
            .filter(|pass| source_of(pass.address) == source && pass.access != Access::Removed)
            .count();
        let refusal = if from_address >= PASSES_PER_ADDRESS {
            // An address holding its share of passes: the next comes when one is forgotten.
            Some(JoinRefusal::TooManyJoins {
                retry_after: PASS_IDLE,
            })
        } else if inner.passes.len() >= MAX_PASSES && !evict_one(&mut inner.passes) {
            Some(JoinRefusal::Full)
        } else {
            spend_a_join(&mut inner, address, now).err()
        };
        if let Some(refusal) = refusal {
            // With no rules anyone may watch: a pass is only a head start for later rules.
            if open {
                return Ok(Joined {
                    access: Access::Admitted,
                    new_pass: None,
                });
            }
            return Err(refusal);
        }
        let access = if rules.require_approval {
            make_room_to_wait(&mut inner.passes);
            Access::Waiting
        } else {
            Access::Admitted
        };
        let secret = random_hex(16).map_err(|_| JoinRefusal::Full)?;
        let handle = random_hex(4).map_err(|_| JoinRefusal::Full)?;
        inner.passes.insert(
            secret.clone(),
            Pass {
                handle,
                address,
                browser: browser_name(browser),
                access,
                since: SystemTime::now(),
                last_seen: now,
                used_from: address.into_iter().collect(),
            },
        );
        Ok(Joined {
            access,
            new_pass: Some(secret),
        })
    }

    /// Lets a waiting viewer in. Whether `handle` named one.
    pub fn admit(&self, handle: &str) -> bool {
        let mut inner = self.lock();
        match inner
            .passes
            .values_mut()
            .find(|pass| pass.handle == handle && pass.access == Access::Waiting)
        {
            Some(pass) => {
                pass.access = Access::Admitted;
                true
            }
            None => false,
        }
    }

    /// Approval was turned off: every waiting viewer is let in (each got its pass under the
    /// rules that stay, the PIN included), where they would otherwise wait for ever.
    pub fn admit_everyone_waiting(&self) {
        for pass in self.lock().passes.values_mut() {
            if pass.access == Access::Waiting {
                pass.access = Access::Admitted;
            }
        }
    }

    /// Removes the viewer with pass `handle`, or every viewer at `address`: their passes are
    /// revoked and every address the pass was used from is shut out until the share ends.
    pub fn remove(&self, handle: Option<&str>, address: Option<IpAddr>) -> bool {
        let mut inner = self.lock();
        let mut addresses: HashSet<IpAddr> = address.into_iter().collect();
        if let Some(pass) =
            handle.and_then(|handle| inner.passes.values().find(|pass| pass.handle == handle))
        {
            addresses.extend(pass.address);
            addresses.extend(pass.used_from.iter().copied());
        }
        let mut found = false;
        for pass in inner.passes.values_mut() {
            if handle.is_some_and(|handle| pass.handle == handle)
                || pass.address.is_some_and(|ip| addresses.contains(&ip))
            {
                pass.access = Access::Removed;
                found = true;
            }
        }
        for ip in addresses {
            found |= inner.removed_addresses.insert(ip);
        }
        drop(inner);
        if found {
            self.removals.send_modify(|count| *count += 1);
        }
        found
    }

    /// Resolves once the request with `pass` from `address` is no longer admitted.
    pub async fn shut_out(&self, pass: Option<String>, address: Option<IpAddr>, rules: Rules) {
        let mut removals = self.removals.subscribe();
        loop {
            if self.check(pass.as_deref(), address, &rules).access != Access::Admitted {
                return;
            }
            if removals.changed().await.is_err() {
                // The share is gone; its own shutdown ends the request.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The rules just got stricter (a PIN set or changed, approval turned on): only passes
    /// whose viewers are watching now (`watching`, by handle) stay admitted; any other pass must
    /// get in again under the new rules.
    pub fn tighten(&self, watching: &HashSet<String>) {
        self.lock()
            .passes
            .retain(|_, pass| pass.access != Access::Admitted || watching.contains(&pass.handle));
    }

    /// Wrong PINs tried so far in this share.
    pub fn wrong_pins(&self) -> u64 {
        self.lock().wrong_pins
    }

    /// Whether wrong PINs came faster than the share allows within the last minute: someone is
    /// guessing, from many addresses. The presenter is told, and may switch to approval.
    pub fn pin_under_attack(&self) -> bool {
        self.lock()
            .share_tries_ran_out
            .is_some_and(|at| at.elapsed() < UNDER_ATTACK_FOR)
    }

    /// Viewers waiting to be let in, earliest first.
    pub fn waiting(&self) -> Vec<PassInfo> {
        let mut inner = self.lock();
        prune(&mut inner.passes, Instant::now());
        let mut waiting: Vec<PassInfo> = inner
            .passes
            .values()
            .filter(|pass| pass.access == Access::Waiting)
            .map(Pass::info)
            .collect();
        waiting.sort_by_key(|pass| pass.since_unix_ms);
        waiting
    }

    /// The browser a pass was given to, by handle.
    pub fn browser_of(&self, handle: &str) -> Option<String> {
        self.lock()
            .passes
            .values()
            .find(|pass| pass.handle == handle)
            .map(|pass| pass.browser.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pass {
    fn info(&self) -> PassInfo {
        PassInfo {
            id: self.handle.clone(),
            address: self
                .address
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            browser: self.browser.clone(),
            access: self.access,
            since_unix_ms: self
                .since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64),
        }
    }
}

/// Checks a PIN attempt against the tries its source, and the share, have left.
fn check_pin(
    inner: &mut Inner,
    address: Option<IpAddr>,
    expected: &Pin,
    attempt: &str,
    now: Instant,
) -> Result<(), JoinRefusal> {
    let bucket = bucket_of(
        &mut inner.tries,
        source_of(address),
        (SOURCE_TRIES, SOURCE_REFILL),
        now,
    );
    if bucket.level(SOURCE_TRIES, SOURCE_REFILL, now) < 1.0 {
        return Err(JoinRefusal::TooManyTries {
            retry_after: bucket.wait(SOURCE_REFILL),
        });
    }
    // The share's allowance holds back only those who have guessed wrong themselves: a viewer
    // who has not spent a try does not pay for somebody else's guessing.
    let tried_before = bucket.level(SOURCE_TRIES, SOURCE_REFILL, now) < SOURCE_TRIES;
    let share_level = inner.share_tries.level(SHARE_TRIES, SHARE_REFILL, now);
    if share_level < 1.0 && tried_before {
        inner.share_tries_ran_out = Some(now);
        return Err(JoinRefusal::ShareUnderAttack {
            retry_after: inner.share_tries.wait(SHARE_REFILL),
        });
    }
    if expected.matches(attempt) {
        return Ok(());
    }
    bucket.tokens -= 1.0;
    inner.share_tries.tokens = (inner.share_tries.tokens - 1.0).max(0.0);
    if inner.share_tries.tokens < 1.0 {
        inner.share_tries_ran_out = Some(now);
    }
    inner.wrong_pins += 1;
    if inner.wrong_pins.is_power_of_two() {
        tracing::warn!(wrong_pins = inner.wrong_pins, "wrong PINs are being tried");
    }
    Err(JoinRefusal::WrongPin)
}

/// Whose tries a request spends: the machine its address stands for (an IPv6 /64).
fn source_of(address: Option<IpAddr>) -> IpAddr {
    // `None` never comes from a real socket: all such requests share one record.
    address.map_or(IpAddr::from([0, 0, 0, 0]), crate::net::machine_of)
}

/// Forgets waiting passes whose page stopped asking (it was closed). Admitted passes stay for
/// the whole share, so a phone that slept for an hour comes back in without the PIN.
fn prune(passes: &mut HashMap<String, Pass>, now: Instant) {
    passes.retain(|_, pass| {
        pass.access != Access::Waiting || now.saturating_duration_since(pass.last_seen) < PASS_IDLE
    });
}

/// Makes room for one more pass at the cap: the admitted pass unused the longest goes.
/// `source`'s bucket in `buckets` (a full one if it has none). Past [`MAX_TRIED_SOURCES`]
/// sources, those whose bucket is full again are forgotten first.
fn bucket_of(
    buckets: &mut HashMap<IpAddr, Bucket>,
    source: IpAddr,
    (capacity, refill): (f64, Duration),
    now: Instant,
) -> &mut Bucket {
    if buckets.len() >= MAX_TRIED_SOURCES {
        buckets.retain(|_, bucket| bucket.level(capacity, refill, now) < capacity);
    }
    buckets
        .entry(source)
        .or_insert_with(|| Bucket::full(capacity, now))
}

/// Spends one of `address`'s new passes, or says how long until one is back.
fn spend_a_join(
    inner: &mut Inner,
    address: Option<IpAddr>,
    now: Instant,
) -> Result<(), JoinRefusal> {
    let bucket = bucket_of(
        &mut inner.joins,
        source_of(address),
        (SOURCE_JOINS, JOIN_REFILL),
        now,
    );
    if bucket.level(SOURCE_JOINS, JOIN_REFILL, now) < 1.0 {
        return Err(JoinRefusal::TooManyJoins {
            retry_after: bucket.wait(JOIN_REFILL),
        });
    }
    bucket.tokens -= 1.0;
    Ok(())
}

/// Keeps the waiting room under [`MAX_WAITING`] with one more to come: the waiting pass whose
/// page asked longest ago goes.
fn make_room_to_wait(passes: &mut HashMap<String, Pass>) {
    let waiting = passes
        .values()
        .filter(|pass| pass.access == Access::Waiting)
        .count();
    if waiting < MAX_WAITING {
        return;
    }
    let stalest = passes
        .iter()
        .filter(|(_, pass)| pass.access == Access::Waiting)
        .min_by_key(|(_, pass)| pass.last_seen)
        .map(|(secret, _)| secret.clone());
    if let Some(secret) = stalest {
        passes.remove(&secret);
    }
}

fn evict_one(passes: &mut HashMap<String, Pass>) -> bool {
    let oldest = passes
        .iter()
        .filter(|(_, pass)| pass.access == Access::Admitted)
        .min_by_key(|(_, pass)| pass.last_seen)
        .map(|(secret, _)| secret.clone());
    oldest.is_some_and(|secret| passes.remove(&secret).is_some())
}

/// `bytes` random bytes as lowercase hex.
fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// "Firefox on Android" from a User-Agent, for the presenter's list; never the raw header.
pub fn browser_name(user_agent: &str) -> String {
    let has = |needle: &str| user_agent.contains(needle);
    let browser = if has("Firefox/") {
        "Firefox"
    } else if has("Edg/") {
        "Edge"
    } else if has("OPR/") {
        "Opera"
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else if has("curl/") {
        "curl"
    } else {
        "unknown"
    };
    let system = if has("Android") {
        " on Android"
    } else if has("iPhone") {
        " on iPhone"
    } else if has("iPad") {
        " on iPad"
    } else if has("Windows") {
        " on Windows"
    } else if has("Mac OS") {
        " on macOS"
    } else if has("CrOS") {
        " on ChromeOS"
    } else if has("Linux") {
        " on Linux"
    } else {
        ""
    };
    if browser == "unknown" {
        // Nothing to tell the presenter: the window shows the address alone.
        return browser.to_owned();
    }
    format!("{browser}{system}")
}

/// The pass in a request's `Cookie` header, if it looks like one.
pub fn pass_from_cookies<'a>(cookies: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    cookies
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == PASS_COOKIE)
        .map(|(_, value)| value)
        .filter(|value| value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin_rules(pin: &str) -> Rules {
        Rules {
            pin: Some(Pin::new(pin).expect("pin")),
            require_approval: false,
        }
    }

    #[test]
    fn without_rules_everyone_not_removed_is_admitted() {
        let admission = Admission::default();
        let ip = Some(IpAddr::from([10, 0, 0, 5]));
        assert_eq!(
            admission.check(None, ip, &Rules::default()).access,
            Access::Admitted
        );
        assert!(admission.remove(None, ip));
        assert_eq!(
            admission.check(None, ip, &Rules::default()).access,
            Access::Removed
        );
        assert_eq!(
            admission.join(None, ip, "", None, &Rules::default()).err(),
            Some(JoinRefusal::Removed)
        );
    }

    #[test]
    fn the_right_pin_gives_a_pass_that_admits() {
        let admission = Admission::default();
        let rules = pin_rules("246813");
        let ip = Some(IpAddr::from([10, 0, 0, 6]));
        assert_eq!(admission.check(None, ip, &rules).access, Access::NeedPin);
        for _ in 0..10 {
            assert_eq!(
                admission.join(None, ip, "", None, &rules).err(),
                Some(JoinRefusal::PinNeeded),
                "asking without a PIN is not a wrong try"
            );
        }
        let joined = admission
            .join(
                None,
                ip,
                "Mozilla/5.0 (X11; Linux) Firefox/130",
                Some("246813"),
                &rules,
            )
            .expect("right PIN");
        let pass = joined.new_pass.expect("a new pass");
        let gate = admission.check(Some(&pass), ip, &rules);
        assert_eq!(gate.access, Access::Admitted);
        assert_eq!(
            admission
                .browser_of(&gate.handle.expect("a handle"))
                .as_deref(),
            Some("Firefox on Linux")
        );
        // A pass the share never gave (another share's) admits nothing.
        assert_eq!(
            admission.check(Some(&"0".repeat(32)), ip, &rules).access,
            Access::NeedPin
        );
    }

    #[test]
    fn a_pass_opens_the_share_only_from_where_it_was_given_and_removal_shuts_out_each_address() {
        let admission = Admission::default();
        let rules = pin_rules("246813");
        let given: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let privacy: IpAddr = "2001:db8:1:2:abcd::7".parse().expect("v6");
        let elsewhere = Some(IpAddr::from([10, 0, 0, 9]));
        let pass = admission
            .join(None, Some(given), "", Some("246813"), &rules)
            .expect("right PIN")
            .new_pass
            .expect("a pass");
        let access = |ip: Option<IpAddr>| admission.check(Some(&pass), ip, &rules).access;
        assert_eq!(access(Some(given)), Access::Admitted);
        assert_eq!(
            access(Some(privacy)),
            Access::Admitted,
            "the same machine's /64"
        );
        assert_eq!(
            access(elsewhere),
            Access::NeedPin,
            "copied elsewhere, no pass"
        );
        let handle = admission
            .check(Some(&pass), Some(given), &rules)
            .handle
            .expect("a handle");
        assert!(
            admission
                .check(Some(&pass), elsewhere, &rules)
                .handle
                .is_none(),
            "not even counted as the same viewer"
        );
        // Joining elsewhere with the copied pass needs the PIN, like anyone.
        assert_eq!(
            admission
                .join(Some(&pass), elsewhere, "", None, &rules)
                .err(),
            Some(JoinRefusal::PinNeeded)
        );

        assert!(admission.remove(Some(&handle), None));
        for ip in [given, privacy] {
            assert_eq!(access(Some(ip)), Access::Removed, "{ip}");
            assert_eq!(
                admission
                    .join(None, Some(ip), "", Some("246813"), &rules)
                    .err(),
                Some(JoinRefusal::Removed),
                "{ip} cannot join again"
            );
        }
        assert!(
            admission
                .join(None, elsewhere, "", Some("246813"), &rules)
                .is_ok(),
            "a machine the pass never reached still gets in with the PIN"
        );
    }

    #[test]
    fn wrong_pins_spend_tries_that_come_back_slowly() {
        let admission = Admission::default();
        let rules = pin_rules("246813");
        let guesser = Some(IpAddr::from([10, 0, 0, 66]));
        for guess in 0..SOURCE_TRIES as u32 {
            let attempt = format!("{:06}", 100_000 + guess);
            assert_eq!(
                admission
                    .join(None, guesser, "", Some(&attempt), &rules)
                    .err(),
                Some(JoinRefusal::WrongPin)
            );
        }
        let Some(JoinRefusal::TooManyTries { retry_after }) = admission
            .join(None, guesser, "", Some("246813"), &rules)
            .err()
        else {
            panic!("out of tries, even the right PIN waits");
        };
        assert!(retry_after > SOURCE_REFILL / 2, "{retry_after:?}");
        // Someone else is not held up by the guesser.
        let other = Some(IpAddr::from([10, 0, 0, 7]));
        assert!(
            admission
                .join(None, other, "", Some("246813"), &rules)
                .is_ok()
        );
        // Waiting out one refill gives one try back, not a fresh five.
        let mut inner = admission.lock();
        let bucket = inner
            .tries
            .get_mut(&IpAddr::from([10, 0, 0, 66]))
            .expect("tries");
        bucket.at -= SOURCE_REFILL;
        drop(inner);
        assert_eq!(
            admission
                .join(None, guesser, "", Some("000000"), &rules)
                .err(),
            Some(JoinRefusal::WrongPin)
        );
        assert!(matches!(
            admission
                .join(None, guesser, "", Some("000001"), &rules)
                .err(),
            Some(JoinRefusal::TooManyTries { .. })
        ));
        assert_eq!(admission.wrong_pins(), SOURCE_TRIES as u64 + 1);
    }

    #[test]
    fn many_addresses_guessing_together_run_out_of_the_shares_tries() {
        let admission = Admission::default();
        let rules = pin_rules("246813");
        assert!(!admission.pin_under_attack());
        // Each new address gets its own first try, the share's allowance spent or not.
        for n in 0..100u8 {
            let source = Some(IpAddr::from([10, 1, n, 1]));
            assert_eq!(
                admission
                    .join(None, source, "", Some("111111"), &rules)
                    .err(),
                Some(JoinRefusal::WrongPin),
                "address {n}"
            );
        }
        assert!(admission.pin_under_attack());
        // A second try from any of them waits for the share's allowance, the right PIN too.
        let again = admission
            .join(
                None,
                Some(IpAddr::from([10, 1, 7, 1])),
                "",
                Some("246813"),
                &rules,
            )
            .err();
        assert!(
            matches!(again, Some(JoinRefusal::ShareUnderAttack { .. })),
            "{again:?}"
        );
        // Someone who has not guessed gets in with the PIN.
        let newcomer = Some(IpAddr::from([10, 2, 0, 1]));
        assert!(
            admission
                .join(None, newcomer, "", Some("246813"), &rules)
                .is_ok()
        );
    }

    #[test]
    fn an_ipv6_machine_is_one_source_for_its_whole_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(source_of(Some(a)), source_of(Some(b)));
        assert_ne!(source_of(Some(a)), source_of(Some(c)));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().expect("mapped");
        assert_eq!(source_of(Some(mapped)), IpAddr::from([10, 0, 0, 5]));
    }

    #[test]
    fn approval_holds_a_viewer_until_admitted_and_removal_ends_it() {
        let admission = Admission::default();
        let rules = Rules {
            pin: None,
            require_approval: true,
        };
        let ip = Some(IpAddr::from([10, 0, 0, 8]));
        assert_eq!(admission.check(None, ip, &rules).access, Access::NeedJoin);
        let pass = admission
            .join(None, ip, "curl/8", None, &rules)
            .expect("join")
            .new_pass
            .expect("pass");
        assert_eq!(
            admission.check(Some(&pass), ip, &rules).access,
            Access::Waiting
        );
        let waiting = admission.waiting();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].browser, "curl");
        assert!(admission.admit(&waiting[0].id));
        assert_eq!(
            admission.check(Some(&pass), ip, &rules).access,
            Access::Admitted
        );
        assert!(admission.remove(Some(&waiting[0].id), None));
        assert_eq!(
            admission.check(Some(&pass), ip, &rules).access,
            Access::Removed
        );
        assert_eq!(
            admission.check(None, ip, &rules).access,
            Access::Removed,
            "address shut out"
        );
    }

    #[test]
    fn tighter_rules_keep_only_the_viewers_watching() {
        let admission = Admission::default();
        let ip = Some(IpAddr::from([10, 0, 0, 12]));
        let open = Rules::default();
        let watching = admission.join(None, ip, "", None, &open).expect("join");
        let idle = admission.join(None, ip, "", None, &open).expect("join");
        let (watching, idle) = (
            watching.new_pass.expect("pass"),
            idle.new_pass.expect("pass"),
        );
        let handle = admission
            .check(Some(&watching), ip, &open)
            .handle
            .expect("handle");
        admission.tighten(&HashSet::from([handle]));
        let strict = pin_rules("246813");
        assert_eq!(
            admission.check(Some(&watching), ip, &strict).access,
            Access::Admitted
        );
        assert_eq!(
            admission.check(Some(&idle), ip, &strict).access,
            Access::NeedPin
        );
    }

    #[test]
    fn with_no_rules_nobody_is_refused_for_want_of_a_pass() {
        let admission = Admission::default();
        let ip = Some(IpAddr::from([10, 0, 0, 13]));
        for _ in 0..PASSES_PER_ADDRESS + 3 {
            let joined = admission
                .join(None, ip, "", None, &Rules::default())
                .expect("in");
            assert_eq!(joined.access, Access::Admitted);
        }
    }

    #[test]
    fn one_address_cannot_hoard_passes() {
        let admission = Admission::default();
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        let rules = Rules {
            pin: None,
            require_approval: true,
        };
        for _ in 0..PASSES_PER_ADDRESS {
            assert!(admission.join(None, ip, "", None, &rules).is_ok());
        }
        assert!(matches!(
            admission.join(None, ip, "", None, &rules).err(),
            Some(JoinRefusal::TooManyJoins { .. })
        ));
    }

    #[test]
    fn cookies_are_read_strictly() {
        let pass = "0123456789abcdef0123456789abcdef";
        let header = format!("theme=dark; {PASS_COOKIE}={pass}; other=1");
        assert_eq!(pass_from_cookies([header.as_str()].into_iter()), Some(pass));
        let short = format!("{PASS_COOKIE}=abc");
        assert_eq!(pass_from_cookies([short.as_str()].into_iter()), None);
        assert_eq!(pass_from_cookies(std::iter::empty()), None);
    }
}
