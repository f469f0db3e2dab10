//! The only reader of the kernel maps: drains the ring buffer and sums the
//! per-CPU counters.

use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
};
use rst_common::maps::{self, OwnerKey, PeerKey, SampleState};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{aggregate::KernelCounts, error::Error};

/// Times the kernel skipped a program because it was already running on that
/// CPU (`recursion_misses` in the program's fdinfo): events not counted.
fn recursion_misses(fd: std::os::fd::RawFd) -> u64 {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("recursion_misses:")).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

pub struct Source {
    /// (view, program fd) of the tracepoint programs, for their misses.
    programs: Vec<(u8, std::os::fd::RawFd)>,
    ring: Ring,
    counts: PerCpuArray<MapData, u64>,
    ports: PerCpuHashMap<MapData, u32, u64>,
    peers: PerCpuHashMap<MapData, PeerKey, u64>,
    owners: PerCpuHashMap<MapData, OwnerKey, u64>,
    overflow: PerCpuArray<MapData, u64>,
    stats: PerCpuArray<MapData, SampleState>,
    unannounced: PerCpuArray<MapData, u64>,
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(ebpf: &mut Ebpf, name: &str) -> Result<T, Error> {
    let map = ebpf.take_map(name).ok_or_else(|| Error::Load { detail: format!("map {name} missing") })?;
    T::try_from(map).map_err(|e| Error::Load { detail: format!("map {name}: {e}") })
}

fn sum_array(a: &PerCpuArray<MapData, u64>) -> Vec<u64> {
    a.iter().map(|v| v.map_or(0, |v| v.iter().sum())).collect()
}

impl Source {
    /// `programs`: (view, fd) of programs whose misses are reported.
    pub fn new(ebpf: &mut Ebpf, programs: Vec<(u8, std::os::fd::RawFd)>) -> Result<Self, Error> {
        Ok(Self {
            programs,
            ring: Ring::open(ebpf, maps::SAMPLES)?,
            counts: take(ebpf, maps::COUNTS)?,
            ports: take(ebpf, maps::PORTS)?,
            peers: take(ebpf, maps::PEERS)?,
            owners: take(ebpf, maps::OWNERS)?,
            overflow: take(ebpf, maps::OVERFLOW)?,
            stats: take(ebpf, maps::STATS)?,
            unannounced: take(ebpf, maps::UNANNOUNCED)?,
        })
    }

    /// Current totals, summed over CPUs.
    #[must_use]
    pub fn counts(&self) -> KernelCounts {
        let mut samples = SampleState::default();
        for cpu in self.stats.iter().filter_map(Result::ok).flat_map(|v| v.to_vec()) {
            samples.emitted += cpu.emitted;
            samples.ring_full += cpu.ring_full;
            samples.rate_limited += cpu.rate_limited;
            samples.captures_lost += cpu.captures_lost;
        }
        KernelCounts {
            causes: sum_array(&self.counts),
            ports: self.ports.iter().filter_map(Result::ok).map(|(k, v)| (k, v.iter().sum())).collect(),
            peers: self.peers.iter().filter_map(Result::ok).map(|(k, v)| (k, v.iter().sum())).collect(),
            owners: self.owners.iter().filter_map(Result::ok).map(|(k, v)| (k, v.iter().sum())).collect(),
            overflow: sum_array(&self.overflow),
            samples,
            missed: self.missed(),
        }
    }

    /// Per view: the kernel's recursion misses of its programs (a view may
    /// have several: tracepoint and fentry), plus for `sent` the stack resets
    /// tc saw leaving without their event.
    fn missed(&self) -> Vec<(u8, u64)> {
        let mut missed = std::collections::BTreeMap::new();
        for &(v, fd) in &self.programs {
            *missed.entry(v).or_insert(0) += recursion_misses(fd);
        }
        if let Some(sent) = missed.get_mut(&rst_common::view::SENT) {
            *sent += sum_array(&self.unannounced).iter().sum::<u64>();
        }
        missed.into_iter().collect()
    }

    /// Waits for samples, then hands at most `max` of them to `f` (so a storm
    /// cannot starve the counter poller). Returns how many were handed over.
    pub async fn drain(&mut self, max: usize, f: impl FnMut(&[u8])) -> std::io::Result<usize> {
        self.ring.drain(max, f).await
    }
}

/// One ring buffer, read asynchronously: the samples, or the packet
/// captures (`--pcap`, read apart from the samples).
pub struct Ring(AsyncFd<RingBuf<MapData>>);

impl Ring {
    pub fn open(ebpf: &mut Ebpf, name: &str) -> Result<Self, Error> {
        let ring: RingBuf<MapData> = take(ebpf, name)?;
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged while the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| Error::Io { what: "registering a ring buffer", source: e.into() })?;
        Ok(Self(fd))
    }

    /// Waits for records, then hands at most `max` of them to `f`; returns how many.
    pub async fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> std::io::Result<usize> {
        let mut guard = self.0.readable_mut().await?;
        let ring = guard.get_inner_mut();
        let mut n = 0;
        while n < max {
            let Some(item) = ring.next() else { break };
            f(&item);
            n += 1;
        }
        if n < max {
            guard.clear_ready();
        }
        Ok(n)
    }
}
