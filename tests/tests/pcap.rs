//! `--pcap DIR`: the segments that triggered resets and the resets on the
//! wire, written as pcap files that tcpdump reads back.

use std::process::Command;

use rst_tests::{netns::VB, rig::Rig, traffic};

fn tcpdump(file: &std::path::Path) -> String {
    let out = Command::new("tcpdump").args(["-n", "-r"]).arg(file).output().expect("tcpdump (Debian package tcpdump)");
    assert!(out.status.success(), "tcpdump -r {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pcap_files_hold_triggers_and_resets_readable_by_tcpdump() {
    let dir = std::env::temp_dir().join(format!("rstw-pcap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rig = Rig::start_with(&["--iface", VB, "--pcap", dir.to_str().unwrap(), "--pcap-count", "2"]);
    let d = rig.measure(
        |p| {
            for _ in 0..3 {
                traffic::syn_to_closed_port(&p.a, "10.77.0.1:0".parse().unwrap(), "10.77.0.2:7991".parse().unwrap());
            }
        },
        |d| d.port("sent", "closed_port", 7991) == 3 && d.port("wire_out", "refusal", 7991) == 3,
    );
    assert_eq!(d.port("sent", "closed_port", 7991), 3);
    let wait = |name: &str| {
        let f = dir.join(name);
        rst_tests::wait::until_true(name, std::time::Duration::from_secs(5), || {
            f.exists() && tcpdump(&f).lines().count() == 2
        });
        tcpdump(&f)
    };
    // the SYNs that hit the closed port, from their IP header on (two: the file's bound)
    let triggers = wait("trigger-sent-closed_port.pcap");
    assert!(
        triggers.lines().all(|l| l.contains("10.77.0.1.") && l.contains("> 10.77.0.2.7991: Flags [S]")),
        "{triggers}"
    );
    // the RSTs leaving vb, from their Ethernet header on
    let resets = wait("wire_out-refusal.pcap");
    assert!(resets.lines().all(|l| l.contains("10.77.0.2.7991 > 10.77.0.1.") && l.contains("Flags [R.]")), "{resets}");
    drop(rig);
    let _ = std::fs::remove_dir_all(&dir);
}
