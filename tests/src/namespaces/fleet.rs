//! A small fleet: hosts, each joined to one monitoring namespace by a veth
//! pair (monitor `10.79.N.1`, host `10.79.N.2`, N from 1), so a Prometheus
//! in the monitoring namespace scrapes every host by its own address. Every
//! address exists only inside these namespaces.

use crate::namespaces::netns::Netns;

pub struct Fleet {
    pub monitor: Netns,
    pub hosts: Vec<Netns>,
}

/// Host `i`'s address (0-based), as the monitor reaches it.
#[must_use]
pub fn host_addr(i: usize) -> String {
    format!("10.79.{}.2", i + 1)
}

/// The monitor's address on host `i`'s link.
#[must_use]
pub fn monitor_addr(i: usize) -> String {
    format!("10.79.{}.1", i + 1)
}

/// Host `i`'s device towards the monitor, and the monitor's towards it.
#[must_use]
pub fn devices(i: usize) -> (String, String) {
    (format!("up{i}"), format!("down{i}"))
}

impl Fleet {
    #[must_use]
    pub fn new(hosts: usize) -> Self {
        let fleet = Self { monitor: Netns::new("mon"), hosts: (0..hosts).map(|_| Netns::new("host")).collect() };
        for (i, host) in fleet.hosts.iter().enumerate() {
            let (up, down) = devices(i);
            let out = std::process::Command::new("ip")
                .args(["link", "add", &down, "netns", &fleet.monitor.name, "type", "veth", "peer", "name", &up])
                .args(["netns", &host.name])
                .output()
                .expect("running ip(8)");
            assert!(out.status.success(), "ip link add: {}", String::from_utf8_lossy(&out.stderr));
            for (ns, dev, addr) in [(&fleet.monitor, &down, monitor_addr(i)), (host, &up, host_addr(i))] {
                ns.exec(&["ip", "addr", "add", &format!("{addr}/24"), "dev", dev]);
                ns.exec(&["ip", "link", "set", dev, "up"]);
            }
        }
        fleet
    }
}
