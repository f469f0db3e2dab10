//! Exact per-CPU counts and rate-limited samples. Every count is made here;
//! anything that cannot be keyed or delivered lands in an explicit bucket.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use crate::steps;
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_jiffies64, bpf_ktime_get_ns},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use rst_common::{
    cause,
    event::{CAPTURE_BYTES, Capture, Sample},
    maps::{self, FlowKey, Hot, HotPeer, HotPort, OwnerKey, PeerKey, SampleState},
};

#[map]
static COUNTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(maps::COUNT_SLOTS, 0);
#[map]
static PORTS: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(maps::DEFAULT_PORT_KEYS, 0);
#[map]
static PEERS: PerCpuHashMap<PeerKey, u64> = PerCpuHashMap::with_max_entries(maps::DEFAULT_PEER_KEYS, 0);
/// Per CPU: port and peer keys the daemon found hot, counted in place of the hashes (see `maps::Hot`).
#[map]
static HOT_PORTS: PerCpuArray<HotPort> = PerCpuArray::with_max_entries(maps::HOT_SLOTS, 0);
#[map]
static HOT_PEERS: PerCpuArray<HotPeer> = PerCpuArray::with_max_entries(maps::HOT_SLOTS, 0);
#[map]
static OWNERS: PerCpuHashMap<OwnerKey, u64> = PerCpuHashMap::with_max_entries(maps::DEFAULT_OWNER_KEYS, 0);
#[map]
static OVERFLOW: PerCpuArray<u64> = PerCpuArray::with_max_entries(maps::OVERFLOW_SLOTS, 0);
#[map]
static STATS: PerCpuArray<SampleState> = PerCpuArray::with_max_entries(maps::STAT_SLOTS, 0);
#[map]
static SAMPLES: RingBuf = RingBuf::with_byte_size(maps::DEFAULT_RING_BYTES, 0);
/// Packet bytes of sampled resets, only when capture is on (`--pcap`).
#[map]
static CAPTURES: RingBuf = RingBuf::with_byte_size(maps::DEFAULT_RING_BYTES, 0);
/// Replies the stack announced (tracepoint) and is about to send, until tc
/// egress knows the control socket that sends them (see `CONTROL_SOCKETS`):
/// IPv6 replies before Linux 6.13 (they leave with no owner), and each CPU's
/// first reply per family. tc egress consumes them to tell stack resets from
/// `not_from_stack` ones.
#[map]
static STACK_RSTS: LruHashMap<FlowKey, u64> = LruHashMap::with_max_entries(maps::STACK_RST_ENTRIES, 0);
/// Per CPU, by family (0: IPv4, 1: IPv6): the stack's TCP control socket,
/// which sends every reply to a segment. tc egress learns it from the owner
/// of a reply the stack announced; from then on a reply it owns needs no
/// announcement (IPv4: per CPU from 6.0, per CPU and namespace before; the
/// daemon's namespace is the only one whose replies leave its interfaces).
#[map]
static CONTROL_SOCKETS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);
/// Per CPU: replies tc egress saw leave through the stack's control socket
/// with no announcement in `REPLIES` — runs of the `sent` program the kernel
/// skipped without counting a recursion miss (see `maps::SETTING_ANNOUNCE`).
#[map]
static UNANNOUNCED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// Per CPU: the newest replies the stack announced, for tc egress to pair.
#[map]
static REPLIES: PerCpuArray<Replies> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: how many runs of the `sent` programs are under way (a softirq
/// may interrupt one). A reply sent meanwhile whose program the kernel
/// skipped is a recursion miss, which the kernel counts itself.
#[map]
static SENT_RUNNING: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// A ring of announced replies, each by the fingerprint of its tuple
/// (`reply_print`); an empty slot is 0, which no fingerprint is.
#[repr(C)]
struct Replies {
    next: u64,
    prints: [u64; maps::REPLY_RING],
}

/// Per CPU: received RSTs by (view, cause, origin) as first judged, and the
/// verdicts later evidence corrected (`rst_common::origin`).
#[map]
static ORIGINS: PerCpuArray<u64> = PerCpuArray::with_max_entries(rst_common::origin::SLOTS, 0);
/// Per CPU: the jiffy at which the sample rate limit last read the clock.
#[map]
static CLOCK: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);
/// Settings the daemon may change while running (see `maps::SETTING_*`).
#[map]
static SETTINGS: Array<u32> = Array::with_max_entries(maps::SETTING_SLOTS, 0);

const NS_PER_SEC: u64 = 1_000_000_000;

/// Atomic because a softirq may interrupt a program on the same CPU.
#[inline(always)]
fn add(p: *mut u64) {
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, 1) };
}

#[inline(always)]
fn bump(array: &PerCpuArray<u64>, index: u32) {
    if let Some(p) = array.get_ptr_mut(index) {
        add(p);
    }
}

/// Counts `key` in a bounded per-CPU hash, or in `OVERFLOW[overflow]` when full.
#[inline(always)]
#[expect(clippy::same_functions_in_if_condition, reason = "the second lookup is after losing an insert race")]
fn bump_key<K>(map: &PerCpuHashMap<K, u64>, key: &K, overflow: u32) {
    if let Some(p) = map.get_ptr_mut(key) {
        add(p);
    } else if map.insert(key, 1, u64::from(BPF_NOEXIST)).is_ok() {
    } else if let Some(p) = map.get_ptr_mut(key) {
        // Another CPU created the key between our lookup and insert.
        add(p);
    } else {
        bump(&OVERFLOW, overflow);
    }
}

/// Counts `key` in its hot slot `index` if the daemon gave it that slot;
/// false: counted nowhere yet (the caller uses the hash). Programs never
/// write a key, so a run that interrupted another on this CPU is harmless.
#[inline(always)]
fn bump_hot<K: Copy>(slots: &PerCpuArray<Hot<K>>, index: u32, key: &K, same: impl Fn(&K, &K) -> bool) -> bool {
    let Some(slot) = slots.get_ptr_mut(index) else { return false };
    let hit = same(unsafe { &(*slot).key }, key);
    if hit {
        add(unsafe { &raw mut (*slot).count });
    }
    hit
}

/// Equality of peer keys in one branch (a byte-array compare would be a
/// memcmp call; a chain of compares, a branch each for the verifier).
#[inline(always)]
fn same_peer(a: &PeerKey, b: &PeerKey) -> bool {
    let words = |k: &PeerKey| unsafe { core::ptr::read(core::ptr::from_ref(k).cast::<[u32; 6]>()) };
    let (a, b) = (words(a), words(b));
    (a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5]) == 0
}

/// Notes a reset the stack is about to send through its control socket.
#[inline(always)]
pub fn announce_stack_rst(key: &FlowKey) {
    if let Some(p) = STACK_RSTS.get_ptr_mut(key) {
        add(p);
    } else {
        let _ = STACK_RSTS.insert(key, 1, 0);
    }
}

/// Whether the stack announced this reset; consumes the announcement, and
/// deletes it with the last one, so the map holds only replies in flight
/// (and those that left through an interface nobody watches, until evicted).
#[inline(always)]
pub fn take_stack_rst(key: &FlowKey) -> bool {
    if steps::skip("take") {
        return true;
    }
    let Some(p) = STACK_RSTS.get_ptr_mut(key) else { return false };
    // (Linux 5.10 has no atomic fetch-and-add for BPF: read, then decrement
    // or delete. Two CPUs taking the same tuple at once may both take it.)
    match unsafe { *p } {
        0 => return false,
        1 => {
            let _ = STACK_RSTS.remove(key);
        }
        _ => {
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, u64::MAX) };
        }
    }
    true
}

/// `CONTROL_SOCKETS` index of an address family.
#[inline(always)]
fn family_index(family: u8) -> u32 {
    u32::from(family == crate::proto::AF_INET6)
}

/// Whether tc egress knows this CPU's control socket for `family`: its replies need no announcement.
#[inline(always)]
pub fn control_socket_known(family: u8) -> bool {
    CONTROL_SOCKETS.get(family_index(family)).is_some_and(|s| *s != 0)
}

/// Whether `sk` is this CPU's control socket for `family`, as learned.
#[inline(always)]
pub fn is_control_socket(family: u8, sk: u64) -> bool {
    CONTROL_SOCKETS.get(family_index(family)).is_some_and(|s| *s == sk)
}

/// Remembers `sk`, the owner of a reply the stack announced, as this CPU's control socket for `family`.
#[inline(always)]
pub fn learn_control_socket(family: u8, sk: u64) {
    if let Some(p) = CONTROL_SOCKETS.get_ptr_mut(family_index(family)) {
        unsafe { *p = sk };
    }
}

/// Counts one reset exactly: by (view, cause), by port and by peer (a
/// loopback peer with its namespace `netns`, else 0).
#[inline(always)]
pub fn count(view: u8, cause: u8, port: u16, family: u8, peer: &[u8; 16], netns: u32) {
    let slot = cause::slot(view, cause);
    if !steps::skip("counts") {
        bump(&COUNTS, slot);
    }
    let generation = generation();
    let gen_bit = if generation == 0 { 0 } else { maps::PORT_KEY_GENERATION };
    let pk = maps::port_key(view, cause, port) | gen_bit;
    let hot_pk = maps::HOT_PORT | u64::from(pk);
    if !steps::skip("ports") && !bump_hot(&HOT_PORTS, maps::hot_index(generation, view, pk), &hot_pk, |a, b| a == b) {
        bump_key(&PORTS, &pk, slot);
    }
    let key = PeerKey { view, cause, family, generation, addr: *peer, netns };
    let spread = maps::peer_spread(peer, cause);
    if !steps::skip("peers") && !bump_hot(&HOT_PEERS, maps::hot_index(generation, view, spread), &key, same_peer) {
        bump_key(&PEERS, &key, maps::COUNT_SLOTS + slot);
    }
}

/// Counts the origin of a received RST (`rst_common::origin::judged` views only).
#[inline(always)]
pub fn count_origin(view: u8, cause: u8, origin: u8) {
    bump(&ORIGINS, rst_common::origin::first(view, cause, origin));
}

/// Counts a verdict that later evidence changed.
#[inline(always)]
pub fn count_correction(view: u8, cause: u8, from: u8, to: u8) {
    bump(&ORIGINS, rst_common::origin::correction(view, cause, from, to));
}

/// Counts a socket-bound reset by its socket's cgroup (0: no owner, not counted here).
#[inline(always)]
pub fn count_owner(view: u8, cause: u8, cgroup: u64) {
    if cgroup == 0 {
        return;
    }
    let key = OwnerKey { cgroup, view, cause, generation: generation(), _pad: [0; 5] };
    bump_key(&OWNERS, &key, 2 * maps::COUNT_SLOTS + cause::slot(view, cause));
}

/// The generation keys are counted in now (see `maps::SETTING_GENERATION`).
#[inline(always)]
fn generation() -> u8 {
    SETTINGS.get(maps::SETTING_GENERATION).map_or(0, |v| (*v & 1) as u8)
}

/// Whether tc egress is watching for the stack's replies (see `maps::SETTING_ANNOUNCE`).
#[inline(always)]
pub fn announcing() -> bool {
    SETTINGS.get(maps::SETTING_ANNOUNCE).is_some_and(|v| *v & maps::ANNOUNCE_ON != 0)
}

/// Whether every reply of `family` is announced, so tc egress pairs them.
#[inline(always)]
fn pairing(family: u8) -> bool {
    let bit = if family == crate::proto::AF_INET6 { maps::ANNOUNCE_PAIR_V6 } else { maps::ANNOUNCE_PAIR_V4 };
    SETTINGS.get(maps::SETTING_ANNOUNCE).is_some_and(|v| *v & bit != 0)
}

/// A reply's fingerprint: its ports, the peer address's last 32 bits and
/// a set top bit (never 0). Two replies in flight on one CPU that share it
/// are the same reply for pairing; the worst that can do is pair a skipped
/// run's reply with a stale entry of the same fingerprint (one not counted).
#[inline(always)]
fn reply_print(key: &FlowKey) -> u64 {
    let r = &key.remote;
    let tail = u32::from_be_bytes([r[12], r[13], r[14], r[15]]);
    (1 << 63) | u64::from(key.lport) << 48 | u64::from(key.rport) << 32 | u64::from(tail)
}

/// Notes a reply the stack is about to send, for tc egress to pair with it.
#[inline(always)]
pub fn push_reply(key: &FlowKey) {
    if !pairing(key.family) {
        return;
    }
    if let Some(r) = REPLIES.get_ptr_mut(0) {
        let r = unsafe { &mut *r };
        let i = (r.next as usize) & (maps::REPLY_RING - 1);
        r.prints[i] = reply_print(key);
        r.next = (i + 1) as u64;
    }
}

/// Marks a run of a `sent` program as under way on this CPU; `sent_done` ends it.
#[inline(always)]
pub fn sent_start() {
    if let Some(p) = SENT_RUNNING.get_ptr_mut(0) {
        unsafe { *p += 1 };
    }
}

#[inline(always)]
pub fn sent_done() {
    if let Some(p) = SENT_RUNNING.get_ptr_mut(0) {
        unsafe { *p = (*p).saturating_sub(1) };
    }
}

/// Pairs a reply leaving through the stack's control socket with its
/// announcement; one the stack never announced is a `sent` run the kernel
/// skipped, counted in `UNANNOUNCED` — unless a `sent` program was under way
/// on this CPU (then the kernel counted the skip as a recursion miss).
#[inline(always)]
pub fn pair_reply(key: &FlowKey) {
    if !pairing(key.family) {
        return;
    }
    let Some(r) = REPLIES.get_ptr_mut(0) else { return };
    let r = unsafe { &mut *r };
    let print = reply_print(key);
    let mut i = 0;
    while i < maps::REPLY_RING {
        if r.prints[i] == print {
            r.prints[i] = 0;
            return;
        }
        i += 1;
    }
    if SENT_RUNNING.get(0).is_none_or(|n| *n == 0) {
        bump(&UNANNOUNCED, 0);
    }
}

/// Whether sampled resets should also send packet bytes.
#[inline(always)]
pub fn capturing() -> bool {
    SETTINGS.get(maps::SETTING_CAPTURE).is_some_and(|v| *v != 0)
}

/// Zeroes a ring record with 8-byte stores. (`write_bytes` becomes a call
/// to a byte-at-a-time memset, a loop Linux 5.10's verifier walks again on
/// every path that reaches it: it put `tcp_send_reset` over the 1M limit.)
#[inline(always)]
unsafe fn zero<T>(p: *mut T) {
    const { assert!(size_of::<T>().is_multiple_of(8)) };
    let words = p.cast::<u64>();
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}

/// Sends packet bytes for a reset that was just sampled (the pcap files are
/// a bounded excerpt, the counts are elsewhere; a full ring is counted). `fill`
/// writes `data` in place and returns how many bytes are valid (0: none).
#[inline(always)]
pub fn capture(view: u8, cause: u8, kind: u8, fill: impl FnOnce(&mut [u8; CAPTURE_BYTES]) -> u32) {
    let Some(mut entry) = CAPTURES.reserve::<Capture>(0) else {
        if let Some(st) = STATS.get_ptr_mut(0) {
            add(unsafe { &raw mut (*st).captures_lost });
        }
        return;
    };
    // SAFETY: the reserved record is ours until submit/discard; zeroed before use.
    let c = unsafe {
        let p = entry.as_mut_ptr();
        zero(p);
        &mut *p
    };
    let caplen = fill(&mut c.data);
    if caplen == 0 {
        entry.discard(0);
        return;
    }
    c.ts_ns = unsafe { bpf_ktime_get_ns() };
    c.view = view;
    c.cause = cause;
    c.kind = kind;
    c.caplen = caplen;
    entry.submit(0);
}

/// Sends a sample unless the rate limit or a full ring says no; both are
/// counted. One per-CPU lookup holds the window and the accounting. `fill`
/// writes the sample in place, in the ring (no copy through the small BPF
/// stack). Returns whether the sample went out.
#[inline(always)]
pub fn emit(fill: impl FnOnce(&mut Sample)) -> bool {
    if steps::skip("samples") {
        return false;
    }
    let Some(st) = STATS.get_ptr_mut(0) else { return false };
    let st = unsafe { &mut *st };
    let limit = SETTINGS.get(maps::SETTING_SAMPLE_RATE).map_or(0, |v| u64::from(*v));
    // Past the limit, the clock is read once per jiffy (at most HZ times a
    // second; jiffies64 is inlined, the clock is a helper call): a storm's
    // rate-limited resets pay a compare, and the window still turns within a jiffy.
    if st.window_count >= limit {
        let jiffy = unsafe { bpf_jiffies64() };
        match CLOCK.get_ptr_mut(0) {
            Some(last) if unsafe { *last } != jiffy => unsafe { *last = jiffy },
            _ => {
                add(&raw mut st.rate_limited);
                return false;
            }
        }
    }
    // (bpf_ktime_get_coarse_ns would be cheaper, but tracepoint programs may not call it.)
    let now = unsafe { bpf_ktime_get_ns() };
    if now.wrapping_sub(st.window_start) >= NS_PER_SEC {
        st.window_start = now;
        st.window_count = 0;
    }
    if st.window_count >= limit {
        add(&raw mut st.rate_limited);
        return false;
    }
    st.window_count += 1;
    let Some(mut entry) = SAMPLES.reserve::<Sample>(0) else {
        add(&raw mut st.ring_full);
        return false;
    };
    // SAFETY: the reserved record is ours until submit; zeroed before use.
    let sample = unsafe {
        let p = entry.as_mut_ptr();
        zero(p);
        &mut *p
    };
    fill(sample);
    sample.ts_ns = now;
    entry.submit(0);
    add(&raw mut st.emitted);
    true
}
