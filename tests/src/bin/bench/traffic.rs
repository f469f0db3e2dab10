//! Phase "traffic through a watched interface" (issue 32): what watching
//! `vb` costs the traffic into and out of it. iperf3 bulk into b and out of
//! it (`-R`), small writes (`-l 128`), and short connections (ab against
//! nginx: a new connection per request), each with nothing attached,
//! rstwatch in its default mode (tc ingress), rstwatch `--wire-in xdp`, and
//! tcpdump watching the same interface for RSTs. The equal-work bpftrace
//! hooks only the reset tracepoints, which this traffic never fires: it does
//! not apply here (the storm compares it). `rstwatch --no-wire` is the same
//! daemon with nothing on the interface: on this VM a busy process alone
//! moves these rates (an awake vCPU answers a wake-up sooner), so the
//! interface's own cost is rstwatch against it, and nothing attached stays the
//! baseline the targets name. The daemons run as shipped (the rig's fast
//! polling is for tests). Configurations rotate their order round by round;
//! each ratio is the median of the rounds' ratios to nothing attached in the
//! same round (a drift of the machine between rounds cancels). On this VM
//! the rounds spread by ±15%, more than any hook on the interface costs; so
//! the phase also reads what the wire programs themselves took (the kernel's
//! own run time, `kernel.bpf_stats_enabled` on for the whole phase, every
//! configuration alike): their share of one CPU while the traffic ran, which
//! no noise of the machine moves much.

use std::{
    collections::BTreeMap,
    process::{Child, Command, Stdio},
    time::Duration,
};

use rst_tests::{
    kernel::bpf_stats::BpfStats,
    namespaces::{
        device,
        netns::{B4, Pair, VA, VB},
        nginx::Nginx,
    },
};
use serde_json::{Value, json};

const ROUNDS: usize = 5;
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
pub const CONFIGS: [(&str, &str); 5] = [
    ("off", "nothing attached"),
    ("rstwatch_no_wire", "rstwatch --no-wire (nothing on the interface)"),
    ("rstwatch", "rstwatch (tc ingress, the default)"),
    ("rstwatch_xdp", "rstwatch --wire-in xdp"),
    ("tcpdump", "tcpdump -i vb 'tcp[tcpflags] & tcp-rst != 0'"),
];

/// A process of the phase (a server, an observer) that stops with it; what it
/// prints is read (and dropped) as long as it runs.
struct Server(
    Child,
    #[expect(dead_code, reason = "kept so the reader keeps reading")] Option<std::sync::mpsc::Receiver<String>>,
);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child (SIGTERM: rstwatch detaches and exits).
        unsafe { libc::kill(self.0.id().cast_signed(), libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// `rstwatch run ARGS` in b, as shipped (default polling, no pins), once it watches.
fn rstwatch(pair: &Pair, args: &[&str]) -> Server {
    let bin = rst_tests::rig::daemon::bin();
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", pair.b.path())).arg(bin).args(["run", "--no-pin"]).args(args);
    let (child, lines) = super::spawn_ready(&mut cmd, "rstwatch running");
    // Its start (BTF, the verifier) is over; let the first polls pass too.
    std::thread::sleep(Duration::from_secs(1));
    Server(child, Some(lines))
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
        "rstwatch" => Some(Box::new(rstwatch(pair, &["--iface", VB]))),
        "rstwatch_no_wire" => Some(Box::new(rstwatch(pair, &["--no-wire"]))),
        "rstwatch_xdp" => Some(Box::new(rstwatch(pair, &["--iface", VB, "--wire-in", "xdp"]))),
        "tcpdump" => {
            let (child, lines) = super::start_tcpdump(pair);
            Some(Box::new(Server(child, Some(lines))))
        }
        _ => None,
    }
}

/// The wire programs' total run time (ns) so far, from the daemon's /snapshot
/// (`programs`), when the configuration is a daemon watching vb.
fn wire_ns(pair: &Pair, config: &str) -> Option<u64> {
    if !matches!(config, "rstwatch" | "rstwatch_xdp") {
        return None;
    }
    let url = format!("http://{}/snapshot", rst_tests::rig::daemon::LISTEN);
    let text = pair.b.run(|| ureq::get(&url).call().ok()?.body_mut().read_to_string().ok())?;
    let s: Value = serde_json::from_str(&text).ok()?;
    let wire = |p: &&Value| p["program"].as_str().is_some_and(|n| n.starts_with("rst_tc") || n.starts_with("rst_xdp"));
    Some(s["programs"].as_array()?.iter().filter(wire).filter_map(|p| p["run_ns"].as_u64()).sum())
}

/// Each configuration's rate per workload (medians of the rounds), and whether
/// any configuration left the devices changed while attached.
pub fn run(pair: &Pair) -> Value {
    let _stats = BpfStats::enable();
    let b = format!("--net={}", pair.b.path());
    let _iperf = Server(
        Command::new("nsenter")
            .args([&b, "iperf3", "-s", "-B", B4, "-p", &IPERF_PORT.to_string()])
            .stdout(Stdio::null())
            .spawn()
            .expect("iperf3 server"),
        None,
    );
    let _nginx = Nginx::start_ok(&pair.b, format!("{B4}:{HTTP_PORT}").parse().expect("address"));
    std::thread::sleep(Duration::from_millis(500));
    let devices = || (device::state(&pair.b, VB), device::state(&pair.a, VA));
    let before = devices();
    let mut rates: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    // The wire programs' share of one CPU during each run of a workload.
    let mut shares: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut changed = BTreeMap::new();
    for round in 0..ROUNDS {
        for i in 0..CONFIGS.len() {
            let (config, _) = CONFIGS[(i + round) % CONFIGS.len()];
            let observer = attach(pair, config);
            for (w, _) in WORKLOADS {
                let ns0 = wire_ns(pair, config);
                let t0 = std::time::Instant::now();
                rates.entry((config, w)).or_default().push(workload(pair, w));
                if let (Some(a), Some(b)) = (ns0, wire_ns(pair, config)) {
                    let share = (b - a) as f64 / t0.elapsed().as_nanos() as f64;
                    shares.entry((config, w)).or_default().push(share);
                }
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
            let paired = rates[&(config, w)].iter().zip(&rates[&("off", w)]).map(|(r, off)| r / off).collect();
            row.insert(format!("{w}_ratio"), json!(median(paired)));
            row.insert(format!("{w}_rounds"), json!(rates[&(config, w)]));
            if let Some(s) = shares.get(&(config, w)) {
                row.insert(format!("{w}_wire_cpu_share"), json!(median(s.clone())));
            }
        }
        row.insert("device_changed_while_attached".into(), json!(changed.contains_key(config)));
        out.insert(config.into(), Value::Object(row));
    }
    out.insert("restored_after".into(), json!(devices() == before));
    Value::Object(out)
}

/// The phase's table rows: each workload, each configuration against nothing
/// attached (the median of the rounds' ratios; the rate is the median rate).
pub fn print(report: &Value, target: f64) {
    println!("\n| traffic through a watched interface | {} |", CONFIGS.map(|c| c.1).join(" | "));
    println!("|---|{}", "---|".repeat(CONFIGS.len()));
    for (w, what) in WORKLOADS {
        let cells: Vec<String> = CONFIGS
            .iter()
            .map(|(c, _)| {
                let v = report[*c][w].as_f64().unwrap_or(f64::NAN);
                let ratio = report[*c][format!("{w}_ratio")].as_f64().unwrap_or(f64::NAN);
                if *c == "off" {
                    format!("{v:.2}")
                } else if *c == "rstwatch" {
                    let verdict = if ratio >= target { "met" } else { "MISSED" };
                    let alone = ratio / report["rstwatch_no_wire"][format!("{w}_ratio")].as_f64().unwrap_or(f64::NAN);
                    format!("{v:.2} ({ratio:.2}×, ≥ {target}× {verdict}; {alone:.2}× --no-wire)")
                } else {
                    format!("{v:.2} ({ratio:.2}×)")
                }
            })
            .collect();
        println!("| {what} | {} |", cells.join(" | "));
    }
    for (w, _) in WORKLOADS {
        let cells: Vec<String> = CONFIGS
            .iter()
            .map(|(c, _)| {
                report[*c][format!("{w}_wire_cpu_share")]
                    .as_f64()
                    .map_or_else(|| "-".to_string(), |s| format!("{:.2}% of a CPU", s * 100.0))
            })
            .collect();
        println!("| {w}: our wire programs' run time (kernel's own stats) | {} |", cells.join(" | "));
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
