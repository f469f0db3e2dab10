//! The only reader of the kernel maps: drains the ring buffer and sums the
//! per-CPU counters.

use crate::pipeline::names;
use std::collections::HashMap;

use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
};
use rst_common::maps::{self, Hot, OwnerKey, PeerKey, SampleState};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    error::Error,
    kernel::loader,
    pipeline::aggregate::{Drained, KernelCounts},
    pipeline::model::ProgramCost,
};

/// `membarrier(MEMBARRIER_CMD_GLOBAL)`: returns after an RCU grace period
/// (`synchronize_rcu()` in kernel/sched/membarrier.c), by which every program
/// that was running has returned. Only with more than one CPU online: on one
/// the kernel returns at once.
const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
const MEMBARRIER_CMD_QUERY: libc::c_int = 0;

/// Why folding cannot be made exact on this machine, if it cannot.
#[must_use]
pub fn fold_unsupported() -> Option<String> {
    // SAFETY: plain syscalls without pointers.
    let cmds = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) };
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if cmds < 0 || cmds & libc::c_long::from(MEMBARRIER_CMD_GLOBAL) == 0 {
        Some("membarrier(MEMBARRIER_CMD_GLOBAL) is not available (nohz_full, or an old kernel)".into())
    } else if cpus < 2 {
        Some("one CPU online: membarrier does not wait for a grace period there".into())
    } else {
        None
    }
}

fn grace_period() -> Result<(), Error> {
    // SAFETY: plain syscall without pointers.
    if unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(Error::Io { what: "waiting for an RCU grace period (membarrier)", source: std::io::Error::last_os_error() })
    }
}

/// Each key once, with the sum of its counts in `parts` (a key may be in
/// its hash and in hot slots on several CPUs).
fn merged<K: Eq + std::hash::Hash>(parts: impl IntoIterator<Item = (K, u64)>) -> Vec<(K, u64)> {
    let mut sums = HashMap::new();
    for (k, n) in parts {
        *sums.entry(k).or_insert(0) += n;
    }
    sums.into_iter().collect()
}

/// Keys per poll from which a key gets a hot slot: one that resets this
/// often pays a hash update on every reset otherwise.
const HOT_FROM: u64 = 64;

/// One hot-slot map, and which of its slots hold a key: tracked here, so a
/// poll reads only those (each read is a syscall, made while storms run).
struct HotSlots<K>
where
    Hot<K>: aya::Pod,
{
    map: PerCpuArray<MapData, Hot<K>>,
    /// Bit `i`: slot `i` holds a key.
    taken: u32,
}

impl<K: Copy + Default + PartialEq> HotSlots<K>
where
    Hot<K>: aya::Pod,
{
    /// Takes map `name`; a pinned one of an earlier run may hold keys already.
    fn open(ebpf: &mut Ebpf, name: &str) -> Result<Self, Error> {
        let map: PerCpuArray<MapData, Hot<K>> = take(ebpf, name)?;
        let held = |i: &u32| map.get(i, 0).is_ok_and(|v| v.iter().any(|s| s.key != K::default()));
        let taken = (0..maps::HOT_SLOTS).filter(held).fold(0, |t, i| t | 1 << i);
        Ok(Self { map, taken })
    }

    /// Whether slot `i` holds a key.
    fn holds(&self, i: u32) -> bool {
        self.taken & 1 << i != 0
    }

    /// (key, count) of slot `i` on every CPU where it counted; None if it cannot be read.
    fn counts_in(&self, i: u32) -> Option<Vec<(K, u64)>> {
        let v = self.map.get(&i, 0).ok()?;
        Some(v.iter().filter(|s| s.count != 0).map(|s| (s.key, s.count)).collect())
    }

    /// (key, count) of every counting slot, on every CPU.
    fn counted(&self) -> Vec<(K, u64)> {
        (0..maps::HOT_SLOTS).filter(|&i| self.holds(i)).flat_map(|i| self.counts_in(i).unwrap_or_default()).collect()
    }

    /// Sets slot `i` to `key` with no count on every CPU (`key` zero: empties it).
    fn set(&mut self, i: u32, key: K) -> bool {
        let Ok(cpus) = aya::util::nr_cpus() else { return false };
        let done =
            PerCpuValues::try_from(vec![Hot { count: 0, key }; cpus]).is_ok_and(|v| self.map.set(i, v, 0).is_ok());
        if done {
            self.taken = if key == K::default() { self.taken & !(1 << i) } else { self.taken | 1 << i };
        }
        done
    }

    /// Gives free slot `i` to `key`.
    fn give(&mut self, i: u32, key: K) {
        if !self.holds(i) {
            self.set(i, key);
        }
    }

    /// The slots of `slots` (a generation no program writes any more),
    /// emptied, with what they counted. A slot that cannot be emptied stays
    /// (and its counts are not returned).
    fn drain(&mut self, slots: std::ops::Range<u32>) -> Vec<(K, u64)> {
        let mut out = Vec::new();
        for i in slots {
            if self.holds(i)
                && let Some(counted) = self.counts_in(i)
                && self.set(i, K::default())
            {
                out.extend(counted);
            }
        }
        out
    }
}

/// Keys that counted at least `from` since `before`, fastest first.
fn risers<K: Copy + Eq + std::hash::Hash>(now: &[(K, u64)], before: &HashMap<K, u64>, from: u64) -> Vec<K> {
    let mut up: Vec<(u64, K)> = now
        .iter()
        .map(|(k, n)| (n.saturating_sub(before.get(k).copied().unwrap_or(0)), *k))
        .filter(|(d, _)| *d >= from)
        .collect();
    up.sort_by_key(|u| std::cmp::Reverse(u.0));
    up.into_iter().map(|(_, k)| k).collect()
}

/// Every key of `map` that `old` accepts, with its value summed over CPUs,
/// deleted from the map. A key whose delete fails stays (and is not returned).
fn drain<K: aya::Pod>(map: &mut PerCpuHashMap<MapData, K, u64>, old: impl Fn(&K) -> bool) -> Vec<(K, u64)> {
    let keys: Vec<K> = map.keys().filter_map(Result::ok).filter(|k| old(k)).collect();
    keys.into_iter()
        .filter_map(|k| {
            let n = map.get(&k, 0).ok()?.iter().sum();
            map.remove(&k).ok()?;
            Some((k, n))
        })
        .collect()
}

pub struct Source {
    /// (view, program fd) of the tracepoint programs, for their misses.
    programs: Vec<(u8, std::os::fd::RawFd)>,
    /// (name, fd) of every loaded program, for their costs.
    loaded: Vec<(String, std::os::fd::RawFd)>,
    ring: Ring,
    counts: PerCpuArray<MapData, u64>,
    origins: PerCpuArray<MapData, u64>,
    ports: PerCpuHashMap<MapData, u32, u64>,
    peers: PerCpuHashMap<MapData, PeerKey, u64>,
    owners: PerCpuHashMap<MapData, OwnerKey, u64>,
    overflow: PerCpuArray<MapData, u64>,
    stats: PerCpuArray<MapData, SampleState>,
    unannounced: PerCpuArray<MapData, u64>,
    hot_ports: HotSlots<u64>,
    hot_peers: HotSlots<PeerKey>,
    /// Port and peer counts at the previous [`Source::promote`].
    last_ports: HashMap<u32, u64>,
    last_peers: HashMap<PeerKey, u64>,
    unknown_site: Array<MapData, u64>,
    /// The generation the programs key with now (`maps::SETTING_GENERATION`).
    generation: u32,
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(ebpf: &mut Ebpf, name: &str) -> Result<T, Error> {
    let map = ebpf.take_map(name).ok_or_else(|| Error::Load { detail: format!("map {name} missing") })?;
    T::try_from(map).map_err(|e| Error::Load { detail: format!("map {name}: {e}") })
}

fn sum_array(a: &PerCpuArray<MapData, u64>) -> Vec<u64> {
    a.iter().map(|v| v.map_or(0, |v| v.iter().sum())).collect()
}

impl Source {
    /// Takes the maps out of a loaded object (before or after its programs are attached).
    pub fn new(ebpf: &mut Ebpf) -> Result<Self, Error> {
        Ok(Self {
            programs: Vec::new(),
            loaded: Vec::new(),
            ring: Ring::open(ebpf, maps::SAMPLES)?,
            counts: take(ebpf, maps::COUNTS)?,
            origins: take(ebpf, maps::ORIGINS)?,
            ports: take(ebpf, maps::PORTS)?,
            peers: take(ebpf, maps::PEERS)?,
            owners: take(ebpf, maps::OWNERS)?,
            overflow: take(ebpf, maps::OVERFLOW)?,
            stats: take(ebpf, maps::STATS)?,
            unannounced: take(ebpf, maps::UNANNOUNCED)?,
            hot_ports: HotSlots::open(ebpf, maps::HOT_PORTS)?,
            hot_peers: HotSlots::open(ebpf, maps::HOT_PEERS)?,
            last_ports: HashMap::new(),
            last_peers: HashMap::new(),
            unknown_site: take(ebpf, maps::UNKNOWN_SITE)?,
            generation: 0,
        })
    }

    /// `programs`: (view, fd) of programs whose misses are reported.
    pub fn set_programs(&mut self, programs: Vec<(u8, std::os::fd::RawFd)>) {
        self.programs = programs;
    }

    /// Notes every program `ebpf` has loaded now (call again after attaching more).
    pub fn set_loaded(&mut self, ebpf: &Ebpf) {
        self.loaded = loader::loaded_programs(ebpf);
    }

    /// Each loaded program's runs and run time, as the kernel counts them.
    #[must_use]
    pub fn costs(&self) -> Vec<ProgramCost> {
        loader::program_costs(&self.loaded)
    }

    /// Folds: the programs switch to the other generation; once no program can
    /// still write the old one (an RCU grace period), every key of the old
    /// generation is read and deleted, and its hot slots emptied. What is
    /// returned is exactly what those keys counted; what comes after is
    /// counted under the new generation.
    pub fn fold(&mut self, ebpf: &mut Ebpf) -> Result<Drained, Error> {
        let old = self.generation;
        loader::set_generation(ebpf, old ^ 1)?;
        self.generation = old ^ 1;
        grace_period()?;
        let old8 = old as u8;
        let hot_ports = self.hot_ports.drain(maps::hot_generation(old8));
        let hot_peers = self.hot_peers.drain(maps::hot_generation(old8));
        let ports = drain(&mut self.ports, |k| u32::from(k & maps::PORT_KEY_GENERATION != 0) == old);
        Ok(Drained {
            ports: merged(ports.into_iter().chain(hot_ports.into_iter().map(|(k, n)| (k as u32, n)))),
            peers: merged(drain(&mut self.peers, |k| k.generation == old8).into_iter().chain(hot_peers)),
            owners: drain(&mut self.owners, |k| k.generation == old8),
        })
    }

    /// Gives the keys of the current generation that counted fastest since
    /// the last call a hot slot, where theirs is free: from then on the
    /// programs count them there instead of in the hash.
    pub fn promote(&mut self, k: &KernelCounts) {
        let g = self.generation as u8;
        for key in risers(&k.ports, &self.last_ports, HOT_FROM) {
            let (view, _, _) = maps::split_port_key(key);
            let i = maps::hot_index(g, view, key);
            if u32::from(key & maps::PORT_KEY_GENERATION != 0) == self.generation {
                self.hot_ports.give(i, maps::HOT_PORT | u64::from(key));
            }
        }
        for key in risers(&k.peers, &self.last_peers, HOT_FROM) {
            let i = maps::hot_index(g, key.view, maps::peer_spread(&key.addr, key.cause));
            if key.generation == g {
                self.hot_peers.give(i, key);
            }
        }
        self.last_ports = k.ports.iter().copied().collect();
        self.last_peers = k.peers.iter().copied().collect();
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
        // Origins before causes: a reset is counted by cause first, so every
        // verdict read belongs to a reset the causes hold.
        let origins = sum_array(&self.origins);
        KernelCounts {
            causes: sum_array(&self.counts),
            origins,
            ports: merged(
                self.ports
                    .iter()
                    .filter_map(Result::ok)
                    .map(|(k, v)| (k, v.iter().sum()))
                    .chain(self.hot_ports.counted().into_iter().map(|(k, n)| (k as u32, n))),
            ),
            peers: merged(
                self.peers
                    .iter()
                    .filter_map(Result::ok)
                    .map(|(k, v)| (k, v.iter().sum()))
                    .chain(self.hot_peers.counted()),
            ),
            owners: self.owners.iter().filter_map(Result::ok).map(|(k, v)| (k, v.iter().sum())).collect(),
            overflow: sum_array(&self.overflow),
            samples,
            missed: self.missed(),
        }
    }

    /// Per view and kind: the kernel's recursion misses of its programs (a
    /// view may have several: tracepoint and fentry; a miss is a time the
    /// kernel skipped one because it was already running on that CPU,
    /// `recursion_misses` in its fdinfo), and for `sent` `unannounced`
    /// (replies tc egress could not pair with a `sent` run: `UNANNOUNCED`).
    fn missed(&self) -> Vec<(u8, &'static str, u64)> {
        let mut recursion = std::collections::BTreeMap::new();
        for &(v, fd) in &self.programs {
            *recursion.entry(v).or_insert(0) += loader::fdinfo(fd, "recursion_misses");
        }
        let sent = recursion.contains_key(&rst_common::view::SENT).then(|| {
            (rst_common::view::SENT, names::MISSED_UNANNOUNCED, sum_array(&self.unannounced).iter().sum::<u64>())
        });
        recursion.into_iter().map(|(v, n)| (v, names::MISSED_RECURSION, n)).chain(sent).collect()
    }

    /// The newest call site of a socket reset the call-site table could not
    /// name (a kernel address; 1: no caller found; 0: none so far).
    #[must_use]
    pub fn unknown_call_site(&self) -> u64 {
        self.unknown_site.get(&0, 0).unwrap_or(0)
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

#[cfg(test)]
mod tests {
    use super::{merged, risers};

    #[test]
    fn a_key_in_its_hash_and_in_hot_slots_of_several_cpus_is_one_key_with_the_sum() {
        let hash = [(7u32, 10u64), (9, 1)];
        let hot = [(7u32, 5u64), (7, 2), (11, 4)];
        let mut m = merged(hash.into_iter().chain(hot));
        m.sort_unstable();
        assert_eq!(m, vec![(7, 17), (9, 1), (11, 4)]);
    }

    #[test]
    fn risers_are_the_keys_that_counted_at_least_the_floor_fastest_first() {
        let before = [(1u32, 100u64), (2, 0), (3, 5)].into_iter().collect();
        let now = [(1u32, 150u64), (2, 300), (3, 68), (4, 64), (5, 63)];
        assert_eq!(risers(&now, &before, 64), vec![2, 4]);
        assert_eq!(risers(&now, &before, 50), vec![2, 4, 3, 5, 1]);
    }
}
