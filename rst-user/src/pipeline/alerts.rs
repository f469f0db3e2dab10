//! Storm and scan detection on top of the exact counts and the samples.
//! Pure: snapshots and events in, alert starts and ends out.
//!
//! - `port_scan`: one peer hit at least `scan_ports` distinct closed ports
//!   within `window` (from `sent/closed_port` samples; sampling only lowers
//!   what is seen, so a scan is reported late rather than falsely).
//! - `listener_down`: a non-ephemeral port's exact `sent/closed_port` rate is
//!   at least `listener_down_rate`/s and ten times its own recent baseline — a
//!   service that stopped listening while clients keep coming.
//! - `rst_flood`: RSTs arriving on watched interfaces (`wire_in`) at
//!   `rst_flood_rate`/s or more: spoofed or injected resets.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::IpAddr,
};

use crate::{
    pipeline::decode::Event,
    pipeline::model::{Alert, PortLabel, Snapshot},
};

/// Alert thresholds (config keys `alert_window_seconds`, `scan_ports`,
/// `listener_down_rate`, `rst_flood_rate`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    pub window_seconds: f64,
    pub scan_ports: usize,
    pub listener_down_rate: f64,
    pub rst_flood_rate: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { window_seconds: 10.0, scan_ports: 20, listener_down_rate: 20.0, rst_flood_rate: 1000.0 }
    }
}

#[derive(Debug, PartialEq)]
pub enum Change {
    Start(Alert),
    End(Alert),
}

pub struct Detector {
    t: Thresholds,
    /// Per peer: (time, closed port) of recent closed_port samples.
    seen: HashMap<IpAddr, VecDeque<(f64, u16)>>,
    /// Per port: (last exact count, baseline rate).
    ports: BTreeMap<u16, (u64, f64)>,
    last: Option<(f64, u64)>,
    active: BTreeMap<(String, String), Alert>,
    started: BTreeMap<String, u64>,
}

const BASELINE_WEIGHT: f64 = 0.1;

/// A rate as people read it (and as JSON carries it): one decimal.
fn one_decimal(rate: f64) -> f64 {
    (rate * 10.0).round() / 10.0
}

impl Detector {
    #[must_use]
    pub fn new(t: Thresholds) -> Self {
        Self {
            t,
            seen: HashMap::new(),
            ports: BTreeMap::new(),
            last: None,
            active: BTreeMap::new(),
            started: BTreeMap::new(),
        }
    }

    /// A sample, at daemon uptime `now` (seconds).
    pub fn on_event(&mut self, ev: &Event, now: f64) {
        if ev.view == rst_common::view::SENT && ev.cause == rst_common::cause::CLOSED_PORT {
            let q = self.seen.entry(ev.remote.ip()).or_default();
            q.push_back((now, ev.local.port()));
            // bounded: never more than a window's worth of what matters
            while q.len() > 4 * self.t.scan_ports {
                q.pop_front();
            }
        }
    }

    fn set(&mut self, key: (String, String), alert: Option<Alert>, out: &mut Vec<Change>) {
        match (alert, self.active.contains_key(&key)) {
            (Some(a), false) => {
                *self.started.entry(a.kind.clone()).or_default() += 1;
                self.active.insert(key, a.clone());
                out.push(Change::Start(a));
            }
            (Some(a), true) => {
                if let Some(cur) = self.active.get_mut(&key) {
                    (cur.count, cur.rate) = (a.count, a.rate);
                }
            }
            (None, true) => {
                if let Some(a) = self.active.remove(&key) {
                    out.push(Change::End(a));
                }
            }
            (None, false) => {}
        }
    }

    /// New thresholds (reload); alerts in force are re-judged at the next snapshot.
    pub fn set_thresholds(&mut self, t: Thresholds) {
        self.t = t;
    }

    /// Checks every rule against a fresh snapshot; returns what started or ended.
    pub fn on_snapshot(&mut self, s: &Snapshot) -> Vec<Change> {
        let now = s.uptime_seconds;
        let mut out = Vec::new();
        // port scans
        let horizon = now - self.t.window_seconds;
        let mut peers: Vec<IpAddr> = self.seen.keys().copied().collect();
        peers.extend(
            self.active
                .values()
                .filter(|a| a.kind == "port_scan")
                .filter_map(|a| a.peer.as_ref()?.parse::<IpAddr>().ok()),
        );
        peers.sort();
        peers.dedup();
        for peer in peers {
            let distinct = self.seen.get_mut(&peer).map_or(0, |q| {
                q.retain(|(t, _)| *t >= horizon);
                let mut ports: Vec<u16> = q.iter().map(|p| p.1).collect();
                ports.sort_unstable();
                ports.dedup();
                ports.len()
            });
            if self.seen.get(&peer).is_some_and(VecDeque::is_empty) {
                self.seen.remove(&peer);
            }
            let alert = (distinct >= self.t.scan_ports).then(|| Alert {
                kind: "port_scan".into(),
                peer: Some(peer.to_string()),
                port: None,
                since: s.time.clone(),
                count: distinct as u64,
                rate: None,
            });
            self.set(("port_scan".into(), peer.to_string()), alert, &mut out);
        }
        // rates need a previous snapshot
        let dt = self.last.map_or(0.0, |(t, _)| now - t);
        let ephemeral = |p: u16| s.ephemeral_ports.is_some_and(|[lo, hi]| (lo..=hi).contains(&p));
        for p in s.ports.iter().filter(|p| p.view == "sent" && p.cause == "closed_port") {
            let PortLabel::Port(port) = p.port else { continue };
            if ephemeral(port) {
                continue;
            }
            let (before, baseline) = self.ports.get(&port).copied().unwrap_or((p.count, 0.0));
            let count = p.count.saturating_sub(before);
            let rate = if dt > 0.0 { count as f64 / dt } else { 0.0 };
            let surge = rate >= self.t.listener_down_rate && rate >= 10.0 * baseline;
            let ongoing = self.active.contains_key(&("listener_down".to_string(), port.to_string()))
                && rate >= self.t.listener_down_rate;
            let alert = (surge || ongoing).then(|| Alert {
                kind: "listener_down".into(),
                peer: None,
                port: Some(port),
                since: s.time.clone(),
                count,
                rate: Some(one_decimal(rate)),
            });
            self.set(("listener_down".into(), port.to_string()), alert, &mut out);
            // the baseline learns only outside a surge
            let baseline = if surge || ongoing { baseline } else { baseline + BASELINE_WEIGHT * (rate - baseline) };
            self.ports.insert(port, (p.count, baseline));
        }
        if let Some((t, before)) = self.last {
            let count = s.totals.wire_in.saturating_sub(before);
            let rate = if now > t { count as f64 / (now - t) } else { 0.0 };
            let alert = (rate >= self.t.rst_flood_rate).then(|| Alert {
                kind: "rst_flood".into(),
                peer: None,
                port: None,
                since: s.time.clone(),
                count,
                rate: Some(one_decimal(rate)),
            });
            self.set(("rst_flood".into(), String::new()), alert, &mut out);
        }
        self.last = Some((now, s.totals.wire_in));
        out
    }

    /// Alerts in force.
    #[must_use]
    pub fn active(&self) -> Vec<Alert> {
        self.active.values().cloned().collect()
    }

    /// Alerts started so far, by kind (for `rstwatch_alerts_total`).
    #[must_use]
    pub fn started(&self) -> BTreeMap<String, u64> {
        self.started.clone()
    }
}

#[cfg(test)]
mod tests {
    use rst_common::{cause, view};

    use super::*;
    use crate::pipeline::model::{PortCount, Totals};

    fn closed(peer: &str, port: u16) -> Event {
        Event {
            view: view::SENT,
            cause: cause::CLOSED_PORT,
            reason: Some(1),
            local: format!("10.0.0.2:{port}").parse().unwrap(),
            remote: format!("{peer}:40000").parse().unwrap(),
            pid: None,
            comm: None,
            ifindex: None,
            state: 0,
            tcp_flags: 0,
            ts_ns: 0,
            cgroup: None,
            payload: None,
            netns: None,
            judged: None,
        }
    }

    fn snap(t: f64, port_counts: &[(u16, u64)], wire_in: u64) -> Snapshot {
        Snapshot {
            uptime_seconds: t,
            time: format!("2026-12-02T10:00:{t:06.3}Z"),
            ephemeral_ports: Some([32768, 60999]),
            totals: Totals { wire_in, ..Totals::default() },
            ports: port_counts
                .iter()
                .map(|&(p, n)| PortCount {
                    view: "sent".into(),
                    cause: "closed_port".into(),
                    port: PortLabel::Port(p),
                    count: n,
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    #[test]
    fn port_scan_starts_at_the_threshold_and_ends_after_the_window() {
        let mut d = Detector::new(Thresholds::default());
        for p in 0..19 {
            d.on_event(&closed("10.0.0.9", 1000 + p), 1.0);
        }
        d.on_event(&closed("10.0.0.8", 22), 1.0);
        assert!(d.on_snapshot(&snap(1.5, &[], 0)).is_empty(), "19 distinct ports: not yet");
        d.on_event(&closed("10.0.0.9", 1019), 2.0);
        d.on_event(&closed("10.0.0.9", 1019), 2.0); // repeats do not count twice
        let changes = d.on_snapshot(&snap(2.5, &[], 0));
        assert!(
            matches!(&changes[..], [Change::Start(a)] if a.kind == "port_scan" && a.peer.as_deref() == Some("10.0.0.9") && a.count == 20 && a.rate.is_none())
        );
        assert_eq!(d.started()["port_scan"], 1);
        assert!(d.on_snapshot(&snap(5.0, &[], 0)).is_empty(), "still within the window");
        let changes = d.on_snapshot(&snap(13.0, &[], 0));
        assert!(matches!(&changes[..], [Change::End(a)] if a.kind == "port_scan"));
        assert!(d.active().is_empty());
    }

    #[test]
    fn listener_down_needs_a_surge_over_the_baseline_and_skips_ephemeral_ports() {
        let mut d = Detector::new(Thresholds::default());
        d.on_snapshot(&snap(0.0, &[(8080, 0), (40000, 0)], 0));
        d.on_snapshot(&snap(1.0, &[(8080, 1), (40000, 1)], 0));
        let changes = d.on_snapshot(&snap(2.0, &[(8080, 101), (40000, 500)], 0));
        assert!(
            matches!(&changes[..], [Change::Start(a)] if a.kind == "listener_down" && a.port == Some(8080) && a.count == 100 && a.rate == Some(100.0)),
            "{changes:?}"
        );
        let changes = d.on_snapshot(&snap(3.0, &[(8080, 101), (40000, 900)], 0));
        assert!(matches!(&changes[..], [Change::End(a)] if a.port == Some(8080)));
    }

    #[test]
    fn rst_flood_from_wire_in_rate() {
        let mut d = Detector::new(Thresholds { rst_flood_rate: 100.0, ..Thresholds::default() });
        d.on_snapshot(&snap(0.0, &[], 0));
        assert!(d.on_snapshot(&snap(1.0, &[], 50)).is_empty());
        let changes = d.on_snapshot(&snap(2.0, &[], 250));
        assert!(
            matches!(&changes[..], [Change::Start(a)] if a.kind == "rst_flood" && a.count == 200 && a.rate == Some(200.0)),
            "{changes:?}"
        );
        // the time of day it started stays while it goes on
        assert!(d.on_snapshot(&snap(2.5, &[], 400)).is_empty());
        assert_eq!(d.active()[0].since, "2026-12-02T10:00:02.000Z");
        assert_eq!((d.active()[0].count, d.active()[0].rate), (150, Some(300.0)));
        assert!((one_decimal(1234.56) - 1234.6).abs() < 1e-9);
        assert!(matches!(&d.on_snapshot(&snap(3.0, &[], 260))[..], [Change::End(_)]));
    }
}
