//! Causes that match what the kernel did (issue: no reset counted that never
//! arrived; linger_abort only for close()). Real sockets in two namespaces,
//! the kernel's own counters beside ours. Part of the kernel test set: where
//! a kernel lacks what a check needs, the test expects what the README's
//! kernel table says instead.

use std::{io::Write as _, net::SocketAddr, process::Command};

use rst_tests::{rig::Rig, rig::snapshot::Snapshot, traffic};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn feature(s: &Snapshot, name: &str) -> bool {
    s.json["coverage"]["features"][name].as_bool().unwrap_or(false)
}

/// The cause a socket reset of `reason_cause` shows: without the kernel's reasons (< 6.10), `unspecified`.
fn by_reason(s: &Snapshot, reason_cause: &'static str) -> &'static str {
    if feature(s, "tracepoint:tcp:tcp_send_reset.reason") { reason_cause } else { "unspecified" }
}

#[test]
fn data_reaching_an_orphaned_socket_is_sent_abort_on_data_and_no_received_reset() {
    let rig = Rig::start();
    let s0 = rig.daemon.snapshot();
    let sent = by_reason(&s0, "abort_on_data");
    // Counted at fentry tcp_reset(sk, skb), where the kernel has the skb (>= 5.12) and allows fentry.
    let exact = feature(&s0, "fentry:tcp_reset");
    let client = std::cell::RefCell::new(None);
    let d = rig.measure(
        |p| {
            let (mut c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7501"), addr("10.77.0.2:7401"));
            // b closes (a FIN, b's socket is an orphan in FIN_WAIT); a still sends. A FIN_WAIT2
            // timeout over TIME_WAIT's 60 s keeps the orphan a full socket (else a timewait one).
            let secs: libc::c_int = 120;
            // SAFETY: setsockopt with a valid int option.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&s),
                    libc::IPPROTO_TCP,
                    libc::TCP_LINGER2,
                    (&raw const secs).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "TCP_LINGER2: {}", std::io::Error::last_os_error());
            drop(s);
            let mut buf = [0u8; 8];
            assert_eq!(std::io::Read::read(&mut c, &mut buf).expect("EOF"), 0);
            c.write_all(b"late data").expect("write");
            // Kept open until the RST is counted: its close must not race the RST.
            *client.borrow_mut() = Some(c);
        },
        |d| d.port("sent", sent, 7401) > 0 && d.port("received", "peer_reset", 7501) > 0,
    );
    assert_eq!(d.kernel_b("TcpExt:TCPAbortOnData"), 1);
    assert_eq!(d.port("sent", sent, 7401), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "peer_reset", 7501), 1, "the RST reached a");
    // b's kernel reset its own socket: no RST arrived there. Without fentry the tracepoint
    // counts whatever tcp_reset() the kernel calls (some kernels call it here, 6.18 does not).
    let own = d.port("received", "reset_while_closing", 7401);
    if exact {
        assert_eq!(own, 0, "{}", d.after.json);
        assert_eq!(d.total("wire_in"), 0, "and indeed no RST arrived at b");
    }
    assert_eq!(d.total("received"), 1 + own, "{}", d.after.json);
    assert_eq!(d.kernel("Tcp:EstabResets") - d.kernel_b("Tcp:EstabResets"), 1, "a's connection was reset");
}

/// A reset a socket with SO_LINGER {1,0} sends other than by close(): sent
/// from `port` as `bad_state` (`unspecified` without reasons), never
/// `linger_abort`, and the kernel counts no linger close (TCPAbortOnData).
fn reset_not_by_close(
    port: u16,
    peer_port: u16,
    scenario: impl FnOnce(&rst_tests::namespaces::netns::Pair),
) -> (Snapshot, &'static str) {
    let rig = Rig::start();
    let cause = by_reason(&rig.daemon.snapshot(), "bad_state");
    let d =
        rig.measure(scenario, |d| d.port("sent", cause, port) > 0 && d.port("received", "peer_reset", peer_port) > 0);
    assert_eq!(d.port("sent", cause, port), 1, "{}", d.after.json);
    assert_eq!(d.port("sent", "linger_abort", port), 0, "not close()");
    assert_eq!(d.total("received"), 1, "the one RST that arrived: {}", d.after.json);
    assert_eq!(d.kernel("TcpExt:TCPAbortOnData"), 0, "the kernel did not count a linger close either");
    (d.after, cause)
}

#[test]
fn disconnect_with_linger_zero_is_not_linger_abort() {
    let _ = reset_not_by_close(7502, 7402, |p| {
        let (c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7502"), addr("10.77.0.2:7402"));
        traffic::set_linger_zero(&c);
        traffic::disconnect(&c);
        traffic::expect_reset(s);
    });
}

#[test]
fn ss_kill_with_linger_zero_is_not_linger_abort() {
    let (after, cause) = reset_not_by_close(7403, 7503, |p| {
        let (c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7503"), addr("10.77.0.2:7403"));
        traffic::set_linger_zero(&s);
        // sock_destroy (tcp_abort), as an operator would kill the connection.
        let out = Command::new("nsenter")
            .arg(format!("--net={}", p.b.path()))
            .args(["ss", "-K", "dst", "10.77.0.1", "dport", "=", "7503"])
            .output()
            .expect("running ss");
        assert!(out.status.success(), "ss -K: {}", String::from_utf8_lossy(&out.stderr));
        traffic::expect_reset(c);
        drop(s);
    });
    if cause == "bad_state" {
        let recent = after.recent("sent", cause, 7403);
        assert_eq!(recent[0]["comm"], "ss", "the process that killed it: {}", recent[0]);
    }
}

#[test]
fn rst_ending_a_handshake_is_received_reset_in_handshake() {
    let rig = Rig::start();
    let exact = feature(&rig.daemon.snapshot(), "fexit:tcp_check_req");
    let _listener = traffic::listen(&rig.pair.b, addr("10.77.0.2:7404"));
    let d = rig.measure(
        // A hand-made SYN from a port a has no socket on: b answers SYN-ACK (a request
        // socket), a's stack answers that with a RST in window, which ends the request.
        |p| assert_eq!(traffic::inject(p, 7504, 7404, 0x02, 5, 1), 1),
        |d| {
            d.port("wire_in", "stray_reply", 7404) > 0 && (!exact || d.port("received", "reset_in_handshake", 7404) > 0)
        },
    );
    assert_eq!(d.kernel_b("TcpExt:EmbryonicRsts"), 1, "the kernel dropped the request on a RST");
    assert_eq!(d.port("received", "reset_in_handshake", 7404), u64::from(exact), "{}", d.after.json);
    // What arrived at b is what b counts as received.
    if exact {
        let arrived = d.port("wire_in", "stray_reply", 7404);
        let received: u64 = d.after.port_causes("received", 7404).iter().map(|(_, n)| n).sum::<u64>()
            - d.before.port_causes("received", 7404).iter().map(|(_, n)| n).sum::<u64>();
        assert_eq!((arrived, received), (1, 1), "{}", d.after.json);
    }
    if exact {
        let recent = d.after.recent("received", "reset_in_handshake", 7404);
        assert_eq!(recent[0]["remote"], "10.77.0.1:7504", "{}", recent[0]);
        assert_eq!(d.after.peer("received", "reset_in_handshake", "10.77.0.1"), 1);
    }
}

#[test]
fn rst_failing_paws_is_accepted_not_rejected() {
    let rig = Rig::start();
    let (client, mut server, _l) =
        traffic::establish(&rig.pair.a, &rig.pair.b, addr("10.77.0.1:7505"), addr("10.77.0.2:7405"));
    let (seq, tsval) = traffic::seq_and_tsval(&client);
    // RST|ACK at b's exact next sequence, its timestamp far older than b's ts_recent: PAWS fails.
    let old = tsval.wrapping_sub(1 << 30).to_be_bytes();
    let options = vec![1, 1, 8, 10, old[0], old[1], old[2], old[3], 0, 0, 0, 0];
    let rst = rst_tests::traffic::frames::Tcp { sport: 7505, dport: 7405, seq, flags: 0x14, doff: 8, payload: options };
    let d = rig.measure(
        |p| assert_eq!(traffic::inject_segment(p, &rst, 1), 1),
        |d| d.port("received", "peer_reset", 7405) + d.port("received", "rejected_invalid", 7405) > 0,
    );
    // Linux: "Reset is accepted even if it did not pass PAWS" (tcp_validate_incoming()).
    assert_eq!(d.port("received", "peer_reset", 7405), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "rejected_invalid", 7405), 0);
    assert_eq!(d.kernel_b("TcpExt:PAWSEstabRejected"), 0);
    assert_eq!(d.kernel_b("Tcp:EstabResets"), 1, "the kernel reset b's connection");
    let mut buf = [0u8; 4];
    let r = std::io::Read::read(&mut server, &mut buf);
    assert!(matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset), "{r:?}");
}
