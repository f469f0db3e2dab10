//! The seed's three ways a TCP reset happens (../shared/seeds/000_*.txt), plus
//! close with unread data: real sockets in two namespaces, the real daemon in
//! `b` watching veth `vb`. Each test checks both ends, the wire, and the
//! kernel's own counters. Part of the kernel test set (run in every kernel of
//! `cargo xtask test --kernels`): where a kernel has no reset reasons (< 6.10)
//! the checks that need them expect what the contract says instead.

use std::{io::Write as _, net::SocketAddr};

use rst_tests::{rig::Rig, traffic};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// Whether this kernel's `tcp_send_reset` carries `enum sk_rst_reason` (>= 6.10).
fn has_reasons(s: &rst_tests::rig::snapshot::Snapshot) -> bool {
    s.json["coverage"]["features"]["tracepoint:tcp:tcp_send_reset.reason"].as_bool().unwrap_or(false)
}

/// Socket resets get their cause: from the kernel's reason (>= 6.10) or their call site (before).
fn has_causes(s: &rst_tests::rig::snapshot::Snapshot) -> bool {
    has_reasons(s) || s.json["coverage"]["features"]["kallsyms:call sites"].as_bool().unwrap_or(false)
}

/// The sample's kernel reason name, where the kernel names one.
fn assert_reason(s: &rst_tests::rig::snapshot::Snapshot, sample: &serde_json::Value, name: &str) {
    if has_reasons(s) {
        assert_eq!(sample["reason_name"], name, "{sample}");
    } else {
        assert!(sample.get("reason_name").is_none(), "no reasons before 6.10: {sample}");
    }
}

#[test]
fn seed_1_syn_to_closed_port_v4() {
    let rig = Rig::start();
    let (client, server) = (addr("10.77.0.1:7101"), addr("10.77.0.2:7001"));
    let d = rig.measure(
        |p| traffic::syn_to_closed_port(&p.a, client, server),
        |d| {
            d.port("sent", "closed_port", 7001) > 0
                && d.port("received", "refused", 7001) > 0
                && d.port("wire_out", "refusal", 7001) > 0
        },
    );
    assert_eq!(d.port("sent", "closed_port", 7001), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "refused", 7001), 1);
    assert_eq!(d.port("wire_out", "refusal", 7001), 1);
    assert_eq!(d.total("wire_in"), 0, "no RST arrives at vb");
    assert_eq!(d.after.peer("sent", "closed_port", "10.77.0.1") - d.before.peer("sent", "closed_port", "10.77.0.1"), 1);
    assert_eq!(d.kernel_b("Tcp:OutRsts"), 1);
    let recent = d.after.recent("sent", "closed_port", 7001);
    assert_reason(&d.after, &recent[0], "NO_SOCKET");
    assert!(recent[0].get("pid").is_none(), "softirq resets are never attributed to a process");
    assert!(recent[0].get("owner").is_none(), "no socket, no owner");
    // Each end's namespace (contract §3), and the watching daemon's for the wire.
    assert_eq!(recent[0]["netns"], rig.pair.b.inode(), "{}", recent[0]);
    assert_eq!(d.after.recent("received", "refused", 7101)[0]["netns"], rig.pair.a.inode());
    assert_eq!(d.after.recent("wire_out", "refusal", 7001)[0]["netns"], rig.pair.b.inode());
}

#[test]
fn seed_1_syn_to_closed_port_v6() {
    let rig = Rig::start();
    let (client, server) = (addr("[fd77::1]:7106"), addr("[fd77::2]:7006"));
    let d = rig.measure(
        |p| traffic::syn_to_closed_port(&p.a, client, server),
        |d| {
            d.port("sent", "closed_port", 7006) > 0
                && d.port("received", "refused", 7006) > 0
                && d.port("wire_out", "refusal", 7006) > 0
        },
    );
    assert_eq!(d.port("sent", "closed_port", 7006), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "refused", 7006), 1);
    assert_eq!(d.port("wire_out", "refusal", 7006), 1);
    assert_eq!(d.after.peer("sent", "closed_port", "fd77::1") - d.before.peer("sent", "closed_port", "fd77::1"), 1);
    assert_eq!(d.after.recent("sent", "closed_port", 7006)[0]["family"], "ipv6");
}

#[test]
fn seed_2_so_linger_zero_close() {
    let rig = Rig::start();
    let (client, server) = (addr("10.77.0.1:7102"), addr("10.77.0.2:7002"));
    let d = rig.measure(
        |p| {
            let (c, s, _listener) = traffic::establish(&p.a, &p.b, client, server);
            traffic::close_with_linger_zero(s);
            traffic::expect_reset(c);
        },
        |d| {
            d.port("sent", "linger_abort", 7002) > 0
                && d.port("received", "peer_reset", 7102) > 0
                && d.port("wire_out", "abort", 7002) > 0
        },
    );
    assert_eq!(d.port("sent", "linger_abort", 7002), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "peer_reset", 7102), 1);
    assert_eq!(d.port("wire_out", "abort", 7002), 1);
    // Linux counts this abort as TCPAbortOnData (not ...OnLinger): see docs/contract.md.
    assert_eq!(d.kernel_b("TcpExt:TCPAbortOnData"), 1);
    let recent = d.after.recent("sent", "linger_abort", 7002);
    assert_eq!(recent[0]["pid"], std::process::id(), "close() runs in the process that caused the reset");
    assert!(recent[0]["comm"].as_str().is_some_and(|c| !c.is_empty()));
    assert_reason(&d.after, &recent[0], "TCP_STATE");
}

#[test]
fn seed_2_so_linger_zero_close_by_client_seen_on_wire_in() {
    let rig = Rig::start();
    let (client, server) = (addr("10.77.0.1:7103"), addr("10.77.0.2:7003"));
    let d = rig.measure(
        |p| {
            let (c, s, _listener) = traffic::establish(&p.a, &p.b, client, server);
            traffic::close_with_linger_zero(c);
            traffic::expect_reset(s);
        },
        |d| {
            d.port("sent", "linger_abort", 7103) > 0
                && d.port("received", "peer_reset", 7003) > 0
                && d.port("wire_in", "abort", 7003) > 0
        },
    );
    assert_eq!(d.port("sent", "linger_abort", 7103), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "peer_reset", 7003), 1);
    assert_eq!(d.port("wire_in", "abort", 7003), 1);
    assert_eq!(d.total("wire_out"), 0);
}

#[test]
fn seed_3_data_into_half_open_connection() {
    let rig = Rig::start();
    let (client, server) = (addr("10.77.0.1:7104"), addr("10.77.0.2:7004"));
    let d = rig.measure(
        |p| {
            let (mut c, s, listener) = traffic::establish(&p.a, &p.b, client, server);
            // The server host "crashes": its sockets vanish without a FIN or RST.
            drop(listener);
            traffic::vanish(s);
            c.write_all(b"are you there?").expect("write");
            traffic::expect_reset(c);
        },
        |d| {
            d.port("sent", "stale_segment", 7004) > 0
                && d.port("received", "peer_reset", 7104) > 0
                && d.port("wire_out", "stray_reply", 7004) > 0
        },
    );
    assert_eq!(d.port("sent", "stale_segment", 7004), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "peer_reset", 7104), 1);
    assert_eq!(d.port("wire_out", "stray_reply", 7004), 1);
    assert_eq!(d.kernel_b("Tcp:OutRsts"), 1);
}

#[test]
fn close_with_unread_data() {
    let rig = Rig::start();
    // Told apart by the kernel's reason (TCP_ABORT_ON_CLOSE), before 6.10 by its call site
    // (__tcp_close, before the socket is orphaned); `unspecified` only without either.
    let cause = if has_causes(&rig.daemon.snapshot()) { "close_with_unread_data" } else { "unspecified" };
    let (client, server) = (addr("10.77.0.1:7105"), addr("10.77.0.2:7005"));
    let d = rig.measure(
        |p| {
            let (mut c, s, _listener) = traffic::establish(&p.a, &p.b, client, server);
            traffic::send_and_wait_queued(&mut c, &s, b"never read");
            drop(s);
            traffic::expect_reset(c);
        },
        |d| {
            d.port("sent", cause, 7005) > 0
                && d.port("received", "peer_reset", 7105) > 0
                && d.port("wire_out", "abort", 7005) > 0
        },
    );
    assert_eq!(d.port("sent", cause, 7005), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "peer_reset", 7105), 1);
    assert_eq!(d.port("wire_out", "abort", 7005), 1);
    assert_eq!(d.kernel_b("TcpExt:TCPAbortOnClose"), 1);
    let recent = d.after.recent("sent", cause, 7005);
    if has_causes(&d.after) {
        assert_eq!(recent[0]["pid"], std::process::id());
    } else {
        assert!(recent[0].get("pid").is_none(), "an unspecified reset may run in a timer: never a process");
    }
}
