//! A plain, readable summary of a snapshot (for terminals and logs).

use std::fmt::Write as _;

use crate::pipeline::model::{self, HostRate, Snapshot};

/// Rows per table; the rest is counted in a "… N more" line, never dropped silently.
const ROWS: usize = 20;

/// After a table cut at `ROWS`: how many rows it did not show.
fn more(o: &mut String, total: usize) {
    if total > ROWS {
        let _ = writeln!(o, "… {} more (see --json)", total - ROWS);
    }
}

/// A fleet's hosts by reset rate (`rstwatch top --prometheus`, not a terminal).
#[must_use]
pub fn hosts(hosts: &[HostRate]) -> String {
    let mut o = format!("{:<40} {:>12} {:>12}\n", "HOST", "RESETS/S", "RESETS");
    for h in hosts.iter().take(ROWS) {
        let _ = writeln!(o, "{:<40} {:>12.1} {:>12}", h.host, h.rate, h.total);
    }
    more(&mut o, hosts.len());
    o.push('\n');
    o
}

#[must_use]
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    let t = &s.totals;
    let when = crate::pipeline::clock::local_datetime(&s.time).unwrap_or_else(|| "(no time)".into());
    let _ = writeln!(o, "rstwatch  {when}  up {:.0}s  kernel {}", s.uptime_seconds, s.kernel);
    if let Some(ns) = s.netns {
        let _ = writeln!(o, "netns     sent and received count network namespace {ns} only (--netns)");
    }
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
            .map(|i| {
                if i.watched() {
                    format!("{} ({} in, {} out)", i.name, i.ingress, i.egress)
                } else {
                    format!("{} (detached)", i.name)
                }
            })
            .collect();
        let _ = writeln!(o, "watching  {}", list.join(", "));
    }
    for a in &s.alerts {
        let _ = writeln!(o, "ALERT     {} {} since {} ({})", a.kind, a.subject(), a.started(), a.size());
    }
    if s.causes.is_empty() {
        let _ = writeln!(o, "no resets yet");
        return o;
    }
    let _ = writeln!(o, "\n{:<10} {:<24} {:>10}", "VIEW", "CAUSE", "COUNT");
    for c in &s.causes {
        let _ = writeln!(o, "{:<10} {:<24} {:>10}", c.view, c.cause, c.count);
    }
    if !s.origins.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<10} {:<24} {:<10} {:>10}  (who sent received resets)",
            "VIEW", "CAUSE", "ORIGIN", "COUNT"
        );
        for r in &s.origins {
            let _ = writeln!(o, "{:<10} {:<24} {:<10} {:>10}", r.view, r.cause, r.origin, r.count);
        }
        for c in &s.origin_corrections {
            let _ = writeln!(o, "corrected {} {}: {} -> {} ({})", c.view, c.cause, c.from, c.to, c.count);
        }
    }
    let _ = writeln!(o, "\n{:<10} {:<24} {:>10} {:>10}", "VIEW", "CAUSE", "PORT", "COUNT");
    for p in s.ports.iter().take(ROWS) {
        let _ = writeln!(o, "{:<10} {:<24} {:>10} {:>10}", p.view, p.cause, p.port.to_string(), p.count);
    }
    more(&mut o, s.ports.len());
    let _ = writeln!(o, "\n{:<10} {:<24} {:<39} {:>10}", "VIEW", "CAUSE", "PEER", "COUNT");
    let with_netns = model::several_netns(s.peers.iter().map(|p| p.netns));
    for p in s.peers.iter().take(ROWS) {
        let _ = writeln!(o, "{:<10} {:<24} {:<39} {:>10}", p.view, p.cause, p.label(with_netns), p.count);
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
        // The namespace only where samples come from more than one.
        let with_netns = model::several_netns(s.recent.iter().map(|r| r.netns));
        let _ = writeln!(o, "\nRECENT (local time; source -> destination of the RST)");
        for r in s.recent.iter().take(ROWS) {
            let who = r.who();
            let sep = if who.is_empty() { "" } else { "  " };
            let ns = match r.netns {
                Some(n) if with_netns => format!("  netns {n}"),
                _ => String::new(),
            };
            let (src, dst) = r.ends();
            let _ = writeln!(o, "{:>12} {:<10} {:<24} {src} -> {dst}{ns}{sep}{who}", r.when(), r.view, r.cause);
        }
        more(&mut o, s.recent.len());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::model::{CauseCount, Recent};

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
        assert!(text.starts_with("rstwatch  (no time)"), "{text}");
        assert!(render(&Snapshot::default()).contains("no resets yet"));
    }

    #[test]
    fn every_table_is_printed_and_a_cut_one_says_how_many_more() {
        let port = |n: u16| crate::pipeline::model::PortCount {
            view: "sent".into(),
            cause: "closed_port".into(),
            port: crate::pipeline::model::PortLabel::Port(n),
            count: 1,
        };
        let s = Snapshot {
            causes: vec![CauseCount { view: "sent".into(), cause: "closed_port".into(), count: 25 }],
            ports: (1..=25).map(port).collect(),
            peers: vec![crate::pipeline::model::PeerCount {
                view: "sent".into(),
                cause: "closed_port".into(),
                addr: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff".into(),
                netns: None,
                count: 25,
            }],
            alerts: vec![crate::pipeline::model::Alert {
                kind: "port_scan".into(),
                peer: Some("192.0.2.77".into()),
                port: None,
                since: "2026-12-02T10:00:03.000Z".into(),
                count: 25,
                rate: None,
            }],
            time: "2026-12-02T10:00:05.500Z".into(),
            interfaces: vec![crate::pipeline::model::Interface::example("vb", false)],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("… 5 more (see --json)"), "{text}");
        assert!(text.contains("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), "a peer is never cut: {text}");
        let hms = crate::pipeline::clock::local_hms("2026-12-02T10:00:03.000Z").unwrap();
        assert!(text.contains(&format!("ALERT     port_scan 192.0.2.77 since {hms} (25 ports)")), "{text}");
        let heading = crate::pipeline::clock::local_datetime("2026-12-02T10:00:05.500Z").unwrap();
        assert!(text.starts_with(&format!("rstwatch  {heading}  up")), "timestamped: {text}");
        assert!(text.contains("watching  vb (detached)"), "{text}");
    }

    #[test]
    fn shows_origins_corrections_and_the_evidence_of_recent_resets() {
        use crate::pipeline::model::{Evidence, OriginCorrection, OriginCount};
        let mut got = Recent::example("10.0.0.1:80", "10.0.0.2:9", 0, 0);
        (got.view, got.cause, got.pid, got.comm, got.owner) =
            ("received".into(), "peer_reset".into(), None, None, None);
        got.origin = Some("forged".into());
        got.evidence = Some(Evidence {
            ttl: Some(64),
            peer_ttl: Some(63),
            corrected_from: Some("middlebox".into()),
            peer_spoke_after_ms: Some(3),
            seq_distance: Some(0),
            ..Evidence::default()
        });
        let s = Snapshot {
            causes: vec![CauseCount { view: "received".into(), cause: "peer_reset".into(), count: 1 }],
            origins: vec![OriginCount {
                view: "received".into(),
                cause: "peer_reset".into(),
                origin: "forged".into(),
                count: 1,
            }],
            origin_corrections: vec![OriginCorrection::example()],
            recent: vec![got],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("received   peer_reset               forged              1"), "{text}");
        assert!(text.contains("corrected received peer_reset: middlebox -> forged (1)"), "{text}");
        assert!(
            text.contains("10.0.0.2:9 -> 10.0.0.1:80  forged (was middlebox) ttl 64/63 peer spoke +3ms seq +0"),
            "{text}"
        );
    }

    #[test]
    fn shows_owners_and_payloads() {
        let mut wire = Recent::example("10.0.0.1:80", "10.0.0.2:9", 0, 0);
        (wire.pid, wire.comm, wire.owner) = (None, None, None);
        wire.payload = Some(crate::pipeline::payload::Payload::new(4, b"bye!"));
        let s = Snapshot {
            causes: vec![CauseCount { view: "sent".into(), cause: "linger_abort".into(), count: 2 }],
            owners: vec![crate::pipeline::model::OwnerCount {
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

    #[test]
    fn arrows_follow_the_rst_and_namespaces_show_when_several() {
        let mut got = Recent::example("127.0.0.1:8080", "127.0.0.1:40000", 0, 0);
        (got.view, got.cause, got.pid, got.comm, got.owner, got.netns) =
            ("received".into(), "peer_reset".into(), None, None, None, Some(11));
        let mut sent = Recent::example("127.0.0.1:8080", "127.0.0.1:40000", 0, 0);
        (sent.pid, sent.comm, sent.owner, sent.netns) = (None, None, None, Some(12));
        let peer = |netns| crate::pipeline::model::PeerCount {
            view: "sent".into(),
            cause: "linger_abort".into(),
            addr: "127.0.0.1".into(),
            netns,
            count: 1,
        };
        let s = Snapshot {
            causes: vec![CauseCount { view: "sent".into(), cause: "linger_abort".into(), count: 2 }],
            peers: vec![peer(Some(11)), peer(Some(12))],
            recent: vec![got.clone(), sent],
            netns: Some(11),
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains("peer_reset               127.0.0.1:40000 -> 127.0.0.1:8080  netns 11"), "{text}");
        assert!(text.contains("linger_abort             127.0.0.1:8080 -> 127.0.0.1:40000  netns 12"), "{text}");
        assert!(text.contains("127.0.0.1 (netns 11)") && text.contains("127.0.0.1 (netns 12)"), "{text}");
        assert!(text.contains("count network namespace 11 only"), "{text}");
        // one namespace: not repeated on every line
        let one = Snapshot { recent: vec![got], peers: vec![peer(Some(11))], ..s };
        let text = render(&one);
        assert!(!text.contains("netns 11\n") && !text.contains("(netns"), "{text}");
    }
}
