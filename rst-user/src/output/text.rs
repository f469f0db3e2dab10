//! A plain, readable summary of a snapshot (for terminals and logs).

use std::fmt::Write as _;

use crate::model::Snapshot;

/// Rows per table; the rest is counted in a "… N more" line, never dropped silently.
const ROWS: usize = 20;

/// After a table cut at `ROWS`: how many rows it did not show.
fn more(o: &mut String, total: usize) {
    if total > ROWS {
        let _ = writeln!(o, "… {} more (see --json)", total - ROWS);
    }
}

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
    if !s.interfaces.is_empty() {
        let list: Vec<String> = s
            .interfaces
            .iter()
            .map(|i| format!("{} ({})", i.name, if i.xdp && i.tc { "attached" } else { "detached" }))
            .collect();
        let _ = writeln!(o, "watching  {}", list.join(", "));
    }
    for a in &s.alerts {
        let _ = writeln!(o, "ALERT     {} {} since {:.0}s ({:.1})", a.kind, a.subject(), a.since, a.count);
    }
    if s.causes.is_empty() {
        let _ = writeln!(o, "no resets yet");
        return o;
    }
    let _ = writeln!(o, "\n{:<10} {:<24} {:>10}", "VIEW", "CAUSE", "COUNT");
    for c in &s.causes {
        let _ = writeln!(o, "{:<10} {:<24} {:>10}", c.view, c.cause, c.count);
    }
    let _ = writeln!(o, "\n{:<10} {:<24} {:>10} {:>10}", "VIEW", "CAUSE", "PORT", "COUNT");
    for p in s.ports.iter().take(ROWS) {
        let _ = writeln!(o, "{:<10} {:<24} {:>10} {:>10}", p.view, p.cause, p.port.to_string(), p.count);
    }
    more(&mut o, s.ports.len());
    let _ = writeln!(o, "\n{:<10} {:<24} {:<39} {:>10}", "VIEW", "CAUSE", "PEER", "COUNT");
    for p in s.peers.iter().take(ROWS) {
        let _ = writeln!(o, "{:<10} {:<24} {:<39} {:>10}", p.view, p.cause, p.addr, p.count);
    }
    more(&mut o, s.peers.len());
    if !s.owners.is_empty() {
        let _ = writeln!(o, "\n{:<10} {:<24} {:<32} {:>10}", "VIEW", "CAUSE", "OWNER", "COUNT");
        for w in s.owners.iter().take(ROWS) {
            let _ = writeln!(o, "{:<10} {:<24} {:<32} {:>10}", w.view, w.cause, w.owner, w.count);
        }
        more(&mut o, s.owners.len());
    }
    if !s.recent.is_empty() {
        let _ = writeln!(o, "\nRECENT (local time)");
        for r in s.recent.iter().take(ROWS) {
            let who = r.who();
            let sep = if who.is_empty() { "" } else { "  " };
            let _ =
                writeln!(o, "{:>12} {:<10} {:<24} {} -> {}{sep}{who}", r.when(), r.view, r.cause, r.local, r.remote);
        }
        more(&mut o, s.recent.len());
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
    fn every_table_is_printed_and_a_cut_one_says_how_many_more() {
        let port = |n: u16| crate::model::PortCount {
            view: "sent".into(),
            cause: "closed_port".into(),
            port: crate::model::PortLabel::Port(n),
            count: 1,
        };
        let s = Snapshot {
            causes: vec![CauseCount { view: "sent".into(), cause: "closed_port".into(), count: 25 }],
            ports: (1..=25).map(port).collect(),
            peers: vec![crate::model::PeerCount {
                view: "sent".into(),
                cause: "closed_port".into(),
                addr: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".into(),
                count: 25,
            }],
            alerts: vec![crate::model::Alert {
                kind: "port_scan".into(),
                peer: Some("192.0.2.77".into()),
                port: None,
                since: 3.0,
                count: 25.0,
            }],
            interfaces: vec![crate::model::Interface { name: "vb".into(), xdp: false, tc: false }],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("… 5 more (see --json)"), "{text}");
        assert!(text.contains("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), "a peer is never cut: {text}");
        assert!(text.contains("ALERT     port_scan 192.0.2.77"), "{text}");
        assert!(text.contains("watching  vb (detached)"), "{text}");
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
