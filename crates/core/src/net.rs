//! Which addresses a share can be reached at, best first, and the URLs built from them.

use std::net::{IpAddr, SocketAddr};

/// The URLs to reach `path` on a server listening on `bound`, best first: LAN addresses of real
/// network interfaces, then other usable ones (virtual bridges, VPNs), loopback last; link-local
/// addresses (which need an interface scope to be usable) are left out.
pub fn urls_for(bound: SocketAddr, path: &str) -> Vec<String> {
    let interfaces = if bound.ip().is_unspecified() {
        local_ip_address::list_afinet_netifas().unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot list network interfaces; showing loopback only");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    ranked_addresses(bound, &interfaces)
        .into_iter()
        .map(|ip| url(SocketAddr::new(ip, bound.port()), path))
        .collect()
}

/// `http://host:port/path`, with brackets for IPv6.
pub fn url(address: SocketAddr, path: &str) -> String {
    let path = path.trim_start_matches('/');
    match address.ip() {
        IpAddr::V4(ip) => format!("http://{ip}:{}/{path}", address.port()),
        IpAddr::V6(ip) => format!("http://[{ip}]:{}/{path}", address.port()),
    }
}

/// The machine an address stands for: an IPv4 address itself, an IPv6 address's /64 (one
/// machine can have a whole /64 to itself, and its privacy addresses change within it).
pub fn machine_of(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// The addresses a listener bound to `bound` answers on, best first.
fn ranked_addresses(bound: SocketAddr, interfaces: &[(String, IpAddr)]) -> Vec<IpAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound.ip()];
    }
    let wants_v6 = bound.is_ipv6();
    let mut candidates: Vec<(u8, &str, IpAddr)> = interfaces
        .iter()
        // A socket bound to 0.0.0.0 answers on IPv4 only; one bound to [::] on both (dual stack).
        .filter(|(_, ip)| wants_v6 || ip.is_ipv4())
        .filter(|(_, ip)| !is_link_local(ip))
        .map(|(name, ip)| (rank(name, ip), name.as_str(), *ip))
        .collect();
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)).then(a.2.cmp(&b.2)));
    candidates.dedup_by_key(|candidate| candidate.2);
    let mut addresses: Vec<IpAddr> = candidates.into_iter().map(|(_, _, ip)| ip).collect();
    let loopback: IpAddr = if wants_v6 {
        std::net::Ipv6Addr::LOCALHOST.into()
    } else {
        std::net::Ipv4Addr::LOCALHOST.into()
    };
    if !addresses.iter().any(IpAddr::is_loopback) {
        addresses.push(loopback);
    }
    addresses
}

/// Lower is better: private LAN addresses on physical-looking interfaces come first.
fn rank(interface: &str, ip: &IpAddr) -> u8 {
    const VIRTUAL_PREFIXES: [&str; 9] = [
        "docker", "br-", "veth", "virbr", "vmnet", "vboxnet", "tun", "tap", "wg",
    ];
    if ip.is_loopback() {
        return 9;
    }
    let virtual_interface = VIRTUAL_PREFIXES
        .iter()
        .any(|prefix| interface.starts_with(prefix));
    let private = match ip {
        IpAddr::V4(v4) => v4.is_private(),
        // Unique local addresses (fc00::/7) are IPv6's private range.
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    match (virtual_interface, private, ip.is_ipv4()) {
        (false, true, true) => 0,
        (false, _, true) => 1,
        (false, _, false) => 2,
        (true, _, _) => 5,
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interfaces() -> Vec<(String, IpAddr)> {
        [
            ("lo", "127.0.0.1"),
            ("docker0", "172.17.0.1"),
            ("wlan0", "192.168.1.23"),
            ("eth0", "169.254.10.10"),
            ("eth0", "fe80::1"),
            ("eth0", "2001:db8::5"),
        ]
        .into_iter()
        .map(|(name, ip)| (name.to_owned(), ip.parse().expect("test address")))
        .collect()
    }

    #[test]
    fn lan_first_loopback_last_no_link_local() {
        let bound: SocketAddr = "0.0.0.0:5000".parse().expect("address");
        let ranked = ranked_addresses(bound, &interfaces());
        let shown: Vec<String> = ranked.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["192.168.1.23", "172.17.0.1", "127.0.0.1"]);
    }

    #[test]
    fn dual_stack_adds_ipv6_without_link_local() {
        let bound: SocketAddr = "[::]:5000".parse().expect("address");
        let shown: Vec<String> = ranked_addresses(bound, &interfaces())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            ["192.168.1.23", "2001:db8::5", "172.17.0.1", "127.0.0.1"]
        );
    }

    #[test]
    fn specific_bind_is_the_only_address() {
        let bound: SocketAddr = "127.0.0.1:8080".parse().expect("address");
        assert_eq!(
            ranked_addresses(bound, &interfaces()),
            vec!["127.0.0.1".parse::<IpAddr>().expect("ip")]
        );
    }

    #[test]
    fn urls_bracket_ipv6() {
        let v6: SocketAddr = "[2001:db8::5]:80".parse().expect("address");
        assert_eq!(url(v6, "/s/abc/"), "http://[2001:db8::5]:80/s/abc/");
        let v4: SocketAddr = "10.0.0.2:5000".parse().expect("address");
        assert_eq!(url(v4, "s/abc/"), "http://10.0.0.2:5000/s/abc/");
    }

    #[test]
    fn no_interfaces_still_gives_loopback() {
        let bound: SocketAddr = "0.0.0.0:5000".parse().expect("address");
        assert_eq!(
            ranked_addresses(bound, &[]),
            vec!["127.0.0.1".parse::<IpAddr>().expect("ip")]
        );
    }
}
