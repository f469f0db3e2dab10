//! `rstwatch top` in a real terminal (tmux) against the real daemon while
//! real resets happen.

use std::{
    io::{BufRead as _, BufReader},
    time::Duration,
};

use rst_tests::{
    namespaces::netns::{Pair, VB},
    rig::daemon::{self, Daemon},
    rig::tmux::Tmux,
    traffic, wait,
};

fn closed_port_resets(pair: &Pair, n: usize) {
    for _ in 0..n {
        traffic::syn_to_closed_port(&pair.a, "10.77.0.1:0".parse().unwrap(), "10.77.0.2:7501".parse().unwrap());
    }
}

/// The causes-table row for `cause` ends with its count in this column layout.
fn count_on_row(screen: &str, cause: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains(&format!(" {cause} ")))?;
    line.split(cause).nth(1)?.split_whitespace().next()?.parse().ok()
}

#[test]
fn top_shows_live_resets_survives_daemon_restart_and_quits_cleanly() {
    let pair = Pair::new();
    let mut d = Daemon::start(&pair.b, &["--iface", VB]);
    let status = std::env::temp_dir().join(format!("rstw-top-{}.status", std::process::id()));
    let _ = std::fs::remove_file(&status);
    let cmd = format!("nsenter --net={} {} top; echo exit=$? > {}", pair.b.path(), daemon::bin(), status.display());
    let tmux = Tmux::start(&cmd, 100, 30);

    closed_port_resets(&pair, 3);
    tmux.wait_for("3 closed_port resets", |s| {
        count_on_row(s, "closed_port") == Some(3) && count_on_row(s, "refused") == Some(3)
    });
    // sort by name: received/refused, sent/closed_port, wire_out/refusal; select closed_port
    tmux.keys("s");
    tmux.keys("s");
    tmux.keys("Down");
    tmux.wait_for("closed_port selected with its port", |s| {
        s.contains("sort: name") && s.contains("nobody listens") && s.contains("7501")
    });

    closed_port_resets(&pair, 2);
    let s = tmux.wait_for("counts updated to 5", |s| count_on_row(s, "closed_port") == Some(5));
    assert!(s.contains("wire_out") && s.contains("refusal"), "{s}");

    // the daemon goes away, then comes back
    assert_eq!(d.stop().code(), Some(0));
    tmux.wait_for("disconnected state", |s| s.contains("is gone"));
    let _d2 = Daemon::start(&pair.b, &["--iface", VB]);
    tmux.wait_for("reconnected", |s| s.contains("daemon 127.0.0.1:9477") && !s.contains("is gone"));

    tmux.keys("q");
    wait::until_true("q to exit rstwatch top", Duration::from_secs(5), || !tmux.alive());
    assert_eq!(std::fs::read_to_string(&status).unwrap_or_default().trim(), "exit=0");
    let _ = std::fs::remove_file(&status);
}

#[test]
fn top_prints_plain_tables_when_not_a_terminal() {
    let pair = Pair::new();
    let _d = Daemon::start(&pair.b, &[]);
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", pair.b.path()))
        .arg(daemon::bin())
        .arg("top")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("rstwatch top");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = BufReader::new(stdout).lines().map_while(Result::ok).take(8).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l.starts_with("resets    sent")), "{lines:?}");
}
