//! Who sent a received RST (see `rst_common::origin`). The wire programs
//! keep each peer's handshake TTL (SYNs and SYN-ACKs only: other segments
//! pay one flag test) and judge every RST arriving on a watched interface;
//! the stack programs take that verdict for the RST they then handle, and
//! correct it when the peer keeps talking after it (the stack replies to
//! its segments with no socket: a cold path). Every verdict and every
//! correction is counted in `ORIGINS` (`counters.rs`).

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::map, maps::LruHashMap};
use rst_common::{
    maps::FlowKey,
    origin::{self, BURST_NS, NOT_COUNTED, PeerAddr, PeerTtl, RACE_WINDOW_NS, RecentRst, evidence},
    view,
};

use crate::{config::cfg_get, counters};

#[map]
static PEER_TTLS: LruHashMap<PeerAddr, PeerTtl> = LruHashMap::with_max_entries(origin::PEER_TTL_ENTRIES, 0);
#[map]
static RECENT_RSTS: LruHashMap<FlowKey, RecentRst> = LruHashMap::with_max_entries(origin::RECENT_RST_ENTRIES, 0);

const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
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
    /// Copies the verdict into a sample.
    #[inline(always)]
    pub fn fill(&self, s: &mut rst_common::event::Sample) {
        s.origin = self.origin;
        s.ttl = self.ttl;
        s.base_ttl = self.base_ttl;
        s.evidence = self.evidence;
        s.since_ms = self.since_ms;
    }
}

#[inline(always)]
fn on() -> bool {
    cfg_get!(origin) == 1
}

#[inline(always)]
fn now() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn ms(ns: u64) -> u32 {
    (ns / NS_PER_MS).min(u64::from(u32::MAX)) as u32
}

/// A handshake segment (SYN or SYN-ACK) arrived from `addr` with `ttl`: the
/// peer's own distance. When it changed, and a RST of this peer was judged
/// `middlebox` for arriving with just this TTL, the path had changed: that
/// verdict becomes `peer`.
#[inline(always)]
pub fn handshake(family: u8, addr: &[u8; 16], ttl: u8) {
    if !on() {
        return;
    }
    let key = PeerAddr { family, _pad: [0; 3], addr: *addr };
    let Some(p) = PEER_TTLS.get_ptr_mut(&key) else {
        let _ = PEER_TTLS.insert(&key, &PeerTtl { ttl, ..PeerTtl::default() }, 0);
        return;
    };
    // SAFETY: a map value; other CPUs may write it too (a torn TTL is one wrong baseline, no more).
    let p = unsafe { &mut *p };
    if p.ttl == ttl {
        return;
    }
    p.ttl = ttl;
    if p.middlebox_ttl == ttl {
        p.middlebox_ttl = 0;
        let since = now().wrapping_sub(p.middlebox_ns);
        if since < RACE_WINDOW_NS {
            let flow = p.middlebox_flow;
            if let Some(r) = RECENT_RSTS.get_ptr_mut(&flow) {
                correct(unsafe { &mut *r }, &flow, origin::PEER, evidence::NEW_PATH, ms(since), 0);
            }
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
    let peer = PeerAddr { family: flow.family, _pad: [0; 3], addr: flow.remote };
    let p = PEER_TTLS.get_ptr_mut(&peer);
    let base = p.map_or(0, |p| unsafe { (*p).ttl });
    let mut v = Verdict { origin: origin::by_hops(ttl, base), ttl, base_ttl: base, evidence: 0, since_ms: 0 };
    if v.origin == origin::PEER && origin::hops(ttl) > origin::hops(base) {
        v.evidence |= evidence::PATH_LONGER;
    }
    let t = now();
    // SAFETY: a map value, read at once.
    if let Some(prev_ts) = unsafe { RECENT_RSTS.get(flow) }.map(|r| r.ts_ns) {
        let since = t.wrapping_sub(prev_ts);
        if since < BURST_NS {
            v.evidence |= evidence::AFTER_RST;
            v.since_ms = ms(since);
        }
    }
    let r = RecentRst {
        ts_ns: t,
        seq,
        ttl,
        base_ttl: base,
        origin: v.origin,
        evidence: v.evidence,
        wire_cause: cause,
        received_cause: NOT_COUNTED,
        _pad: [0; 6],
    };
    let _ = RECENT_RSTS.insert(flow, &r, 0);
    if v.origin == origin::MIDDLEBOX
        && let Some(p) = p
    {
        // SAFETY: a map value (see `handshake`).
        let p = unsafe { &mut *p };
        p.middlebox_ttl = ttl;
        p.middlebox_ns = t;
        p.middlebox_flow = *flow;
    }
    v
}

/// The verdict of the RST the stack is handling for `flow` (counted under
/// `received`/`cause`): the wire's, if a watched interface judged it just
/// before; else `unknown`.
#[inline(always)]
pub fn take(flow: &FlowKey, cause: u8) -> Verdict {
    if !on() {
        return Verdict::default();
    }
    let Some(r) = RECENT_RSTS.get_ptr_mut(flow) else { return Verdict::default() };
    // SAFETY: a map value.
    let r = unsafe { &mut *r };
    if r.received_cause != NOT_COUNTED || now().wrapping_sub(r.ts_ns) >= BURST_NS {
        return Verdict::default();
    }
    r.received_cause = cause;
    Verdict { origin: r.origin, ttl: r.ttl, base_ttl: r.base_ttl, evidence: r.evidence, since_ms: 0 }
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
    let Some(r) = RECENT_RSTS.get_ptr_mut(flow) else { return };
    // SAFETY: a map value.
    let r = unsafe { &mut *r };
    let since = now().wrapping_sub(r.ts_ns);
    if r.origin == origin::FORGED || since >= RACE_WINDOW_NS {
        return;
    }
    let distance = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]).wrapping_sub(r.seq) as i32;
    if flags & TCP_SYN == 0 && distance < 0 {
        return; // a retransmission from before the RST
    }
    correct(r, flow, origin::FORGED, 0, ms(since), distance);
}

/// Changes a kept verdict to `to`, counting the correction in each view it
/// was counted in, with one sample saying why.
#[inline(always)]
fn correct(r: &mut RecentRst, flow: &FlowKey, to: u8, why: u8, since_ms: u32, distance: i32) {
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
    let (view, cause) = if r.received_cause != NOT_COUNTED {
        (view::RECEIVED, r.received_cause)
    } else {
        (view::WIRE_IN, r.wire_cause)
    };
    let (ttl, base) = (r.ttl, r.base_ttl);
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
