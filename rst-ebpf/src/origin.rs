//! Who sent a received RST (see `rst_common::origin`). The wire programs
//! keep each peer's handshake TTL (SYNs and SYN-ACKs only: other segments
//! pay one flag test) and judge every RST arriving on a watched interface;
//! the stack programs take that verdict for the RST they then handle, and
//! correct it when the peer keeps talking after it (the stack replies to
//! its segments with no socket: a cold path). Every verdict and every
//! correction is counted in `ORIGINS` (`counters.rs`).

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::map, maps::Array};
use rst_common::{
    maps::FlowKey,
    origin::{self, BURST_NS, NOT_COUNTED, PeerTtl, RACE_WINDOW_NS, RecentRst, evidence},
    view,
};

use crate::{
    config::cfg_get,
    counters,
    proto::{TCP_ACK, TCP_RST, TCP_SYN},
};

/// Direct-mapped caches (see `origin::PEER_TTL_SLOTS`): a slot holds the
/// newest key of its hash, compared in full before use. CPUs write them
/// without locks: a slot torn by two writers at once is one wrong baseline
/// or verdict, never a wrong count.
#[map]
static PEER_TTLS: Array<PeerTtl> = Array::with_max_entries(origin::PEER_TTL_SLOTS, 0);
#[map]
static RECENT_RSTS: Array<RecentRst> = Array::with_max_entries(origin::RECENT_RST_SLOTS, 0);

const NS_PER_MS: u64 = 1_000_000;

/// A verdict and the evidence that decided it, for the sample.
#[derive(Clone, Copy, Default)]
pub struct Verdict {
    pub origin: u8,
    pub ttl: u8,
    pub base_ttl: u8,
    pub evidence: u8,
    pub since_ms: u32,
}

impl Verdict {
    /// The verdict as kept in its slot, read back from map memory: the
    /// verifier then carries unknown values, not each branch's constants
    /// (which multiplied the XDP program's states past 1M instructions).
    #[inline(always)]
    fn kept(r: &RecentRst, since_ms: u32) -> Self {
        // SAFETY: reads of a map value's fields.
        unsafe {
            Self {
                origin: core::ptr::read_volatile(&raw const r.origin) % origin::COUNT,
                ttl: core::ptr::read_volatile(&raw const r.ttl),
                base_ttl: core::ptr::read_volatile(&raw const r.base_ttl),
                evidence: core::ptr::read_volatile(&raw const r.evidence),
                since_ms,
            }
        }
    }

    /// Copies the verdict into a sample.
    #[inline(always)]
    pub fn fill(self, s: &mut rst_common::event::Sample) {
        s.origin = self.origin;
        s.ttl = self.ttl;
        s.base_ttl = self.base_ttl;
        s.evidence = self.evidence;
        s.since_ms = self.since_ms;
    }
}

#[inline(always)]
fn now() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn ms(ns: u64) -> u32 {
    (ns / NS_PER_MS).min(u64::from(u32::MAX)) as u32
}

/// Whether origin is on (a load-time constant: the branch it guards is pruned).
#[inline(always)]
pub fn on() -> bool {
    cfg_get!(origin) == 1
}

/// Equality in one branch (see `counters::same_peer`).
#[inline(always)]
fn same<const W: usize, T>(a: &T, b: &T) -> bool {
    let words = |k: &T| unsafe { core::ptr::read_unaligned(core::ptr::from_ref(k).cast::<[u32; W]>()) };
    let (a, b) = (words(a), words(b));
    let mut diff = 0;
    let mut i = 0;
    while i < W {
        diff |= a[i] ^ b[i];
        i += 1;
    }
    diff == 0
}

#[inline(always)]
fn same_flow(a: &FlowKey, b: &FlowKey) -> bool {
    same::<10, FlowKey>(a, b)
}

#[inline(always)]
fn same_addr(family: u8, addr: &[u8; 16], p: &PeerTtl) -> bool {
    p.family == family && same::<4, [u8; 16]>(addr, &p.addr)
}

/// The recent RST of `flow`, if its slot holds that flow.
#[inline(always)]
fn recent(flow: &FlowKey) -> Option<&'static mut RecentRst> {
    let r = RECENT_RSTS.get_ptr_mut(origin::flow_slot(flow))?;
    // SAFETY: a map value, valid for the program's run.
    let r = unsafe { &mut *r };
    same_flow(&r.flow, flow).then_some(r)
}

/// A handshake segment (SYN or SYN-ACK) arrived from `addr` with `ttl`: the
/// peer's own distance. When it changed, and a RST of this peer was judged
/// `middlebox` for arriving with just this TTL, the path had changed: that
/// verdict becomes `peer`. (Call only when [`on`].)
#[inline(always)]
pub fn handshake(family: u8, addr: &[u8; 16], ttl: u8) {
    let Some(p) = PEER_TTLS.get_ptr_mut(origin::peer_slot(addr)) else { return };
    // SAFETY: a map value, valid for the program's run.
    let p = unsafe { &mut *p };
    if p.ttl == ttl && same_addr(family, addr, p) {
        return; // the common case: a peer seen before, on the same path
    }
    if !same_addr(family, addr, p) {
        // A new peer takes the slot.
        p.addr = *addr;
        p.family = family;
        p.ttl = ttl;
        p.middlebox_ttl = 0;
        return;
    }
    p.ttl = ttl;
    if p.middlebox_ttl == ttl {
        p.middlebox_ttl = 0;
        let since = now().wrapping_sub(p.middlebox_ns);
        let flow = p.middlebox_flow;
        if since < RACE_WINDOW_NS
            && let Some(r) = recent(&flow)
        {
            correct(r, origin::PEER, evidence::NEW_PATH, ms(since), 0);
        }
    }
}

/// Judges a RST that arrived on a watched interface (`wire_in`, counted
/// under `cause`) by the TTL of its peer's handshake, and keeps the verdict
/// for the stack and for later evidence.
#[inline(always)]
pub fn judge(flow: &FlowKey, seq: u32, ttl: u8, cause: u8) -> Verdict {
    if !on() {
        return Verdict::default();
    }
    let p = PEER_TTLS
        .get_ptr_mut(origin::peer_slot(&flow.remote))
        // SAFETY: a map value, valid for the program's run.
        .map(|p| unsafe { &mut *p })
        .filter(|p| same_addr(flow.family, &flow.remote, p));
    let base = p.as_ref().map_or(0, |p| p.ttl);
    let mut v = Verdict { origin: origin::by_hops(ttl, base), ttl, base_ttl: base, evidence: 0, since_ms: 0 };
    if v.origin == origin::PEER && origin::hops(ttl) > origin::hops(base) {
        v.evidence |= evidence::PATH_LONGER;
    }
    let t = now();
    let Some(r) = RECENT_RSTS.get_ptr_mut(origin::flow_slot(flow)) else { return v };
    // SAFETY: a map value, valid for the program's run.
    let r = unsafe { &mut *r };
    let since = t.wrapping_sub(r.ts_ns);
    if same_flow(&r.flow, flow) && since < BURST_NS {
        v.evidence |= evidence::AFTER_RST;
        v.since_ms = ms(since);
    }
    r.flow = *flow;
    r.ts_ns = t;
    r.seq = seq;
    r.ttl = ttl;
    r.base_ttl = base;
    r.origin = v.origin;
    r.evidence = v.evidence;
    r.wire_cause = cause;
    r.received_cause = NOT_COUNTED;
    if v.origin == origin::MIDDLEBOX
        && let Some(p) = p
    {
        p.middlebox_ttl = ttl;
        p.middlebox_ns = t;
        p.middlebox_flow = *flow;
    }
    Verdict::kept(r, v.since_ms)
}

/// The verdict of the RST the stack is handling for `flow` (counted under
/// `received`/`cause`): the wire's, if a watched interface judged it just
/// before; else `unknown`.
#[inline(always)]
pub fn take(flow: &FlowKey, cause: u8) -> Verdict {
    if !on() {
        return Verdict::default();
    }
    let Some(r) = recent(flow) else { return Verdict::default() };
    if r.received_cause != NOT_COUNTED || now().wrapping_sub(r.ts_ns) >= BURST_NS {
        return Verdict::default();
    }
    r.received_cause = cause;
    Verdict::kept(r, 0)
}

/// A segment of `flow` reached no socket (the stack answers it with a
/// RST): if a RST of the flow was accepted shortly before and this
/// segment is at or past its sequence (or is a SYN-ACK), the peer is
/// still talking: that RST was forged. `tcp`: the segment's first 14 bytes.
#[inline(always)]
pub fn talking(flow: &FlowKey, tcp: &[u8; 14]) {
    let flags = tcp[13];
    // A RST answers nothing; a SYN without ACK opens a new connection (a SYN
    // flood to a closed port stops here, before any lookup).
    if !on() || flags & TCP_RST != 0 || flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
        return;
    }
    let Some(r) = recent(flow) else { return };
    let since = now().wrapping_sub(r.ts_ns);
    if r.origin == origin::FORGED || since >= RACE_WINDOW_NS {
        return;
    }
    let distance = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]).wrapping_sub(r.seq) as i32;
    if flags & TCP_SYN == 0 && distance < 0 {
        return; // a retransmission from before the RST
    }
    correct(r, origin::FORGED, 0, ms(since), distance);
}

/// Changes a kept verdict to `to`, counting the correction in each view it
/// was counted in, with one sample saying why.
#[inline(always)]
fn correct(r: &mut RecentRst, to: u8, why: u8, since_ms: u32, distance: i32) {
    let from = r.origin;
    if from == to {
        return;
    }
    r.origin = to;
    if r.wire_cause != NOT_COUNTED {
        counters::count_correction(view::WIRE_IN, r.wire_cause, from, to);
    }
    if r.received_cause != NOT_COUNTED {
        counters::count_correction(view::RECEIVED, r.received_cause, from, to);
    }
    let (view, cause) = if r.received_cause == NOT_COUNTED {
        (view::WIRE_IN, r.wire_cause)
    } else {
        (view::RECEIVED, r.received_cause)
    };
    let (ttl, base, flow) = (r.ttl, r.base_ttl, &r.flow);
    let _ = counters::emit(
        #[inline(always)]
        |s| {
            s.local_addr = flow.local;
            s.remote_addr = flow.remote;
            s.local_port = flow.lport;
            s.remote_port = flow.rport;
            s.reason = rst_common::event::NO_REASON;
            s.view = view;
            s.cause = cause;
            s.family = flow.family;
            s.origin = to;
            s.ttl = ttl;
            s.base_ttl = base;
            s.evidence = evidence::CORRECTION | why;
            s.corrected_from = from;
            s.since_ms = since_ms;
            s.seq_distance = distance;
        },
    );
}
