//! Who sent it (contract §2a): a real routed path, client — middlebox —
//! server, with a daemon at each end watching its own interface and counting
//! its own namespace. Each scenario's received RSTs must come out with the
//! named origin, every view's origins must add up to its total exactly, and
//! the kernel's own counters stand beside ours. Part of the kernel test set.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use rst_tests::{
    kernel::counters::{self, Counters},
    namespaces::path::{C4, RoutedPath, S4, VC, VS},
    rig::{daemon::Daemon, snapshot::Snapshot},
    traffic::{
        self,
        frames::{ACK, RST, Tcp},
    },
    wait,
};

const ORIGINS: [&str; 4] = ["unknown", "peer", "middlebox", "forged"];

struct Ends {
    path: RoutedPath,
    client: Daemon,
    server: Daemon,
}

/// One daemon's view of a scenario.
struct Seen {
    before: Snapshot,
    after: Snapshot,
}

impl Seen {
    fn origin(&self, view: &str, cause: &str, origin: &str) -> u64 {
        self.after.origin(view, cause, origin) - self.before.origin(view, cause, origin)
    }

    fn corrected(&self, view: &str, from: &str, to: &str) -> u64 {
        self.after.corrected(view, from, to) - self.before.corrected(view, from, to)
    }

    fn total(&self, view: &str) -> u64 {
        self.after.total(view) - self.before.total(view)
    }

    fn sent_and_missed(&self) -> u64 {
        let m = |s: &Snapshot| s.json["missed"]["sent"].as_u64().unwrap_or(0);
        self.total("sent") + m(&self.after) - m(&self.before)
    }

    /// (peer, middlebox, forged, unknown) of `view` over every cause.
    fn origins(&self, view: &str) -> (u64, u64, u64, u64) {
        let o = |origin| self.origin(view, "", origin);
        (o("peer"), o("middlebox"), o("forged"), o("unknown"))
    }
}

struct Outcome {
    client: Seen,
    server: Seen,
    /// Kernel counter deltas in the client's and the server's namespace.
    kernel_c: (Counters, Counters),
    kernel_s: (Counters, Counters),
}

impl Outcome {
    fn kernel_c(&self, name: &str) -> u64 {
        counters::delta(&self.kernel_c.0, &self.kernel_c.1, name)
    }
}

impl Ends {
    fn start() -> Self {
        let path = RoutedPath::new();
        let netns = |ns: &rst_tests::namespaces::netns::Netns| ns.path();
        let (c, s) = (netns(&path.client), netns(&path.server));
        let client = Daemon::start(&path.client, &["--iface", VC, "--netns", &c]);
        let server = Daemon::start(&path.server, &["--iface", VS, "--netns", &s]);
        Self { path, client, server }
    }

    /// Runs `scenario`, waits until `settled(client, server)` holds, and
    /// checks what holds for every scenario: each daemon's origins add up
    /// to its received and wire_in totals, and its sent resets are its
    /// namespace's Tcp OutRsts.
    fn run(&self, name: &str, scenario: impl FnOnce(&RoutedPath), settled: impl Fn(&Seen, &Seen) -> bool) -> Outcome {
        let k0 = (counters::read(&self.path.client), counters::read(&self.path.server));
        let (c0, s0) = (self.client.fresh_snapshot(), self.server.fresh_snapshot());
        scenario(&self.path);
        let seen = |before: &Snapshot, after: Snapshot| Seen { before: Snapshot { json: before.json.clone() }, after };
        wait::until(name, Duration::from_secs(15), Duration::from_millis(100), || {
            let (c, s) = (seen(&c0, self.client.snapshot()), seen(&s0, self.server.snapshot()));
            if settled(&c, &s) { Ok(()) } else { Err(format!("client: {}\nserver: {}", c.after.json, s.after.json)) }
        });
        let k1 = (counters::read(&self.path.client), counters::read(&self.path.server));
        let out = Outcome {
            client: seen(&c0, self.client.fresh_snapshot()),
            server: seen(&s0, self.server.fresh_snapshot()),
            kernel_c: (k0.0, k1.0),
            kernel_s: (k0.1, k1.1),
        };
        for (end, d, k) in [("client", &out.client, &out.kernel_c), ("server", &out.server, &out.kernel_s)] {
            for view in ["received", "wire_in"] {
                let judged: u64 = ORIGINS.iter().map(|o| d.origin(view, "", o)).sum();
                assert_eq!(judged, d.total(view), "{name}: {end}'s {view} origins must add up to its total");
            }
            assert_eq!(
                d.sent_and_missed(),
                counters::delta(&k.0, &k.1, "Tcp:OutRsts"),
                "{name}: {end}'s sent must be its namespace's OutRsts"
            );
        }
        out
    }
}

/// Only `origin` among (peer, middlebox, forged, unknown), at least `least`
/// times: on the wire an endpoint may answer a segment still in flight with
/// one more RST of the same origin.
fn assert_only(got: (u64, u64, u64, u64), origin: &str, least: u64, what: &str) {
    let names = ["peer", "middlebox", "forged", "unknown"];
    let counts = [got.0, got.1, got.2, got.3];
    for (name, n) in names.iter().zip(counts) {
        if *name == origin {
            assert!(n >= least, "{what}: {n} {name}, at least {least} expected: {got:?}");
        } else {
            assert_eq!(n, 0, "{what}: no {name} expected: {got:?}");
        }
    }
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().expect("address")
}

fn connect(p: &RoutedPath, cport: u16, sport: u16) -> (TcpStream, TcpStream, std::net::TcpListener) {
    traffic::establish(&p.client, &p.server, addr(C4, cport), addr(S4, sport))
}

/// The client's next expected sequence number: the idle server's next one.
fn client_rcv_nxt(server: &TcpStream) -> u32 {
    traffic::seq_and_tsval(server).0
}

fn rst_from_server(sport: u16, cport: u16, seq: u32) -> Tcp {
    Tcp { sport, dport: cport, seq, flags: RST | ACK, doff: 5, payload: Vec::new() }
}

/// Sends and ignores the outcome: the connection may be gone already.
fn poke(s: &mut TcpStream, data: &[u8]) {
    let _ = s.write_all(data);
}

#[test]
#[expect(clippy::too_many_lines, reason = "one rig, the issue's scenarios one after the other")]
fn who_sent_each_reset_on_a_routed_path() {
    let ends = Ends::start();

    // 1. The server resets: SO_LINGER {1,0} close, then a SYN to its closed port.
    // Sockets kept open to the end: a FIN from a closing server after the
    // client's reset would be the peer talking after it (forged).
    let keep = std::cell::RefCell::new(Vec::new());
    let o = ends.run(
        "the server's linger reset",
        |p| {
            let (c, s, l) = connect(p, 7701, 7601);
            traffic::close_with_linger_zero(s);
            drop(l);
            keep.borrow_mut().push(c);
        },
        |c, _| c.origin("received", "peer_reset", "peer") == 1 && c.origin("wire_in", "abort", "peer") == 1,
    );
    assert_eq!(o.client.origins("received"), (1, 0, 0, 0));
    assert_eq!(o.kernel_c("Tcp:EstabResets"), 1, "the kernel saw the one reset we judged");
    let o = ends.run(
        "a SYN to the server's closed port",
        |p| traffic::syn_to_closed_port(&p.client, addr(C4, 7702), addr(S4, 7602)),
        |c, _| c.origin("received", "refused", "peer") == 1 && c.origin("wire_in", "refusal", "peer") == 1,
    );
    assert_eq!(o.client.origins("received"), (1, 0, 0, 0));
    assert_eq!(o.kernel_c("Tcp:AttemptFails"), 1);
    let recent = o.client.after.recent("received", "refused", 7702);
    let ev = &recent.first().expect("a sample of the refusal")["evidence"];
    assert_eq!((ev["ttl"].as_u64(), ev["peer_ttl"].as_u64()), (Some(63), Some(63)), "{ev}");

    // 2. The middlebox rejects mid-flow, both ways: `middlebox` at both ends.
    let o = ends.run(
        "the middlebox rejecting mid-flow",
        |p| {
            let (mut c, mut s, _l) = connect(p, 7703, 7603);
            p.rule("tcp dport 7603 tcp flags & (syn|rst) == 0 reject with tcp reset");
            p.rule("tcp sport 7603 tcp flags & (syn|rst) == 0 reject with tcp reset");
            poke(&mut c, b"from the client");
            poke(&mut s, b"from the server");
            std::thread::sleep(Duration::from_millis(300));
            p.clear_rules();
        },
        |c, s| {
            c.origin("received", "peer_reset", "middlebox") == 1 && s.origin("received", "peer_reset", "middlebox") == 1
        },
    );
    assert_eq!(o.client.origins("received"), (0, 1, 0, 0));
    assert_eq!(o.server.origins("received"), (0, 1, 0, 0));
    assert_only(o.client.origins("wire_in"), "middlebox", 1, "client wire_in");
    assert_only(o.server.origins("wire_in"), "middlebox", 1, "server wire_in");
    assert_eq!(o.kernel_c("Tcp:EstabResets"), 1);
    assert_eq!(counters::delta(&o.kernel_s.0, &o.kernel_s.1, "Tcp:EstabResets"), 1);

    // 3. The middlebox forgets an idle flow (conntrack), then resets its next segment.
    let o = ends.run(
        "the middlebox forgetting an idle flow",
        |p| {
            p.rule("tcp dport 7604 ct state new,invalid tcp flags & (syn|rst) == 0 reject with tcp reset");
            // (An entry's timeout is set by its last segment: shorten it before the handshake.)
            p.middlebox.exec(&["sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_established=1"]);
            let (mut c, s, _l) = connect(p, 7705, 7604);
            std::thread::sleep(Duration::from_secs(3));
            poke(&mut c, b"after a long pause");
            std::thread::sleep(Duration::from_millis(300));
            p.middlebox.exec(&["sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_established=432000"]);
            p.clear_rules();
            keep.borrow_mut().extend([c, s]);
        },
        |c, _| c.origin("received", "peer_reset", "middlebox") == 1,
    );
    assert_eq!(o.client.origins("received"), (0, 1, 0, 0));
    assert_eq!(o.kernel_c("Tcp:EstabResets"), 1);

    // 4. A raw socket in the middlebox injects an exact RST; the server keeps sending.
    let o = ends.run(
        "a forged reset, the server still talking",
        |p| {
            let (mut c, mut s, _l) = connect(p, 7706, 7605);
            traffic::assert_connected(&mut s, &mut c);
            p.inject(false, S4, C4, &rst_from_server(7605, 7706, client_rcv_nxt(&s)));
            wait::until_true("the client to take the forged reset", Duration::from_secs(10), || {
                traffic::tcp_state(&c) != 1
            });
            poke(&mut s, b"I never reset");
        },
        |c, _| c.origin("received", "peer_reset", "forged") == 1,
    );
    assert_eq!(o.client.origins("received"), (0, 0, 1, 0), "judged middlebox by its TTL, corrected to forged");
    assert_eq!(o.client.corrected("received", "middlebox", "forged"), 1);
    assert_eq!(o.client.corrected("wire_in", "middlebox", "forged"), 1);
    assert_eq!(o.kernel_c("Tcp:EstabResets"), 1);
    let recent = o.client.after.recent("received", "peer_reset", 7706);
    let forged = recent.first().expect("a sample of the forged reset");
    assert_eq!(forged["origin"], "forged", "{forged}");
    assert_eq!(forged["evidence"]["corrected_from"], "middlebox", "{forged}");
    assert!(forged["evidence"]["seq_distance"].as_i64().is_some_and(|d| d >= 0), "{forged}");
    assert!(forged["evidence"]["peer_spoke_after_ms"].is_u64(), "{forged}");

    // 5. The route gets one hop longer mid-flow, then the server really resets.
    let o = ends.run(
        "a longer path, then the server's reset",
        |p| {
            let (mut c, mut s, _l) = connect(p, 7707, 7606);
            p.rule("ip saddr 10.78.2.1 tcp sport 7606 ip ttl set 62");
            traffic::assert_connected(&mut s, &mut c);
            traffic::close_with_linger_zero(s);
            let mut buf = [0u8; 8];
            let _ = c.read(&mut buf);
            p.clear_rules();
        },
        |c, _| c.origin("received", "peer_reset", "peer") == 1,
    );
    assert_eq!(o.client.origins("received"), (1, 0, 0, 0), "no middlebox counted");
    assert_only(o.client.origins("wire_in"), "peer", 1, "wire_in after a longer path");
    let recent = o.client.after.recent("received", "peer_reset", 7707);
    let ev = &recent.first().expect("a sample")["evidence"];
    assert_eq!((ev["ttl"].as_u64(), ev["path_longer"].as_bool()), (Some(62), Some(true)), "{ev}");

    // 6. An in-window inexact RST, answered by the real peer's exact RST.
    let o = ends.run(
        "a challenge ACK answered by the peer",
        |p| {
            let (c, s, _l) = connect(p, 7708, 7607);
            let rcv_nxt = client_rcv_nxt(&s);
            // The server's own reset is lost on the way: the client does not know yet.
            p.rule("ip saddr 10.78.2.1 tcp sport 7607 tcp flags & rst == rst drop");
            traffic::close_with_linger_zero(s);
            std::thread::sleep(Duration::from_millis(200));
            p.clear_rules();
            p.inject(true, S4, C4, &rst_from_server(7607, 7708, rcv_nxt.wrapping_add(1000)));
            wait::until_true("the challenge ACK's answer", Duration::from_secs(10), || traffic::tcp_state(&c) != 1);
        },
        |c, _| c.origin("received", "peer_reset", "peer") == 1,
    );
    assert_eq!(o.client.origin("received", "peer_reset", "peer"), 1);
    assert_eq!(o.client.origins("received").1 + o.client.origins("received").2, 0);
    assert_only(o.client.origins("wire_in"), "peer", 2, "the inexact RST and the exact answer");
    assert_eq!(o.kernel_c("TcpExt:TCPChallengeACK"), 1);
    assert_eq!(o.kernel_c("Tcp:EstabResets"), 1);
    let recent = o.client.after.recent("received", "peer_reset", 7708);
    let ev = &recent.first().expect("a sample")["evidence"];
    assert!(ev["after_rst_ms"].is_u64(), "the exact RST came right after the inexact one: {ev}");

    // 7. The path gets shorter, then the server resets: judged middlebox
    // until its next handshake arrives from just as near.
    let o = ends.run(
        "a shorter path, corrected by the next handshake",
        |p| {
            let (mut c, mut s, l) = connect(p, 7709, 7608);
            p.rule("ip saddr 10.78.2.1 tcp sport 7608 ip ttl set 64");
            traffic::assert_connected(&mut s, &mut c);
            traffic::close_with_linger_zero(s);
            let mut buf = [0u8; 8];
            let _ = c.read(&mut buf);
            let again = traffic::connect(&p.client, addr(C4, 7710), addr(S4, 7608)).expect("connect again");
            drop(l.accept());
            drop(again);
            p.clear_rules();
        },
        |c, _| c.corrected("received", "middlebox", "peer") == 1,
    );
    assert_eq!(o.client.origins("received"), (1, 0, 0, 0));
    assert_eq!(o.kernel_c("Tcp:EstabResets"), 1);
    drop(keep);
    write_cell(
        "8 of 8 as named: peer (linger, closed port), middlebox (reject both ends, conntrack), forged, peer (longer path, challenge answered), middlebox corrected to peer (shorter path)",
    );
}

/// This kernel's cell of the README's kernel table (column `origin`), for the matrix runner.
fn write_cell(cell: &str) {
    let Ok(path) = std::env::var("RSTWATCH_MATRIX_ROW") else { return };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("opening the row file");
    writeln!(f, "ORIGIN {cell}").expect("writing the cell");
}
