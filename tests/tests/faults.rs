//! Storms, faults and hostile input: counts stay exact, every undelivered
//! sample is counted, the daemon keeps serving.

use std::{
    cell::Cell,
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use rst_tests::{
    namespaces::netns::{Hooks, VB},
    rig::Rig,
    rig::snapshot::Snapshot,
    traffic,
    traffic::flood,
    wait,
};

fn all_counts(s: &Snapshot) -> u64 {
    ["sent", "received", "wire_in", "wire_out"].iter().map(|v| s.total(v)).sum()
}

fn samples(s: &Snapshot, k: &str) -> u64 {
    s.json["samples"][k].as_u64().expect("samples field")
}

/// Settled once `sent` stops moving between two polls (softirq work may trail the flood).
fn settled() -> impl Fn(&rst_tests::rig::Delta) -> bool {
    let last = Cell::new(u64::MAX);
    move |d| {
        let now = d.total("sent");
        let done = now > 0 && now == last.get();
        last.set(now);
        std::thread::sleep(Duration::from_millis(200));
        done
    }
}

#[test]
fn storm_with_a_tiny_ring_counts_exactly_and_accounts_every_sample() {
    let rig = Rig::start_with(&["--iface", VB, "--ring-bytes", "4096", "--sample-rate", "1000000"]);
    let d = rig.measure(
        |p| {
            std::thread::scope(|s| {
                let storm = s.spawn(|| flood::closed_port_storm(p, 7901, Duration::from_millis(1500)));
                // the counter poller keeps going while the ring overflows
                std::thread::sleep(Duration::from_millis(400));
                let a = rig.daemon.snapshot();
                std::thread::sleep(Duration::from_millis(500));
                let b = rig.daemon.snapshot();
                assert!(b.json["uptime_seconds"].as_f64() > a.json["uptime_seconds"].as_f64());
                assert!(b.total("sent") > a.total("sent"), "counts must move during the storm");
                assert!(storm.join().unwrap() > 1000);
            });
        },
        settled(),
    );
    // Rig::measure has checked sent == Tcp OutRsts (summed over the namespaces).
    assert!(d.port("sent", "closed_port", 7901) > 1000);
    // every RST is seen leaving vb and attributed to the stack (its owner is
    // the stack's control socket), whether or not its tracepoint event came
    assert_eq!(d.port("wire_out", "refusal", 7901), d.port("sent", "closed_port", 7901) + d.missed("sent"));
    assert_eq!(d.port("wire_out", "not_from_stack", 7901), 0);
    assert!(samples(&d.after, "ring_full") > 0, "a 4 KiB ring cannot carry a storm: {}", d.after.json);
    let s = rig
        .daemon
        .wait_for("every sample accounted", |s| samples(s, "delivered") + samples(s, "dropped") == all_counts(s));
    assert_eq!(samples(&s, "dropped"), samples(&s, "ring_full") + samples(&s, "rate_limited"));
}

/// (key, count) of every counting slot of the pinned hot-slot map `name`, over all CPUs.
fn hot_slots<K: Copy>(pins: &std::path::Path, name: &str) -> Vec<(K, u64)>
where
    rst_common::maps::Hot<K>: aya::Pod,
{
    let data = aya::maps::MapData::from_pin(pins.join(name)).expect("pinned hot slots");
    let map: aya::maps::PerCpuArray<_, rst_common::maps::Hot<K>> =
        aya::maps::PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data)).expect("a per-CPU array");
    (0..rst_common::maps::HOT_SLOTS)
        .filter_map(|i| map.get(&i, 0).ok())
        .flat_map(|v| v.iter().filter(|s| s.count > 0).map(|s| (s.key, s.count)).collect::<Vec<_>>())
        .collect()
}

#[test]
fn a_storm_on_few_keys_counts_in_hot_slots_and_stays_exact() {
    use rst_common::{cause, maps, view};
    let pair = rst_tests::namespaces::netns::Pair::new();
    let pins = rst_tests::rig::daemon::Pins::new();
    let daemon = rst_tests::rig::daemon::Daemon::start_with(&pair.b, &pins.0, &["--iface", VB], &[]);
    let rig = Rig { daemon, pair };
    let d = rig.measure(
        |p| {
            let _ = flood::closed_port_storm(p, 7903, Duration::from_millis(1500));
        },
        settled(),
    );
    // Rig::measure has checked sent == Tcp OutRsts; each view's port key holds them all.
    let sent = d.port("sent", "closed_port", 7903);
    assert!(sent > 1000, "{}", d.after.json);
    assert_eq!(d.total("sent"), sent);
    assert_eq!(d.port("wire_out", "refusal", 7903), sent + d.missed("sent"));
    // The daemon gave the storm's keys hot slots: part of those counts were made there, not in the hashes.
    let ports = hot_slots::<u64>(&pins.0, maps::HOT_PORTS);
    for (v, c) in [(view::SENT, cause::CLOSED_PORT), (view::WIRE_OUT, cause::REFUSAL)] {
        let key = maps::HOT_PORT | u64::from(maps::port_key(v, c, 7903));
        assert!(ports.iter().any(|(k, n)| *k == key && *n > 0), "no hot slot for view {v}: {ports:?}");
    }
    let peers = hot_slots::<maps::PeerKey>(&pins.0, maps::HOT_PEERS);
    let a = [10, 77, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(peers.iter().any(|(k, n)| k.view == view::SENT && k.addr == a && *n > 0), "{peers:?}");
    // A restart resumes the pinned slots with the hashes: the same counts, none lost or doubled.
    let counted = |s: &Snapshot| (s.port("sent", "closed_port", 7903), s.port("wire_out", "refusal", 7903));
    let Rig { mut daemon, pair } = rig;
    let before = counted(&daemon.fresh_snapshot());
    assert_eq!(daemon.stop().code(), Some(0));
    let daemon = rst_tests::rig::daemon::Daemon::start_with(&pair.b, &pins.0, &["--iface", VB], &[]);
    assert_eq!(counted(&daemon.fresh_snapshot()), before);
}

#[test]
fn sample_rate_limit_is_honoured_per_cpu() {
    const RATE: u64 = 5;
    let rig = Rig::start_with(&["--iface", VB, "--sample-rate", &RATE.to_string()]);
    let before = rig.daemon.snapshot();
    let started = Instant::now();
    let d = rig.measure(
        |p| {
            let _ = flood::closed_port_storm(p, 7902, Duration::from_secs(1));
        },
        settled(),
    );
    let secs = started.elapsed().as_secs() + 1;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let delivered = samples(&d.after, "delivered") - samples(&before, "delivered");
    // one window per second per CPU, plus the window already open
    assert!(delivered <= RATE * cpus * (secs + 1), "{delivered} samples in {secs} s on {cpus} CPUs");
    assert!(samples(&d.after, "rate_limited") > 0);
}

#[test]
fn interface_that_disappears_is_watched_again_when_back() {
    let rig = Rig::start();
    assert_eq!(rig.pair.hooks_on_vb(), Hooks::TC);
    // What the daemon says of vb: /snapshot's interfaces and the gauges in /metrics.
    let tcx = rig.daemon.snapshot().json["interfaces"][0]["ingress"] == "tcx";
    let hook = if tcx { "tcx" } else { "tc" };
    let attached = |on: bool| {
        let s = rig.daemon.snapshot();
        let gauges = [("tc_ingress", on), ("tc", on)]
            .map(|(h, on)| format!("rstwatch_interface_attached{{iface=\"vb\",hook=\"{h}\"}} {}", u8::from(on)));
        let metrics = rig.daemon.get("/metrics");
        s.json["interfaces"]
            == serde_json::json!([{"name": "vb", "ingress": hook, "egress": hook, "wire_in": on, "wire_out": on, "xdp": false, "tc": on}])
            && gauges.iter().all(|g| metrics.contains(g))
    };
    assert!(attached(true));
    rig.pair.b.exec(&["ip", "link", "del", VB]);
    wait::until_true("vb reported detached", Duration::from_secs(10), || attached(false));
    rig.pair.link();
    wait::until_true("vb watched again (tc ingress and egress)", Duration::from_secs(10), || {
        rig.pair.hooks_on_vb() == Hooks::TC && attached(true)
    });
    let d = rig.measure(
        |p| traffic::syn_to_closed_port(&p.a, "10.77.0.1:7913".parse().unwrap(), "10.77.0.2:7903".parse().unwrap()),
        |d| d.port("wire_out", "refusal", 7903) > 0,
    );
    assert_eq!(d.port("wire_out", "refusal", 7903), 1);
}

#[test]
fn slow_clients_cannot_stall_the_daemon() {
    let rig = Rig::start();
    // 32 clients that connect and never finish a request, one that never reads
    let idle: Vec<TcpStream> = (0..32)
        .map(|i| {
            rig.pair.b.run(|| {
                let mut s = TcpStream::connect(rst_tests::rig::daemon::LISTEN).expect("connect");
                if i % 2 == 0 {
                    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap(); // no end of headers
                }
                s
            })
        })
        .collect();
    let mut unread = rig.pair.b.run(|| TcpStream::connect(rst_tests::rig::daemon::LISTEN).expect("connect"));
    for _ in 0..50 {
        unread.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    }
    let d = rig.measure(
        |p| traffic::syn_to_closed_port(&p.a, "10.77.0.1:7914".parse().unwrap(), "10.77.0.2:7904".parse().unwrap()),
        |d| d.port("sent", "closed_port", 7904) > 0,
    );
    assert_eq!(d.port("sent", "closed_port", 7904), 1);
    drop(idle);
    let mut buf = [0u8; 16];
    assert!(unread.read(&mut buf).is_ok());
}

#[test]
fn malformed_resets_on_the_wire_are_counted_and_traffic_flows() {
    let rig = Rig::start();
    let (mut c, mut s, _l) = traffic::establish(
        &rig.pair.a,
        &rig.pair.b,
        "10.77.0.1:7915".parse().unwrap(),
        "10.77.0.2:7905".parse().unwrap(),
    );
    // RSTs with data offset 3 (< 5 words): impossible headers aimed at the live connection
    let d = rig.measure(
        |p| assert_eq!(traffic::inject(p, 7915, 7905, 0x14, 3, 100), 100),
        |d| d.port("wire_in", "malformed", 7905) >= 100,
    );
    assert_eq!(d.port("wire_in", "malformed", 7905), 100, "{}", d.after.json);
    assert_eq!(d.total("received"), 0, "the stack ignored them");
    traffic::assert_connected(&mut c, &mut s);
}

#[test]
fn out_of_window_rst_is_rejected_invalid_and_the_connection_lives() {
    let rig = Rig::start();
    let (mut c, mut s, _l) = traffic::establish(
        &rig.pair.a,
        &rig.pair.b,
        "10.77.0.1:7916".parse().unwrap(),
        "10.77.0.2:7906".parse().unwrap(),
    );
    // A blind RST+ACK on the live tuple, its sequence number far from what b expects.
    let d = rig.measure(
        |p| assert_eq!(traffic::inject(p, 7916, 7906, 0x14, 5, 1), 1),
        |d| d.port("received", "rejected_invalid", 7906) > 0,
    );
    assert_eq!(d.port("received", "rejected_invalid", 7906), 1, "{}", d.after.json);
    assert_eq!(d.port("received", "peer_reset", 7906), 0, "the stack did not accept it");
    assert_eq!(d.port("wire_in", "abort", 7906), 1, "and it was seen arriving");
    // Every stack sample names its namespace (contract §3) where the kernel names the socket.
    let recent = d.after.recent("received", "rejected_invalid", 7906);
    if d.after.json["coverage"]["features"]["tracepoint:skb:kfree_skb.rx_sk"] == true {
        assert_eq!(recent[0]["netns"], rig.pair.b.inode(), "{}", recent[0]);
        assert!(recent[0]["owner"].is_string(), "the socket's owner: {}", recent[0]);
    }
    traffic::assert_connected(&mut c, &mut s);
}
