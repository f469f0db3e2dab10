//! Three hosts on a routed path: client `c` — middlebox `m` — server `s`.
//! `m` routes between two veth pairs (its own TTL decrement) and has an
//! nftables forward chain for the test's rules. Every address exists only
//! inside these namespaces.

use std::net::Ipv4Addr;

use crate::{
    namespaces::netns::Netns,
    traffic::{flood, frames::Tcp},
};

pub const C4: &str = "10.78.1.1";
pub const S4: &str = "10.78.2.1";
const M_C4: &str = "10.78.1.254";
const M_S4: &str = "10.78.2.254";
/// Devices: `c`'s, `m`'s towards `c`, `m`'s towards `s`, `s`'s.
pub const VC: &str = "vc";
const MC: &str = "mc";
const MS: &str = "ms";
pub const VS: &str = "vs";

pub struct RoutedPath {
    pub client: Netns,
    pub middlebox: Netns,
    pub server: Netns,
}

fn link(a: &Netns, a_dev: &str, a_addr: &str, b: &Netns, b_dev: &str, b_addr: &str) {
    let out = std::process::Command::new("ip")
        .args(["link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns", &b.name])
        .output()
        .expect("running ip(8)");
    assert!(out.status.success(), "ip link add: {}", String::from_utf8_lossy(&out.stderr));
    for (ns, dev, addr) in [(a, a_dev, a_addr), (b, b_dev, b_addr)] {
        ns.exec(&["ip", "addr", "add", &format!("{addr}/24"), "dev", dev]);
        ns.exec(&["ip", "link", "set", dev, "up"]);
    }
}

impl RoutedPath {
    #[must_use]
    pub fn new() -> Self {
        let p = Self { client: Netns::new("c"), middlebox: Netns::new("m"), server: Netns::new("s") };
        link(&p.client, VC, C4, &p.middlebox, MC, M_C4);
        link(&p.middlebox, MS, M_S4, &p.server, VS, S4);
        p.client.exec(&["ip", "route", "add", "default", "via", M_C4]);
        p.server.exec(&["ip", "route", "add", "default", "via", M_S4]);
        p.middlebox.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        p.middlebox.exec(&["nft", "add", "table", "inet", "rstw"]);
        p.middlebox.exec(&["nft", "add", "chain", "inet", "rstw", "relay", "{ type filter hook forward priority 0; }"]);
        p
    }

    /// Adds a rule to the middlebox's forward chain (nft syntax, one string).
    pub fn rule(&self, rule: &str) {
        self.middlebox.exec(&["nft", &format!("add rule inet rstw relay {rule}")]);
    }

    /// Removes every rule of the middlebox's forward chain.
    pub fn clear_rules(&self) {
        self.middlebox.exec(&["nft", "flush", "chain", "inet", "rstw", "relay"]);
    }

    /// Sends `tcp` from `src` to `dst` as one frame on the wire: from the
    /// middlebox straight to the client (`from_server_side` false: it
    /// arrives with the TTL it was sent with, 64), or from the server into
    /// the middlebox, which routes it on (63 on arrival).
    pub fn inject(&self, from_server_side: bool, src: &str, dst: &str, tcp: &Tcp) {
        let (ns, dev, to_ns, to_dev) = if from_server_side {
            (&self.server, VS, &self.middlebox, MS)
        } else {
            (&self.middlebox, MC, &self.client, VC)
        };
        let (ifindex, src_mac) = ns.link_info(dev);
        let (_, dst_mac) = to_ns.link_info(to_dev);
        let ip = |a: &str| a.parse::<Ipv4Addr>().expect("IPv4 address");
        let frames = vec![flood::frame(src_mac, dst_mac, ip(src), ip(dst), tcp)];
        let sent = ns.run(|| flood::flood_count(&flood::socket(ifindex), &frames, 1));
        assert_eq!(sent, 1, "the injected segment left");
    }
}

impl Default for RoutedPath {
    fn default() -> Self {
        Self::new()
    }
}
