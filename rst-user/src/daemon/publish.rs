//! The pipeline side of a run: samples into the aggregator and the alert
//! detector, kernel counts into snapshots, each snapshot published on a
//! watch channel that every output reads.

use std::{sync::Arc, time::Instant};

use tokio::sync::watch;

use crate::{
    kernel::{self, side::KernelSide},
    pipeline::{
        aggregate::{Aggregator, Drained, KernelCounts, Limits},
        alerts::{Change, Detector},
        decode,
        model::Snapshot,
        owners::Resolver,
    },
    settings::Settings,
};

const RECENT: usize = 64;
/// Folded keys the daemon holds per kernel key of budget; past it the coldest are forgotten.
const HELD_PER_BUDGET: usize = 4;

pub(super) struct Pipeline {
    pub agg: Aggregator,
    pub detector: Detector,
    owners: Resolver,
    started: Instant,
    netns: Option<u32>,
    tx: watch::Sender<Arc<Snapshot>>,
    /// Ring records of an unexpected size, skipped.
    pub undecodable: u64,
    /// Call sites the call-site table could not name, each logged once.
    unknown_sites: std::collections::BTreeSet<u64>,
}

impl Pipeline {
    /// A pipeline that goes on from `before` (counts of an earlier run), and the channel its snapshots go out on.
    pub(super) fn new(
        settings: &Settings,
        probe: &kernel::Probe,
        before: &KernelCounts,
    ) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let mut agg = aggregator(settings, probe);
        agg.carry_over(before);
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let p = Self {
            agg,
            detector: Detector::new(settings.alerts),
            owners: Resolver::new(settings.cgroup_root.clone()),
            started: Instant::now(),
            netns: settings.netns,
            tx,
            undecodable: 0,
            unknown_sites: std::collections::BTreeSet::new(),
        };
        (p, rx)
    }

    /// One sample record from the ring.
    pub(super) fn on_record(&mut self, bytes: &[u8]) {
        match decode::decode(bytes) {
            Ok(ev) => {
                self.detector.on_event(&ev, self.started.elapsed().as_secs_f64());
                self.agg.on_sample(ev);
            }
            Err(_) => self.undecodable += 1,
        }
    }

    /// Keys the kernel folded away (see `Source::fold`).
    pub(super) fn on_fold(&mut self, drained: Drained) {
        self.agg.on_fold(drained);
    }

    /// Reads the kernel's counts (giving the fastest keys hot slots), makes
    /// a snapshot, logs alert changes and publishes it.
    pub(super) fn publish(&mut self, k: &mut KernelSide) -> Arc<Snapshot> {
        let reading = k.read();
        self.agg.on_counts(reading.counts);
        let site = reading.unknown_call_site;
        if site != 0 && self.unknown_sites.insert(site) {
            tracing::warn!("{}", kernel::callsites::unknown_line(site));
        }
        let names = self.owners.resolve(&self.agg.owner_ids());
        let mut snap = self.agg.snapshot(self.started.elapsed().as_secs_f64(), names);
        snap.time = crate::pipeline::clock::now_rfc3339();
        snap.netns = self.netns;
        snap.interfaces = reading.interfaces;
        snap.programs = reading.programs;
        for change in self.detector.on_snapshot(&snap) {
            log_alert(&change);
        }
        snap.alerts = self.detector.active();
        snap.alerts_started = self.detector.started();
        let snap = Arc::new(snap);
        self.tx.send_replace(snap.clone());
        snap
    }
}

fn aggregator(settings: &Settings, probe: &kernel::Probe) -> Aggregator {
    Aggregator::new(
        Limits {
            top: settings.top,
            recent: RECENT,
            held: [settings.port_keys, settings.peer_keys, settings.owner_keys].map(|n| HELD_PER_BUDGET * n as usize),
        },
        probe.release.clone(),
        probe.reason_names.clone(),
        probe.coverage.clone(),
    )
    .with_ephemeral_ports(kernel::ephemeral_ports())
    .with_own_netns(kernel::netns::own())
    .with_clock_offset(crate::pipeline::clock::boot_offset())
}

/// One log line per alert start and end, never one per reset.
fn log_alert(change: &Change) {
    let (what, a) = match change {
        Change::Start(a) => ("alert started", a),
        Change::End(a) => ("alert ended", a),
    };
    tracing::warn!(kind = %a.kind, size = %a.size(), "{what}: {} {}", a.kind, a.subject());
}
