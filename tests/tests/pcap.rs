//! `--pcap DIR`: the segments that triggered resets and the resets on the
//! wire, written as pcap files that tcpdump reads back, rotated when full
//! with only the newest files kept.

use std::process::Command;

use rst_tests::{namespaces::netns::VB, rig::Rig, traffic};

fn tcpdump(file: &std::path::Path) -> String {
    let out = Command::new("tcpdump").args(["-n", "-r"]).arg(file).output().expect("tcpdump (Debian package tcpdump)");
    assert!(out.status.success(), "tcpdump -r {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Five refused connects from ports 7981..=7985; two packets per file, two files per cause.
#[test]
fn pcap_files_hold_triggers_and_resets_readable_by_tcpdump_and_rotate() {
    let dir = std::env::temp_dir().join(format!("rstw-pcap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = ["--iface", VB, "--pcap", dir.to_str().unwrap(), "--pcap-count", "2", "--pcap-files", "2"];
    let rig = Rig::start_with(&args);
    let d = rig.measure(
        |p| {
            for port in 7981..=7985 {
                let local = format!("10.77.0.1:{port}").parse().unwrap();
                traffic::syn_to_closed_port(&p.a, local, "10.77.0.2:7991".parse().unwrap());
            }
        },
        |d| d.port("sent", "closed_port", 7991) == 5 && d.port("wire_out", "refusal", 7991) == 5,
    );
    assert_eq!(d.port("sent", "closed_port", 7991), 5);
    // Rotation: <name>.pcap holds the newest packet (7985), <name>.1.pcap the two
    // before it (7983, 7984); the oldest file (7981, 7982) was removed.
    let read = |stem: &str| {
        let (newest, older) = (dir.join(format!("{stem}.pcap")), dir.join(format!("{stem}.1.pcap")));
        rst_tests::wait::until_true(stem, std::time::Duration::from_secs(5), || {
            newest.exists() && older.exists() && tcpdump(&newest).lines().count() == 1
        });
        assert!(!dir.join(format!("{stem}.2.pcap")).exists(), "only two files are kept");
        (tcpdump(&newest), tcpdump(&older))
    };
    // the SYNs that hit the closed port, from their IP header on
    let (newest, older) = read("trigger-sent-closed_port");
    assert!(newest.contains("10.77.0.1.7985 > 10.77.0.2.7991: Flags [S]"), "{newest}");
    assert_eq!(older.lines().count(), 2, "{older}");
    assert!(older.contains("10.77.0.1.7983 > ") && older.contains("10.77.0.1.7984 > "), "{older}");
    // the RSTs leaving vb, from their Ethernet header on
    let (newest, older) = read("wire_out-refusal");
    assert!(newest.contains("10.77.0.2.7991 > 10.77.0.1.7985: Flags [R.]"), "{newest}");
    assert!(
        older.contains("> 10.77.0.1.7983: Flags [R.]") && older.contains("> 10.77.0.1.7984: Flags [R.]"),
        "{older}"
    );
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon stopped (SIGSTOP) while a SYN storm is sampled with captures:
/// with a sample ring larger than the 256 KiB capture ring, the capture ring
/// fills first, and every capture that did not fit is counted.
#[test]
fn captures_that_do_not_fit_their_ring_are_counted() {
    let dir = std::env::temp_dir().join(format!("rstw-pcap-lost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rig = Rig::start_with(&[
        "--iface",
        VB,
        "--pcap",
        dir.to_str().unwrap(),
        "--sample-rate",
        "100000",
        "--ring-bytes",
        "1048576",
    ]);
    let pid = libc::pid_t::try_from(rig.daemon.pid()).expect("pid fits");
    // SAFETY: signalling the test's own daemon.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let sent = rst_tests::traffic::flood::closed_port_storm(&rig.pair, 7995, std::time::Duration::from_millis(500));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(sent > 5000, "the storm sent {sent} SYNs");
    // Stopped at any point, the daemon may have been halfway through reading
    // its maps (sample counters before the storm, ports after): skip that poll.
    let _ = rig.daemon.fresh_snapshot();
    let s = rig.daemon.wait_for("the storm counted", |s| s.port("sent", "closed_port", 7995) > 5000);
    let lost = s.json["samples"]["captures_lost"].as_u64().expect("captures_lost");
    assert!(lost > 0, "a 256 KiB capture ring cannot hold {sent} captures: {}", s.json["samples"]);
    let metrics = rig.daemon.get("/metrics");
    assert!(metrics.contains("rstwatch_captures_lost_total "), "{metrics}");
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}
