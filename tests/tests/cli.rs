//! What a user meets at the command line: bad input gets one clear line and
//! exit code 2; signals detach everything.

use std::{
    io::{BufRead as _, BufReader},
    net::TcpListener,
    process::{Command, Output},
};

use rst_tests::{
    namespaces::netns::{Hooks, Netns, Pair, VB},
    rig::daemon::{self, Daemon},
};

fn rstwatch(prefix: &[&str], args: &[&str]) -> Output {
    let mut cmd = if let [first, rest @ ..] = prefix {
        let mut c = Command::new(first);
        c.args(rest).arg(daemon::bin());
        c
    } else {
        Command::new(daemon::bin())
    };
    cmd.args(args).output().expect("running rstwatch")
}

/// Exit code 2 and exactly one line on stderr that contains `needle`.
fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, got: {stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn unknown_interface_is_one_line_exit_2() {
    let out = rstwatch(&[], &["run", "--iface", "nosuch0", "--listen", "127.0.0.1:0"]);
    assert_usage_error(&out, "interface \"nosuch0\" does not exist");
}

#[test]
fn a_cgroup_root_that_is_not_cgroup2_is_one_line_exit_2() {
    let out = rstwatch(&[], &["run", "--cgroup-root", "/tmp", "--listen", "127.0.0.1:0"]);
    assert_usage_error(&out, "/tmp is not a cgroup v2 mount");
}

#[test]
fn address_in_use_is_one_line_exit_2() {
    let ns = Netns::new("busy");
    let taken: TcpListener = ns.run(|| TcpListener::bind("127.0.0.1:9477").expect("bind"));
    let path = format!("--net={}", ns.path());
    let out = rstwatch(&["nsenter", &path], &["run", "--listen", "127.0.0.1:9477"]);
    assert_usage_error(&out, "already in use");
    drop(taken);
}

#[test]
fn not_root_is_one_line_exit_2() {
    let out = rstwatch(
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"],
        &["run", "--listen", "127.0.0.1:0"],
    );
    assert_usage_error(&out, "run rstwatch as root");
}

#[test]
fn bad_flag_value_is_exit_2() {
    let out = rstwatch(&[], &["run", "--ring-bytes", "1000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
}

#[test]
fn every_bad_input_names_its_flag_or_file_in_one_line_exit_2() {
    let dir = std::env::temp_dir().join(format!("rstw-{}-cli", std::process::id()));
    let not_a_dir = dir.join("file");
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(&not_a_dir, b"").expect("temp file");
    let pcap_in_file = not_a_dir.join("pcap");
    let cases: [(&[&str], &str); 10] = [
        (&["--sample-rate", "-1"], "'--sample-rate <N>'"),
        (&["--port-keys", "4294967295"], "'--port-keys <N>': must be a whole number from 1 to 1048576"),
        (&["--peer-keys", "0"], "'--peer-keys <N>'"),
        (&["--listen", "nohost:9477"], "'--listen <ADDR>': \"nohost\" is not an IP address; use IP:PORT"),
        (&["--config", "/nonexistent.toml"], "cannot read config /nonexistent.toml"),
        (&["--fresh", "--no-pin"], "'--fresh' cannot be used with '--no-pin'"),
        (&["--pcap", pcap_in_file.to_str().expect("utf-8")], "cannot write pcap files in"),
        (&["--no-such-flag"], "'--no-such-flag'"),
        (&["--netns", "rstw-no-such-ns"], "'--netns <NS>': /run/netns/rstw-no-such-ns: No such file"),
        (&["--netns", "/proc/self/ns/uts"], "'--netns <NS>': /proc/self/ns/uts is not a network namespace"),
    ];
    for (args, needle) in cases {
        let mut argv = vec!["run"];
        argv.extend(args);
        if !args.contains(&"--listen") {
            argv.extend(["--listen", "127.0.0.1:0"]);
        }
        assert_usage_error(&rstwatch(&[], &argv), needle);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn listen_accepts_port_only_and_localhost() {
    let ns = Netns::new("listen");
    let port = "19613";
    let mut d = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(daemon::bin())
        .args(["run", "--no-pin", "--listen", &format!(":{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting rstwatch");
    let snapshot =
        |addr: &str| rstwatch(&["nsenter", &format!("--net={}", ns.path())], &["snapshot", "--json", "--listen", addr]);
    rst_tests::wait::until_true("the daemon on :PORT", std::time::Duration::from_secs(20), || {
        snapshot(&format!("localhost:{port}")).status.success()
    });
    let out = snapshot(&format!(":{port}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(libc::pid_t::try_from(d.id()).expect("pid"), libc::SIGTERM) };
    assert_eq!(d.wait().expect("wait").code(), Some(0));
}

#[test]
fn snapshot_without_daemon_says_how_to_start_one() {
    let ns = Netns::new("empty");
    let path = format!("--net={}", ns.path());
    let out = rstwatch(&["nsenter", &path], &["snapshot", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no rstwatch daemon answers at 127.0.0.1:9477") && stderr.contains("rstwatch run"),
        "{stderr}"
    );
}

#[test]
fn help_explains_views_and_causes() {
    let out = rstwatch(&[], &["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["sent", "received", "wire_in", "closed_port", "linger_abort", "stale_segment"] {
        assert!(text.contains(word), "--help lacks {word}");
    }
}

#[test]
fn sigterm_exits_0_and_detaches() {
    let pair = Pair::new();
    let mut d = Daemon::start(&pair.b, &["--iface", VB]);
    assert_eq!(pair.hooks_on_vb(), Hooks::TC, "tc ingress and egress on vb while the daemon runs, no XDP");
    let status = d.stop();
    assert_eq!(status.code(), Some(0));
    assert_eq!(pair.hooks_on_vb(), Hooks::NONE, "left attached after SIGTERM");
}

#[test]
fn sigkill_leaves_nothing_attached() {
    let pair = Pair::new();
    for mode in [&["--iface", VB][..], &["--iface", VB, "--wire-in", "xdp"]] {
        let mut d = Daemon::start(&pair.b, mode);
        assert_ne!(pair.hooks_on_vb(), Hooks::NONE, "{mode:?}");
        d.kill();
        // Links die with the last fd; the kernel releases them asynchronously.
        rst_tests::wait::until_true("XDP and TCX gone after SIGKILL", std::time::Duration::from_secs(5), || {
            pair.hooks_on_vb() == Hooks::NONE
        });
    }
}

#[test]
fn snapshot_command_prints_json_and_summary() {
    let pair = Pair::new();
    let _d = Daemon::start(&pair.b, &[]);
    let path = format!("--net={}", pair.b.path());
    let json = rstwatch(&["nsenter", &path], &["snapshot", "--json"]);
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    for key in ["version", "uptime_seconds", "totals", "causes", "ports", "peers", "samples", "recent"] {
        assert!(v.get(key).is_some(), "snapshot lacks {key}");
    }
    let text = rstwatch(&["nsenter", &path], &["snapshot"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("resets    sent"));
}

#[test]
fn live_summary_is_printed_on_stdout() {
    let pair = Pair::new();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", pair.b.path()))
        .arg(daemon::bin())
        .args(["run", "--live", "--no-pin", "--listen", daemon::LISTEN])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting rstwatch");
    let stdout = child.stdout.take().expect("stdout");
    // each block starts with the time of day it was made: `rstwatch  2026-12-02 10:41:07.312 +00:00  up …`
    let seen = std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout).lines().map_while(Result::ok).take(20).collect();
        let dated = lines.iter().any(|l| {
            let date = l.strip_prefix("rstwatch  ").unwrap_or_default().as_bytes();
            date.len() > 24 && date[..4].iter().all(u8::is_ascii_digit) && date[4] == b'-' && date[13] == b':'
        });
        dated && lines.iter().any(|l| l.starts_with("resets    sent"))
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(libc::pid_t::try_from(child.id()).expect("pid"), libc::SIGTERM) };
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    assert!(seen.join().expect("reader"), "no timestamped summary on stdout");
}

#[test]
fn no_btf_is_one_line_exit_2() {
    let out = rstwatch(&[], &["run", "--no-pin", "--listen", "127.0.0.1:0", "--btf", "/nonexistent/vmlinux"]);
    assert_usage_error(&out, "cannot read kernel BTF at /nonexistent/vmlinux");
    // BTF tracepoints and fentry attach against the kernel's own BTF: a file cannot stand in for it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CONFIG_DEBUG_INFO_BTF=y") && !stderr.contains("--btf FILE"), "{stderr}");
}

#[test]
fn coverage_self_check_in_snapshot_and_metrics() {
    let pair = Pair::new();
    let d = Daemon::start(&pair.b, &[]);
    let s = d.snapshot();
    let features = s.json["coverage"]["features"].as_object().expect("coverage.features");
    for f in [
        "tracepoint:tcp:tcp_send_reset",
        "tracepoint:tcp:tcp_receive_reset",
        "tracepoint:tcp:tcp_send_reset.reason",
        "btf:enum sk_rst_reason",
        "btf:sock.sk_lingertime",
        "tcx",
    ] {
        assert_eq!(features.get(f), Some(&serde_json::Value::Bool(true)), "{f} on this kernel (6.18)");
    }
    // This machine's kernel (6.18) has everything rstwatch uses, but it refuses
    // fentry/fexit (function tracing is restricted here): only those may degrade,
    // and origin, which needs a watched interface (none here).
    for line in s.json["coverage"]["degraded"].as_array().expect("degraded") {
        let line = line.as_str().expect("a line");
        assert!(line.starts_with("fentry:") || line.starts_with("fexit:") || line.starts_with("origin:"), "{line}");
    }
    assert_eq!(features.get("origin"), Some(&serde_json::Value::Bool(false)), "no interface watched");
    let m = d.get("/metrics");
    assert!(m.contains("rstwatch_coverage{feature=\"tracepoint:tcp:tcp_send_reset\"} 1"), "{m}");
}

#[test]
fn snapshot_of_another_http_server_is_one_line_and_sends_no_reset() {
    let ns = Netns::new("http");
    let mut server = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .args(["python3", "-m", "http.server", "19701", "--bind", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting python3 -m http.server");
    rst_tests::wait::until_true("the HTTP server", std::time::Duration::from_secs(10), || {
        ns.run(|| std::net::TcpStream::connect("127.0.0.1:19701").is_ok())
    });
    let before = rst_tests::kernel::counters::read(&ns);
    let out = rstwatch(&["nsenter", &format!("--net={}", ns.path())], &["snapshot", "--listen", "127.0.0.1:19701"]);
    let after = rst_tests::kernel::counters::read(&ns);
    let _ = server.kill();
    let _ = server.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.lines().count() == 1, "{stderr}");
    assert!(stderr.contains("404"), "{stderr}");
    // Its answer was read to the end: the client closed without a reset.
    assert_eq!(rst_tests::kernel::counters::delta(&before, &after, "Tcp:OutRsts"), 0);
}

#[test]
fn top_without_a_daemon_says_so_once_when_piped() {
    let ns = Netns::new("top");
    let mut top = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(daemon::bin())
        .args(["top", "--listen", "127.0.0.1:19702"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting rstwatch top");
    // Three refresh periods with nobody listening.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let _ = top.kill();
    let out = top.wait_with_output().expect("top's output");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line per change of state: {text}");
    assert!(lines[0].starts_with("waiting for the daemon at 127.0.0.1:19702"), "{text}");
}
