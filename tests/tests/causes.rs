//! Causes that match what the kernel did (issue: no reset counted that never
//! arrived; linger_abort only for close()). Real sockets in two namespaces,
//! the kernel's own counters beside ours. Part of the kernel test set: where
//! a kernel lacks what a check needs, the test expects what the README's
//! kernel table says instead.

use std::{io::Write as _, net::SocketAddr, process::Command};

use rst_tests::{
    namespaces::netns::{Pair, VB},
    rig::{Rig, daemon, snapshot::Snapshot},
    traffic,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn feature(s: &Snapshot, name: &str) -> bool {
    s.json["coverage"]["features"][name].as_bool().unwrap_or(false)
}

/// The cause a socket reset of `reason_cause` shows: the kernel's reason
/// (>= 6.10) or its call site (before); `unspecified` only where neither can
/// be had (no kallsyms addresses).
fn by_reason(s: &Snapshot, reason_cause: &'static str) -> &'static str {
    if feature(s, "tracepoint:tcp:tcp_send_reset.reason") || feature(s, "kallsyms:call sites") {
        reason_cause
    } else {
        "unspecified"
    }
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

/// Call sites instead of the kernel's reasons, where the kernel has both: the
/// same scenarios then show whether the call-site table names them as 6.10+ does.
const FORCE_CALL_SITES: (&str, &str) = ("RSTWATCH_CALL_SITES", "force");

/// One socket reset scenario: what it does, the (port, cause) it must be
/// counted as in `sent`, and the kernel counter (in b) that counts it too.
struct Scenario {
    name: &'static str,
    port: u16,
    cause: &'static str,
    counter: Option<&'static str>,
    run: fn(&Pair),
}

fn out_rsts(ns: &rst_tests::namespaces::netns::Netns) -> u64 {
    rst_tests::kernel::counters::read(ns).get("Tcp:OutRsts").copied().unwrap_or(0)
}

/// Waits (at most 10 s) until namespace `ns` has sent a reset since `before`.
fn wait_out_rsts(ns: &rst_tests::namespaces::netns::Netns, before: u64) {
    rst_tests::wait::until_true("a reset", std::time::Duration::from_secs(10), || out_rsts(ns) > before);
}

/// No route from a back to b: b's probes and segments go unanswered.
fn silence_a(p: &Pair) {
    p.a.exec(&["ip", "route", "add", "blackhole", "10.77.0.2/32"]);
}

fn unsilence_a(p: &Pair) {
    p.a.exec(&["ip", "route", "del", "blackhole", "10.77.0.2/32"]);
}

const SCENARIOS: [Scenario; 9] = [
    Scenario {
        name: "close() with unread data",
        port: 7420,
        cause: "close_with_unread_data",
        counter: Some("TcpExt:TCPAbortOnClose"),
        run: |p| {
            let (mut c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7520"), addr("10.77.0.2:7420"));
            traffic::send_and_wait_queued(&mut c, &s, b"never read");
            drop(s);
            traffic::expect_reset(c);
        },
    },
    Scenario {
        // The kernel looks at unread data before SO_LINGER: TCPAbortOnClose, not a linger abort.
        name: "close() with unread data and SO_LINGER {1,0}",
        port: 7421,
        cause: "close_with_unread_data",
        counter: Some("TcpExt:TCPAbortOnClose"),
        run: |p| {
            let (mut c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7521"), addr("10.77.0.2:7421"));
            traffic::send_and_wait_queued(&mut c, &s, b"never read");
            traffic::close_with_linger_zero(s);
            traffic::expect_reset(c);
        },
    },
    Scenario {
        name: "close() in FIN_WAIT2 with TCP_LINGER2 < 0",
        port: 7422,
        cause: "fin_wait2_abort",
        counter: Some("TcpExt:TCPAbortOnLinger"),
        run: |p| {
            let (mut c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7522"), addr("10.77.0.2:7422"));
            traffic::tcp_opt(&s, libc::TCP_LINGER2, -1);
            s.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let mut buf = [0u8; 8];
            assert_eq!(std::io::Read::read(&mut c, &mut buf).expect("EOF"), 0);
            traffic::wait_state(&s, 5);
            drop(s);
            // c has read the FIN: the reset shows in its state.
            traffic::wait_state(&c, 7);
        },
    },
    Scenario {
        name: "keepalive probes unanswered",
        port: 7423,
        cause: "keepalive_timeout",
        counter: Some("TcpExt:TCPAbortOnTimeout"),
        run: |p| {
            let (c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7523"), addr("10.77.0.2:7423"));
            traffic::keepalive_fast(&s);
            c.set_read_timeout(Some(std::time::Duration::from_secs(15))).expect("timeout");
            silence_a(p);
            traffic::expect_reset(c);
            unsilence_a(p);
            drop(s);
        },
    },
    Scenario {
        name: "a listener answering a stray ACK",
        port: 7424,
        cause: "bad_flags",
        counter: None,
        run: |p| {
            let _l = traffic::listen(&p.b, addr("10.77.0.2:7424"));
            let before = out_rsts(&p.b);
            assert_eq!(traffic::inject(p, 7524, 7424, 0x10, 5, 1), 1);
            wait_out_rsts(&p.b, before);
        },
    },
    Scenario {
        // A second SYN inside a half-open connection's window: the request is
        // reset (tcp_check_req, INVALID_SYN), which the kernel counts as a failed attempt.
        name: "a SYN inside a handshake's window",
        port: 7427,
        cause: "bad_flags",
        counter: Some("Tcp:AttemptFails"),
        run: |p| {
            let _l = traffic::listen(&p.b, addr("10.77.0.2:7427"));
            silence_a(p);
            let syn = |seq| rst_tests::traffic::frames::Tcp::new(7529, 7427, seq, 0x02);
            let before = out_rsts(&p.b);
            assert_eq!(traffic::inject_segment(p, &syn(1000), 1), 1);
            assert_eq!(traffic::inject_segment(p, &syn(1001), 1), 1);
            wait_out_rsts(&p.b, before);
            unsilence_a(p);
        },
    },
    Scenario {
        // Our SYN is unanswered; a forged SYN-ACK acknowledges nothing we sent.
        name: "a SYN-ACK with a bad acknowledgment",
        port: 7425,
        cause: "invalid_ack",
        counter: None,
        run: |p| {
            silence_a(p);
            let s = p.b.run(|| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
                s.bind(&addr("10.77.0.2:7425").into()).expect("bind");
                s.set_nonblocking(true).expect("non-blocking");
                let _ = s.connect(&addr("10.77.0.1:7525").into());
                s
            });
            let before = out_rsts(&p.b);
            assert_eq!(traffic::inject(p, 7525, 7425, 0x12, 5, 1), 1);
            wait_out_rsts(&p.b, before);
            unsilence_a(p);
            drop(s);
        },
    },
    Scenario {
        // The IPv6 receive path (tcp_v6_do_rcv, tcp_v6_send_reset): data reaching b's orphan.
        name: "data reaching an orphaned socket over IPv6",
        port: 7428,
        cause: "abort_on_data",
        counter: Some("TcpExt:TCPAbortOnData"),
        run: |p| {
            let (mut c, s, _l) = traffic::establish(&p.a, &p.b, addr("[fd77::1]:7530"), addr("[fd77::2]:7428"));
            // Over TIME_WAIT's 60 s, so the orphan stays a full socket in FIN_WAIT2.
            traffic::tcp_opt(&s, libc::TCP_LINGER2, 120);
            drop(s);
            let mut buf = [0u8; 8];
            assert_eq!(std::io::Read::read(&mut c, &mut buf).expect("EOF"), 0);
            c.write_all(b"late data").expect("write");
            traffic::wait_state(&c, 7);
        },
    },
    Scenario {
        // LAST_ACK with data still unsent: the peer closed and reads nothing, we shut down, then disconnect.
        name: "connect(AF_UNSPEC) in LAST_ACK with data unsent",
        port: 7426,
        cause: "disconnect_with_data",
        counter: None,
        run: |p| {
            let (c, mut s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7526"), addr("10.77.0.2:7426"));
            c.shutdown(std::net::Shutdown::Write).expect("shutdown");
            traffic::wait_state(&s, 8);
            traffic::fill_send_buffer(&mut s);
            s.shutdown(std::net::Shutdown::Write).expect("shutdown");
            traffic::wait_state(&s, 9);
            traffic::disconnect(&s);
            // c holds unread data: it sees the reset as its state, not as a read error.
            traffic::wait_state(&c, 7);
        },
    },
];

/// Every scenario in one rig: `sent` names each reset as 6.10+ does (by
/// reason, or by call site before 6.10), beside the kernel's own counter.
fn socket_resets_are_named(env: &[(&str, &str)]) {
    let rig = Rig::start_env(&["--iface", VB], env);
    let s0 = rig.daemon.snapshot();
    for sc in &SCENARIOS {
        let cause = by_reason(&s0, sc.cause);
        let d = rig.measure(sc.run, |d| d.port("sent", cause, sc.port) > 0);
        assert_eq!(d.port("sent", cause, sc.port), 1, "{}: {}", sc.name, d.after.json);
        // Replies to segments still in flight when the socket went (the peer's
        // ACKs under a slow guest: stale_segment, or bad_flags from the
        // listener) are other resets, rightly named; no other cause may appear.
        let replies = ["stale_segment", "bad_flags", "closed_port"];
        let socket_resets = |s: &Snapshot| -> u64 {
            s.port_causes("sent", sc.port)
                .iter()
                .filter(|(c, _)| c.as_str() == cause || !replies.contains(&c.as_str()))
                .map(|(_, n)| n)
                .sum()
        };
        let all = socket_resets(&d.after) - socket_resets(&d.before);
        assert_eq!(all, 1, "{}: one reset from that port, under one cause: {}", sc.name, d.after.json);
        if let Some(counter) = sc.counter {
            assert_eq!(d.kernel_b(counter), 1, "{}: the kernel's {counter}", sc.name);
        }
    }
}

#[test]
fn socket_resets_are_named_as_the_kernel_names_them() {
    socket_resets_are_named(&[]);
}

/// Where the kernel has reasons, the call-site table must name the same
/// scenarios the same way (on kernels without, the test above already does).
#[test]
fn socket_resets_are_named_by_call_site_as_by_reason() {
    let rig = Rig::start();
    if !feature(&rig.daemon.snapshot(), "tracepoint:tcp:tcp_send_reset.reason") {
        return;
    }
    drop(rig);
    socket_resets_are_named(&[FORCE_CALL_SITES]);
}

/// A call site the table does not know (a kernel build that renamed or
/// inlined the caller) is `unspecified` with one log line naming it, never a
/// guess: here the table forgets `__tcp_close` and `tcp_close`.
#[test]
fn an_unknown_call_site_is_unspecified_with_one_line() {
    let pair = Pair::new();
    let pins = daemon::Pins::new();
    let log = std::env::temp_dir().join(format!("rstw-{}-sites.log", std::process::id()));
    let env = [FORCE_CALL_SITES, ("RSTWATCH_FORGET_CALL_SITES", "__tcp_close,tcp_close")];
    let mut d = daemon::Daemon::start_logged_env(&pair.b, &pins.0, &["--iface", VB], &env, &log);
    if !feature(&d.snapshot(), "kallsyms:call sites") {
        return; // no addresses here: every socket reset is unspecified, as the coverage line says
    }
    for port in [7527, 7528] {
        let (mut c, s, _l) =
            traffic::establish(&pair.a, &pair.b, addr(&format!("10.77.0.1:{port}")), addr("10.77.0.2:7429"));
        traffic::send_and_wait_queued(&mut c, &s, b"never read");
        drop(s);
        traffic::expect_reset(c);
    }
    let s = d.wait_for("2 resets", |s| s.port("sent", "unspecified", 7429) >= 2);
    assert_eq!(s.port("sent", "unspecified", 7429), 2, "{}", s.json);
    assert_eq!(s.port("sent", "close_with_unread_data", 7429), 0, "never a guess");
    assert_eq!(d.stop().code(), Some(0));
    let text = std::fs::read_to_string(&log).expect("daemon log");
    let _ = std::fs::remove_file(&log);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("call-site table does not name")).collect();
    assert_eq!(lines.len(), 1, "one line for one call site: {text}");
    assert!(lines[0].contains("tcp_close+0x"), "it names the caller: {}", lines[0]);
}
