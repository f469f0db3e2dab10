//! The wire parser, run in the kernel with BPF_PROG_TEST_RUN on hand-built
//! frames (this kernel has no 802.1Q support, so VLAN tags cannot cross a real
//! veth here): IPv4/IPv6, VLAN and QinQ tags, every wire cause, and the
//! verdict is always pass.

use rst_common::{cause, maps, view};
use rst_tests::{
    kernel::programs::{Programs, TC_ACT_OK, XDP_PASS},
    traffic::frames::{ACK, Ip, RST, SYN, Tcp, frame},
};
use rst_user::kernel::loader;

const A4: [u8; 4] = [10, 0, 0, 1];
const B4: [u8; 4] = [10, 0, 0, 2];
const A6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

#[test]
fn wire_causes_through_vlan_tags_v4_and_v6() {
    let malformed = Tcp { doff: 3, ..Tcp::new(1005, 2005, 9, RST | ACK) };
    // (VLAN tags, IP, TCP, expected cause; None = not an RST)
    let cases: Vec<(&[u16], Ip, Tcp, Option<u8>)> = vec![
        (&[], Ip::V4(A4, B4), Tcp::new(1001, 2001, 0, RST | ACK), Some(cause::REFUSAL)),
        (&[100], Ip::V4(A4, B4), Tcp::new(1002, 2002, 77, RST | ACK), Some(cause::ABORT)),
        (&[100, 200], Ip::V4(A4, B4), Tcp::new(1003, 2003, 77, RST), Some(cause::STRAY_REPLY)),
        (&[], Ip::V6(A6, B6), Tcp::new(1004, 2004, 0, RST | ACK), Some(cause::REFUSAL)),
        (&[300], Ip::V6(A6, B6), Tcp::new(1006, 2006, 5, RST | ACK), Some(cause::ABORT)),
        (&[], Ip::V4(A4, B4), malformed, Some(cause::MALFORMED)),
        (&[100], Ip::V4(A4, B4), Tcp::new(1007, 2007, 0, SYN), None),
        (&[], Ip::V6(A6, B6), Tcp::new(1008, 2008, 1, ACK), None),
    ];
    // wire_in by either hook: XDP (`--wire-in xdp`) and tc ingress (the default).
    for xdp in [true, false] {
        let mut progs = Programs::load();
        for (vlans, ip, tcp, _) in &cases {
            let f = frame(vlans, *ip, tcp);
            if xdp {
                assert_eq!(progs.xdp(progs.wire_xdp, &f, 1).0, XDP_PASS);
            } else {
                assert_eq!(progs.tc(loader::TC_INGRESS_PROGRAM, &f, 1).0, TC_ACT_OK);
            }
            assert_eq!(progs.tc(loader::TC_PROGRAM, &f, 1).0, TC_ACT_OK);
        }
        check_wire_counts(&cases, &progs.counts());
    }
}

fn check_wire_counts(cases: &[(&[u16], Ip, Tcp, Option<u8>)], counts: &rst_user::pipeline::aggregate::KernelCounts) {
    let port =
        |v: u8, c: u8, p: u16| counts.ports.iter().find(|(k, _)| *k == maps::port_key(v, c, p)).map_or(0, |(_, n)| *n);
    for (vlans, _, tcp, expected) in cases {
        // Frames fed to tc by hand were never announced by the TCP stack: on
        // egress every well-formed one is `not_from_stack`.
        let egress = expected.map(|c| if c == cause::MALFORMED { c } else { cause::NOT_FROM_STACK });
        for c in [cause::REFUSAL, cause::ABORT, cause::STRAY_REPLY, cause::MALFORMED, cause::NOT_FROM_STACK] {
            // wire_in keys by the RST's destination port (a refusal by the port
            // that refused: its source), wire_out by its source port
            let inbound = if c == cause::REFUSAL { tcp.sport } else { tcp.dport };
            assert_eq!(
                port(view::WIRE_IN, c, inbound),
                u64::from(*expected == Some(c)),
                "wire_in cause {c} for {vlans:?} port {inbound}"
            );
            assert_eq!(
                port(view::WIRE_OUT, c, tcp.sport),
                u64::from(egress == Some(c)),
                "wire_out cause {c} for {vlans:?} port {}",
                tcp.sport
            );
        }
    }
    let rsts = cases.iter().filter(|c| c.3.is_some()).count() as u64;
    let total = |v: u8| (0..cause::SLOTS).map(|c| counts.causes[cause::slot(v, c) as usize]).sum::<u64>();
    assert_eq!(total(view::WIRE_IN), rsts);
    assert_eq!(total(view::WIRE_OUT), rsts);
}

/// An nftables rule in `ns` answering SYNs to `port` with a firewall's RST (not the stack's).
fn reject_with_tcp_reset(ns: &rst_tests::namespaces::netns::Netns, port: u16) {
    let port = port.to_string();
    ns.exec(&["nft", "add", "table", "inet", "rstw"]);
    ns.exec(&["nft", "add", "chain", "inet", "rstw", "in", "{ type filter hook input priority 0; }"]);
    ns.exec(&["nft", "add", "rule", "inet", "rstw", "in", "tcp", "dport", &port, "reject", "with", "tcp", "reset"]);
}

#[test]
fn firewall_reset_is_not_from_stack() {
    let rig = rst_tests::rig::Rig::start();
    reject_with_tcp_reset(&rig.pair.b, 7801);
    let d = rig.measure(
        |p| {
            rst_tests::traffic::syn_to_closed_port(
                &p.a,
                "10.77.0.1:7811".parse().unwrap(),
                "10.77.0.2:7801".parse().unwrap(),
            );
        },
        |d| d.port("wire_out", "not_from_stack", 7801) > 0 && d.port("received", "refused", 7801) > 0,
    );
    assert_eq!(d.port("wire_out", "not_from_stack", 7801), 1, "{}", d.after.json);
    assert_eq!(d.port("wire_out", "refusal", 7801), 0);
    assert_eq!(d.port("sent", "closed_port", 7801), 0, "the TCP stack sent nothing");
    assert_eq!(d.kernel_b("Tcp:OutRsts"), 0);
    // the stack's own resets on the same interface still carry their flag cause
    let d = rig.measure(
        |p| {
            rst_tests::traffic::syn_to_closed_port(
                &p.a,
                "10.77.0.1:7812".parse().unwrap(),
                "10.77.0.2:7802".parse().unwrap(),
            );
        },
        |d| d.port("wire_out", "refusal", 7802) > 0,
    );
    assert_eq!(d.port("wire_out", "not_from_stack", 7802), 0);
}

#[test]
fn an_identical_tuple_in_another_namespace_never_crosses() {
    let rig = rst_tests::rig::Rig::start();
    reject_with_tcp_reset(&rig.pair.b, 7821);
    // Namespace x holds both addresses on its loopback: its stack refuses the
    // very tuple b's firewall will, and announces that reply to tc egress.
    let x = rst_tests::namespaces::netns::Netns::new("x");
    for a in ["10.77.0.1/32", "10.77.0.2/32"] {
        x.exec(&["ip", "addr", "add", a, "dev", "lo"]);
    }
    let (client, server) = ("10.77.0.1:7831".parse().unwrap(), "10.77.0.2:7821".parse().unwrap());
    rst_tests::traffic::syn_to_closed_port(&x, client, server);
    rig.daemon.wait_for("x's stack reset", |s| s.port("sent", "closed_port", 7821) == 1);
    // Now b's firewall rejects the same tuple on the watched vb: it must not
    // take x's announcement for its own.
    let d = rig.measure(
        |p| rst_tests::traffic::syn_to_closed_port(&p.a, client, server),
        |d| d.port("wire_out", "not_from_stack", 7821) + d.port("wire_out", "refusal", 7821) > 0,
    );
    assert_eq!(d.port("wire_out", "not_from_stack", 7821), 1, "{}", d.after.json);
    assert_eq!(d.port("wire_out", "refusal", 7821), 0, "crossed: {}", d.after.json);
    assert_eq!(d.kernel_b("Tcp:OutRsts"), 0, "b's stack sent nothing");
}

#[test]
fn a_raw_tcp_socket_reset_is_not_from_stack_and_the_stack_replies_stay_the_stacks() {
    let rig = rst_tests::rig::Rig::start();
    // The stack's replies: tc egress learns its control socket from the first
    // one on each CPU, and tells the rest by their owner.
    let n: u16 = 20;
    let d = rig.measure(
        |p| {
            for i in 0..n {
                let client = format!("10.77.0.1:{}", 7850 + i).parse().unwrap();
                rst_tests::traffic::syn_to_closed_port(&p.a, client, "10.77.0.2:7841".parse().unwrap());
            }
        },
        |d| d.port("wire_out", "refusal", 7841) + d.port("wire_out", "not_from_stack", 7841) >= u64::from(n),
    );
    assert_eq!(d.port("wire_out", "refusal", 7841), u64::from(n), "{}", d.after.json);
    assert_eq!(d.port("wire_out", "not_from_stack", 7841), 0);
    assert_eq!(d.kernel_b("Tcp:OutRsts"), u64::from(n));
    // A user's raw TCP socket is a TCP-protocol raw socket too, but not the stack's.
    let d = rig.measure(
        |p| rst_tests::traffic::raw_socket_rst(&p.b, 7842, "10.77.0.1:7870".parse().unwrap()),
        |d| d.port("wire_out", "not_from_stack", 7842) + d.port("wire_out", "abort", 7842) > 0,
    );
    assert_eq!(d.port("wire_out", "not_from_stack", 7842), 1, "{}", d.after.json);
    assert_eq!(d.port("wire_out", "abort", 7842), 0);
    assert_eq!(d.kernel_b("Tcp:OutRsts"), 0, "the TCP stack sent nothing");
}
