//! Kernel counters + decoded samples -> [`Snapshot`]. Pure: no aya, no I/O.
//! Totals and per-cause counts come only from the kernel's exact counters;
//! samples only feed the list of recent resets.

use super::names;
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    hash::Hash,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use rst_common::{
    cause,
    maps::{self, OwnerKey, PeerKey, SampleState},
};

use crate::{
    pipeline::decode::Event,
    pipeline::model::{
        CauseCount, Coverage, EXPIRED, KeyStats, Keys, OTHER, OwnerCount, PeerCount, PortCount, PortLabel, Recent,
        SNAPSHOT_VERSION, SampleStats, Snapshot, Totals,
    },
    pipeline::origins,
    pipeline::owners::{self, Owner},
    pipeline::payload::Payload,
};

/// Everything the kernel counted, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCounts {
    /// By [`cause::slot`]; `maps::COUNT_SLOTS` entries.
    pub causes: Vec<u64>,
    /// `maps::ORIGINS`: received RSTs by origin and corrections (`rst_common::origin`), read before `causes`.
    pub origins: Vec<u64>,
    /// (`maps::port_key`, count).
    pub ports: Vec<(u32, u64)>,
    pub peers: Vec<(PeerKey, u64)>,
    pub owners: Vec<(OwnerKey, u64)>,
    /// Port overflow at `slot`, peer overflow at `COUNT_SLOTS + slot`, owner
    /// overflow at `2 * COUNT_SLOTS + slot`.
    pub overflow: Vec<u64>,
    /// Sample accounting summed over CPUs (the window fields are meaningless here).
    pub samples: SampleState,
    /// (view, why, events the kernel did not run our program for); `why` is
    /// [`names::MISSED_RECURSION`] or [`names::MISSED_UNANNOUNCED`].
    pub missed: Vec<(u8, &'static str, u64)>,
}

/// Per view: every miss, whatever its kind.
fn missed_totals(missed: &[(u8, &'static str, u64)]) -> BTreeMap<String, u64> {
    let mut t = BTreeMap::new();
    for &(v, _, n) in missed {
        *t.entry(names::view_name(v).to_string()).or_insert(0) += n;
    }
    t
}

/// Per view and kind.
fn missed_by_kind(missed: &[(u8, &'static str, u64)]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut t: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for &(v, why, n) in missed {
        *t.entry(names::view_name(v).to_string()).or_default().entry(why.to_string()).or_insert(0) += n;
    }
    t
}

/// Bounds of what the aggregator keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Ports and peers listed per (view, cause); the rest is summed as `other`.
    pub top: usize,
    /// Recent samples kept.
    pub recent: usize,
    /// Folded keys held per map (ports, peers, owners); past it the coldest
    /// are forgotten into `expired`.
    pub held: [usize; 3],
}

/// What one fold took out of the kernel maps: every key of the old
/// generation with its exact count (see `Source::fold`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub ports: Vec<(u32, u64)>,
    pub peers: Vec<(PeerKey, u64)>,
    pub owners: Vec<(OwnerKey, u64)>,
}

/// A key as the daemon holds it: without the kernel's generation.
trait Folded: Copy + Eq + Hash {
    fn plain(self) -> Self;
    /// Its (view, cause) slot.
    fn slot(&self) -> u32;
}

impl Folded for u32 {
    fn plain(self) -> Self {
        self & !maps::PORT_KEY_GENERATION
    }
    fn slot(&self) -> u32 {
        let (v, c, _) = maps::split_port_key(*self);
        cause::slot(v, c)
    }
}

impl Folded for PeerKey {
    fn plain(self) -> Self {
        Self { generation: 0, ..self }
    }
    fn slot(&self) -> u32 {
        cause::slot(self.view, self.cause)
    }
}

impl Folded for OwnerKey {
    fn plain(self) -> Self {
        Self { generation: 0, ..self }
    }
    fn slot(&self) -> u32 {
        cause::slot(self.view, self.cause)
    }
}

/// Keys folded out of one kernel map: (count, fold at which it last grew).
struct Held<K> {
    keys: HashMap<K, (u64, u64)>,
    cap: usize,
    /// Per slot: counts of keys forgotten (the coldest, past `cap`), and of
    /// keys an earlier run had folded (found at start).
    expired: Vec<u64>,
    stats: KeyStats,
}

impl<K: Folded> Held<K> {
    fn new(cap: usize) -> Self {
        Self { keys: HashMap::new(), cap, expired: vec![0; maps::COUNT_SLOTS as usize], stats: KeyStats::default() }
    }

    fn fold(&mut self, drained: Vec<(K, u64)>, cycle: u64) {
        self.stats.folded += drained.len() as u64;
        for (k, n) in drained {
            let e = self.keys.entry(k.plain()).or_insert((0, cycle));
            e.0 += n;
            if n > 0 {
                e.1 = cycle;
            }
        }
        if self.keys.len() > self.cap {
            let mut by_age: Vec<(u64, K)> = self.keys.iter().map(|(k, (_, last))| (*last, *k)).collect();
            by_age.sort_unstable_by_key(|(last, _)| *last);
            for (_, k) in by_age.into_iter().take(self.keys.len() - self.cap) {
                if let Some((n, _)) = self.keys.remove(&k) {
                    self.expired[k.slot() as usize] += n;
                    self.stats.forgotten += 1;
                }
            }
        }
    }

    /// Held plus what the kernel counts now (either generation), by plain key.
    fn merged(&self, kernel: &[(K, u64)]) -> Vec<(K, u64)> {
        let mut all: HashMap<K, u64> = self.keys.iter().map(|(k, (n, _))| (*k, *n)).collect();
        for (k, n) in kernel {
            *all.entry(k.plain()).or_default() += n;
        }
        all.into_iter().collect()
    }

    fn stats(&self, kernel: usize) -> KeyStats {
        KeyStats { kernel: kernel as u64, held: self.keys.len() as u64, ..self.stats }
    }
}

pub struct Aggregator {
    limits: Limits,
    kernel: String,
    reason_names: BTreeMap<u32, String>,
    coverage: Coverage,
    ephemeral: Option<[u16; 2]>,
    /// The daemon's own network namespace: where the watched interfaces are.
    own_netns: Option<u32>,
    /// Wall minus monotonic clock: kernel timestamps as times of day.
    clock_offset: Option<std::time::Duration>,
    counts: KernelCounts,
    recent: VecDeque<Event>,
    delivered: u64,
    /// Folded keys (see [`Drained`]) and the folds so far.
    held: (Held<u32>, Held<PeerKey>, Held<OwnerKey>),
    folds: u64,
}

fn peer_addr(k: &PeerKey) -> IpAddr {
    if k.family == 6 {
        IpAddr::V6(Ipv6Addr::from(k.addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(k.addr[0], k.addr[1], k.addr[2], k.addr[3]))
    }
}

/// A row's key: a key, `other` (past the top-N or the kernel's budget), or
/// `expired` (folded, then forgotten).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Label<K> {
    Key(K),
    Other,
    Expired,
}

impl<K> Label<K> {
    fn or_else(self, named: impl FnOnce(K) -> String) -> String {
        match self {
            Self::Key(k) => named(k),
            Self::Other => OTHER.into(),
            Self::Expired => EXPIRED.into(),
        }
    }
}

/// Per (view, cause): the `top` largest keys, then one `other` row holding
/// the rest plus the kernel's overflow for that pair, then one `expired` row.
/// Order: view, cause, count desc.
fn top_rows<K: Ord + Clone>(
    rows: impl Iterator<Item = (u8, u8, K, u64)>,
    overflow: impl Fn(u32) -> u64,
    expired: &[u64],
    top: usize,
) -> Vec<(u8, u8, Label<K>, u64)> {
    let mut groups: BTreeMap<(u8, u8), Vec<(K, u64)>> = BTreeMap::new();
    for (v, c, k, n) in rows {
        groups.entry((v, c)).or_default().push((k, n));
    }
    for slot in 0..maps::COUNT_SLOTS {
        if overflow(slot) > 0 || expired.get(slot as usize).is_some_and(|&n| n > 0) {
            let (v, c) = ((slot / u32::from(cause::SLOTS)) as u8, (slot % u32::from(cause::SLOTS)) as u8);
            groups.entry((v, c)).or_default();
        }
    }
    let mut out = Vec::new();
    for ((v, c), mut keys) in groups {
        keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let slot = cause::slot(v, c);
        let rest: u64 = keys.iter().skip(top).map(|k| k.1).sum::<u64>() + overflow(slot);
        out.extend(keys.into_iter().take(top).map(|(k, n)| (v, c, Label::Key(k), n)));
        if rest > 0 {
            out.push((v, c, Label::Other, rest));
        }
        if let Some(&n) = expired.get(slot as usize).filter(|&&n| n > 0) {
            out.push((v, c, Label::Expired, n));
        }
    }
    out
}

impl Aggregator {
    #[must_use]
    pub fn new(limits: Limits, kernel: String, reason_names: BTreeMap<u32, String>, coverage: Coverage) -> Self {
        Self {
            limits,
            kernel,
            reason_names,
            coverage,
            ephemeral: None,
            own_netns: None,
            clock_offset: None,
            counts: KernelCounts::default(),
            recent: VecDeque::with_capacity(limits.recent),
            delivered: 0,
            held: (Held::new(limits.held[0]), Held::new(limits.held[1]), Held::new(limits.held[2])),
            folds: 0,
        }
    }

    /// Keys an earlier run folded (pinned counters resumed): per slot, what
    /// the exact count has beyond its ports and peers still in the kernel.
    /// Call before the programs run, when nothing moves.
    pub fn carry_over(&mut self, k: &KernelCounts) {
        let over = |i: usize| k.overflow.get(i).copied().unwrap_or(0);
        let mut ports = vec![0u64; maps::COUNT_SLOTS as usize];
        let mut peers = ports.clone();
        for (key, n) in &k.ports {
            ports[key.slot() as usize] += n;
        }
        for (key, n) in &k.peers {
            peers[key.slot() as usize] += n;
        }
        for slot in 0..maps::COUNT_SLOTS as usize {
            let total = k.causes.get(slot).copied().unwrap_or(0);
            self.held.0.expired[slot] += total.saturating_sub(ports[slot] + over(slot));
            self.held.1.expired[slot] += total.saturating_sub(peers[slot] + over(maps::COUNT_SLOTS as usize + slot));
        }
    }

    /// One fold's keys: held from now on, the coldest forgotten past the limits.
    pub fn on_fold(&mut self, d: Drained) {
        self.folds += 1;
        self.held.0.fold(d.ports, self.folds);
        self.held.1.fold(d.peers, self.folds);
        self.held.2.fold(d.owners, self.folds);
    }

    /// The ephemeral port range to report (clients' ports; bounded in /metrics).
    #[must_use]
    pub fn with_ephemeral_ports(mut self, range: Option<[u16; 2]>) -> Self {
        self.ephemeral = range;
        self
    }

    /// The daemon's network namespace inode, reported for wire samples.
    #[must_use]
    pub fn with_own_netns(mut self, inode: Option<u32>) -> Self {
        self.own_netns = inode;
        self
    }

    /// Samples get a time of day: kernel timestamp + `offset` (wall minus monotonic clock).
    #[must_use]
    pub fn with_clock_offset(mut self, offset: std::time::Duration) -> Self {
        self.clock_offset = Some(offset);
        self
    }

    /// Changes how many ports and peers are listed (reload).
    pub fn set_top(&mut self, top: usize) {
        self.limits.top = top;
    }

    pub fn on_counts(&mut self, counts: KernelCounts) {
        self.counts = counts;
    }

    /// Every cgroup id counted or sampled: the owners to name.
    #[must_use]
    pub fn owner_ids(&self) -> Vec<u64> {
        let counted = self.counts.owners.iter().map(|(k, _)| k.cgroup).chain(self.held.2.keys.keys().map(|k| k.cgroup));
        let sampled = self.recent.iter().filter_map(|e| e.cgroup);
        let mut ids: Vec<u64> = counted.chain(sampled).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn on_sample(&mut self, ev: Event) {
        self.delivered += 1;
        if ev.judged.as_ref().is_some_and(|j| j.correction.is_some()) {
            origins::apply(&mut self.recent, &ev);
            return;
        }
        if self.limits.recent == 0 {
            return;
        }
        if self.recent.len() == self.limits.recent {
            self.recent.pop_front();
        }
        self.recent.push_back(ev);
    }

    /// The snapshot; `names` names the owners' cgroup ids (see `owners::Resolver`).
    #[must_use]
    pub fn snapshot(&self, uptime_seconds: f64, names: &BTreeMap<u64, Owner>) -> Snapshot {
        let owner = |id: u64| names.get(&id).cloned().unwrap_or_else(|| owners::gone(id));
        let k = &self.counts;
        let mut totals = Totals::default();
        let mut causes = Vec::new();
        for v in names::VIEWS {
            for c in names::causes_of(v) {
                let n = k.causes.get(cause::slot(v, c) as usize).copied().unwrap_or(0);
                totals.add(v, n);
                if n > 0 {
                    causes.push(CauseCount {
                        view: names::view_name(v).into(),
                        cause: names::cause_name(c).into(),
                        count: n,
                    });
                }
            }
        }
        let (ports, peers, owners) = (self.port_rows(), self.peer_rows(), self.owner_rows(owner));
        let (ring_full, rate_limited) = (k.samples.ring_full, k.samples.rate_limited);
        let (origins, origin_corrections) = origins::rows(&k.causes, &k.origins);
        Snapshot {
            version: SNAPSHOT_VERSION,
            uptime_seconds,
            // filled by the daemon: the time it publishes, the namespace it selected
            time: String::new(),
            netns: None,
            kernel: self.kernel.clone(),
            totals,
            causes,
            ports,
            peers,
            owners,
            origins,
            origin_corrections,
            samples: SampleStats {
                delivered: self.delivered,
                dropped: ring_full + rate_limited,
                ring_full,
                rate_limited,
                captures_lost: k.samples.captures_lost,
            },
            recent: self.recent.iter().rev().map(|e| self.recent_row(e, owner)).collect(),
            coverage: self.coverage.clone(),
            ephemeral_ports: self.ephemeral,
            // filled by the alert detector, which runs on this snapshot
            alerts: Vec::new(),
            alerts_started: BTreeMap::new(),
            // filled by the daemon from the wire's state and its programs
            interfaces: Vec::new(),
            programs: Vec::new(),
            keys: Keys {
                folds: self.folds,
                ports: self.held.0.stats(k.ports.len()),
                peers: self.held.1.stats(k.peers.len()),
                owners: self.held.2.stats(k.owners.len()),
            },
            missed: missed_totals(&k.missed),
            missed_by_kind: missed_by_kind(&k.missed),
        }
    }

    /// Port rows: the top ports of each (view, cause), the rest as `other` and `expired`.
    fn port_rows(&self) -> Vec<PortCount> {
        let k = &self.counts;
        let port_over = |slot: u32| k.overflow.get(slot as usize).copied().unwrap_or(0);
        top_rows(
            self.held.0.merged(&k.ports).into_iter().map(|(key, n)| {
                let (v, c, p) = maps::split_port_key(key);
                (v, c, p, n)
            }),
            port_over,
            &self.held.0.expired,
            self.limits.top,
        )
        .into_iter()
        .map(|(v, c, p, n)| PortCount {
            view: names::view_name(v).into(),
            cause: names::cause_name(c).into(),
            port: match p {
                Label::Key(p) => PortLabel::Port(p),
                other => PortLabel::Other(other.or_else(|_: u16| String::new())),
            },
            count: n,
        })
        .collect()
    }

    /// Peer rows, as the port rows.
    fn peer_rows(&self) -> Vec<PeerCount> {
        let k = &self.counts;
        let peer_over = |slot: u32| k.overflow.get((maps::COUNT_SLOTS + slot) as usize).copied().unwrap_or(0);
        top_rows(
            self.held
                .1
                .merged(&k.peers)
                .into_iter()
                .map(|(key, n)| (key.view, key.cause, (peer_addr(&key), key.netns), n)),
            peer_over,
            &self.held.1.expired,
            self.limits.top,
        )
        .into_iter()
        .map(|(v, c, a, n)| PeerCount {
            view: names::view_name(v).into(),
            cause: names::cause_name(c).into(),
            netns: if let Label::Key((_, ns)) = a { (ns != 0).then_some(ns) } else { None },
            addr: a.or_else(|(a, _)| a.to_string()),
            count: n,
        })
        .collect()
    }

    /// Owner rows, named by `owner` (cgroup id -> unit, container or path).
    fn owner_rows(&self, owner: impl Fn(u64) -> Owner) -> Vec<OwnerCount> {
        let k = &self.counts;
        let owner_over = |slot: u32| k.overflow.get((2 * maps::COUNT_SLOTS + slot) as usize).copied().unwrap_or(0);
        top_rows(
            self.held.2.merged(&k.owners).into_iter().map(|(key, n)| (key.view, key.cause, key.cgroup, n)),
            owner_over,
            &self.held.2.expired,
            self.limits.top,
        )
        .into_iter()
        .map(|(v, c, id, n)| {
            let cgroup = if let Label::Key(id) = id { Some(id) } else { None };
            let resolved = cgroup.map(&owner);
            OwnerCount {
                view: names::view_name(v).into(),
                cause: names::cause_name(c).into(),
                owner: resolved.as_ref().map_or_else(|| id.or_else(|_| String::new()), |o| o.name.clone()),
                cgroup,
                cgroup_path: resolved.and_then(|o| o.path),
                count: n,
            }
        })
        .collect()
    }

    fn recent_row(&self, e: &Event, owner: impl Fn(u64) -> Owner) -> Recent {
        Recent {
            view: names::view_name(e.view).into(),
            cause: names::cause_name(e.cause).into(),
            reason: e.reason,
            reason_name: e.reason.and_then(|r| self.reason_names.get(&r).cloned()),
            family: if e.local.is_ipv6() { "ipv6" } else { "ipv4" }.into(),
            local: e.local.to_string(),
            remote: e.remote.to_string(),
            pid: e.pid,
            comm: e.comm.clone(),
            ifindex: e.ifindex,
            netns: e.netns.or(if e.ifindex.is_some() { self.own_netns } else { None }),
            cgroup: e.cgroup,
            owner: e.cgroup.map(|id| owner(id).name),
            payload: e.payload.as_ref().map(|(len, bytes)| Payload::new(*len, bytes)),
            origin: e.judged.as_ref().map(|j| names::origin_name(j.origin).into()),
            evidence: e.judged.as_ref().map(origins::evidence),
            ts_ns: e.ts_ns,
            time: self.clock_offset.map(|o| crate::pipeline::clock::rfc3339(o, e.ts_ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use rst_common::{cause, view};

    use super::*;

    fn counts() -> KernelCounts {
        let mut k = KernelCounts {
            causes: vec![0; maps::COUNT_SLOTS as usize],
            overflow: vec![0; maps::OVERFLOW_SLOTS as usize],
            ..KernelCounts::default()
        };
        k.causes[cause::slot(view::SENT, cause::CLOSED_PORT) as usize] = 10;
        k.causes[cause::slot(view::RECEIVED, cause::REFUSED) as usize] = 10;
        k.causes[cause::slot(view::WIRE_IN, cause::REFUSAL) as usize] = 4;
        k.ports = vec![
            (maps::port_key(view::SENT, cause::CLOSED_PORT, 9999), 6),
            (maps::port_key(view::SENT, cause::CLOSED_PORT, 80), 1),
            (maps::port_key(view::SENT, cause::CLOSED_PORT, 443), 2),
        ];
        k.overflow[cause::slot(view::SENT, cause::CLOSED_PORT) as usize] = 1;
        k.peers = vec![(
            PeerKey {
                view: view::RECEIVED,
                cause: cause::REFUSED,
                family: 4,
                generation: 0,
                addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                netns: 0,
            },
            10,
        )];
        k.samples.ring_full = 2;
        k.samples.rate_limited = 3;
        k.samples.captures_lost = 4;
        k
    }

    fn agg(top: usize) -> Aggregator {
        let mut a = Aggregator::new(
            Limits { top, recent: 2, held: [8, 8, 8] },
            "6.18".into(),
            BTreeMap::from([(14, "TCP_STATE".into())]),
            Coverage::default(),
        );
        a.on_counts(counts());
        a
    }

    #[test]
    fn totals_and_causes_come_from_kernel_counts() {
        let s = agg(10).snapshot(1.0, &BTreeMap::new());
        assert_eq!(s.totals, Totals { sent: 10, received: 10, wire_in: 4, wire_out: 0 });
        assert_eq!(s.causes.len(), 3);
        assert_eq!(s.causes[0], CauseCount { view: "sent".into(), cause: "closed_port".into(), count: 10 });
    }

    #[test]
    fn missed_is_split_by_kind_and_adds_up_per_view() {
        let mut a = agg(10);
        let mut k = counts();
        k.missed = vec![
            (view::SENT, names::MISSED_RECURSION, 3),
            (view::SENT, names::MISSED_UNANNOUNCED, 2),
            (view::RECEIVED, names::MISSED_RECURSION, 0),
        ];
        a.on_counts(k);
        let s = a.snapshot(1.0, &BTreeMap::new());
        assert_eq!(s.missed, BTreeMap::from([("sent".into(), 5), ("received".into(), 0)]));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["missed_by_kind"]["sent"], serde_json::json!({"recursion": 3, "unannounced": 2}));
        assert_eq!(json["missed_by_kind"]["received"], serde_json::json!({"recursion": 0}));
    }

    #[test]
    fn ports_keep_top_n_and_sum_the_rest_with_overflow_as_other() {
        let s = agg(2).snapshot(1.0, &BTreeMap::new());
        let rows: Vec<_> = s.ports.iter().map(|p| (p.port.clone(), p.count)).collect();
        assert_eq!(
            rows,
            vec![(PortLabel::Port(9999), 6), (PortLabel::Port(443), 2), (PortLabel::Other("other".into()), 2)]
        );
        // nothing lost: the rows add up to the exact count
        assert_eq!(s.ports.iter().map(|p| p.count).sum::<u64>(), 10);
        let json = serde_json::to_value(&s.ports[2]).unwrap();
        assert_eq!(json["port"], "other");
    }

    #[test]
    fn peers_and_sample_stats() {
        let s = agg(10).snapshot(1.0, &BTreeMap::new());
        assert_eq!(s.peers[0].addr, "10.0.0.1");
        assert_eq!(s.peers[0].cause, "refused");
        assert_eq!(
            s.samples,
            SampleStats { delivered: 0, dropped: 5, ring_full: 2, rate_limited: 3, captures_lost: 4 }
        );
    }

    fn port_rows(s: &Snapshot, cause: &str) -> Vec<(String, u64)> {
        s.ports.iter().filter(|p| p.cause == cause).map(|p| (p.port.to_string(), p.count)).collect()
    }

    #[test]
    fn folded_keys_continue_and_rows_still_add_up() {
        let mut a = agg(10);
        let key = |p| maps::port_key(view::SENT, cause::CLOSED_PORT, p);
        let mut k = counts();
        // the fold takes 9999 (6) and 80 (1) out of the kernel; 443 comes back under generation 1
        k.ports = vec![(key(443) | maps::PORT_KEY_GENERATION, 2)];
        a.on_fold(Drained { ports: vec![(key(9999), 6), (key(80), 1)], ..Drained::default() });
        a.on_counts(k.clone());
        let s = a.snapshot(1.0, &BTreeMap::new());
        let rows = port_rows(&s, "closed_port");
        assert_eq!(rows, [("9999".into(), 6), ("443".into(), 2), ("80".into(), 1), ("other".into(), 1)]);
        assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 10, "the exact count, every reset in one row");
        assert_eq!((s.keys.folds, s.keys.ports.folded, s.keys.ports.held, s.keys.ports.kernel), (1, 2, 2, 1));
        // a folded key that comes back continues from its folded value
        k.ports.push((key(9999) | maps::PORT_KEY_GENERATION, 3));
        k.causes[cause::slot(view::SENT, cause::CLOSED_PORT) as usize] = 13;
        a.on_counts(k);
        assert_eq!(port_rows(&a.snapshot(1.0, &BTreeMap::new()), "closed_port")[0], ("9999".into(), 9));
    }

    #[test]
    fn past_the_limit_the_coldest_keys_are_forgotten_into_expired() {
        let mut a = agg(100); // holds 8 keys a map
        let key = |p| maps::port_key(view::SENT, cause::CLOSED_PORT, p);
        a.on_fold(Drained { ports: (1..=8).map(|p| (key(p), 1)).collect(), ..Drained::default() });
        // ports 1..=4 grow again; 5..=8 stay cold; 9..=12 are new
        a.on_fold(Drained { ports: (1..=4).chain(9..=12).map(|p| (key(p), 1)).collect(), ..Drained::default() });
        let mut k = counts();
        k.ports.clear();
        k.overflow = vec![0; maps::OVERFLOW_SLOTS as usize];
        k.causes[cause::slot(view::SENT, cause::CLOSED_PORT) as usize] = 16;
        a.on_counts(k);
        let s = a.snapshot(1.0, &BTreeMap::new());
        let rows = port_rows(&s, "closed_port");
        assert_eq!(rows.last(), Some(&("expired".into(), 4)), "{rows:?}");
        assert!(rows.iter().all(|(p, _)| !["5", "6", "7", "8"].contains(&p.as_str())), "the cold ones went: {rows:?}");
        assert_eq!(rows.iter().map(|r| r.1).sum::<u64>(), 16);
        assert_eq!((s.keys.ports.held, s.keys.ports.forgotten), (8, 4));
    }

    #[test]
    fn counts_an_earlier_run_folded_are_carried_over_as_expired() {
        let mut a = agg(10);
        let mut k = counts(); // closed_port: 10 counted, 9 in port keys + 1 overflow, 0 in peer keys
        k.ports.truncate(2); // 7 + 1 overflow: 2 were folded by the run before
        a.carry_over(&k);
        a.on_counts(k);
        let s = a.snapshot(1.0, &BTreeMap::new());
        assert_eq!(port_rows(&s, "closed_port").last(), Some(&("expired".into(), 2)));
        let peers: u64 = s.peers.iter().filter(|p| p.cause == "closed_port").map(|p| p.count).sum();
        assert_eq!(peers, 10, "all 10 in peer rows, as expired");
    }

    #[test]
    fn loopback_peers_of_two_namespaces_are_two_rows() {
        let mut a = agg(10);
        let mut k = counts();
        let lo = |netns| PeerKey {
            view: view::SENT,
            cause: cause::CLOSED_PORT,
            family: 4,
            generation: 0,
            addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            netns,
        };
        k.peers = vec![(lo(11), 3), (lo(12), 5)];
        a.on_counts(k);
        let s = a.snapshot(1.0, &BTreeMap::new());
        let rows: Vec<_> = s.peers.iter().map(|p| (p.addr.as_str(), p.netns, p.count)).collect();
        assert_eq!(rows, vec![("127.0.0.1", Some(12), 5), ("127.0.0.1", Some(11), 3)]);
        assert!(crate::pipeline::model::several_netns(s.peers.iter().map(|p| p.netns)));
        assert_eq!(s.peers[0].label(true), "127.0.0.1 (netns 12)");
        assert!(!crate::pipeline::model::several_netns([Some(1), None, Some(1)]));
    }

    #[test]
    fn recent_is_bounded_newest_first_with_reason_names() {
        let mut a = agg(10);
        for ts in 1..=3 {
            a.on_sample(Event {
                view: view::SENT,
                cause: cause::LINGER_ABORT,
                reason: Some(14),
                local: "127.0.0.1:1".parse().unwrap(),
                remote: "127.0.0.1:2".parse().unwrap(),
                pid: Some(9),
                comm: Some("x".into()),
                ifindex: None,
                state: 0,
                tcp_flags: 0,
                ts_ns: ts,
                cgroup: Some(77),
                payload: None,
                judged: None,
                netns: Some(4_026_531_840),
            });
        }
        let s = a.snapshot(1.0, &BTreeMap::new());
        assert_eq!(s.samples.delivered, 3);
        assert_eq!(s.recent.iter().map(|r| r.ts_ns).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(s.recent[0].reason_name.as_deref(), Some("TCP_STATE"));
        assert_eq!(s.recent[0].owner.as_deref(), Some("cgroup:77"), "unnamed until resolved");
        assert_eq!(a.owner_ids(), vec![77]);
        let names =
            BTreeMap::from([(77, Owner { name: "nginx.service".into(), path: Some("/x/nginx.service".into()) })]);
        assert_eq!(a.snapshot(1.0, &names).recent[0].owner.as_deref(), Some("nginx.service"));
    }

    #[test]
    fn owners_by_cgroup_with_names_and_overflow_as_other() {
        let mut a = agg(1);
        let mut k = counts();
        let key =
            |cgroup| OwnerKey { cgroup, view: view::SENT, cause: cause::LINGER_ABORT, generation: 0, _pad: [0; 5] };
        k.owners = vec![(key(5), 3), (key(6), 1)];
        k.overflow[(2 * maps::COUNT_SLOTS + cause::slot(view::SENT, cause::LINGER_ABORT)) as usize] = 2;
        a.on_counts(k);
        let names = BTreeMap::from([(
            5,
            Owner { name: "nginx.service".into(), path: Some("/system.slice/nginx.service".into()) },
        )]);
        let s = a.snapshot(1.0, &names);
        let rows: Vec<_> = s.owners.iter().map(|o| (o.owner.as_str(), o.cgroup, o.count)).collect();
        assert_eq!(rows, vec![("nginx.service", Some(5), 3), ("other", None, 3)]);
        assert_eq!(s.owners[0].cgroup_path.as_deref(), Some("/system.slice/nginx.service"));
    }
}
