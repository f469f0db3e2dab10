//! Phase "traffic through a watched interface" (issue 32): what watching
//! `vb` costs the traffic into and out of it. iperf3 bulk into b and out of
//! it (`-R`), small writes (`-l 128`), and short connections (ab against
//! nginx: a new connection per request), each with nothing attached,
//! rstwatch in its default mode (tc ingress), rstwatch `--wire-in xdp`, and
//! tcpdump watching the same interface for RSTs. The equal-work bpftrace
//! hooks only the reset tracepoints, which this traffic never fires: it does
//! not apply here (the storm compares it). Configurations alternate within
//! each round; medians of the rounds.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use rst_tests::{
    namespaces::{
        device,
        netns::{B4, Pair, VA, VB},
        nginx::Nginx,
    },
    rig::daemon::Daemon,
};
use serde_json::{Value, json};

const ROUNDS: usize = 3;
/// Seconds of each iperf3 run and of each ab run.
const SECONDS: u32 = 3;
const IPERF_PORT: u16 = 5201;
const HTTP_PORT: u16 = 8080;

/// The workloads, in the report's order: (key, what it is).
pub const WORKLOADS: [(&str, &str); 4] = [
    ("bulk_in", "iperf3 bulk into the watched interface (Gbit/s)"),
    ("bulk_out", "iperf3 bulk out of it, -R (Gbit/s)"),
    ("small_writes", "iperf3 -l 128 into it (Gbit/s)"),
    ("short_connections", "ab against nginx, a new connection per request (requests/s)"),
];

/// The configurations, in the report's order: (key, what is attached).
pub const CONFIGS: [(&str, &str); 4] = [
    ("off", "nothing attached"),
    ("rstwatch", "rstwatch (tc ingress, the default)"),
    ("rstwatch_xdp", "rstwatch --wire-in xdp"),
    ("tcpdump", "tcpdump -i vb 'tcp[tcpflags] & tcp-rst != 0'"),
];

/// A server for the phase that stops with it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn iperf3(pair: &Pair, extra: &[&str]) -> f64 {
    let port = IPERF_PORT.to_string();
    let secs = SECONDS.to_string();
    let mut args = vec!["-c", B4, "-p", &port, "-t", &secs, "-J"];
    args.extend(extra);
    let out = Command::new("nsenter")
        .arg(format!("--net={}", pair.a.path()))
        .arg("iperf3")
        .args(&args)
        .output()
        .expect("iperf3 (cargo xtask bench installs it)");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("iperf3 {args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 {args:?} reported no rate: {report}"))
        / 1e9
}

fn ab(pair: &Pair) -> f64 {
    let url = format!("http://{B4}:{HTTP_PORT}/");
    let secs = SECONDS.to_string();
    let out = Command::new("nsenter")
        .arg(format!("--net={}", pair.a.path()))
        .args(["ab", "-q", "-t", &secs, "-n", "10000000", "-c", "8", &url])
        .output()
        .expect("ab (cargo xtask bench installs apache2-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests per second:")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("ab printed no rate: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

fn workload(pair: &Pair, key: &str) -> f64 {
    match key {
        "bulk_in" => iperf3(pair, &[]),
        "bulk_out" => iperf3(pair, &["-R"]),
        "small_writes" => iperf3(pair, &["-l", "128"]),
        _ => ab(pair),
    }
}

/// Attaches a configuration's observer; it stays attached until the returned value is dropped.
fn attach(pair: &Pair, config: &str) -> Option<Box<dyn std::any::Any>> {
    match config {
        "rstwatch" => Some(Box::new(Daemon::start(&pair.b, &["--iface", VB, "--no-pin"]))),
        "rstwatch_xdp" => Some(Box::new(Daemon::start(&pair.b, &["--iface", VB, "--no-pin", "--wire-in", "xdp"]))),
        "tcpdump" => {
            let child = Command::new("nsenter")
                .arg(format!("--net={}", pair.b.path()))
                .args(["tcpdump", "-n", "-i", VB, "-w", "/dev/null", "tcp[tcpflags] & tcp-rst != 0"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("tcpdump");
            std::thread::sleep(Duration::from_secs(1));
            Some(Box::new(Server(child)))
        }
        _ => None,
    }
}

/// Each configuration's rate per workload (medians of the rounds), and whether
/// any configuration left the devices changed while attached.
pub fn run(pair: &Pair) -> Value {
    let b = format!("--net={}", pair.b.path());
    let _iperf = Server(
        Command::new("nsenter")
            .args([&b, "iperf3", "-s", "-B", B4, "-p", &IPERF_PORT.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("iperf3 server"),
    );
    let _nginx = Nginx::start_ok(&pair.b, format!("{B4}:{HTTP_PORT}").parse().expect("address"));
    std::thread::sleep(Duration::from_millis(500));
    let devices = || (device::state(&pair.b, VB), device::state(&pair.a, VA));
    let before = devices();
    let mut rates: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut changed = BTreeMap::new();
    for round in 0..ROUNDS {
        for (config, _) in CONFIGS {
            let observer = attach(pair, config);
            for (w, _) in WORKLOADS {
                rates.entry((config, w)).or_default().push(workload(pair, w));
            }
            // ethtool -k, MTU and MTU range of vb and its peer while attached.
            if devices() != before {
                changed.insert(config, true);
            }
            drop(observer);
        }
        eprintln!("bench: traffic round {} of {ROUNDS} done", round + 1);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = serde_json::Map::new();
    for (config, _) in CONFIGS {
        let mut row = serde_json::Map::new();
        for (w, _) in WORKLOADS {
            row.insert(w.into(), json!(median(rates[&(config, w)].clone())));
        }
        row.insert("device_changed_while_attached".into(), json!(changed.contains_key(config)));
        out.insert(config.into(), Value::Object(row));
    }
    out.insert("restored_after".into(), json!(devices() == before));
    Value::Object(out)
}

/// The phase's table rows: each workload, each configuration against nothing attached.
pub fn print(report: &Value, target: f64) {
    println!("\n| traffic through a watched interface | {} |", CONFIGS.map(|c| c.1).join(" | "));
    println!("|---|{}", "---|".repeat(CONFIGS.len()));
    for (w, what) in WORKLOADS {
        let off = report["off"][w].as_f64().unwrap_or(f64::NAN);
        let cells: Vec<String> = CONFIGS
            .iter()
            .map(|(c, _)| {
                let v = report[*c][w].as_f64().unwrap_or(f64::NAN);
                if *c == "off" {
                    format!("{v:.2}")
                } else if *c == "rstwatch" {
                    let verdict = if v / off >= target { "met" } else { "MISSED" };
                    format!("{v:.2} ({:.2}×, ≥ {target}× {verdict})", v / off)
                } else {
                    format!("{v:.2} ({:.2}×)", v / off)
                }
            })
            .collect();
        println!("| {what} | {} |", cells.join(" | "));
    }
    let changed: Vec<String> = CONFIGS
        .iter()
        .map(|(c, _)| if report[*c]["device_changed_while_attached"] == true { "**changed**" } else { "unchanged" })
        .map(String::from)
        .collect();
    println!("| vb and its peer (ethtool -k, MTU, MTU range) while attached | {} |", changed.join(" | "));
    println!(
        "| … after the last stop | {} |",
        if report["restored_after"] == true { "as before" } else { "**NOT as before**" }
    );
}
