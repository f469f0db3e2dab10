//! `rstwatch top --prometheus URL`: the live view for a fleet, read from
//! Prometheus instead of one daemon, using only the metrics every daemon
//! exports. Counters are summed across hosts into one snapshot (the view's
//! rates come from successive ones, as for one daemon); hosts take the place
//! of peers, and a ranking of hosts by reset rate the place of recent resets.

use std::collections::BTreeMap;

use crate::{
    cli::Access,
    error::Error,
    pipeline::model::{
        CauseCount, HostRate, OriginCount, OwnerCount, PeerCount, PortCount, PortLabel, Snapshot, Totals,
    },
};

pub struct Fleet {
    pub url: String,
    /// Prometheus label matchers selecting the hosts: `instance=~"REGEX"`.
    hosts: String,
    http: crate::cli::client::Http,
}

type Series = Vec<(BTreeMap<String, String>, f64)>;

impl Fleet {
    /// `url`: Prometheus's base URL; `hosts`: a regular expression on `instance`.
    pub fn new(url: &str, hosts: &str, access: &Access) -> Result<Self, Error> {
        let http = crate::cli::client::Http::new(access)?;
        let url = url.trim_end_matches('/').to_string();
        let escaped = hosts.replace('\\', "\\\\").replace('"', "\\\"");
        Ok(Self { url, hosts: format!("instance=~\"{escaped}\""), http })
    }

    fn query(&self, expr: &str) -> Result<Series, Error> {
        let fail = |detail: String| Error::NoPrometheus { url: self.url.clone(), detail };
        let request = self.http.get(&format!("{}/api/v1/query", self.url)).query("query", expr);
        let mut response = request.call().map_err(|e| fail(e.to_string()))?;
        let body = response.body_mut().read_to_string().map_err(|e| fail(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| fail(format!("not a Prometheus answer: {e}")))?;
        if v["status"] != "success" {
            return Err(fail(format!("query failed: {}", v["error"].as_str().unwrap_or("no reason given"))));
        }
        let rows = v["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(rows
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                    .unwrap_or_default();
                let value = r["value"][1].as_str().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                (labels, value)
            })
            .collect())
    }

    /// The fleet now: one snapshot of every counter summed across the hosts, and the hosts by reset rate.
    pub fn fetch(&self) -> Result<(Snapshot, Vec<HostRate>), Error> {
        let h = &self.hosts;
        let label = |l: &BTreeMap<String, String>, k: &str| l.get(k).cloned().unwrap_or_default();
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "counter values")]
        let count = |v: f64| v.round().max(0.0) as u64;
        let mut s = Snapshot { kernel: "fleet".into(), ..Snapshot::default() };
        s.time = String::new();
        s.uptime_seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut totals = Totals::default();
        for (l, v) in self.query(&format!("sum by (view, cause) (rstwatch_resets_total{{{h}}})"))? {
            let (view, n) = (label(&l, "view"), count(v));
            match view.as_str() {
                "sent" => totals.sent += n,
                "received" => totals.received += n,
                "wire_in" => totals.wire_in += n,
                "wire_out" => totals.wire_out += n,
                _ => {}
            }
            s.causes.push(CauseCount { view, cause: label(&l, "cause"), count: n });
        }
        s.totals = totals;
        let ports = format!("topk(200, sum by (view, cause, port) (rstwatch_port_resets_total{{{h}}}))");
        for (l, v) in self.query(&ports)? {
            let port = label(&l, "port");
            let port = port.parse().map_or(PortLabel::Other(port), PortLabel::Port);
            s.ports.push(PortCount { view: label(&l, "view"), cause: label(&l, "cause"), port, count: count(v) });
        }
        for (l, v) in self.query(&format!("sum by (instance, view, cause) (rstwatch_resets_total{{{h}}})"))? {
            s.peers.push(PeerCount {
                view: label(&l, "view"),
                cause: label(&l, "cause"),
                addr: label(&l, "instance"),
                netns: None,
                count: count(v),
            });
        }
        let owners = format!("topk(200, sum by (view, cause, owner) (rstwatch_owner_resets_total{{{h}}}))");
        for (l, v) in self.query(&owners)? {
            s.owners.push(OwnerCount {
                view: label(&l, "view"),
                cause: label(&l, "cause"),
                owner: label(&l, "owner"),
                cgroup: None,
                cgroup_path: None,
                count: count(v),
            });
        }
        // Origins as now judged: as first judged, plus corrections in, minus corrections out.
        let mut origins: BTreeMap<(String, String), i64> = BTreeMap::new();
        for (l, v) in self.query(&format!("sum by (view, origin) (rstwatch_rst_origin_total{{{h}}})"))? {
            *origins.entry((label(&l, "view"), label(&l, "origin"))).or_default() += v.round() as i64;
        }
        let moved = format!("sum by (view, from, to) (rstwatch_rst_origin_corrections_total{{{h}}})");
        for (l, v) in self.query(&moved)? {
            let n = v.round() as i64;
            *origins.entry((label(&l, "view"), label(&l, "to"))).or_default() += n;
            *origins.entry((label(&l, "view"), label(&l, "from"))).or_default() -= n;
        }
        for ((view, origin), n) in origins {
            if n > 0 {
                s.origins.push(OriginCount { view, cause: String::new(), origin, count: n.unsigned_abs() });
            }
        }
        s.causes.sort_by(|a, b| (&a.view, &a.cause).cmp(&(&b.view, &b.cause)));
        let rate = format!("sum by (instance) (rate(rstwatch_resets_total{{{h},view=~\"sent|received\"}}[1m]))");
        let totals: BTreeMap<String, u64> = self
            .query(&format!("sum by (instance) (rstwatch_resets_total{{{h}}})"))?
            .into_iter()
            .map(|(l, v)| (label(&l, "instance"), count(v)))
            .collect();
        let mut hosts: Vec<HostRate> = self
            .query(&rate)?
            .into_iter()
            .map(|(l, v)| {
                let host = label(&l, "instance");
                HostRate { total: totals.get(&host).copied().unwrap_or(0), host, rate: v }
            })
            .collect();
        hosts.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(b.total.cmp(&a.total)).then(a.host.cmp(&b.host)));
        Ok((s, hosts))
    }
}
