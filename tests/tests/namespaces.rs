//! `--netns`: a daemon counts the stack resets of one network namespace,
//! selected in the kernel, so its totals equal that namespace's own Tcp
//! OutRsts; without it, loopback peers of two namespaces stay two peers.
//! In the kernel test set: the filter is in the programs.

use std::net::SocketAddr;

use rst_tests::{
    kernel::counters::{self, Counters},
    namespaces::netns::Netns,
    rig::daemon::Daemon,
    rig::snapshot::Snapshot,
    traffic,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// The same loopback resets in `ns`, `n` times: SYNs from 127.0.0.1:40123
/// to the closed port 7 (sent/closed_port, received/refused), and one
/// SO_LINGER {1,0} close of a connection 40124 -> 8080.
fn identical_traffic(ns: &Netns, n: usize) {
    for _ in 0..n {
        traffic::syn_to_closed_port(ns, addr("127.0.0.1:40123"), addr("127.0.0.1:7"));
    }
    let (client, server, _listener) = traffic::establish(ns, ns, addr("127.0.0.1:40124"), addr("127.0.0.1:8080"));
    traffic::close_with_linger_zero(server);
    traffic::expect_reset(client);
}

fn sent_equals_out_rsts(d: &Daemon, before: &Counters, ns: &Netns, resets: u64) -> Snapshot {
    d.wait_for("the namespace's resets", |s| s.total("sent") >= resets);
    let out_rsts = counters::delta(before, &counters::read(ns), "Tcp:OutRsts");
    let s = d.fresh_snapshot();
    assert_eq!(s.total("sent"), out_rsts, "sent must equal {}'s own OutRsts: {}", ns.name, s.json);
    assert_eq!(out_rsts, resets, "{}", s.json);
    s
}

#[test]
fn netns_counts_one_namespace_and_loopback_peers_stay_apart() {
    let (x, y) = (Netns::new("x"), Netns::new("y"));
    // Each daemon in a namespace of its own, away from the traffic: only the
    // kernel-side filter tells x from y. x by path, y by inode number.
    let (wx, wy, wall) = (Netns::new("wx"), Netns::new("wy"), Netns::new("wall"));
    let dx = Daemon::start(&wx, &["--netns", &x.path()]);
    let dy = Daemon::start(&wy, &["--netns", &y.inode().to_string()]);
    let all = Daemon::start(&wall, &[]);
    let (bx, by) = (counters::read(&x), counters::read(&y));
    identical_traffic(&x, 3);
    identical_traffic(&y, 5);

    let sx = sent_equals_out_rsts(&dx, &bx, &x, 4);
    let sy = sent_equals_out_rsts(&dy, &by, &y, 6);
    for (s, ns, n) in [(&sx, &x, 3), (&sy, &y, 5)] {
        assert_eq!(s.json["netns"], ns.inode(), "the snapshot names its selection: {}", s.json);
        assert_eq!(s.port("sent", "closed_port", 7), n, "{}", s.json);
        assert_eq!(s.cause("sent", "linger_abort"), 1, "{}", s.json);
        assert_eq!(s.cause("received", "refused"), n, "{}", s.json);
        assert_eq!(s.cause("received", "peer_reset"), 1, "{}", s.json);
        let recent = s.json["recent"].as_array().expect("recent");
        assert!(!recent.is_empty() && recent.iter().all(|r| r["netns"] == ns.inode()), "{}", s.json);
    }
    // Without --netns: both namespaces, and 127.0.0.1 of each is its own peer.
    let s = all.wait_for("both namespaces", |s| s.port("sent", "closed_port", 7) >= 8);
    assert_eq!(s.port("sent", "closed_port", 7), 8, "{}", s.json);
    let mut got: Vec<(u64, u64)> = s.json["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .filter(|p| p["view"] == "sent" && p["cause"] == "closed_port" && p["addr"] == "127.0.0.1")
        .map(|p| (p["netns"].as_u64().unwrap_or(0), p["count"].as_u64().unwrap_or(0)))
        .collect();
    let mut want = vec![(x.inode(), 3), (y.inode(), 5)];
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "one peer row per namespace: {}", s.json);
    assert!(s.json.get("netns").is_none(), "no selection: {}", s.json);
}
