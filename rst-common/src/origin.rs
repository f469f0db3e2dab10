//! Who sent a received RST (contract §2a): the peer, a middlebox on the
//! path, a forger, or unknown. Codes cross the kernel boundary; never renumber.

use crate::{cause, maps::FlowKey, view};

/// No baseline for the peer (no handshake seen on a watched interface), or origin off.
pub const UNKNOWN: u8 = 0;
/// From as far away as the peer's own handshake segments, or further (a longer path).
pub const PEER: u8 = 1;
/// From fewer hops away than the peer: something on the path between.
pub const MIDDLEBOX: u8 = 2;
/// The peer kept talking after it: it did not reset (data at or past the
/// RST's sequence, or a SYN-ACK after a RST to our SYN).
pub const FORGED: u8 = 3;
/// Number of origins.
pub const COUNT: u8 = 4;

/// Views that get an origin: the RSTs that arrive.
#[must_use]
pub const fn judged(view: u8) -> bool {
    view == view::RECEIVED || view == view::WIRE_IN
}

/// Verdicts as first given, by (view, cause, origin): `ORIGINS[first(..)]`.
#[must_use]
pub const fn first(view: u8, cause: u8, origin: u8) -> u32 {
    cause::slot(view, cause) * COUNT as u32 + (origin % COUNT) as u32
}

/// Slots of first verdicts; corrections follow them.
pub const FIRST_SLOTS: u32 = view::COUNT as u32 * cause::SLOTS as u32 * COUNT as u32;

/// Verdicts later evidence changed, by (view, cause, from, to).
#[must_use]
pub const fn correction(view: u8, cause: u8, from: u8, to: u8) -> u32 {
    FIRST_SLOTS + first(view, cause, from) * COUNT as u32 + (to % COUNT) as u32
}

/// Entries of the `ORIGINS` per-CPU array.
pub const SLOTS: u32 = FIRST_SLOTS * (1 + COUNT as u32);

/// Hops a packet travelled, from its TTL (hop limit) and the usual initial
/// values 64, 128 and 255.
#[must_use]
pub const fn hops(ttl: u8) -> u8 {
    if ttl <= 64 {
        64 - ttl
    } else if ttl <= 128 {
        128 - ttl
    } else {
        255 - ttl
    }
}

/// The verdict of a RST arriving with `ttl` from a peer whose handshake
/// segments arrived with `base` (0: none seen). A box on the path is
/// between us and the peer, so never further away than the peer: a RST
/// from further away means the path got longer, and it is the peer's.
#[must_use]
pub const fn by_hops(ttl: u8, base: u8) -> u8 {
    if base == 0 {
        UNKNOWN
    } else if hops(ttl) < hops(base) {
        MIDDLEBOX
    } else {
        PEER
    }
}

/// `RecentRst::evidence` and `Sample::evidence` bits.
pub mod evidence {
    /// The RST came from further away than the peer's handshake: the path got longer.
    pub const PATH_LONGER: u8 = 1;
    /// Another RST of the flow arrived less than a second before (a burst,
    /// or the exact answer to the challenge ACK an inexact one got).
    pub const AFTER_RST: u8 = 2;
    /// The sample is a correction of an earlier verdict, not a new reset.
    pub const CORRECTION: u8 = 4;
    /// Correction by a handshake from the peer that arrived with the RST's TTL (the path changed).
    pub const NEW_PATH: u8 = 8;
}

/// How long after a RST the peer's talking (or a handshake on the new
/// path) still corrects its verdict.
pub const RACE_WINDOW_NS: u64 = 10_000_000_000;
/// A RST this soon after another of the flow is [`evidence::AFTER_RST`].
pub const BURST_NS: u64 = 1_000_000_000;
/// Not a cause: `RecentRst` has not been counted in that view.
pub const NOT_COUNTED: u8 = 0xff;

/// `RECENT_RSTS` slot: the last RST that arrived on a watched interface for
/// a flow (seen from here) whose [`flow_slot`] is this one, and its verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecentRst {
    pub flow: FlowKey,
    pub ts_ns: u64,
    pub seq: u32,
    pub ttl: u8,
    pub base_ttl: u8,
    pub origin: u8,
    pub evidence: u8,
    /// The causes it was counted under in `wire_in` and `received`, or [`NOT_COUNTED`].
    pub wire_cause: u8,
    pub received_cause: u8,
    pub _pad: [u8; 6],
}
const _: () = assert!(size_of::<RecentRst>() == 64);

/// `PEER_TTLS` slot: the TTL the last handshake segment (SYN or SYN-ACK) of
/// a peer whose [`peer_slot`] is this one arrived with, and the last flow
/// judged `middlebox` for it (a handshake arriving with that RST's TTL later
/// says the path changed).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerTtl {
    /// IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    pub family: u8,
    pub ttl: u8,
    pub middlebox_ttl: u8,
    pub _pad: [u8; 5],
    pub middlebox_ns: u64,
    pub middlebox_flow: FlowKey,
}
const _: () = assert!(size_of::<PeerTtl>() == 72);

/// Slots of the two maps. They are direct-mapped caches (plain arrays, a
/// slot per hash of the key, the newest key wins a slot): a lookup the
/// verifier inlines and a store, no allocation — a SYN flood from spoofed
/// addresses only overwrites slots. They follow today's traffic.
pub const PEER_TTL_SLOTS: u32 = 1 << PEER_TTL_BITS;
pub const PEER_TTL_BITS: u32 = 14;
pub const RECENT_RST_SLOTS: u32 = 1 << RECENT_RST_BITS;
pub const RECENT_RST_BITS: u32 = 13;

/// Fibonacci hashing of a folded key to `bits` bits.
#[must_use]
const fn spread(x: u32, bits: u32) -> u32 {
    x.wrapping_mul(0x9E37_79B1) >> (32 - bits)
}

#[must_use]
const fn word(a: &[u8; 16], i: usize) -> u32 {
    u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
}

/// The `PEER_TTLS` slot of a peer address.
#[must_use]
pub const fn peer_slot(addr: &[u8; 16]) -> u32 {
    spread(word(addr, 0) ^ word(addr, 1) ^ word(addr, 2) ^ word(addr, 3), PEER_TTL_BITS)
}

/// The `RECENT_RSTS` slot of a flow.
#[must_use]
pub const fn flow_slot(f: &FlowKey) -> u32 {
    let ports = ((f.lport as u32) << 16) | f.rport as u32;
    let a = word(&f.remote, 0) ^ word(&f.remote, 1) ^ word(&f.remote, 2) ^ word(&f.remote, 3);
    let b = word(&f.local, 0) ^ word(&f.local, 1) ^ word(&f.local, 2) ^ word(&f.local, 3);
    spread(a ^ b.rotate_left(7) ^ ports, RECENT_RST_BITS)
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for RecentRst {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for PeerTtl {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_from_the_usual_initial_ttls() {
        assert_eq!(hops(64), 0);
        assert_eq!(hops(63), 1);
        assert_eq!(hops(120), 8);
        assert_eq!(hops(255), 0);
        assert_eq!(hops(250), 5);
    }

    #[test]
    fn closer_is_a_middlebox_further_is_a_longer_path() {
        assert_eq!(by_hops(64, 63), MIDDLEBOX);
        assert_eq!(by_hops(63, 63), PEER);
        assert_eq!(by_hops(62, 63), PEER);
        assert_eq!(by_hops(255, 63), MIDDLEBOX, "a box with another initial TTL, next door");
        assert_eq!(by_hops(63, 0), UNKNOWN);
    }

    #[test]
    fn cache_slots_are_in_range_and_spread() {
        let mut used = [false; PEER_TTL_SLOTS as usize];
        for i in 0..=255u8 {
            let slot = peer_slot(&[10, 0, 0, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            assert!(slot < PEER_TTL_SLOTS);
            used[slot as usize] = true;
        }
        assert!(used.iter().filter(|u| **u).count() > 250, "256 neighbours land in as many slots");
        let f = |lport| FlowKey { family: 4, lport, rport: 80, ..FlowKey::default() };
        assert!((0..100).all(|p| flow_slot(&f(p)) < RECENT_RST_SLOTS));
        assert_ne!(flow_slot(&f(1)), flow_slot(&f(2)));
    }

    #[test]
    fn slots_are_distinct_and_in_range() {
        let mut seen = [false; SLOTS as usize];
        for v in 0..view::COUNT {
            for c in 0..cause::SLOTS {
                for o in 0..COUNT {
                    let i = first(v, c, o) as usize;
                    assert!(!seen[i]);
                    seen[i] = true;
                    for t in 0..COUNT {
                        let j = correction(v, c, o, t) as usize;
                        assert!(!seen[j]);
                        seen[j] = true;
                    }
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }
}
