//! A plain, readable summary of a snapshot (for terminals and logs).

use std::fmt::Write as _;

use crate::model::Snapshot;

#[must_use]
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let t = &s.totals;
    let _ = writeln!(o, "rstwatch  up {:.0}s  kernel {}", s.uptime_seconds, s.kernel);
    let _ = writeln!(
        o,
        "resets    sent {}  received {}  wire_in {}  wire_out {}",
        t.sent, t.received, t.wire_in, t.wire_out
    );
    let _ = writeln!(
        o,
        "samples   delivered {}  dropped {} (ring full {}, rate-limited {})",
        s.samples.delivered, s.samples.dropped, s.samples.ring_full, s.samples.rate_limited
    );
    if s.causes.is_empty() {
        let _ = writeln!(o, "no resets yet");
        return o;
    }
    let _ = writeln!(o, "\n{:<10} {:<24} {:>10}", "VIEW", "CAUSE", "COUNT");
    for c in &s.causes {
        let _ = writeln!(o, "{:<10} {:<24} {:>10}", c.view, c.cause, c.count);
    }
    let _ = writeln!(o, "\n{:<10} {:<24} {:>7} {:>10}", "VIEW", "CAUSE", "PORT", "COUNT");
    for p in s.ports.iter().take(12) {
        let _ = writeln!(o, "{:<10} {:<24} {:>7} {:>10}", p.view, p.cause, p.port.to_string(), p.count);
    }
    if !s.owners.is_empty() {
        let _ = writeln!(o, "\n{:<10} {:<24} {:<32} {:>10}", "VIEW", "CAUSE", "OWNER", "COUNT");
        for w in s.owners.iter().take(12) {
            let _ = writeln!(o, "{:<10} {:<24} {:<32} {:>10}", w.view, w.cause, w.owner, w.count);
        }
    }
    if !s.recent.is_empty() {
        let _ = writeln!(o, "\nRECENT");
        for r in s.recent.iter().take(8) {
            let who = r.who();
            let sep = if who.is_empty() { "" } else { "  " };
            let _ = writeln!(o, "{:<10} {:<24} {} -> {}{sep}{who}", r.view, r.cause, r.local, r.remote);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CauseCount, Recent};

    #[test]
    fn shows_causes_and_recent_with_process() {
        let s = Snapshot {
            causes: vec![CauseCount { view: "sent".into(), cause: "linger_abort".into(), count: 1 }],
            recent: vec![Recent::example("127.0.0.1:1", "127.0.0.1:2", 7, 0)],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("linger_abort"));
        assert!(text.contains("127.0.0.1:1 -> 127.0.0.1:2  nginx[7]"));
        assert!(render(&Snapshot::default()).contains("no resets yet"));
    }

    #[test]
    fn shows_owners_and_payloads() {
        let mut wire = Recent::example("10.0.0.1:80", "10.0.0.2:9", 0, 0);
        (wire.pid, wire.comm, wire.owner) = (None, None, None);
        wire.payload = Some(crate::payload::Payload::new(4, b"bye!"));
        let s = Snapshot {
            causes: vec![CauseCount { view: "sent".into(), cause: "linger_abort".into(), count: 2 }],
            owners: vec![crate::model::OwnerCount {
                view: "sent".into(),
                cause: "linger_abort".into(),
                owner: "nginx.service".into(),
                cgroup: Some(7),
                cgroup_path: None,
                count: 2,
            }],
            recent: vec![wire],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("OWNER") && text.contains("nginx.service"), "{text}");
        assert!(text.contains("10.0.0.1:80 -> 10.0.0.2:9  \"bye!\""), "{text}");
    }
}
