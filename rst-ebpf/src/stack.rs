//! Counting a reset the TCP stack sent or took: one record (counts, owner,
//! origin, sample), the announcement tc egress may need, the trigger's bytes
//! for `--pcap`. Every stack hook (tracepoints, fentry/fexit) counts here.

use aya_ebpf::helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid};
use rst_common::{
    cause,
    config::STATE_SLOTS,
    event::{CAPTURE_BYTES, CAPTURE_TRIGGER, NO_REASON},
    maps, view,
};

use crate::{
    config::cfg_get,
    counters, origin,
    sample::describe,
    sock::{Endpoints, full_socket, kread, kread_bytes, netns, owner_cgroup, slot, sock_endpoints},
    steps,
};

/// Where a reset came from: its socket (0: none), the segment it answers
/// (0: none), the owner of the socket it belongs to (0: none), and its
/// network namespace when already read (0: not yet).
pub(crate) struct Origin {
    pub sk: u64,
    pub skb: u64,
    pub cgroup: u64,
    pub netns: u32,
}

/// Counts and samples one reset; returns whether the sample went out. With
/// `--netns`, only resets in that namespace are counted. The namespace is
/// read only where it is needed: the filter, a loopback peer (a different
/// host in every namespace), a sample that goes out.
#[inline(always)]
pub(crate) fn record(view: u8, cause: u8, e: &Endpoints, reason: u32, state: u8, flags: u8, o: &Origin) -> bool {
    let only = cfg_get!(netns_filter);
    let loopback = maps::is_loopback(e.family, &e.remote);
    let ns = if o.netns != 0 || (only == 0 && !loopback) { o.netns } else { netns(o.sk, o.skb) };
    if only != 0 && ns != only {
        return false;
    }
    // A refused connect() is keyed by the port that refused, not connect()'s ephemeral one.
    let port = if cause == cause::REFUSED { e.rport } else { e.lport };
    counters::count(view, cause, port, e.family, &e.remote, if loopback { ns } else { 0 });
    counters::count_owner(view, cause, o.cgroup);
    let verdict = if view == view::RECEIVED {
        let v = origin::take(e, cause);
        counters::count_origin(view, cause, v.origin);
        v
    } else {
        origin::Verdict::default()
    };
    counters::emit(
        #[inline(always)]
        |s| {
            describe(s, view, cause, flags, reason, e, verdict);
            s.state = state;
            s.cgroup = o.cgroup;
            s.netns = if ns != 0 { ns } else { netns(o.sk, o.skb) };
            if cause::runs_in_process(cause) {
                s.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
                s.comm = bpf_get_current_comm().unwrap_or_default();
            }
        },
    )
}

/// A reply to a segment leaves through the stack's control socket right
/// after it is counted. Once tc egress knows that socket (on this CPU, for
/// this family), the reply's owner says it is the stack's; until then, and
/// for IPv6 replies before 6.13 (no owner), tc looks for it by this tuple.
/// Only replies of the daemon's own namespace can leave its watched
/// interfaces, so only those are announced: an identical tuple in another
/// namespace never crosses; with no interface watched, nothing is. Returns
/// the namespace it read (0: none).
#[inline(always)]
pub(crate) fn announce(e: &Endpoints, sk: u64, skb: u64) -> u32 {
    if steps::skip("announce") || !counters::announcing() || counters::control_socket_known(e.family) {
        return 0;
    }
    let own = cfg_get!(own_netns);
    let ns = if own == 0 { 0 } else { netns(sk, skb) };
    if ns == own {
        counters::announce_stack_rst(e);
    }
    ns
}

/// The triggering segment's bytes from its IP header on, for `--pcap`.
#[inline(always)]
pub(crate) fn capture_trigger(skb: u64, cause: u8) {
    let head: u64 = kread(skb, cfg_get!(skb_head));
    let nh: u16 = kread(skb, cfg_get!(skb_network_header));
    if head == 0 {
        return;
    }
    counters::capture(view::SENT, cause, CAPTURE_TRIGGER, |data| {
        *data = kread_bytes(head + u64::from(nh), 0);
        // IPv4 total length or IPv6 payload length + header: what is valid of the 96 bytes.
        let len = if data[0] >> 4 == 6 {
            u32::from(u16::from_be_bytes([data[4], data[5]])) + 40
        } else {
            u32::from(u16::from_be_bytes([data[2], data[3]]))
        };
        len.min(CAPTURE_BYTES as u32)
    });
}

/// Counts a reset that reached socket `sk` (from `tcp_reset()`, before
/// `tcp_done()`: the state is still the one the reset hit).
#[inline(always)]
pub(crate) fn received(sk: u64) {
    let state: u8 = kread(sk, cfg_get!(sk_state));
    let cause = if let Some(i) = slot(u64::from(state), STATE_SLOTS) { cfg_get!(state_cause[i]) } else { cause::OTHER };
    let cgroup = if full_socket(sk, state) { owner_cgroup(sk) } else { 0 };
    let origin = Origin { sk, skb: 0, cgroup, netns: 0 };
    let _ = record(view::RECEIVED, cause, &sock_endpoints(sk), NO_REASON, state, 0, &origin);
}
