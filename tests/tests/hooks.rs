//! Watching an interface costs its traffic nothing and changes nothing about
//! it (issue 32): tc ingress and egress by default, every feature (`ethtool
//! -k`), the MTU and the MTU range of the watched device and of its veth peer
//! as they were, while watched and after; `--wire-in xdp` attaches native XDP
//! and counts the same; where a driver refuses native XDP, tc ingress stands
//! in with one log line, never generic XDP. Part of the kernel test set.

use std::net::SocketAddr;

use rst_tests::{
    namespaces::{
        device,
        netns::{Hooks, Pair, VA, VB},
    },
    rig::daemon::{Daemon, Pins},
    traffic,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// The watched device and its peer, as an observer could change them.
fn devices(pair: &Pair) -> (device::State, device::State) {
    (device::state(&pair.b, VB), device::state(&pair.a, VA))
}

/// A refusal each way across vb: `b` refused by `a` (arrives: wire_in) and
/// `a` refused by `b` (leaves: wire_out), keyed by the refusing ports.
fn refusals(pair: &Pair, d: &Daemon, arriving: u16, leaving: u16) {
    traffic::syn_to_closed_port(&pair.b, addr("10.77.0.2:0"), addr(&format!("10.77.0.1:{arriving}")));
    traffic::syn_to_closed_port(&pair.a, addr("10.77.0.1:0"), addr(&format!("10.77.0.2:{leaving}")));
    let s = d.wait_for("a refusal each way on the wire", |s| {
        s.port("wire_in", "refusal", arriving) >= 1 && s.port("wire_out", "refusal", leaving) >= 1
    });
    assert_eq!(s.port("wire_in", "refusal", arriving), 1, "{}", s.json);
    assert_eq!(s.port("received", "refused", arriving), 1, "{}", s.json);
    assert_eq!(s.port("wire_out", "refusal", leaving), 1, "{}", s.json);
}

#[test]
fn the_default_hooks_change_nothing_about_the_device_or_its_peer() {
    let pair = Pair::new();
    let before = devices(&pair);
    let d = Daemon::start(&pair.b, &["--iface", VB]);
    assert_eq!(pair.hooks_on_vb(), Hooks::TC, "tc ingress and egress, no XDP");
    let vb = &d.snapshot().json["interfaces"][0];
    assert!(vb["ingress"] == "tcx" || vb["ingress"] == "tc", "{vb}");
    assert_eq!((vb["wire_in"].as_bool(), vb["xdp"].as_bool()), (Some(true), Some(false)), "{vb}");
    refusals(&pair, &d, 7941, 7942);
    assert_eq!(devices(&pair), before, "changed while watched");
    drop(d);
    assert_eq!(pair.hooks_on_vb(), Hooks::NONE);
    assert_eq!(devices(&pair), before, "changed after stop");
}

#[test]
fn wire_in_xdp_attaches_native_xdp_counts_the_same_and_restores_the_device() {
    let pair = Pair::new();
    let before = devices(&pair);
    let d = Daemon::start(&pair.b, &["--iface", VB, "--wire-in", "xdp"]);
    assert_eq!(pair.hooks_on_vb(), Hooks::XDP, "native XDP and tc egress");
    let vb = &d.snapshot().json["interfaces"][0];
    assert_eq!((vb["ingress"].as_str(), vb["xdp"].as_bool()), (Some("xdp"), Some(true)), "{vb}");
    refusals(&pair, &d, 7943, 7944);
    drop(d);
    assert_eq!(pair.hooks_on_vb(), Hooks::NONE);
    // While it was attached, XDP on a veth took its peer's segmentation
    // offload (the kernel's doing, why tc ingress is the default); now it is back.
    assert_eq!(devices(&pair), before, "not restored after stop");
}

#[test]
fn where_native_xdp_is_refused_tc_ingress_stands_in_with_one_line() {
    // Loopback has no native XDP: the daemon must not fall back to generic XDP.
    let pair = Pair::new();
    let before = device::state(&pair.b, "lo");
    let pins = Pins::new();
    let log = std::env::temp_dir().join(format!("rstw-hooks-{}.log", std::process::id()));
    let d = Daemon::start_logged(&pair.b, &pins.0, &["--iface", "lo", "--wire-in", "xdp"], &log);
    assert!(!pair.b.exec(&["ip", "-d", "link", "show", "lo"]).contains("xdp"), "XDP (generic) on lo");
    let lo = d.snapshot().json["interfaces"][0].clone();
    assert!(lo["ingress"] == "tcx" || lo["ingress"] == "tc", "{lo}");
    assert_eq!((lo["wire_in"].as_bool(), lo["xdp"].as_bool()), (Some(true), Some(false)), "{lo}");
    traffic::syn_to_closed_port(&pair.b, addr("127.0.0.1:0"), addr("127.0.0.1:7945"));
    let s = d.wait_for("the refusal on lo, both ways", |s| {
        s.port("wire_in", "refusal", 7945) >= 1 && s.port("wire_out", "refusal", 7945) >= 1
    });
    assert_eq!(s.port("wire_in", "refusal", 7945), 1, "{}", s.json);
    drop(d);
    let text = std::fs::read_to_string(&log).expect("the daemon's log");
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("native XDP refused")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("tc ingress") && lines[0].contains("lo"), "{}", lines[0]);
    assert_eq!(device::state(&pair.b, "lo"), before);
}
