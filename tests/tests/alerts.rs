//! Storm and scan detection with real programs in the test's namespaces:
//! a `hping3` port scan, a real nginx that goes away while clients keep
//! connecting (listener_down), and a `hping3` RST flood (rst_flood). Each
//! alert must appear in /snapshot and in rstwatch_alerts_total{kind}.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use rst_tests::{
    namespaces::cgroup::Cgroup, namespaces::nginx::Nginx, rig::Rig, rig::daemon::Daemon, rig::snapshot::Snapshot,
    traffic,
};

fn has_alert(s: &Snapshot, kind: &str, key: &str, value: &serde_json::Value) -> bool {
    s.json["alerts"].as_array().is_some_and(|a| a.iter().any(|x| x["kind"] == kind && &x[key] == value))
}

/// `rstwatch_alerts_total{kind}` from /metrics.
fn alerts_total(daemon: &Daemon, kind: &str) -> u64 {
    let prefix = format!("rstwatch_alerts_total{{kind=\"{kind}\"}} ");
    let metrics = daemon.get("/metrics");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok()).unwrap_or_else(|| panic!("{metrics}"))
}

/// Runs `load` on a thread until it returns or `stop` is set, while waiting
/// for the alert; returns the snapshot that shows it.
fn alert_during(
    daemon: &Daemon,
    what: &str,
    load: impl FnOnce(&AtomicBool) + Send,
    seen: impl Fn(&Snapshot) -> bool,
) -> Snapshot {
    let stop = AtomicBool::new(false);
    std::thread::scope(|t| {
        let worker = t.spawn(|| load(&stop));
        let snap = daemon.wait_for(what, &seen);
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("load thread");
        snap
    })
}

#[test]
fn a_port_scan_raises_an_alert() {
    let rig = Rig::start();
    let d = rig.measure(
        |p| {
            // 40 SYNs to 40 closed ports, one every 20 ms (hping3 from Debian)
            p.a.exec(&["hping3", "-q", "-S", "-p", "++7600", "-c", "40", "-i", "u20000", "10.77.0.2"]);
        },
        |d| d.after.json["alerts"].as_array().is_some_and(|a| !a.is_empty()),
    );
    let alerts = d.after.json["alerts"].as_array().unwrap();
    assert_eq!(alerts[0]["kind"], "port_scan", "{}", d.after.json);
    assert_eq!(alerts[0]["peer"], "10.77.0.1");
    assert!(alerts[0]["count"].as_u64().unwrap() >= 20, "a whole number of ports: {}", d.after.json);
    // a time of day (RFC 3339 UTC, ms) that a journal or tcpdump can be matched with
    let since = alerts[0]["since"].as_str().unwrap_or_default();
    assert!(since.len() == 24 && since.ends_with('Z') && since.as_bytes()[10] == b'T', "{since}");
    assert!(rig.daemon.get("/metrics").contains("rstwatch_alerts_total{kind=\"port_scan\"} 1"));
}

#[test]
fn a_listener_going_away_raises_listener_down() {
    let rig = Rig::start();
    let server: SocketAddr = "10.77.0.2:7490".parse().unwrap();
    let cg = Cgroup::new("rstwatch-listener.service");
    let nginx = Nginx::start(&rig.pair.b, server, &cg);
    // Served for a while: the port's baseline of closed_port resets is zero.
    for _ in 0..5 {
        drop(rig.pair.a.run(|| std::net::TcpStream::connect(server)).expect("nginx serves"));
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(nginx);
    // Clients keep coming: about 200 refused connects per second, at most 3 s.
    let snap = alert_during(
        &rig.daemon,
        "listener_down for port 7490",
        |stop| {
            for i in 0..600u16 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let local: SocketAddr = format!("10.77.0.1:{}", 20000 + i).parse().unwrap();
                traffic::syn_to_closed_port(&rig.pair.a, local, server);
                std::thread::sleep(Duration::from_millis(5));
            }
        },
        |s| has_alert(s, "listener_down", "port", &7490.into()),
    );
    assert!(snap.json["alerts_started"]["listener_down"].as_u64() >= Some(1), "{}", snap.json);
    assert!(alerts_total(&rig.daemon, "listener_down") >= 1);
    assert_eq!(alerts_total(&rig.daemon, "port_scan"), 0, "one peer, one port: not a scan");
}

#[test]
fn an_rst_flood_on_the_wire_raises_rst_flood() {
    let rig = Rig::start();
    // Bare RSTs at up to 10 000/s from a to b (nobody answers a RST), at most 20 000.
    let snap = alert_during(
        &rig.daemon,
        "rst_flood",
        |_| {
            let out = std::process::Command::new("nsenter")
                .arg(format!("--net={}", rig.pair.a.path()))
                .args(["hping3", "-q", "-R", "-p", "7492", "-s", "7493", "-c", "20000", "-i", "u100", "10.77.0.2"])
                .output()
                .expect("running hping3");
            // hping3 exits 1 when nothing answered, which is the case for RSTs.
            assert!(out.status.code().is_some_and(|c| c <= 1), "hping3: {}", String::from_utf8_lossy(&out.stderr));
        },
        |s| has_alert(s, "rst_flood", "kind", &"rst_flood".into()),
    );
    let flood = &snap.json["alerts"][0];
    assert!(flood["rate"].as_f64().is_some_and(|r| r >= 1000.0), "{}", snap.json);
    assert!(flood["count"].as_u64().is_some(), "a whole number of resets: {}", snap.json);
    assert!(alerts_total(&rig.daemon, "rst_flood") >= 1);
}
