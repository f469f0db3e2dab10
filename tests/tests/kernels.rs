//! The kernel test set: what must hold on every kernel rstwatch supports. It
//! runs on the host with the rest of the suite and inside Debian's 5.10, 6.1
//! and 6.12 kernels under QEMU (`cargo xtask test --kernels`, with
//! tests/tests/seed.rs). Where a kernel lacks a facility, the test checks the
//! one line that says so instead of a silent zero. `kernel_table_row` writes
//! this kernel's row of the README's kernel table to $RSTWATCH_MATRIX_ROW.

use std::{io::Write as _, net::SocketAddr};

use rst_tests::{
    namespaces::netns::{Hooks, Pair, VB},
    rig::daemon::{self, Daemon},
    rig::snapshot::Snapshot,
    rig::{Delta, Rig},
    traffic,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn feature(s: &Snapshot, name: &str) -> bool {
    s.json["coverage"]["features"][name].as_bool().unwrap_or(false)
}

fn cause_delta(d: &Delta, view: &str, cause: &str) -> u64 {
    d.after.cause(view, cause) - d.before.cause(view, cause)
}

/// The seed's resets from both ends, on IPv4 and IPv6, across the veth and on loopback.
fn seed_traffic(p: &Pair) {
    for port in 7201..7204 {
        traffic::syn_to_closed_port(&p.a, addr(&format!("10.77.0.1:{port}")), addr("10.77.0.2:7301"));
    }
    for port in 7204..7206 {
        traffic::syn_to_closed_port(&p.a, addr(&format!("[fd77::1]:{port}")), addr("[fd77::2]:7301"));
    }
    for port in 7206..7208 {
        traffic::syn_to_closed_port(&p.b, addr(&format!("127.0.0.1:{port}")), addr("127.0.0.1:7302"));
    }
    let (c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7208"), addr("10.77.0.2:7303"));
    traffic::close_with_linger_zero(s);
    traffic::expect_reset(c);
    let (c, s, _l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7209"), addr("10.77.0.2:7304"));
    traffic::close_with_linger_zero(c);
    traffic::expect_reset(s);
    let (mut c, s, l) = traffic::establish(&p.a, &p.b, addr("10.77.0.1:7210"), addr("10.77.0.2:7305"));
    drop(l);
    traffic::vanish(s);
    c.write_all(b"are you there?").expect("write");
    traffic::expect_reset(c);
}

/// Writes this kernel's row (and the header) where the matrix runner reads it.
fn write_row(cells: &[(&str, String)]) {
    let Ok(path) = std::env::var("RSTWATCH_MATRIX_ROW") else { return };
    let head = cells.iter().fold(String::new(), |acc, (h, _)| acc + " " + h + " |");
    let row = cells.iter().fold(String::new(), |acc, (_, v)| acc + " " + v + " |");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("opening the row file");
    writeln!(f, "HEAD |{head}\nROW |{row}").expect("writing the row");
}

/// The default hooks `vb` got: tc ingress and egress, both TCX links or both clsact filters.
fn wire_hooks(s: &Snapshot) -> String {
    let vb = &s.json["interfaces"][0];
    assert_eq!((&vb["ingress"], vb["xdp"].as_bool()), (&vb["egress"], Some(false)), "{vb}");
    match vb["ingress"].as_str() {
        Some("tcx") => "TCX links".into(),
        Some("tc") => "clsact filters".into(),
        other => panic!("wire_in hook {other:?}"),
    }
}

#[test]
fn kernel_table_row() {
    let rig = Rig::start();
    // sent == OutRsts summed over the namespaces is asserted by measure().
    let d = rig.measure(seed_traffic, |d| {
        d.total("sent") + d.missed("sent") >= 10 && d.total("received") >= 10 && d.total("wire_out") >= 7
    });
    let s = &d.after;
    assert_eq!(d.missed("sent"), 0, "every sent reset counted by its own program: {}", s.json);
    assert_eq!(d.total("sent"), 10, "{}", s.json);
    let seed = [("closed_port", 7), ("linger_abort", 2), ("stale_segment", 1)];
    for (cause, n) in seed {
        assert_eq!(cause_delta(&d, "sent", cause), n, "sent/{cause}: {}", s.json);
    }
    assert_eq!(cause_delta(&d, "received", "refused"), 7, "{}", s.json);
    assert_eq!(cause_delta(&d, "received", "peer_reset"), 3, "{}", s.json);
    assert_eq!(d.total("wire_out"), 7, "{}", s.json);
    assert_eq!(d.total("wire_in"), 1, "{}", s.json);
    assert_eq!(d.port("wire_out", "refusal", 7301), 5);
    assert_eq!(d.port("wire_in", "abort", 7304), 1);

    // A blind RST into a live connection: rejected where the kernel names the drop reason.
    let (mut c, mut srv, _l) =
        traffic::establish(&rig.pair.a, &rig.pair.b, addr("10.77.0.1:7211"), addr("10.77.0.2:7306"));
    let rejected_by_kernel =
        feature(s, "tracepoint:skb:kfree_skb.reason") && feature(s, "btf:enum skb_drop_reason.TCP_RESET");
    let r = rig.measure(
        |p| assert_eq!(traffic::inject(p, 7211, 7306, 0x14, 5, 1), 1),
        |d| {
            d.port("wire_in", "abort", 7306) > 0
                && (!rejected_by_kernel || d.port("received", "rejected_invalid", 7306) > 0)
        },
    );
    traffic::assert_connected(&mut c, &mut srv);
    let rejected = r.port("received", "rejected_invalid", 7306);
    assert_eq!(rejected, u64::from(rejected_by_kernel), "{}", r.after.json);

    let owned: u64 = s.json["owners"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|o| o["view"] == "received")
        .filter_map(|o| o["count"].as_u64())
        .sum();
    let has_owners = feature(s, "btf:sock.sk_cgrp_data.cgroup");
    assert_eq!(owned > 0, has_owners, "owners are counted exactly where the kernel has sk_cgrp_data.cgroup");
    let sent = d.total("sent");
    let outrsts = d.kernel("Tcp:OutRsts");
    write_row(&[
        ("sent = OutRsts", format!("{sent} = {outrsts}")),
        ("seed causes (closed_port / linger_abort / stale_segment)", {
            let got: Vec<String> = seed.iter().map(|(c, _)| cause_delta(&d, "sent", c).to_string()).collect();
            format!("{} of 7 / 2 / 1", got.join(" / "))
        }),
        ("received", format!("{} of 10", d.total("received"))),
        ("wire_in / wire_out", format!("{} / {} of 1 / 7", d.total("wire_in"), d.total("wire_out"))),
        (
            "sent without a full socket",
            if feature(s, "tracepoint:tcp:tcp_send_reset.reason") { "tracepoint".into() } else { "fentry".into() },
        ),
        (
            "causes",
            if feature(s, "tracepoint:tcp:tcp_send_reset.reason") {
                "reason field".into()
            } else if feature(s, "kallsyms:call sites") {
                "call site (kallsyms + stack)".into()
            } else {
                "no (< 6.10, no kallsyms addresses)".into()
            },
        ),
        ("rejected_invalid", if rejected_by_kernel { format!("{rejected} of 1") } else { "no (< 5.19)".into() }),
        ("owners", if has_owners { format!("{owned} of 10 received") } else { "no (< 5.15)".into() }),
        (
            "received only when a RST arrived",
            if feature(s, "fentry:tcp_reset") {
                "yes (fentry tcp_reset)".into()
            } else if feature(s, "btf:func tcp_reset(sk, skb)") {
                "no (fentry refused here)".into()
            } else {
                "no (< 5.12)".into()
            },
        ),
        (
            "request-socket RSTs",
            if feature(s, "fexit:tcp_check_req") {
                "yes (fexit tcp_check_req)".into()
            } else {
                "no (fexit refused here)".into()
            },
        ),
        ("wire hooks (default: tc ingress and egress)", wire_hooks(s)),
        (
            "payloads",
            if feature(s, "helper:bpf_xdp_load_bytes") {
                "wire_in + wire_out".into()
            } else {
                "wire_in + wire_out (--wire-in xdp: wire_out only, < 5.18)".into()
            },
        ),
    ]);
}

#[test]
fn sigkill_leaves_nothing_attached_and_a_restart_counts_the_wire_once() {
    let pair = Pair::new();
    let pins = daemon::Pins::new();
    let mut d = Daemon::start_with(&pair.b, &pins.0, &["--iface", VB], &[]);
    assert_eq!(pair.hooks_on_vb(), Hooks::TC, "tc ingress and egress attached, no XDP");
    d.kill();
    rst_tests::wait::until_true("tc programs to go with the killed daemon", std::time::Duration::from_secs(5), || {
        pair.hooks_on_vb() == Hooks::NONE
    });
    let d = Daemon::start_with(&pair.b, &pins.0, &["--iface", VB], &[]);
    let before = d.snapshot().port("wire_out", "refusal", 7401);
    for port in 7402..7404 {
        traffic::syn_to_closed_port(&pair.a, addr(&format!("10.77.0.1:{port}")), addr("10.77.0.2:7401"));
    }
    let s = d.wait_for("2 refusals on the wire", |s| s.port("wire_out", "refusal", 7401) >= before + 2);
    assert_eq!(d.fresh_snapshot().port("wire_out", "refusal", 7401), before + 2, "counted once: {}", s.json);
    drop(d);
    assert_eq!(pair.hooks_on_vb(), Hooks::NONE, "SIGTERM leaves nothing");
}

#[test]
fn restart_keeps_counting_and_fresh_starts_from_zero() {
    let pair = Pair::new();
    let pins = daemon::Pins::new();
    let count = |d: &Daemon| d.snapshot().port("sent", "closed_port", 7601);
    let closed = |n| {
        for _ in 0..n {
            traffic::syn_to_closed_port(&pair.a, addr("10.77.0.1:0"), addr("10.77.0.2:7601"));
        }
    };
    let mut d = Daemon::start_with(&pair.b, &pins.0, &[], &[]);
    closed(3);
    d.wait_for("3 resets", |s| s.port("sent", "closed_port", 7601) == 3);
    let before = d.snapshot().total("sent");
    assert_eq!(d.stop().code(), Some(0));

    let mut d = Daemon::start_with(&pair.b, &pins.0, &[], &[]);
    assert_eq!(count(&d), 3, "a restart keeps the pinned counters");
    assert!(d.snapshot().total("sent") >= before);
    closed(1);
    d.wait_for("4 resets", |s| s.port("sent", "closed_port", 7601) == 4);
    assert_eq!(d.stop().code(), Some(0));

    let d = Daemon::start_with(&pair.b, &pins.0, &["--fresh"], &[]);
    assert_eq!(count(&d), 0, "--fresh starts from zero");
    drop(d);
}

#[test]
fn each_missing_facility_has_exactly_one_line() {
    let pair = Pair::new();
    let pins = daemon::Pins::new();
    let log = std::env::temp_dir().join(format!("rstw-{}-degrade.log", std::process::id()));
    let mut d = Daemon::start_logged(&pair.b, &pins.0, &["--iface", VB], &log);
    let s = d.snapshot();
    assert_eq!(d.stop().code(), Some(0));
    let text = std::fs::read_to_string(&log).expect("daemon log");
    let _ = std::fs::remove_file(&log);
    let features = s.json["coverage"]["features"].as_object().expect("coverage.features");
    let degraded = s.json["coverage"]["degraded"].as_array().expect("coverage.degraded");
    let missing: Vec<&String> =
        features.iter().filter(|(_, v)| v == &&serde_json::Value::Bool(false)).map(|(k, _)| k).collect();
    assert_eq!(degraded.len(), missing.len(), "{}", s.json["coverage"]);
    for (name, present) in features {
        let lines = text.lines().filter(|l| l.contains(&format!("{name} is missing on this kernel"))).count();
        assert_eq!(lines, usize::from(present == &serde_json::Value::Bool(false)), "{name}: {text}");
    }
    assert!(!text.contains("ERROR"), "{text}");
}
