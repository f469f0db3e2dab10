//! Samples are rate-limited per CPU and every one not delivered is counted;
//! counts stay exact regardless.

use rst_tests::{namespaces::netns::VB, rig::Rig, rig::snapshot::Snapshot, traffic};

const N: u64 = 40;

fn all_counts(s: &Snapshot) -> u64 {
    ["sent", "received", "wire_in", "wire_out"].iter().map(|v| s.total(v)).sum()
}

fn samples(s: &Snapshot, key: &str) -> u64 {
    s.json["samples"][key].as_u64().expect("samples field")
}

#[test]
fn rate_limited_samples_are_counted_and_counts_stay_exact() {
    let rig = Rig::start_with(&["--iface", VB, "--sample-rate", "3"]);
    let d = rig.measure(
        |p| {
            for _ in 0..N {
                traffic::syn_to_closed_port(&p.a, "10.77.0.1:0".parse().unwrap(), "10.77.0.2:7301".parse().unwrap());
            }
        },
        |d| d.port("sent", "closed_port", 7301) >= N && d.port("wire_out", "refusal", 7301) >= N,
    );
    assert_eq!(d.port("sent", "closed_port", 7301), N, "counts are exact whatever the sampling");
    assert_eq!(d.port("wire_out", "refusal", 7301), N);
    let s = &d.after;
    assert!(samples(s, "rate_limited") > 0, "3/s per CPU cannot carry {N} resets: {}", s.json);
    assert_eq!(samples(s, "dropped"), samples(s, "ring_full") + samples(s, "rate_limited"));
    // Every counted reset tried to emit one sample: delivered + dropped accounts for all of them.
    let settled = rig
        .daemon
        .wait_for("every sample accounted", |s| samples(s, "delivered") + samples(s, "dropped") == all_counts(s));
    assert!(samples(&settled, "delivered") > 0);
    // Each sample carries its time of day (RFC 3339 UTC, milliseconds), close to now.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let time = settled.json["recent"][0]["time"].as_str().expect("a time of day").to_string();
    assert!(time.ends_with('Z') && time.len() == "2026-12-02T01:52:51.123Z".len(), "{time}");
    let date = std::process::Command::new("date").args(["-u", "-d", &time, "+%s"]).output().expect("date(1)");
    let at: u64 = String::from_utf8_lossy(&date.stdout).trim().parse().expect("date parses the time");
    assert!(now.abs_diff(at) < 30, "{time} is not now");
}
