//! The networks outbound requests (pulls, webhook deliveries) may reach: a deny
//! list that always wins, and an optional allow list outside which nothing is
//! reached. Addresses are checked after name resolution, so a name that resolves to
//! a denied address is refused as surely as the address itself.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// What is denied when nothing is configured: "this host" and loopback addresses
/// (the server itself and whatever listens beside it), link-local networks (where
/// cloud metadata services answer), multicast and broadcast, IPv4-compatible IPv6
/// addresses, and the EC2 IPv6 metadata address. The server's own listening address
/// is added to it (see `Config`).
pub const DEFAULT_DENY: &str =
    "0.0.0.0/8,127.0.0.0/8,169.254.0.0/16,224.0.0.0/4,255.255.255.255,::/96,fe80::/10,ff00::/8,fd00:ec2::254";

/// The default less loopback: for a machine that is its own whole network (the
/// demo, tests, benchmarks), whose devices and receivers answer on loopback.
pub const DEFAULT_DENY_BUT_LOOPBACK: &str =
    "0.0.0.0/8,169.254.0.0/16,224.0.0.0/4,::/128,fe80::/10,ff00::/8,fd00:ec2::254";

/// What webhook deliveries are denied besides: private networks (RFC 1918, the
/// carrier-grade NAT range, unique local IPv6). Devices live there, so pulls reach
/// them; a webhook receiver normally does not, and one there is a way in.
pub const PRIVATE_NETWORKS: &str = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";

/// An address block such as `169.254.0.0/16`; a bare address is a block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

/// IPv4 addresses written as IPv6 (`::ffff:a.b.c.d`) are checked as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let ((base, width), (addr, addr_width)) = (bits(self.base), bits(ip));
        if width != addr_width {
            return false;
        }
        let shift = u32::from(width - self.prefix);
        let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
        (base & mask) == (addr & mask)
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("`{text}` is not an address or a network like 10.0.0.0/8"))?,
        );
        let width = bits(base).1;
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("`{text}` has a prefix length that is not 0 to {width}"))?,
        };
        Ok(Network { base, prefix })
    }
}

impl From<IpAddr> for Network {
    /// The block of one address.
    fn from(ip: IpAddr) -> Network {
        let base = canonical(ip);
        Network {
            base,
            prefix: bits(base).1,
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// Parses a comma-separated list of networks.
pub fn parse_list(text: &str) -> Result<Vec<Network>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(Network::from_str)
        .collect()
}

/// Which addresses outbound requests may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    /// When not empty, only these.
    pub allow: Vec<Network>,
    /// Never these, whatever `allow` says.
    pub deny: Vec<Network>,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        AddressPolicy {
            allow: Vec::new(),
            deny: parse_list(DEFAULT_DENY).unwrap_or_default(),
        }
    }
}

impl AddressPolicy {
    /// Whether `ip` may be reached; when not, why.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if let Some(net) = self.deny.iter().find(|n| n.contains(ip)) {
            return Err(format!("{ip} is in the denied network {net}"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|n| n.contains(ip)) {
            return Err(format!("{ip} is outside the allowed networks"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let link_local: Network = "169.254.0.0/16".parse().unwrap();
        assert!(link_local.contains(ip("169.254.169.254")));
        assert!(link_local.contains(ip("::ffff:169.254.169.254")));
        assert!(!link_local.contains(ip("169.255.0.1")));
        assert!(!link_local.contains(ip("fe80::1")));
        let one: Network = "127.0.0.2".parse().unwrap();
        assert!(one.contains(ip("127.0.0.2")));
        assert!(!one.contains(ip("127.0.0.1")));
        let everything: Network = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        let v6: Network = "fd00:ec2::254".parse().unwrap();
        assert!(v6.contains(ip("fd00:ec2::254")));
        assert!(!v6.contains(ip("fd00:ec2::253")));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("example.com/8".parse::<Network>().is_err());
    }

    #[test]
    fn deny_wins_and_allow_narrows() {
        let default = AddressPolicy::default();
        assert!(default.check(ip("169.254.169.254")).is_err());
        assert!(default.check(ip("fd00:ec2::254")).is_err());
        assert!(default.check(ip("fe80::1")).is_err());
        assert!(default.check(ip("0.0.0.0")).is_err());
        assert!(
            default.check(ip("10.1.2.3")).is_ok(),
            "devices live in private networks"
        );
        for local in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "224.0.0.1",
            "ff02::1",
        ] {
            assert!(default.check(ip(local)).is_err(), "{local} is reached by default");
        }
        let narrow = AddressPolicy {
            allow: parse_list("127.0.0.0/8").unwrap(),
            deny: parse_list("127.0.0.2").unwrap(),
        };
        assert!(narrow.check(ip("127.0.0.1")).is_ok());
        let denied = narrow.check(ip("127.0.0.2")).unwrap_err();
        assert!(denied.contains("denied network 127.0.0.2/32"), "{denied}");
        assert!(narrow.check(ip("10.0.0.1")).unwrap_err().contains("outside"));
    }
}
