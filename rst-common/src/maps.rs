//! Map names, keys, sizes and statistics slots shared by both sides.

use crate::{cause, view};

pub const COUNTS: &str = "COUNTS";
pub const PORTS: &str = "PORTS";
pub const PEERS: &str = "PEERS";
/// Per-CPU u64 by [`OwnerKey`]: socket-bound resets by the socket's cgroup.
pub const OWNERS: &str = "OWNERS";
pub const OVERFLOW: &str = "OVERFLOW";
pub const STATS: &str = "STATS";
pub const SAMPLES: &str = "SAMPLES";
pub const SETTINGS: &str = "SETTINGS";
pub const CAPTURES: &str = "CAPTURES";
pub const STACK_RSTS: &str = "STACK_RSTS";
/// Per-CPU u64 at 0 (contract §4 `unannounced`): replies tc egress saw leave
/// through the stack's control socket that no stack hook announced, i.e. runs
/// of the `sent` program the kernel skipped without counting a recursion miss
/// (see [`SETTING_ANNOUNCE`]).
pub const UNANNOUNCED: &str = "UNANNOUNCED";
/// The newest call site of a socket reset that the call-site table does not
/// know (a kernel address; 0: none yet), for the daemon's one log line.
pub const UNKNOWN_SITE: &str = "UNKNOWN_SITE";
/// The call-site table (see `crate::site::BUCKET_SHIFT`), written by the daemon before it attaches.
pub const SITES: &str = "SITES";
/// Per-CPU [`Hot`] slots in front of `PORTS` and `PEERS` (see [`hot_index`]).
pub const HOT_PORTS: &str = "HOT_PORTS";
pub const HOT_PEERS: &str = "HOT_PEERS";
/// Per CPU: received RSTs by (view, cause, origin), and corrections (see `origin`).
pub const ORIGINS: &str = "ORIGINS";
/// The TTL each peer's handshake arrived with (`origin::PeerTtl`).
pub const PEER_TTLS: &str = "PEER_TTLS";
/// The last RST of each flow that arrived on a watched interface (`origin::RecentRst`).
pub const RECENT_RSTS: &str = "RECENT_RSTS";

/// Entries of `STACK_RSTS`: resets the stack announced and tc egress has not
/// seen yet. Entries live for microseconds; LRU eviction bounds the rest.
/// The least size; the loader sizes it by CPU ([`stack_rst_entries`]).
pub const STACK_RST_ENTRIES: u32 = 8192;

/// `STACK_RSTS` entries for `cpus` possible CPUs. The kernel's LRU hash
/// keeps up to 128 free entries on each CPU's own list (LOCAL_FREE_TARGET in
/// kernel/bpf/bpf_lru_list.c); once those lists hold the whole map, a CPU
/// short of an entry steals another CPU's newest ones (its pending list):
/// an announcement tc has not read yet. Twice that per CPU keeps the shared
/// lists supplied on hosts with many CPUs.
#[must_use]
pub const fn stack_rst_entries(cpus: u32) -> u32 {
    let per_cpu = cpus.saturating_mul(2 * 128);
    if per_cpu > STACK_RST_ENTRIES { per_cpu } else { STACK_RST_ENTRIES }
}

/// `STACK_RSTS` key: a reset's tuple as it will leave (local = source).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub family: u8,
    pub _pad: [u8; 3],
    pub lport: u16,
    pub rport: u16,
    pub local: [u8; 16],
    pub remote: [u8; 16],
}
const _: () = assert!(size_of::<FlowKey>() == 40);

/// Counter maps pinned under the pin directory, so a restart keeps counting.
pub const PINNED: [&str; 10] =
    [COUNTS, PORTS, PEERS, OWNERS, OVERFLOW, STATS, UNANNOUNCED, HOT_PORTS, HOT_PEERS, ORIGINS];

/// `SETTINGS` slots (u32), changeable while running (SIGHUP).
/// Samples per second per CPU; 0 turns samples off (counts stay exact).
pub const SETTING_SAMPLE_RATE: u32 = 0;
/// 1: sampled resets also send packet bytes (`--pcap`).
pub const SETTING_CAPTURE: u32 = 1;
/// The generation (0 or 1) the programs key ports, peers and owners with.
/// The daemon folds by flipping it, waiting out an RCU grace period (no
/// program still writes the old one), then moving every key of the old
/// generation into its own totals and deleting it: nothing counted is lost.
pub const SETTING_GENERATION: u32 = 2;
/// Bit 0 ([`ANNOUNCE_ON`]): an interface is watched, so the stack announces
/// its replies for tc egress to recognise (with none, the announcement would
/// be pure cost). Bits 1 and 2 ([`ANNOUNCE_PAIR_V4`], [`ANNOUNCE_PAIR_V6`]): a
/// stack hook runs for every reply to a segment of that family (the
/// tracepoint from 6.10, else fentry on `tcp_v{4,6}_send_reset`), so tc
/// egress pairs each reply it sees leave through the control socket with its
/// announcement, and counts one it cannot pair in [`UNANNOUNCED`].
pub const SETTING_ANNOUNCE: u32 = 3;
pub const ANNOUNCE_ON: u32 = 1;
pub const ANNOUNCE_PAIR_V4: u32 = 2;
pub const ANNOUNCE_PAIR_V6: u32 = 4;
/// Per CPU, the newest replies announced for pairing: a ring this deep
/// covers a softirq's reply nested between another reply's announcement and
/// its transmission on the same CPU.
pub const REPLY_RING: usize = 4;
pub const SETTING_SLOTS: u32 = 4;

/// The generation bit of a [`port_key`].
pub const PORT_KEY_GENERATION: u32 = 1 << 31;

/// Entries of `COUNTS` (per-CPU u64 by [`cause::slot`]).
pub const COUNT_SLOTS: u32 = view::COUNT as u32 * cause::SLOTS as u32;
/// `OVERFLOW` holds port overflow at `slot`, peer overflow at
/// `COUNT_SLOTS + slot`, owner overflow at `2 * COUNT_SLOTS + slot`.
pub const OVERFLOW_SLOTS: u32 = 3 * COUNT_SLOTS;

/// Default key budgets (entries; the loader may change them).
pub const DEFAULT_PORT_KEYS: u32 = 4096;
/// The largest key budget accepted: per-CPU hashes of this size already take
/// hundreds of MiB of kernel memory on a large host; the kernel refuses far
/// larger ones ("Argument list too long").
pub const MAX_KEYS: u32 = 1 << 20;
pub const DEFAULT_PEER_KEYS: u32 = 4096;
pub const DEFAULT_OWNER_KEYS: u32 = 1024;
pub const DEFAULT_RING_BYTES: u32 = 256 * 1024;

/// `STATS`: one per-CPU [`SampleState`] — the sample accounting and the
/// rate-limit window, read and written with a single lookup per reset.
pub const STAT_SLOTS: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleState {
    /// Samples written to the ring.
    pub emitted: u64,
    /// Samples lost because the ring was full.
    pub ring_full: u64,
    /// Samples skipped by the per-CPU rate limit.
    pub rate_limited: u64,
    /// Start of the current one-second window (coarse ns) and samples in it.
    pub window_start: u64,
    pub window_count: u64,
    /// `--pcap`: packet captures of sampled resets lost because their ring was full.
    pub captures_lost: u64,
}
const _: () = assert!(size_of::<SampleState>() == 48);

#[cfg(feature = "user")]
unsafe impl aya::Pod for SampleState {}

/// `PORTS` key: (view, cause, port) packed into one u32 (generation 0; the
/// programs set [`PORT_KEY_GENERATION`] for generation 1).
#[must_use]
pub const fn port_key(view: u8, cause: u8, port: u16) -> u32 {
    ((view as u32) << 24) | ((cause as u32) << 16) | port as u32
}

/// Inverse of [`port_key`], whatever the generation.
#[must_use]
pub const fn split_port_key(key: u32) -> (u8, u8, u16) {
    (((key & !PORT_KEY_GENERATION) >> 24) as u8, (key >> 16) as u8, key as u16)
}

/// `PEERS` key. A loopback address names a different host in every network
/// namespace, so loopback peers of the stack views are keyed with their
/// namespace's inode; every other peer has `netns` 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub view: u8,
    pub cause: u8,
    pub family: u8,
    /// 0 or 1: see [`SETTING_GENERATION`].
    pub generation: u8,
    pub addr: [u8; 16],
    pub netns: u32,
}
const _: () = assert!(size_of::<PeerKey>() == 24);

/// Whether `addr` (of `family` 4 or 6, network byte order) is a loopback address.
#[must_use]
#[expect(clippy::inline_always, reason = "the kernel programs call it on their hot path")]
#[inline(always)]
pub fn is_loopback(family: u8, addr: &[u8; 16]) -> bool {
    if family == 6 {
        // ::1, or ::ffff:127.x.y.z (an IPv6 socket talking to IPv4 loopback);
        // word compares, no loop (the kernel side calls this too)
        let w = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
        if w(0) != 0 || w(4) != 0 {
            return false;
        }
        match w(8) {
            0 => w(12) == u32::from_ne_bytes([0, 0, 0, 1]),
            m => m == u32::from_ne_bytes([0, 0, 0xff, 0xff]) && addr[12] == 127,
        }
    } else {
        addr[0] == 127
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for PeerKey {}

/// A key counted on each CPU in place of its hash entry: a storm with few
/// distinct keys then never touches the hash. The daemon gives a slot to a
/// key that counts fast (see [`hot_index`]); programs only ever add to the
/// count of a slot whose key is theirs, and a count never moves, so the
/// daemon adds slots and hash and no reading order can miss or double
/// count. Slots belong to a generation (see [`SETTING_GENERATION`]): the
/// fold reads and empties the old generation's once no program writes them.
/// An empty slot's key is zero, which no real key is (a port key carries
/// [`HOT_PORT`]; a peer key's family is 4 or 6).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hot<K> {
    /// 0: empty.
    pub count: u64,
    pub key: K,
}
/// A `PORTS` key in a hot slot: widened (no padding), with [`HOT_PORT`] set.
pub type HotPort = Hot<u64>;
/// Marks a port key in a hot slot (a zero slot key is an empty slot).
pub const HOT_PORT: u64 = 1 << 32;
pub type HotPeer = Hot<PeerKey>;
const _: () = assert!(size_of::<HotPort>() == 16 && size_of::<HotPeer>() == 32);

#[cfg(feature = "user")]
unsafe impl aya::Pod for HotPort {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for HotPeer {}

/// Hot slots per view and generation.
pub const HOT_PER_VIEW: u32 = 2;
/// Entries of `HOT_PORTS` and `HOT_PEERS`: both generations, every view.
pub const HOT_SLOTS: u32 = 2 * view::COUNT as u32 * HOT_PER_VIEW;

/// The hot slot of a key of `view` in `generation`, `spread` choosing among
/// the view's slots ([`port_key`] itself, or [`peer_spread`]).
#[must_use]
#[expect(clippy::inline_always, reason = "the kernel programs call it on their hot path")]
#[inline(always)]
pub const fn hot_index(generation: u8, view: u8, spread: u32) -> u32 {
    ((generation as u32 & 1) * view::COUNT as u32 + view as u32 % view::COUNT as u32) * HOT_PER_VIEW
        + spread % HOT_PER_VIEW
}

/// Chooses a peer key's hot slot among its view's.
#[must_use]
#[expect(clippy::inline_always, reason = "the kernel programs call it on their hot path")]
#[inline(always)]
pub const fn peer_spread(addr: &[u8; 16], cause: u8) -> u32 {
    (addr[3] ^ addr[15] ^ cause) as u32
}

/// The slots of `generation`, for the fold.
#[must_use]
pub fn hot_generation(generation: u8) -> core::ops::Range<u32> {
    let start = hot_index(generation, 0, 0);
    start..start + u32::from(view::COUNT) * HOT_PER_VIEW
}

/// `OWNERS` key: a socket-bound reset's (view, cause) and its socket's cgroup id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerKey {
    pub cgroup: u64,
    pub view: u8,
    pub cause: u8,
    /// 0 or 1: see [`SETTING_GENERATION`].
    pub generation: u8,
    pub _pad: [u8; 5],
}
const _: () = assert!(size_of::<OwnerKey>() == 16);

#[cfg(feature = "user")]
unsafe impl aya::Pod for OwnerKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_slots_of_each_generation_and_view_are_their_own() {
        let mut seen = [false; HOT_SLOTS as usize];
        for g in 0..2u8 {
            for v in 0..view::COUNT {
                for s in 0..HOT_PER_VIEW {
                    let i = hot_index(g, v, s + 7 * HOT_PER_VIEW);
                    assert!(i < HOT_SLOTS && hot_generation(g).contains(&i) && !seen[i as usize], "{g} {v} {s}");
                    seen[i as usize] = true;
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
        assert!(hot_generation(0).end == hot_generation(1).start);
    }

    #[test]
    fn the_announcement_map_grows_with_the_cpus_and_never_shrinks() {
        assert_eq!(stack_rst_entries(2), STACK_RST_ENTRIES);
        assert_eq!(stack_rst_entries(32), STACK_RST_ENTRIES);
        assert_eq!(stack_rst_entries(64), 16384);
        assert_eq!(stack_rst_entries(1024), 262_144);
        assert_eq!(stack_rst_entries(u32::MAX), u32::MAX);
    }
}
