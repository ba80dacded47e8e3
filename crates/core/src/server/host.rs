//! The DNS-rebinding defence: a request must name this server in its `Host`.
//!
//! A web page anywhere can make its visitor's browser send requests to `evil.example`, then point
//! that name at this machine's LAN address: the browser would treat the share's answers as the
//! page's own and let it read the frames. Such requests still say `Host: evil.example`, so a server
//! that answers only to its own names and addresses (421 Misdirected Request otherwise) is out of
//! reach. The URLs the app prints (IP addresses) and `localhost` always pass.
//!
//! The port is not checked: a rebinding page's own port gives it nothing, while a port forward or
//! a relay in front of the share (a test's network-drop relay is one) legitimately names another.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::uri::Authority;

/// How long a list of this machine's addresses is trusted before a miss re-reads it (an address
/// can arrive with DHCP or a VPN while sharing).
const ADDRESSES_FRESH_FOR: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct HostCheck {
    /// Lower-case names that may appear in `Host` besides addresses: `localhost`, this machine's
    /// name (and its `.local` mDNS form), and whatever the presenter allowed.
    names: Vec<String>,
    addresses: Mutex<Option<(Instant, Vec<IpAddr>)>>,
}

/// Why a `Host` was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HostRefusal {
    /// Not a host name at all: 400.
    Malformed,
    /// Some other server's name, address or port: 421.
    NotThisServer,
}

impl HostCheck {
    pub(crate) fn new(allowed_names: &[String]) -> Self {
        let mut names = vec!["localhost".to_owned()];
        if let Some(machine) = machine_name() {
            names.push(format!("{machine}.local"));
            names.push(machine);
        }
        names.extend(allowed_names.iter().map(|name| normalise(name)));
        Self {
            names,
            addresses: Mutex::new(None),
        }
    }

    /// Whether `host` (a `Host` header's value) names this server.
    pub(crate) fn check(&self, host: &str) -> Result<(), HostRefusal> {
        let authority: Authority = host.parse().map_err(|_| HostRefusal::Malformed)?;
        if authority.as_str().contains('@') {
            return Err(HostRefusal::Malformed);
        }
        let name = normalise(authority.host());
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        let known = match literal.parse::<IpAddr>() {
            Ok(ip) => ip.to_canonical().is_loopback() || self.is_machine_address(ip),
            Err(_) => self.names.contains(&name),
        };
        if known {
            Ok(())
        } else {
            Err(HostRefusal::NotThisServer)
        }
    }

    fn is_machine_address(&self, ip: IpAddr) -> bool {
        let mut cached = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, addresses)) = cached.as_ref()
            && addresses.contains(&ip)
        {
            return true;
        }
        let stale = cached
            .as_ref()
            .is_none_or(|(read, _)| read.elapsed() >= ADDRESSES_FRESH_FOR);
        if !stale {
            return false;
        }
        let addresses: Vec<IpAddr> = local_ip_address::list_afinet_netifas()
            .map(|interfaces| interfaces.into_iter().map(|(_, ip)| ip).collect())
            .unwrap_or_default();
        let found = addresses.contains(&ip);
        *cached = Some((Instant::now(), addresses));
        found
    }
}

/// Names compare case-insensitively, with or without the root's trailing dot.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn machine_name() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let uname = rustix::system::uname();
        let name = uname.nodename().to_str().ok()?;
        (!name.is_empty()).then(|| normalise(name))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_and_names_pass_others_get_421() {
        let check = HostCheck::new(&["Screen.Example.".to_owned()]);
        assert_eq!(check.check("127.0.0.1:5000"), Ok(()));
        assert_eq!(check.check("[::1]:5000"), Ok(()));
        assert_eq!(check.check("localhost:5000"), Ok(()));
        assert_eq!(check.check("LOCALHOST.:5000"), Ok(()));
        assert_eq!(check.check("screen.example:5000"), Ok(()));
        assert_eq!(
            check.check("attacker.example:5000"),
            Err(HostRefusal::NotThisServer)
        );
        // Any port: a relay or port forward in front names its own.
        assert_eq!(check.check("127.0.0.1:5001"), Ok(()));
        assert_eq!(check.check("localhost"), Ok(()));
        assert_eq!(
            check.check("203.0.113.9:5000"),
            Err(HostRefusal::NotThisServer)
        );
        assert_eq!(check.check(""), Err(HostRefusal::Malformed));
        assert_eq!(check.check("a b:5000"), Err(HostRefusal::Malformed));
        assert_eq!(
            check.check("user@localhost:5000"),
            Err(HostRefusal::Malformed)
        );
    }
}
