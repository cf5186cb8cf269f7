//! IPv4 subnets: CIDR arithmetic, the pool regbox carves cluster networks from, and the choice of a free
//! subnet that overlaps no existing network and no host route.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Prefix length of every network regbox creates: 4096 addresses, enough for 1000 static nodes and a
/// dynamic range for anything else Docker attaches.
pub const NETWORK_PREFIX: u8 = 20;

/// The address space regbox carves cluster networks from (`10.128.0.0/9`: 2048 networks of /20).
pub const POOL: Subnet = Subnet {
    base: 0x0a80_0000,
    prefix: 9,
};

/// An IPv4 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    base: u32,
    prefix: u8,
}

impl Subnet {
    /// The network containing `addr` with the given prefix (host bits cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        let mask = mask(prefix);
        Subnet {
            base: u32::from(addr) & mask,
            prefix,
        }
    }

    /// Number of addresses in the network.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// The address `offset` places after the network address.
    pub fn host(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + offset)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let prefix = self.prefix.min(other.prefix);
        self.base & mask(prefix) == other.base & mask(prefix)
    }

    /// Whether `addr` lies in the network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == self.base
    }

    /// The gateway Docker's bridge takes: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.host(1)
    }

    /// The dynamic range Docker may hand out on its own: the top /24. Static node addresses stay below it,
    /// so a node's address is never taken by someone else while it is detached.
    pub fn dynamic_range(&self) -> Subnet {
        Subnet {
            base: self.base + (self.size() as u32 - 256),
            prefix: 24,
        }
    }

    /// The `index`-th sub-network of length `prefix` inside this one.
    pub fn nth(&self, prefix: u8, index: u32) -> Subnet {
        Subnet {
            base: self.base + (index << (32 - prefix)),
            prefix,
        }
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Subnet, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not in CIDR form"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 network"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("bad prefix in `{s}`"))?;
        Ok(Subnet::new(addr, prefix))
    }
}

/// `host offset` on every network of the pool at once, as an address and a non-contiguous mask (the
/// pool's prefix, then the host part of a network): what a packet filter matches to hold on whichever
/// of regbox's networks a host is.
pub fn everywhere(offset: u32) -> (Ipv4Addr, Ipv4Addr) {
    let mask = mask(POOL.prefix) | !mask(NETWORK_PREFIX);
    (Ipv4Addr::from(POOL.base | offset), Ipv4Addr::from(mask))
}

/// The host offset of `ip` within its network, if `ip` is in the pool: the inverse of [`everywhere`].
pub fn offset_in_pool(ip: Ipv4Addr) -> Option<u32> {
    let ip = u32::from(ip);
    (ip & mask(POOL.prefix) == POOL.base).then_some(ip & !mask(NETWORK_PREFIX))
}

/// Candidate subnets for a new network, in the order to try them: every /20 of the pool that overlaps
/// nothing in `taken`, starting at a place derived from `seed` so that two processes creating different
/// clusters at the same moment rarely race for the same one (Docker refuses the loser, which moves on).
pub fn free_subnets<'a>(taken: &'a [Subnet], seed: &str) -> impl Iterator<Item = Subnet> + 'a {
    let count = 1u32 << (NETWORK_PREFIX - POOL.prefix);
    let start =
        u32::from_be_bytes(Sha256::digest(seed.as_bytes())[..4].try_into().unwrap()) % count;
    (0..count)
        .map(move |i| POOL.nth(NETWORK_PREFIX, (start + i) % count))
        .filter(move |candidate| !taken.iter().any(|t| t.overlaps(candidate)))
}

/// Parses the destinations of the host's IPv4 routing table (`/proc/net/route` format) so subnets that
/// a VPN or another tool routes are never chosen.
pub fn parse_routes(table: &str) -> Vec<Subnet> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            // The kernel prints the raw network-order word as a native integer.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = u32::from_be_bytes(mask.to_ne_bytes()).count_ones() as u8;
            (prefix != 0).then(|| Subnet::new(dest, prefix))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_everywhere_matches_its_address_on_every_network_and_no_other() {
        let (addr, mask) = everywhere(12);
        assert_eq!(
            (addr.to_string(), mask.to_string()),
            ("10.128.0.12".into(), "255.128.15.255".into())
        );
        let matches = |ip: Ipv4Addr| u32::from(ip) & u32::from(mask) == u32::from(addr);
        for net in free_subnets(&[], "x").step_by(97) {
            assert!(matches(net.host(12)));
            assert!(!matches(net.host(13)));
            assert_eq!(offset_in_pool(net.host(12)), Some(12));
        }
        assert!(!matches("10.0.0.12".parse().unwrap()));
        assert_eq!(offset_in_pool("10.0.0.12".parse().unwrap()), None);
    }

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    #[test]
    fn overlap_is_symmetric_and_prefix_aware() {
        assert!(net("10.128.0.0/9").overlaps(&net("10.130.16.0/20")));
        assert!(net("10.130.16.0/20").overlaps(&net("10.128.0.0/9")));
        assert!(!net("10.130.16.0/20").overlaps(&net("10.130.32.0/20")));
        assert!(net("0.0.0.0/0").overlaps(&net("192.168.1.0/24")));
    }

    #[test]
    fn contains_is_prefix_aware() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(net("10.130.16.0/20").contains(ip("10.130.16.0")));
        assert!(net("10.130.16.0/20").contains(ip("10.130.31.255")));
        assert!(!net("10.130.16.0/20").contains(ip("10.130.32.0")));
        assert!(!net("10.130.16.0/20").contains(ip("10.130.15.255")));
        assert!(net("0.0.0.0/0").contains(ip("192.168.1.7")));
        assert!(net("127.0.0.1/32").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1/32").contains(ip("127.0.0.2")));
    }

    #[test]
    fn free_subnets_skip_taken_and_stay_in_pool() {
        let taken = vec![net("10.128.0.0/12")];
        let first: Vec<Subnet> = free_subnets(&taken, "x").take(300).collect();
        assert_eq!(first.len(), 300);
        for s in &first {
            assert!(POOL.overlaps(s) && !s.overlaps(&taken[0]), "{s}");
            assert_eq!(s.prefix, NETWORK_PREFIX);
        }
        // Every /20 of the pool but the 256 taken ones.
        assert_eq!(free_subnets(&taken, "x").count(), 2048 - 256);
    }

    #[test]
    fn routes_are_read_from_proc_format() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            parse_routes(table),
            vec![net("192.168.1.0/24"), net("172.17.0.0/16")]
        );
    }
}
