//! Running under systemd: the notify protocol on a real unix datagram socket,
//! restarts that keep counting, config errors, SIGHUP reloads, the unit file.

use std::{
    os::unix::net::UnixDatagram,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use rst_tests::{
    namespaces::netns::{Hooks, Pair, VB},
    rig::daemon::{self, Daemon},
    traffic, wait,
};

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rstw-{}-{name}", std::process::id()))
}

/// Datagrams on the notify socket until `until` is among them (at most 10 s).
fn read_until(sock: &UnixDatagram, until: &str) -> Vec<String> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.lines().any(|l| l == until);
            got.push(msg);
            if done {
                return got;
            }
        }
    }
    panic!("no {until} within 10 s; got {got:?}");
}

#[test]
fn notify_ready_then_watchdog_and_sigterm_leaves_nothing_attached() {
    let pair = Pair::new();
    let path = temp("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let pins = daemon::Pins::new();
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
    let mut d = Daemon::start_with(&pair.b, &pins.0, &["--iface", VB], &env);
    let first = read_until(&sock, "READY=1");
    assert!(first.last().unwrap().contains("STATUS=resets sent"), "{first:?}");
    let later = read_until(&sock, "WATCHDOG=1");
    assert!(!later.is_empty());
    assert_eq!(pair.hooks_on_vb(), Hooks::TC);
    assert_eq!(d.stop().code(), Some(0));
    read_until(&sock, "STOPPING=1");
    assert_eq!(pair.hooks_on_vb(), Hooks::NONE, "left on vb");
    let _ = std::fs::remove_file(&path);
}

fn run_with_config(text: &str) -> (Option<i32>, String) {
    let path = temp("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(daemon::bin()).args(["run", "--no-pin", "--config"]).arg(&path).output().expect("rstwatch");
    let _ = std::fs::remove_file(&path);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn config_errors_name_the_line_and_exit_2() {
    for (text, line, needle) in [
        ("sample_rate = 10\nlisten_addr = \"127.0.0.1:1\"\n", 2, "unknown field `listen_addr`, expected one of"),
        ("# watched\ninterfaces = [\"eth0\", \"nosuch9\"]\n", 2, "interface \"nosuch9\" does not exist"),
        ("\n\nlisten = \"127.0.0.1\"\n", 3, "is not an address"),
        ("ring_bytes = 12345\n", 1, "must be a power of two"),
    ] {
        let (code, stderr) = run_with_config(text);
        assert_eq!(code, Some(2), "{text:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&format!("line {line}: ")) && stderr.contains(needle), "{text:?}: {stderr}");
    }
    let out = Command::new(daemon::bin()).args(["run", "--config", "/nonexistent/rstwatch.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config /nonexistent/rstwatch.toml"));
}

#[test]
fn sighup_reloads_sample_rate_and_attaches_and_detaches_interfaces() {
    let pair = Pair::new();
    let cfg = temp("reload.toml");
    std::fs::write(&cfg, "sample_rate = 0\ninterfaces = []\n").unwrap();
    let cfg_arg = cfg.to_str().unwrap();
    let d = Daemon::start(&pair.b, &["--config", cfg_arg]);
    let closed = |port: u16| {
        traffic::syn_to_closed_port(
            &pair.a,
            "10.77.0.1:0".parse().unwrap(),
            format!("10.77.0.2:{port}").parse().unwrap(),
        );
    };
    closed(7701);
    let s = d.wait_for("a reset", |s| s.port("sent", "closed_port", 7701) == 1);
    assert_eq!(s.json["samples"]["delivered"], 0, "sample_rate 0: no samples");
    assert_eq!(s.total("wire_out"), 0, "no interface watched yet");
    assert_eq!(pair.hooks_on_vb(), Hooks::NONE);

    std::fs::write(&cfg, "sample_rate = 100\ninterfaces = [\"vb\"]\n").unwrap();
    let status = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status().unwrap();
    assert!(status.success());
    wait::until_true("SIGHUP to attach tc ingress and egress on vb", Duration::from_secs(10), || {
        pair.hooks_on_vb() == Hooks::TC
    });
    closed(7702);
    let s = d.wait_for("sampled and on the wire", |s| {
        s.port("wire_out", "refusal", 7702) == 1 && s.json["samples"]["delivered"].as_u64() > Some(0)
    });
    assert_eq!(s.port("sent", "closed_port", 7702), 1);

    // And back: the interface leaves the config, its programs are detached.
    std::fs::write(&cfg, "sample_rate = 100\ninterfaces = []\n").unwrap();
    let status = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status().unwrap();
    assert!(status.success());
    wait::until_true("SIGHUP to detach tc ingress and egress from vb", Duration::from_secs(10), || {
        pair.hooks_on_vb() == Hooks::NONE
    });
    closed(7703);
    let s = d.wait_for("the stack's view only", |s| s.port("sent", "closed_port", 7703) == 1);
    assert_eq!(s.port("wire_out", "refusal", 7703), 0, "vb is no longer watched");
    drop(d);
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    let unit = include_str!("../../packaging/rstwatch.service").replace("/usr/local/bin/rstwatch", &daemon::bin());
    let dir = temp("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rstwatch.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_are_printed() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(daemon::bin()).args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("rstwatch") && text.contains("snapshot"), "{shell}");
    }
}

#[test]
fn packaging_files_are_valid_and_name_real_metrics() {
    // Every metric family the daemon can export (owners included), from the renderer itself.
    let options = rst_user::output::metrics::Options { owners: true };
    let text = rst_user::output::metrics::render(&rst_user::pipeline::model::Snapshot::default(), options, None);
    let families: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(|f| if text.contains(&format!("# TYPE {f} counter")) { format!("{f}_total") } else { f.to_string() })
        .collect();
    let metrics: Vec<&str> = families.iter().map(String::as_str).collect();
    for m in ["rstwatch_resets_total", "rstwatch_owner_resets_total", "rstwatch_alerts_total"] {
        assert!(metrics.contains(&m), "{m} not in {metrics:?}");
    }
    // A name used by a dashboard or rule must be one of them.
    let named = |expr: &str| {
        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("rstwatch_"))
            .all(|w| metrics.contains(&w))
    };
    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../../packaging/grafana-dashboard.json")).expect("dashboard is JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    for needed in [
        "closed_port",
        "rstwatch_samples_dropped_total",
        "rstwatch_port_resets_total",
        "rstwatch_owner_resets_total",
        "rstwatch_rst_origin_total",
    ] {
        assert!(exprs.iter().any(|e| e.contains(needed)), "dashboard lacks {needed}");
    }
    for e in &exprs {
        assert!(named(e), "dashboard names a metric rstwatch does not export: {e}");
    }
    let alerts = &yaml_rust2::YamlLoader::load_from_str(include_str!("../../packaging/prometheus-alerts.yml"))
        .expect("alerts are YAML")[0];
    let rules = alerts["groups"][0]["rules"].as_vec().expect("rules");
    assert!(rules.len() >= 3);
    for r in rules {
        let expr = r["expr"].as_str().expect("expr");
        assert!(r["alert"].as_str().is_some());
        assert!(expr.contains("up{") || metrics.iter().any(|m| expr.contains(m)), "{expr}");
        assert!(named(expr), "rule names a metric rstwatch does not export: {expr}");
    }
    let ds = &yaml_rust2::YamlLoader::load_from_str(include_str!("../../packaging/kubernetes/daemonset.yaml"))
        .expect("DaemonSet is YAML")[0];
    assert_eq!(ds["kind"].as_str(), Some("DaemonSet"));
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    // The image `cargo xtask image` builds, probed where liveness is answered.
    assert_eq!(container["image"].as_str(), Some(concat!("rstwatch:", env!("CARGO_PKG_VERSION"))));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    let caps = &container["securityContext"]["capabilities"]["add"];
    assert!(caps.as_vec().unwrap().iter().any(|c| c.as_str() == Some("BPF")));
}

/// No cluster runs here: the manifests are checked against the Kubernetes
/// schemas (kubernetes-validate, which xtask installs from PyPI), strictly
/// (no field the schema does not know).
#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/kubernetes");
    let manifests: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(manifests.len() >= 2, "{manifests:?}");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&manifests)
        .output()
        .expect("kubernetes-validate (xtask installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("passed").count(), manifests.len(), "{text}");
}

/// `rstwatch run` in `ns` with the pin directory `pins`; its exit status and stderr
/// when it exits by itself (a refusal), else it is stopped once it serves.
fn start_or_refusal(
    ns: &rst_tests::namespaces::netns::Netns,
    pins: &std::path::Path,
    extra: &[&str],
) -> Option<(i32, String)> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(daemon::bin())
        .args(["run", "--listen", "127.0.0.1:9477", "--no-wire", "--pin-dir"])
        .arg(pins)
        .args(extra)
        .args(["--summary-seconds", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting rstwatch");
    let mut child = out;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err).expect("stderr");
            return Some((status.code().unwrap_or(-1), err));
        }
        // served: past start-up (the socket is bound before the signal handlers exist)
        let up = ns.run(|| ureq::get("http://127.0.0.1:9477/snapshot").call().is_ok());
        if up || Instant::now() > deadline {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(libc::pid_t::try_from(child.id()).expect("pid"), libc::SIGTERM) };
            let status = child.wait().expect("waiting");
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err);
            assert!(status.success(), "rstwatch did not stop cleanly ({status}): {err}");
            assert!(up, "rstwatch neither served nor exited within 20 s");
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pins_of_a_daemon_in_another_namespace_are_never_resumed() {
    let pair = Pair::new();
    let pins = daemon::Pins::new();
    assert!(start_or_refusal(&pair.a, &pins.0, &[]).is_none(), "the first daemon pins its counters");
    // another namespace, the same directory: one line, exit 2, how to choose
    let (code, err) = start_or_refusal(&pair.b, &pins.0, &[]).expect("refused");
    assert_eq!(code, 2, "{err}");
    let line: Vec<&str> = err.lines().filter(|l| l.contains("belong to")).collect();
    assert_eq!(line.len(), 1, "{err}");
    assert!(line[0].contains(&format!("a daemon in network namespace {} counting every namespace", pair.a.inode())));
    assert!(line[0].contains("--pin-dir") && line[0].contains("--fresh"), "{err}");
    // a selection is another scope too, even in the same namespace
    let (code, _) = start_or_refusal(&pair.a, &pins.0, &["--netns", &pair.b.path()]).expect("refused");
    assert_eq!(code, 2);
    // --fresh takes the directory over; then the first one is refused in turn
    assert!(start_or_refusal(&pair.b, &pins.0, &["--fresh"]).is_none());
    let (code, err) = start_or_refusal(&pair.a, &pins.0, &[]).expect("refused");
    assert!(code == 2 && err.contains(&format!("network namespace {}", pair.b.inode())), "{err}");
    // and the same namespace resumes its own
    assert!(start_or_refusal(&pair.b, &pins.0, &[]).is_none());
}
