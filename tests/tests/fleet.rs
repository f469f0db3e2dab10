//! The fleet path for real: Debian's Prometheus scrapes two daemons standing
//! for two hosts (two namespaces, each with its own daemon, traffic and
//! address) with the scrape config the README recommends, loads
//! `packaging/prometheus-alerts.yml` (every alert but RstwatchMissedEvents,
//! which needs the kernel to skip our program, is provoked for real), and
//! answers every query of
//! `packaging/grafana-dashboard.json`.
//!
//! The rules' windows are shortened for the test (`[5m]` -> `[20s]`,
//! `[10m]` -> `[40s]`, `for: 2m` -> `for: 8s`, `for: 5m` -> `for: 20s`), the
//! expressions, labels and thresholds untouched: the same alerts go pending,
//! fire and resolve in two minutes instead of fifteen.

use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use rst_tests::{
    namespaces::{
        fleet::{Fleet, devices, host_addr, monitor_addr},
        netns::Netns,
    },
    rig::{
        daemon::{self, Daemon},
        prometheus::Prometheus,
        tmux::Tmux,
    },
    traffic::{
        self, flood,
        frames::{ACK, RST, Tcp},
    },
    wait,
};
use serde_json::Value;

const PORT: u16 = 9477;
const RULES: &str = include_str!("../../packaging/prometheus-alerts.yml");
const DASHBOARD: &str = include_str!("../../packaging/grafana-dashboard.json");

/// The README's scrape config ("Fleet"), with this fleet's targets.
fn scrape_config(targets: &[String]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\nscrape_configs:\n  - job_name: rstwatch\n    static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}

/// The shipped rules with their windows shortened (see the module comment).
fn shortened_rules() -> String {
    RULES
        .replace("[5m]", "[20s]")
        .replace("[10m]", "[40s]")
        .replace("for: 2m", "for: 8s")
        .replace("for: 5m", "for: 20s")
}

/// One connect() from `ns` to a closed port on its own loopback (refused).
fn refused(ns: &Netns, port: u16) {
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    ns.run(|| assert!(TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_err(), "port {port} must be closed"));
}

/// Calls `f` every `every` until `stop` is set or `limit` passed.
fn paced(stop: &AtomicBool, every: Duration, limit: Duration, mut f: impl FnMut()) {
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        f();
        std::thread::sleep(every);
    }
}

/// Which states each alert was seen in, by name.
type Seen = BTreeMap<String, Vec<String>>;

fn note_states(p: &Prometheus, seen: &mut Seen) {
    for a in p.alerts() {
        let name = a["labels"]["alertname"].as_str().unwrap_or_default().to_string();
        let state = a["state"].as_str().unwrap_or_default().to_string();
        let states = seen.entry(name).or_default();
        if states.last() != Some(&state) {
            states.push(state);
        }
    }
}

/// Host 1: four connections to a server on the monitor, each reset by a RST
/// with the exact sequence the server never sent, while the server keeps
/// talking: forged (the monitor's frames leave from `ifindex`, `mon_mac`).
fn forge_resets(fleet: &Fleet, ifindex: i32, mon_mac: [u8; 6], h1_mac: [u8; 6]) {
    let ip = |s: String| s.parse::<std::net::Ipv4Addr>().unwrap();
    let server: SocketAddr = format!("{}:7600", monitor_addr(0)).parse().unwrap();
    let listener = traffic::listen(&fleet.monitor, server);
    let fd = fleet.monitor.run(|| flood::socket(ifindex));
    for i in 0..4u16 {
        let client: SocketAddr = format!("{}:{}", host_addr(0), 7700 + i).parse().unwrap();
        let mut c = traffic::connect(&fleet.hosts[0], client, server).expect("connect");
        let (mut s, _) = listener.accept().expect("accept");
        traffic::assert_connected(&mut s, &mut c);
        let seq = traffic::seq_and_tsval(&s).0;
        let t = Tcp { sport: 7600, dport: 7700 + i, seq, flags: RST | ACK, doff: 5, payload: Vec::new() };
        let frame = flood::frame(mon_mac, h1_mac, ip(monitor_addr(0)), ip(host_addr(0)), &t);
        assert_eq!(flood::flood_count(&fd, &[frame], 1), 1);
        wait::until_true("the forged reset taken", Duration::from_secs(10), || traffic::tcp_state(&c) != 1);
        let _ = std::io::Write::write_all(&mut s, b"I never reset");
    }
}

/// `rstwatch top --prometheus` against the live server: the fleet view in a
/// real terminal, then, not on a terminal, `--hosts` keeping host `two`.
fn fleet_top(fleet: &Fleet, one: &str, two: &str) {
    // `rstwatch top --prometheus`: the same live view for the fleet, in a real terminal.
    let top = |hosts: &str| {
        format!(
            "nsenter --net={} {} top --prometheus http://127.0.0.1:9090 --hosts '{hosts}'",
            fleet.monitor.path(),
            daemon::bin()
        )
    };
    {
        let tmux = Tmux::start(&top(".*"), 140, 40);
        let screen =
            tmux.wait_for("the fleet view", |s| s.contains("fleet of 2 hosts") && s.contains(one) && s.contains(two));
        assert!(screen.contains("closed_port") && screen.contains("hosts by reset rate"), "{screen}");
        let screen = tmux.wait_for("the fleet's causes", |s| s.contains("stale_segment") && s.contains("forged 4"));
        eprintln!("rstwatch top --prometheus:\n{screen}");
    }
    // Not a terminal, one host by --hosts: the hosts table, then the summary.
    let mut plain = std::process::Command::new("nsenter")
        .arg(format!("--net={}", fleet.monitor.path()))
        .arg(daemon::bin())
        .args(["top", "--prometheus", "http://127.0.0.1:9090", "--hosts", "10\\.79\\.2\\..*"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("rstwatch top");
    let mut out = String::new();
    let mut reader = std::io::BufReader::new(plain.stdout.take().unwrap());
    while !(out.contains("HOST") && out.contains("\nVIEW ")) {
        if std::io::BufRead::read_line(&mut reader, &mut out).unwrap_or(0) == 0 {
            break;
        }
        if out.len() > 100_000 {
            break;
        }
    }
    let _ = plain.kill();
    let _ = plain.wait();
    assert!(out.contains("HOST") && out.contains(two) && !out.contains(one), "{out}");
}

#[test]
fn a_real_prometheus_scrapes_two_hosts_fires_the_alerts_and_answers_the_dashboard() {
    let fleet = Fleet::new(2);
    let listen = |i: usize| format!("{}:{PORT}", host_addr(i));
    let (h1, h2) = (&fleet.hosts[0], &fleet.hosts[1]);
    let ns_of = |n: &Netns| n.path();
    // host 1: the usual daemon; host 2: a ring too small for its bursts (samples dropped)
    // host 1 watches its link to the monitor: origins are judged there
    let (h1_dev, mon_dev) = devices(0);
    let d1 = Daemon::start_listening(h1, &listen(0), &["--netns", &ns_of(h1), "--owner-metrics", "--iface", &h1_dev]);
    let host2_args = ["--netns", &ns_of(h2), "--owner-metrics", "--ring-bytes", "4096", "--sample-rate", "1000000"];
    let mut d2 = Some(Daemon::start_listening(h2, &listen(1), &host2_args));
    let prom =
        Prometheus::start(&fleet.monitor, &scrape_config(&[listen(0), listen(1)]), &[("rules.yml", shortened_rules())]);
    wait::until_true("both targets up", Duration::from_secs(20), || {
        let t = prom.targets();
        t.len() == 2 && t.iter().all(|t| t["health"] == "up")
    });

    // The traffic, on threads, bounded in count and time:
    // host 1 — a port scan (30 closed ports), 25 refused connects a second to
    // one closed port for 30 s, 15 segments a second into connections it does
    // not know for 45 s (from the monitor, over the link); host 2 — a burst
    // of 2000 refused connects into its small ring.
    let stop = AtomicBool::new(false);
    let mut seen = Seen::new();
    let (ifindex, mon_mac) = fleet.monitor.link_info(&mon_dev);
    let (_, h1_mac) = h1.link_info(&h1_dev);
    let ip = |s: String| s.parse::<std::net::Ipv4Addr>().unwrap();
    let stale: Vec<Vec<u8>> = (0..64u16)
        .map(|i| {
            let t = Tcp { sport: 30000 + i, dport: 7400, seq: 1, flags: ACK, doff: 5, payload: Vec::new() };
            flood::frame(mon_mac, h1_mac, ip(monitor_addr(0)), ip(host_addr(0)), &t)
        })
        .collect();
    std::thread::scope(|t| {
        t.spawn(|| {
            for port in 7000..7030 {
                refused(h1, port);
            }
        });
        t.spawn(|| paced(&stop, Duration::from_millis(40), Duration::from_secs(30), || refused(h1, 7100)));
        t.spawn(|| {
            let fd = fleet.monitor.run(|| flood::socket(ifindex));
            let mut i = 0;
            paced(&stop, Duration::from_millis(66), Duration::from_secs(45), || {
                let _ = flood::flood_count(&fd, &stale[i % stale.len()..=i % stale.len()], 1);
                i += 1;
            });
        });
        t.spawn(|| {
            for _ in 0..2000 {
                refused(h2, 7200);
            }
        });
        // Host 1: four connections to a server on the monitor, each reset by a RST with
        // the exact sequence the server never sent, while the server keeps talking: forged.
        t.spawn(|| forge_resets(&fleet, ifindex, mon_mac, h1_mac));
        // While it runs: every alert that can be provoked here goes pending, then firing.
        let want = [
            "RstwatchDetector",
            "RstwatchClosedPortSurge",
            "RstwatchStaleSegments",
            "RstwatchSamplesDropped",
            "RstwatchResetsNotFromPeer",
        ];
        wait::until("the alerts to fire", Duration::from_secs(90), Duration::from_millis(500), || {
            note_states(&prom, &mut seen);
            let firing = |n: &str| seen.get(n).is_some_and(|s| s.iter().any(|x| x == "firing"));
            if want.iter().all(|n| firing(n)) { Ok(()) } else { Err(format!("{seen:?}")) }
        });
        stop.store(true, Ordering::Relaxed);
    });

    // Every dashboard query returns series from the live server.
    let dash: Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut counts = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$instance", ".*").replace("$__rate_interval", "1m");
            let n = prom.query(&expr).len();
            assert!(n > 0, "dashboard panel {:?} has no series: {expr}", panel["title"]);
            counts.push(format!("{n:>3}  {expr}"));
        }
    }
    eprintln!("dashboard queries (series, expression):\n{}", counts.join("\n"));
    // Both hosts' resets are there, apart.
    let by_host = prom.query("sum by (instance) (rstwatch_resets_total{view=\"sent\"})");
    assert_eq!(by_host.len(), 2, "{by_host:?}");

    fleet_top(&fleet, &listen(0), &listen(1));

    // A host whose daemon stops: RstwatchDown goes pending, then firing; back, it resolves.
    drop(d2.take());
    wait::until("RstwatchDown to fire", Duration::from_mins(1), Duration::from_millis(500), || {
        note_states(&prom, &mut seen);
        let s = seen.get("RstwatchDown").cloned().unwrap_or_default();
        if s.iter().any(|x| x == "firing") { Ok(()) } else { Err(format!("{seen:?}")) }
    });
    d2 = Some(Daemon::start_listening(h2, &listen(1), &host2_args));
    // With the traffic stopped, every alert ends.
    wait::until("every alert to end", Duration::from_mins(2), Duration::from_secs(1), || {
        let active = prom.alerts();
        if active.is_empty() { Ok(()) } else { Err(format!("{active:?}")) }
    });
    eprintln!("alert states seen: {seen:?}");
    for name in ["RstwatchClosedPortSurge", "RstwatchStaleSegments", "RstwatchDown", "RstwatchResetsNotFromPeer"] {
        assert_eq!(seen[name].first().map(String::as_str), Some("pending"), "{name} first pending: {seen:?}");
    }
    drop((d1, d2));
}
