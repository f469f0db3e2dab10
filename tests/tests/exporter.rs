//! What operators expect of an exporter (issue 16): `/` names the version and
//! endpoints, `/healthz` follows the requested hooks, `/metrics` speaks the
//! format the scraper asks for and passes Debian's promtool in both,
//! `process_*` describe the daemon, and our programs' cost comes from the
//! kernel's own per-program stats.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

use rst_tests::{
    kernel::bpf_stats::BpfStats,
    namespaces::netns::{B4, VB},
    rig::Rig,
    traffic, wait,
};

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus 2.x's own scrape header.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `promtool ARGS` with `input` on stdin: (exit code, output).
fn promtool(args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; `cargo xtask test` installs it)");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name_and_labels} in\n{text}"))
}

#[test]
fn index_and_healthz_follow_the_hooks() {
    let rig = Rig::start();
    let (status, kind, body) = rig.daemon.request("/", "text/html");
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    for e in ["/metrics", "/snapshot", "/healthz", env!("CARGO_PKG_VERSION")] {
        assert!(body.contains(e), "{e} in {body}");
    }
    let (status, _, body) = rig.daemon.request("/healthz", "*/*");
    assert_eq!((status, body.starts_with("ok")), (200, true), "{body}");
    // The watched interface goes away: its hooks are no longer attached.
    rig.pair.b.exec(&["ip", "link", "del", VB]);
    let body = wait::until(
        "healthz to fail",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        || {
            let (status, _, body) = rig.daemon.request("/healthz", "*/*");
            if status == 503 { Ok(body) } else { Err(format!("{status} {body}")) }
        },
    );
    assert!(body.contains("tc ingress on vb") && body.contains("tc egress on vb"), "{body}");
    // It comes back: healthy again.
    rig.pair.link();
    wait::until(
        "healthz to recover",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(100),
        || {
            let (status, _, body) = rig.daemon.request("/healthz", "*/*");
            if status == 200 { Ok(()) } else { Err(format!("{status} {body}")) }
        },
    );
}

#[test]
fn metrics_in_the_format_asked_for_pass_promtool() {
    let rig = Rig::start();
    traffic::syn_to_closed_port(&rig.pair.a, "10.77.0.1:0".parse().unwrap(), format!("{B4}:7301").parse().unwrap());
    rig.daemon.wait_for("a closed_port reset", |s| s.port("sent", "closed_port", 7301) == 1);

    for accept in ["", "text/plain; version=0.0.4", "*/*"] {
        let (status, kind, text) = rig.daemon.request("/metrics", accept);
        assert_eq!((status, kind.as_str()), (200, TEXT), "Accept: {accept:?}");
        assert!(!text.contains("# EOF") && text.contains("# TYPE rstwatch_resets_total counter"), "{text}");
        let (code, out) = promtool(&["check", "metrics"], &text);
        assert_eq!(code, 0, "promtool check metrics (text format) failed:\n{out}\n{text}");
        assert!(text.contains("rstwatch_port_resets_total{view=\"sent\",cause=\"closed_port\",port=\"7301\"} 1\n"));
    }
    for accept in ["application/openmetrics-text; version=1.0.0", PROMETHEUS_ACCEPT] {
        let (status, kind, text) = rig.daemon.request("/metrics", accept);
        assert_eq!((status, kind.as_str()), (200, OPENMETRICS), "Accept: {accept:?}");
        assert!(text.ends_with("# EOF\n") && text.contains("# TYPE rstwatch_resets counter"), "{text}");
        // promtool's OpenMetrics parser: backfilling the scrape into a block reads every line of
        // it. Backfill needs a timestamp on each sample; adding one is the only change.
        let dir = std::env::temp_dir().join(format!("rstwatch-om-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("scrape.om");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let stamped: String =
            text.lines().map(|l| if l.starts_with('#') { format!("{l}\n") } else { format!("{l} {now}\n") }).collect();
        std::fs::write(&file, stamped).unwrap();
        let (code, out) = promtool(
            &[
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                file.to_str().unwrap(),
                dir.join("blocks").to_str().unwrap(),
            ],
            "",
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(code, 0, "promtool's OpenMetrics parser rejects the scrape:\n{out}\n{text}");
    }
}

#[test]
fn alert_rules_pass_promtool() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/prometheus-alerts.yml");
    let (code, out) = promtool(&["check", "rules", rules], "");
    assert_eq!(code, 0, "promtool check rules:\n{out}");
}

#[test]
fn process_metrics_and_program_costs_from_the_kernel() {
    let rig = Rig::start();
    let (_, _, text) = rig.daemon.request("/metrics", TEXT);
    assert!(text.contains("# HELP rstwatch_program_runs_total") && text.contains("kernel.bpf_stats_enabled"), "{text}");
    let rss = sample(&text, "process_resident_memory_bytes");
    assert!(rss > 1e6 && rss < 1e9, "{rss}");
    assert!(
        sample(&text, "process_open_fds") >= 3.0
            && sample(&text, "process_max_fds") >= sample(&text, "process_open_fds")
    );
    let start = sample(&text, "process_start_time_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(start > now - 120.0 && start <= now, "started {start}, now {now}");

    let stats = BpfStats::enable();
    for port in 7310..7315 {
        traffic::syn_to_closed_port(
            &rig.pair.a,
            "10.77.0.1:0".parse().unwrap(),
            format!("{B4}:{port}").parse().unwrap(),
        );
    }
    let text = wait::until(
        "our programs' runs",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(200),
        || {
            let (_, _, text) = rig.daemon.request("/metrics", TEXT);
            let runs = sample(&text, "rstwatch_program_runs_total{program=\"tcp_send_reset\"}");
            if runs >= 5.0 { Ok(text) } else { Err(format!("{runs} runs")) }
        },
    );
    drop(stats);
    assert!(sample(&text, "rstwatch_program_run_seconds_total{program=\"tcp_send_reset\"}") > 0.0, "{text}");
    let series = text.lines().filter(|l| l.starts_with("rstwatch_program_runs_total{program=\"")).count();
    assert!(series >= 4, "one series per loaded program (the two tracepoints, XDP, tc):\n{text}");
    let snap = rig.daemon.snapshot();
    let p = snap.json["programs"].as_array().expect("programs in /snapshot");
    assert!(p.iter().any(|p| p["program"] == "tcp_send_reset" && p["runs"].as_u64() >= Some(5)), "{p:?}");
}
