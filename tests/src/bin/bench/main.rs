//! `cargo xtask bench`: rstwatch's costs measured side by side in one run,
//! as ratios (this machine is shared and noisy). Writes a markdown table to
//! stdout and `report.json` to the directory given as the first argument.
//! Traffic stays inside namespaces this program creates.

use std::{
    io::{BufRead as _, BufReader},
    net::Ipv4Addr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use std::collections::BTreeMap;

use rst_common::event::Sample;
use rst_tests::{
    kernel::bpf_stats::BpfStats,
    kernel::counters,
    kernel::programs::Programs,
    namespaces::netns::{Pair, VA, VB},
    rig::daemon::Daemon,
    traffic::flood,
    traffic::frames::{self, ACK, Ip, RST, SYN, Tcp},
};
use rst_user::{
    kernel::loader,
    pipeline::aggregate::{Aggregator, Limits},
    pipeline::decode,
    pipeline::model::ProgramCost,
};
use serde_json::{Value, json};

mod traffic;

const STORM: Duration = Duration::from_secs(2);
/// Configurations alternate round by round; medians damp the machine's noise.
const ROUNDS: usize = 5;
const XDP_REPEAT: u32 = 1_000_000;
const CLOSED_PORT: u16 = 9;
/// The chart's font (Debian's fonts-dejavu-core).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The reason-only peer: one map, one dimension, one tracepoint.
const BPFTRACE_REASON: &str = "tracepoint:tcp:tcp_send_reset { @[args->reason] = count(); }";

/// The equal-work peer: keys as rstwatch does on the stack's tracepoints (by reason and
/// local port, by reason and peer address, on send and receive), in maps. The tracepoints'
/// fields moved in 6.10 (`saddr`/`daddr` became sockaddrs holding the ports).
fn bpftrace_equal_work() -> String {
    let format = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .find_map(|t| std::fs::read_to_string(format!("{t}/events/tcp/tcp_send_reset/format")).ok())
        .unwrap_or_default();
    let receive = "tracepoint:tcp:tcp_receive_reset { @rport[args->sport] = count(); \
@rpeer[((uint32)args->daddr[0] << 24) | ((uint32)args->daddr[1] << 16) | ((uint32)args->daddr[2] << 8) | args->daddr[3]] = count(); }";
    let send = if format.contains("__u16 sport;") {
        // before 6.10: ports and IPv4 addresses are fields of their own, and there is no reason
        "tracepoint:tcp:tcp_send_reset { @port[args->state, args->sport] = count(); \
@peer[args->state, ((uint32)args->daddr[0] << 24) | ((uint32)args->daddr[1] << 16) | ((uint32)args->daddr[2] << 8) | args->daddr[3]] = count(); }"
    } else {
        "tracepoint:tcp:tcp_send_reset { @port[args->reason, ((uint16)args->saddr[2] << 8) | args->saddr[3]] = count(); \
@peer[args->reason, ((uint32)args->daddr[4] << 24) | ((uint32)args->daddr[5] << 16) | ((uint32)args->daddr[6] << 8) | args->daddr[7]] = count(); }"
    };
    format!("{send} {receive}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 1. Per-packet cost of the XDP program, BPF_PROG_TEST_RUN, median of 5
/// rounds; each case with origin on (the default; keys as named) and off
/// (`<case>_origin_off`). A SYN is what origin pays for (its sender's TTL is
/// kept); a data segment (`ack_v4`) pays one flag test more.
fn xdp_costs() -> Value {
    let v4 = Ip::V4([10, 0, 0, 1], [10, 0, 0, 2]);
    let v6 = Ip::V6(
        [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
    );
    let syn = frames::frame(&[], v4, &Tcp::new(40000, 80, 1, SYN));
    let cases = [
        ("empty", loader::EMPTY_XDP, syn.clone()),
        ("non_rst_v4", loader::XDP_PROGRAM, syn),
        ("ack_v4", loader::XDP_PROGRAM, frames::frame(&[], v4, &Tcp::new(40000, 80, 1, ACK))),
        ("rst_v4", loader::XDP_PROGRAM, frames::frame(&[], v4, &Tcp::new(80, 40000, 0, RST | ACK))),
        ("rst_v6", loader::XDP_PROGRAM, frames::frame(&[], v6, &Tcp::new(80, 40000, 0, RST | ACK))),
        ("vlan_rst_v4", loader::XDP_PROGRAM, frames::frame(&[100], v4, &Tcp::new(80, 40000, 7, RST | ACK))),
    ];
    let mut out = serde_json::Map::new();
    for (origin, suffix) in [(true, ""), (false, "_origin_off")] {
        let mut progs = Programs::load_with_origin(origin);
        for (name, prog, frame) in &cases {
            let ns: Vec<f64> = (0..5).map(|_| progs.xdp(prog, frame, XDP_REPEAT).1 as f64).collect();
            out.insert(format!("{name}{suffix}"), json!(median(ns)));
        }
    }
    Value::Object(out)
}

/// 3. Userspace decode + classify + aggregate, samples per second on one core.
fn userspace() -> f64 {
    const N: usize = 2_000_000;
    let records: Vec<Vec<u8>> = (0..1024u32)
        .map(|i| {
            let s = Sample {
                local_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                remote_addr: [10, 0, (i >> 8) as u8, i as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                local_port: 80,
                remote_port: 40000 + i as u16,
                reason: 1,
                view: (i % 4) as u8,
                cause: 1 + (i % 5) as u8,
                family: 4,
                ..Sample::default()
            };
            // SAFETY: Sample is plain repr(C) data without padding.
            unsafe { std::slice::from_raw_parts((&raw const s).cast::<u8>(), size_of::<Sample>()) }.to_vec()
        })
        .collect();
    let mut agg = Aggregator::new(
        Limits { top: 20, recent: 64, held: [16_384; 3] },
        "bench".into(),
        std::collections::BTreeMap::default(),
        rst_user::pipeline::model::Coverage::default(),
    );
    let start = Instant::now();
    for i in 0..N {
        agg.on_sample(decode::decode(&records[i % records.len()]).expect("valid record"));
    }
    let s = agg.snapshot(1.0, &std::collections::BTreeMap::new());
    assert_eq!(s.samples.delivered, N as u64);
    N as f64 / start.elapsed().as_secs_f64()
}

struct Storm<'a> {
    pair: &'a Pair,
    ifindex: i32,
    frames: Vec<Vec<u8>>,
}

impl<'a> Storm<'a> {
    /// SYNs from `a` over the veth to a closed port of `b`, 256 source ports round-robin.
    fn new(pair: &'a Pair) -> Self {
        let (ifindex, src_mac) = pair.a.link_info(VA);
        let (_, dst_mac) = pair.b.link_info(VB);
        let frames: Vec<Vec<u8>> = (0..256u16)
            .map(|i| {
                let (a, b) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2));
                flood::syn_frame(src_mac, dst_mac, a, b, 20000 + i, CLOSED_PORT)
            })
            .collect();
        Self { pair, ifindex, frames }
    }

    /// Generator rate (SYNs per second) for one storm.
    fn run(&self, d: Duration) -> f64 {
        let sent = self.pair.a.run(|| flood::flood(&flood::socket(self.ifindex), &self.frames, d));
        sent as f64 / d.as_secs_f64()
    }
}

fn out_rsts(pair: &Pair) -> u64 {
    [counters::read(&pair.a), counters::read(&pair.b), counters::read_here()]
        .iter()
        .map(|c| c.get("Tcp:OutRsts").copied().unwrap_or(0))
        .sum()
}

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    if file == "stat" {
        // utime + stime, in clock ticks (fields 14 and 15)
        let rest = text.rsplit(')').next().unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        return f.get(11).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    }
    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// Starts `cmd`, waits (at most 30 s) until `ready` shows on its stdout or stderr.
fn spawn_ready(cmd: &mut Command, ready: &str) -> (Child, mpsc::Receiver<String>) {
    #[expect(
        clippy::zombie_processes,
        reason = "returned to the caller, which waits; killed and waited below otherwise"
    )]
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            let hit = l.contains(ready);
            seen.push(l);
            if hit {
                // give the probe a moment to be live
                std::thread::sleep(Duration::from_millis(300));
                return (child, rx);
            }
        }
    }
    let _ = child.kill();
    panic!("{cmd:?} did not print {ready:?}: {seen:?}");
}

/// Stops a peer the way a user would (Ctrl-C, so it prints its summary),
/// then harder if it does not go within 10 s (bpftrace was once seen to stay
/// in epoll_wait after SIGINT and leave only on SIGTERM); everything it printed.
fn interrupt(mut child: Child, rx: &mpsc::Receiver<String>) -> String {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        if !matches!(child.try_wait(), Ok(None)) {
            break; // gone (and reaped: its pid is no longer ours to signal)
        }
        // SAFETY: signalling our own child, still running and not yet reaped.
        unsafe { libc::kill(child.id().cast_signed(), signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200));
    rx.try_iter().collect::<Vec<_>>().join("\n")
}

/// tcpdump on vb keeping the RSTs (to /dev/null), once it listens: the peer that watches the interface.
fn start_tcpdump(pair: &Pair) -> (Child, mpsc::Receiver<String>) {
    let ns = format!("--net={}", pair.b.path());
    let filter = "tcp[tcpflags] & tcp-rst != 0";
    spawn_ready(
        Command::new("nsenter").args([&ns, "tcpdump", "-n", "-i", VB, "-w", "/dev/null", filter]),
        "listening on",
    )
}

fn number_before(text: &str, suffix: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            l.split(suffix).next().filter(|_| l.contains(suffix))?.split_whitespace().last()?.parse::<u64>().ok()
        })
        .sum()
}

/// 2. The reset storm, each configuration side by side, `ROUNDS` times.
#[expect(clippy::too_many_lines, reason = "one storm, nine configurations side by side, read top to bottom")]
fn storm(s: &Storm) -> (Value, u64) {
    let pair = s.pair;
    s.run(Duration::from_millis(300)); // warm-up: ARP, caches

    let mut off = Vec::new();
    let mut empty = Vec::new();
    let mut empty_xdp = Vec::new();
    let mut on = Vec::new();
    let mut on_xdp = Vec::new();
    let mut on_no_origin = Vec::new();
    let mut bpftrace = Vec::new();
    let mut bpftrace_equal = Vec::new();
    let equal_work = bpftrace_equal_work();
    let mut tcpdump = Vec::new();
    let (mut bpftrace_lost, mut tcpdump_dropped) = (0, 0);
    let (mut counted, mut kernel, mut rsts, mut delivered, mut dropped, mut cpu_ticks) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut missed, mut missed_recursion, mut missed_unannounced) = (0u64, 0u64, 0u64);
    let mut xdp_unannounced = 0u64;

    // The daemon's RSS is read after 10 s idle, in the first round.
    let mut idle_rss = 0;
    for round in 0..ROUNDS {
        off.push(s.run(STORM));

        // The empty programs on our hooks: tc ingress (the default) and native XDP.
        for (xdp, rates) in [(false, &mut empty), (true, &mut empty_xdp)] {
            let (stop_tx, stop_rx) = mpsc::channel::<()>();
            let (ready_tx, ready_rx) = mpsc::channel::<()>();
            let b = &pair.b;
            std::thread::scope(|scope| {
                scope.spawn(move || {
                    b.run(move || {
                        let mut p = Programs::load();
                        p.attach_empty(VB, xdp);
                        ready_tx.send(()).unwrap();
                        let _ = stop_rx.recv();
                    });
                });
                ready_rx.recv().unwrap();
                rates.push(s.run(STORM));
                stop_tx.send(()).unwrap();
            });
        }

        // rstwatch --wire-in xdp (the default before issue 32)
        // (and its sent resets the kernel ran no program for: issue 32, item 6)
        let d = Daemon::start(&pair.b, &["--iface", VB, "--no-pin", "--wire-in", "xdp"]);
        let unannounced = |d: &Daemon| d.snapshot().json["missed_by_kind"]["sent"]["unannounced"].as_u64().unwrap_or(0);
        let u0 = unannounced(&d);
        on_xdp.push(s.run(STORM));
        std::thread::sleep(Duration::from_millis(800));
        xdp_unannounced += unannounced(&d) - u0;
        drop(d);

        // rstwatch, started for this phase only (one observer at a time on the interface)
        let d = Daemon::start(&pair.b, &["--iface", VB, "--no-pin"]);
        if round == 0 {
            std::thread::sleep(Duration::from_secs(10));
            idle_rss = proc_field(d.pid(), "status", "VmRSS:");
        }
        let before = d.snapshot();
        let k0 = out_rsts(pair);
        let t0 = proc_field(d.pid(), "stat", "");
        let rate = s.run(STORM);
        on.push(rate);
        // let the counters settle, then compare with the kernel
        std::thread::sleep(Duration::from_millis(500));
        let after = d.wait_for("counters settle", |a| {
            std::thread::sleep(Duration::from_millis(300));
            a.total("sent") == d.snapshot().total("sent")
        });
        let k1 = out_rsts(pair);
        counted += after.total("sent") - before.total("sent");
        let m = |s: &rst_tests::rig::snapshot::Snapshot| s.json["missed"]["sent"].as_u64().unwrap_or(0);
        missed += m(&after) - m(&before);
        let kind =
            |s: &rst_tests::rig::snapshot::Snapshot, k: &str| s.json["missed_by_kind"]["sent"][k].as_u64().unwrap_or(0);
        missed_recursion += kind(&after, "recursion") - kind(&before, "recursion");
        missed_unannounced += kind(&after, "unannounced") - kind(&before, "unannounced");
        kernel += k1 - k0;
        #[expect(clippy::cast_sign_loss, reason = "a rate is never negative")]
        let storm_rsts = (rate * STORM.as_secs_f64()) as u64;
        rsts += storm_rsts;
        let sv = |s: &rst_tests::rig::snapshot::Snapshot, k: &str| s.json["samples"][k].as_u64().unwrap_or(0);
        delivered += sv(&after, "delivered") - sv(&before, "delivered");
        dropped += sv(&after, "dropped") - sv(&before, "dropped");
        cpu_ticks += proc_field(d.pid(), "stat", "") - t0;
        drop(d);

        // The same daemon, origin off (contract §2a): what judging costs the storm.
        let d = Daemon::start(&pair.b, &["--iface", VB, "--no-pin", "--no-origin"]);
        on_no_origin.push(s.run(STORM));
        drop(d);

        for (script, rates) in [(BPFTRACE_REASON, &mut bpftrace), (equal_work.as_str(), &mut bpftrace_equal)] {
            let (child, rx) = spawn_ready(Command::new("bpftrace").args(["-e", script]), "Attaching");
            rates.push(s.run(STORM));
            bpftrace_lost += number_before(&interrupt(child, &rx), " events");
        }

        let (child, rx) = start_tcpdump(pair);
        tcpdump.push(s.run(STORM));
        tcpdump_dropped += number_before(&interrupt(child, &rx), " packets dropped by kernel");
        eprintln!("bench: storm round {} of {ROUNDS} done", round + 1);
    }
    let med = |v: &Vec<f64>| median(v.clone());
    let clk = 100.0; // USER_HZ
    (
        json!({
            "seconds": STORM.as_secs_f64() * ROUNDS as f64,
            "rsts": rsts, "counted": counted, "missed": missed, "kernel_outrsts": kernel,
            "missed_recursion": missed_recursion, "missed_unannounced": missed_unannounced,
            "xdp_missed_unannounced": xdp_unannounced,
            "gen_pps_off": med(&off), "gen_pps_empty_hooks": med(&empty), "gen_pps_empty_hooks_xdp": med(&empty_xdp),
            "gen_pps_on": med(&on), "gen_pps_on_xdp": med(&on_xdp), "gen_pps_on_no_origin": med(&on_no_origin),
            "bpftrace_gen_pps": med(&bpftrace), "bpftrace_equal_work_gen_pps": med(&bpftrace_equal),
            "tcpdump_gen_pps": med(&tcpdump),
            "bpftrace_lost": bpftrace_lost, "tcpdump_dropped": tcpdump_dropped,
            "samples_delivered": delivered, "samples_dropped": dropped,
            "daemon_cpu_seconds": cpu_ticks as f64 / clk,
        }),
        idle_rss,
    )
}

/// (runs, ns) per program between two readings.
fn deltas(before: &[ProgramCost], after: &[ProgramCost]) -> BTreeMap<String, (u64, u64)> {
    after
        .iter()
        .map(|a| {
            let b = before.iter().find(|b| b.program == a.program);
            let (r0, t0) = b.map_or((0, 0), |b| (b.runs, b.run_ns));
            (a.program.clone(), (a.runs - r0, a.run_ns - t0))
        })
        .collect()
}

fn daemon_costs(d: &Daemon) -> Vec<ProgramCost> {
    serde_json::from_value(d.snapshot().json["programs"].clone()).expect("programs in /snapshot")
}

/// 4. Where the time goes: the kernel's own per-program stats (`run_time_ns / run_cnt`, with
/// `kernel.bpf_stats_enabled` on for this phase only) during one storm with the empty programs
/// on the hooks and one with rstwatch.
fn program_costs(s: &Storm) -> Value {
    let stats = BpfStats::enable();
    let empty = std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Vec<ProgramCost>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let b = &s.pair.b;
        scope.spawn(move || {
            b.run(move || {
                let mut p = Programs::load();
                p.attach_empty(VB, false);
                tx.send(p.costs()).expect("costs");
                let _ = stop_rx.recv();
                tx.send(p.costs()).expect("costs");
            });
        });
        let before = rx.recv().expect("empty programs attached");
        s.run(STORM);
        stop_tx.send(()).expect("stop");
        deltas(&before, &rx.recv().expect("costs after"))
    });
    let d = Daemon::start(&s.pair.b, &["--iface", VB, "--no-pin"]);
    let before = daemon_costs(&d);
    let k0 = out_rsts(s.pair);
    s.run(STORM);
    std::thread::sleep(Duration::from_millis(500));
    let ours = deltas(&before, &daemon_costs(&d));
    let rsts = out_rsts(s.pair) - k0;
    drop(d);
    drop(stats);
    let per_run = |m: &BTreeMap<String, (u64, u64)>, name: &str| {
        m.get(name).filter(|(runs, _)| *runs > 0).map(|&(runs, ns)| (runs, ns as f64 / runs as f64))
    };
    let hooks = [
        ("tcp_send_reset tracepoint", "tcp_send_reset", Some(loader::EMPTY_TP_SEND)),
        ("tcp_receive_reset tracepoint", "tcp_receive_reset", Some(loader::EMPTY_TP_RECEIVE)),
        ("tc ingress (the SYNs)", loader::TC_INGRESS_PROGRAM, Some(loader::EMPTY_TC_INGRESS)),
        ("tc egress (the RSTs)", loader::TC_PROGRAM, Some(loader::EMPTY_TC)),
        ("kfree_skb tracepoint", "kfree_skb", None),
    ];
    let mut rows = Vec::new();
    for (hook, program, baseline) in hooks {
        let Some((runs, ns)) = per_run(&ours, program) else { continue };
        let empty_ns = baseline.and_then(|b| per_run(&empty, b)).map(|(_, ns)| ns);
        rows.push(json!({
            "hook": hook, "program": program, "runs": runs, "ns_per_run": ns,
            "empty_ns_per_run": empty_ns, "ratio": empty_ns.map(|e| ns / e),
        }));
    }
    let total =
        |m: &BTreeMap<String, (u64, u64)>| m.values().map(|(_, ns)| *ns).sum::<u64>() as f64 / rsts.max(1) as f64;
    json!({"rsts": rsts, "programs": rows, "ns_per_reset_all_hooks": total(&ours), "empty_ns_per_reset_all_hooks": total(&empty)})
}

/// The ratios as a bar chart (SVG), where a picture reads faster than the table.
fn chart(path: &std::path::Path, bars: &[(String, f64, Option<f64>)]) {
    use plotters::prelude::*;
    // A font of Debian's (fonts-dejavu-core, which `cargo xtask bench` installs), registered for text layout.
    let font = std::fs::read(FONT).unwrap_or_else(|e| panic!("{FONT}: {e}"));
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| "font")
        .expect("a TrueType font");
    let height = 80 + 34 * u32::try_from(bars.len()).expect("few bars");
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).expect("svg");
    let max = bars.iter().map(|b| b.1.max(b.2.unwrap_or(0.0))).fold(1.0, f64::max) * 1.1;
    let n = bars.len() as i32;
    let mut c = ChartBuilder::on(&root)
        .caption(
            "rstwatch: storm slowdown against nothing attached, programs against empty ones (1.0 = free)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max, 0..n)
        .expect("chart");
    let label =
        |i: &i32| bars.get(usize::try_from(n - 1 - *i).unwrap_or(usize::MAX)).map_or(String::new(), |b| b.0.clone());
    c.configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&label)
        .x_desc("× empty hooks")
        .draw()
        .expect("axes");
    c.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let y = n - 1 - i as i32;
        Rectangle::new([(0.0, y), (b.1, y + 1)], BLUE.mix(0.6).filled())
    }))
    .expect("bars");
    c.draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
        let y = n - 1 - i as i32;
        b.2.map(|t| PathElement::new(vec![(t, y), (t, y + 1)], RED.stroke_width(2)))
    }))
    .expect("targets")
    .label("target")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
    c.configure_series_labels().border_style(BLACK).draw().expect("legend");
    root.present().expect("writing the chart");
}

/// `--steps`: the per-program cost of each build in `RSTWATCH_STEP_BINS`
/// (`name=path,...`; "full" leaves nothing out), in one storm setup, the full
/// build first and again last (its two rows show the drift of the run).
fn steps(dir: &std::path::Path) {
    let bins: Vec<(String, String)> = std::env::var("RSTWATCH_STEP_BINS")
        .expect("RSTWATCH_STEP_BINS")
        .split(',')
        .filter_map(|b| b.split_once('=').map(|(n, p)| (n.to_string(), p.to_string())))
        .collect();
    let full = bins.iter().find(|b| b.0 == "full").cloned().expect("a full build");
    let pair = Pair::new();
    let storms = Storm::new(&pair);
    let mut rows = Vec::new();
    for (name, bin) in bins.iter().chain(std::iter::once(&full)) {
        eprintln!("bench: per-program cost, {name}");
        // SAFETY: single-threaded here; the rig reads RSTWATCH_BIN when it starts a daemon.
        unsafe { std::env::set_var("RSTWATCH_BIN", bin) };
        rows.push((name.clone(), program_costs(&storms)));
    }
    let ns = |v: &Value, program: &str| {
        v["programs"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["program"] == program))
            .and_then(|p| p["ns_per_run"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let base = (rows[0].1["ns_per_reset_all_hooks"].as_f64().unwrap_or(0.0)
        + rows[rows.len() - 1].1["ns_per_reset_all_hooks"].as_f64().unwrap_or(0.0))
        / 2.0;
    println!(
        "| left out | tcp_send_reset ns/run | tc egress ns/run | tc ingress ns/run | all hooks ns/reset | saved vs full (mean of its two rows) |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, v) in &rows {
        let all = v["ns_per_reset_all_hooks"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {all:.0} | {:.0} |",
            ns(v, "tcp_send_reset"),
            ns(v, "rst_tc_egress"),
            ns(v, loader::TC_INGRESS_PROGRAM),
            base - all
        );
    }
    let report: Vec<Value> = rows.iter().map(|(n, v)| json!({"left_out": n, "costs": v})).collect();
    std::fs::write(dir.join("steps.json"), serde_json::to_string_pretty(&report).unwrap() + "\n").expect("steps.json");
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The targets of issue 32: the storm with rstwatch at least this fraction
/// of the storm with nothing attached ...
const STORM_TARGET: f64 = 0.90;
/// ... traffic through a watched interface at least this fraction of it with nothing attached ...
const TRAFFIC_TARGET: f64 = 0.97;
/// ... all our programs per reset at most this many times the empty ones ...
const ALL_HOOKS_TARGET: f64 = 2.5;

/// ... and each program at most this many times its empty program on the
/// same hook (the storm's XDP runs are on SYNs: the non-RST target).
fn program_target(program: Option<&str>) -> Option<f64> {
    match program {
        Some(p) if p == loader::XDP_PROGRAM || p == loader::TC_INGRESS_PROGRAM => Some(1.2),
        Some("tcp_send_reset" | "rst_tc_egress") => Some(3.0),
        _ => None,
    }
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/bench".into()));
    std::fs::create_dir_all(&dir).expect("report directory");
    if std::env::args().any(|a| a == "--steps") {
        steps(&dir);
        return;
    }
    if std::env::args().any(|a| a == "--traffic-only") {
        // The traffic phase alone: what watching an interface costs what flows through it.
        let pair = Pair::new();
        let t = traffic::run(&pair);
        std::fs::write(dir.join("traffic.json"), serde_json::to_string_pretty(&t).unwrap() + "\n")
            .expect("traffic.json");
        traffic::print(&t, TRAFFIC_TARGET);
        return;
    }
    if std::env::args().any(|a| a == "--programs-only") {
        // For iterating on the kernel side: one storm per side, the per-program table only.
        let pair = Pair::new();
        let programs = program_costs(&Storm::new(&pair));
        println!("{}", serde_json::to_string_pretty(&programs).unwrap());
        return;
    }
    eprintln!("bench: XDP per-packet cost (BPF_PROG_TEST_RUN, {XDP_REPEAT} repeats, median of 5)");
    let xdp = xdp_costs();
    eprintln!("bench: userspace decode + aggregate");
    let ups = userspace();
    eprintln!("bench: reset storm ({ROUNDS} rounds of {} s per configuration)", STORM.as_secs());
    let pair = Pair::new();
    let storms = Storm::new(&pair);
    let (storm, rss) = storm(&storms);
    eprintln!("bench: per-program cost (kernel.bpf_stats_enabled, one storm each)");
    let programs = program_costs(&storms);
    eprintln!("bench: traffic through a watched interface ({} configurations)", traffic::CONFIGS.len());
    let traffic = traffic::run(&pair);
    let report = json!({"xdp_test_run_ns": xdp, "storm": storm, "programs": programs, "traffic": traffic, "userspace": {"decode_aggregate_per_s": ups}, "daemon_rss_kib": rss});
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&report).unwrap() + "\n")
        .expect("writing report");

    let x = |k: &str| report["xdp_test_run_ns"][k].as_f64().unwrap();
    let st = |k: &str| report["storm"][k].as_f64().unwrap();
    let empty = x("empty");
    println!("| measure | value | ratio | target |");
    println!("|---|---|---|---|");
    println!("| XDP empty program | {empty:.1} ns | 1.00× | baseline |");
    for k in ["non_rst_v4", "ack_v4", "rst_v4", "rst_v6", "vlan_rst_v4"] {
        let limit = if k.starts_with("rst") || k.starts_with("vlan") { 3.0 } else { 1.2 };
        let off = x(&format!("{k}_origin_off"));
        println!(
            "| XDP {k} | {:.1} ns (origin off {off:.1} ns) | {:.2}× empty (origin off {:.2}×) | ≤ {limit}× ({}) |",
            x(k),
            x(k) / empty,
            off / empty,
            verdict(x(k) / empty <= limit)
        );
    }
    // Every observer against nothing attached (issue 32: not against our own empty hooks).
    let base = st("gen_pps_off");
    println!("| storm generator, nothing attached | {base:.0} SYN/s | 1.00× | baseline |");
    let storm_rows = [
        ("empty programs on our hooks (tc ingress, tc egress, tracepoints)", "gen_pps_empty_hooks"),
        ("empty programs with native XDP in place of tc ingress", "gen_pps_empty_hooks_xdp"),
        ("rstwatch (tc ingress, the default)", "gen_pps_on"),
        ("rstwatch --wire-in xdp", "gen_pps_on_xdp"),
        ("rstwatch --no-origin", "gen_pps_on_no_origin"),
        ("bpftrace, reason only", "bpftrace_gen_pps"),
        ("bpftrace keying as rstwatch (reason × port, reason × peer, send and receive)", "bpftrace_equal_work_gen_pps"),
        ("tcpdump", "tcpdump_gen_pps"),
    ];
    for (what, k) in storm_rows {
        let target = match k {
            "gen_pps_on" => format!("≥ {STORM_TARGET}× ({})", verdict(st(k) / base >= STORM_TARGET)),
            "bpftrace_equal_work_gen_pps" => {
                format!("rstwatch ≥ it ({})", verdict(st("gen_pps_on") >= st("bpftrace_equal_work_gen_pps")))
            }
            _ => String::new(),
        };
        println!("| storm generator, {what} | {:.0} SYN/s | {:.2}× nothing attached | {target} |", st(k), st(k) / base);
    }
    let n = |k: &str| report["storm"][k].as_u64().unwrap_or(0);
    let exact = n("counted") == n("kernel_outrsts");
    println!(
        "| rstwatch counted / kernel OutRsts | {} / {} | | equal ({}) |",
        n("counted"),
        n("kernel_outrsts"),
        verdict(exact)
    );
    println!(
        "| counted + reported missed / kernel OutRsts | {} / {} | | equal ({}) |",
        n("counted") + n("missed"),
        n("kernel_outrsts"),
        verdict(n("counted") + n("missed") == n("kernel_outrsts"))
    );
    println!(
        "| missed: recursion / unannounced | {} / {} | | 0 ({}) |",
        n("missed_recursion"),
        n("missed_unannounced"),
        verdict(n("missed") == 0)
    );
    println!("| missed unannounced with --wire-in xdp (same storms) | {} | | |", n("xdp_missed_unannounced"));
    println!(
        "| samples delivered / dropped | {} / {} | | every undelivered one counted |",
        report["storm"]["samples_delivered"], report["storm"]["samples_dropped"]
    );
    println!(
        "| bpftrace lost events / tcpdump dropped | {} / {} | | |",
        report["storm"]["bpftrace_lost"], report["storm"]["tcpdump_dropped"]
    );
    println!("| daemon CPU during storms | {:.2} s | | |", st("daemon_cpu_seconds"));
    println!("| userspace decode + aggregate | {:.2} M samples/s | | ≥ 5 M/s ({}) |", ups / 1e6, verdict(ups >= 5e6));
    println!("| daemon RSS after 10 s idle | {} KiB | | ≤ 30 MiB ({}) |", rss, verdict(rss <= 30 * 1024));
    println!(
        "\n| hook (kernel's own stats) | program | runs | ns per run | empty program, ns per run | ratio | target |"
    );
    println!("|---|---|---|---|---|---|---|");
    let rows = report["programs"]["programs"].as_array().cloned().unwrap_or_default();
    for r in &rows {
        let (ns, empty, ratio) =
            (r["ns_per_run"].as_f64().unwrap_or(0.0), r["empty_ns_per_run"].as_f64(), r["ratio"].as_f64());
        let limit = program_target(r["program"].as_str());
        println!(
            "| {} | {} | {} | {ns:.0} | {} | {} | {} |",
            r["hook"].as_str().unwrap_or_default(),
            r["program"].as_str().unwrap_or_default(),
            r["runs"],
            empty.map_or("-".into(), |e| format!("{e:.0}")),
            ratio.map_or("-".into(), |x| format!("{x:.2}×")),
            match (limit, ratio) {
                (Some(l), Some(x)) => format!("≤ {l}× ({})", verdict(x <= l)),
                _ => String::new(),
            }
        );
    }
    let pr = |k: &str| report["programs"][k].as_f64().unwrap_or(0.0);
    let all = pr("ns_per_reset_all_hooks") / pr("empty_ns_per_reset_all_hooks").max(1.0);
    println!(
        "| all hooks, per reset | | {} resets | {:.0} | {:.0} | {all:.2}× | ≤ {ALL_HOOKS_TARGET}× ({}) |",
        report["programs"]["rsts"],
        pr("ns_per_reset_all_hooks"),
        pr("empty_ns_per_reset_all_hooks"),
        verdict(all <= ALL_HOOKS_TARGET)
    );
    // The chart: per-program ratios to empty programs, storm slowdowns against nothing attached.
    let slow = |k: &str| base / st(k);
    let mut bars: Vec<(String, f64, Option<f64>)> = vec![
        ("storm: rstwatch (slowdown)".into(), slow("gen_pps_on"), Some(1.0 / STORM_TARGET)),
        ("storm: rstwatch --wire-in xdp".into(), slow("gen_pps_on_xdp"), None),
        ("storm: bpftrace, reason only".into(), slow("bpftrace_gen_pps"), None),
        ("storm: bpftrace, equal work".into(), slow("bpftrace_equal_work_gen_pps"), None),
        ("storm: tcpdump".into(), slow("tcpdump_gen_pps"), None),
    ];
    for k in ["non_rst_v4", "rst_v4", "rst_v6", "vlan_rst_v4"] {
        bars.push((format!("XDP test run: {k}"), x(k) / empty, Some(if k == "non_rst_v4" { 1.2 } else { 3.0 })));
    }
    for r in &rows {
        if let Some(ratio) = r["ratio"].as_f64() {
            let target = program_target(r["program"].as_str());
            bars.push((format!("per run: {}", r["hook"].as_str().unwrap_or_default()), ratio, target));
        }
    }
    for (w, _) in traffic::WORKLOADS {
        let ratio = |c: &str| report["traffic"][c][format!("{w}_ratio")].as_f64().unwrap_or(f64::NAN);
        bars.push((format!("traffic {w}: rstwatch (slowdown)"), 1.0 / ratio("rstwatch"), Some(1.0 / TRAFFIC_TARGET)));
        bars.push((format!("traffic {w}: --wire-in xdp"), 1.0 / ratio("rstwatch_xdp"), None));
    }
    chart(&dir.join("ratios.svg"), &bars);
    traffic::print(&report["traffic"], TRAFFIC_TARGET);
    println!("\nreport: {} (chart: {})", dir.join("report.json").display(), dir.join("ratios.svg").display());
}
