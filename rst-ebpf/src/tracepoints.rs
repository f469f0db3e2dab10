//! `sent` and `received`: the TCP stack's own view, from the tracepoints
//! `tcp:tcp_send_reset(sk, skb, reason)` and `tcp:tcp_receive_reset(sk)`,
//! attached as BTF tracepoints (tp_btf). Unlike classic tracepoint programs,
//! these are not skipped while a bpf() syscall runs on the same CPU (the
//! daemon reading its maps), so no reset goes uncounted. Struct offsets come
//! from BTF through CONFIG. Checked on Linux 6.18:
//! https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/include/trace/events/tcp.h?h=v6.18

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use rst_common::{
    cause,
    config::{ABSENT, DROP_REASON_BYTES, REASON_SLOTS, STATE_SLOTS},
    event::{CAPTURE_BYTES, CAPTURE_TRIGGER, NO_REASON},
    maps::{self, FlowKey},
    view,
};

use crate::{
    callsite,
    config::cfg_get,
    counters, origin,
    proto::{
        AF_INET, AF_INET6, LINUX_AF_INET6, TCP_LISTEN, TCP_NEW_SYN_RECV, TCP_RST, TCP_SYN, TCP_TIME_WAIT, TCPHDR_FLAGS,
    },
    steps,
};

/// A reset's tuple seen from here (local, remote): the same layout as the
/// map key, so it is one without a copy on the small BPF stack.
pub(crate) type Endpoints = FlowKey;

/// No tuple yet (IPv4, zeros).
const NO_ENDPOINTS: Endpoints =
    FlowKey { family: AF_INET, _pad: [0; 3], lport: 0, rport: 0, local: [0; 16], remote: [0; 16] };

#[inline(always)]
pub(crate) fn kread<T: Copy + Default>(base: u64, off: u32) -> T {
    if base == 0 || off == ABSENT {
        return T::default();
    }
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T) }.unwrap_or_default()
}

#[inline(always)]
fn kread_bytes<const N: usize>(base: u64, off: u32) -> [u8; N] {
    if base == 0 || off == ABSENT {
        return [0; N];
    }
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const [u8; N]) }.unwrap_or([0; N])
}

/// `v` as a table index when below `len`. Works in 64-bit registers, so the
/// verifier keeps the bound (a 32-bit value re-extended after a spill loses it).
#[inline(always)]
fn slot(v: u64, len: usize) -> Option<usize> {
    // One opaque 64-bit load: compare and index use this very register.
    let v = unsafe { core::ptr::read_volatile(&raw const v) };
    (v < len as u64).then_some(v as usize)
}

/// `sk_fullsock()`: a socket that is neither a timewait nor a request socket
/// (those are smaller structs with no owner, options or user tuple).
#[inline(always)]
pub(crate) fn full_socket(sk: u64, state: u8) -> bool {
    sk != 0 && state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV
}

/// Address of the TCP header of a segment in the stack (`head +
/// transport_header`), 0 if unknown.
#[inline(always)]
pub(crate) fn tcp_header(skb: u64) -> u64 {
    let head: u64 = kread(skb, cfg_get!(skb_head));
    let th_off: u16 = kread(skb, cfg_get!(skb_transport_header));
    if head == 0 { 0 } else { head + u64::from(th_off) }
}

/// A full socket's own tuple.
#[inline(always)]
fn sock_endpoints(sk: u64) -> Endpoints {
    let mut e = NO_ENDPOINTS;
    e.lport = u16::from_be(kread(sk, cfg_get!(inet_sport)));
    e.rport = u16::from_be(kread(sk, cfg_get!(sk_dport)));
    if kread::<u16>(sk, cfg_get!(sk_family)) == LINUX_AF_INET6 {
        e.family = AF_INET6;
        e.local = kread_bytes(sk, cfg_get!(sk_v6_rcv_saddr));
        e.remote = kread_bytes(sk, cfg_get!(sk_v6_daddr));
    } else {
        e.local[..4].copy_from_slice(&kread_bytes::<4>(sk, cfg_get!(sk_rcv_saddr)));
        e.remote[..4].copy_from_slice(&kread_bytes::<4>(sk, cfg_get!(sk_daddr)));
    }
    e
}

/// The first bytes of a TCP header, through the flags: ports, sequence
/// and acknowledgment numbers, data offset and flags. Zeros if unknown.
pub(crate) type TcpStart = [u8; 14];

/// One read of a TCP header's first bytes (`th` 0: zeros).
#[inline(always)]
pub(crate) fn tcp_start(th: u64) -> TcpStart {
    kread_bytes(th, 0)
}

/// The flags byte of a [`TcpStart`].
#[inline(always)]
pub(crate) fn tcp_flags(t: &TcpStart) -> u8 {
    t[TCPHDR_FLAGS as usize]
}

/// The tuple of an incoming segment seen from here (its destination is our
/// local end): the reset a socketless reply answers, or a dropped RST. `tcp`
/// is the start of its TCP header. The IP header is one read: 40 bytes are
/// there for every TCP segment the stack handles (an IPv4 header is followed
/// by at least the TCP header).
#[inline(always)]
pub(crate) fn skb_endpoints(skb: u64, tcp: &TcpStart) -> Endpoints {
    let mut e = NO_ENDPOINTS;
    let head: u64 = kread(skb, cfg_get!(skb_head));
    let nh: u16 = kread(skb, cfg_get!(skb_network_header));
    let iph = if head == 0 { 0 } else { head + u64::from(nh) };
    let ip: [u8; 40] = kread_bytes(iph, 0);
    if ip[0] >> 4 == 6 {
        e.family = AF_INET6;
        e.remote.copy_from_slice(&ip[8..24]);
        e.local.copy_from_slice(&ip[24..40]);
    } else {
        e.remote[..4].copy_from_slice(&ip[12..16]);
        e.local[..4].copy_from_slice(&ip[16..20]);
    }
    e.rport = u16::from_be_bytes([tcp[0], tcp[1]]);
    e.lport = u16::from_be_bytes([tcp[2], tcp[3]]);
    e
}

/// The cgroup v2 id of a full socket's owner (`sk_cgrp_data.cgroup->kn->id`), 0 if unknown.
#[inline(always)]
pub(crate) fn owner_cgroup(sk: u64) -> u64 {
    let cgrp: u64 = kread(sk, cfg_get!(sk_cgroup));
    let kn: u64 = kread(cgrp, cfg_get!(cgroup_kn));
    kread(kn, cfg_get!(kn_id))
}

/// Inode of a socket's network namespace, else of the device a segment came
/// in on; 0 if unknown.
#[inline(always)]
fn netns(sk: u64, skb: u64) -> u32 {
    let net: u64 = if sk != 0 {
        kread(sk, cfg_get!(sk_net))
    } else {
        let dev: u64 = kread(skb, cfg_get!(skb_dev));
        kread(dev, cfg_get!(dev_net))
    };
    kread(net, cfg_get!(net_inum))
}

/// Whether close() is sending this reset because of SO_LINGER {on, 0}
/// (SOCK_LINGER set, sk_lingertime 0): close() marks the socket
/// SHUTDOWN_MASK before it disconnects; connect(AF_UNSPEC) (tcp_disconnect)
/// and sock_destroy (tcp_abort, `ss -K`) leave it as the process had it.
#[inline(always)]
pub(crate) fn closed_with_linger_zero(sk: u64) -> bool {
    const SHUTDOWN_MASK: u8 = 3;
    let bit = cfg_get!(sock_linger_bit);
    if sk == 0 || bit >= 64 {
        return false;
    }
    let flags: u64 = kread(sk, cfg_get!(sk_flags));
    let lingertime: u64 = kread(sk, cfg_get!(sk_lingertime));
    let shutdown: u8 = kread(sk, cfg_get!(sk_shutdown));
    flags & (1 << bit) != 0 && lingertime == 0 && shutdown & SHUTDOWN_MASK == SHUTDOWN_MASK
}

#[inline(always)]
fn sent_cause(reason: u32, sk: u64, th: u64, flags: u8) -> u8 {
    let marker = if reason == NO_REASON {
        // Kernel without the reason argument: all we know is whether a socket existed.
        if sk == 0 { cause::REFINE_BY_SYN } else { cause::LINGER_ELSE_UNSPECIFIED }
    } else if let Some(i) = slot(u64::from(reason), REASON_SLOTS) {
        cfg_get!(reason_cause[i])
    } else {
        cause::OTHER
    };
    match marker {
        cause::REFINE_BY_SYN if th == 0 => cause::UNSPECIFIED,
        cause::REFINE_BY_SYN if flags & TCP_SYN != 0 => cause::CLOSED_PORT,
        cause::REFINE_BY_SYN => cause::STALE_SEGMENT,
        cause::LINGER_ELSE_BAD_STATE | cause::LINGER_ELSE_UNSPECIFIED if closed_with_linger_zero(sk) => {
            cause::LINGER_ABORT
        }
        cause::LINGER_ELSE_BAD_STATE => cause::BAD_STATE,
        cause::LINGER_ELSE_UNSPECIFIED => cause::UNSPECIFIED,
        c => c,
    }
}

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
    let verdict = if view == view::RECEIVED { origin::take(e, cause) } else { origin::Verdict::default() };
    if view == view::RECEIVED {
        counters::count_origin(view, cause, verdict.origin);
    }
    counters::emit(
        #[inline(always)]
        |s| {
            verdict.fill(s);
            s.local_addr = e.local;
            s.remote_addr = e.remote;
            s.local_port = e.lport;
            s.remote_port = e.rport;
            s.reason = reason;
            s.view = view;
            s.cause = cause;
            s.family = e.family;
            s.state = state;
            s.tcp_flags = flags;
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

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let reason = if cfg_get!(has_reason) == 1 { ctx.arg::<u32>(2) } else { NO_REASON };
    // The segment that triggered a reply (NULL for resets a socket sends by itself).
    let th: u64 = kread(skb, cfg_get!(skb_data));
    let tcp = tcp_start(th);
    let flags = tcp_flags(&tcp);
    let cause = sent_cause(reason, sk, th, flags);
    let state: u8 = kread(sk, cfg_get!(sk_state));
    let full = full_socket(sk, state);
    // Without the kernel's reason (< 6.10), a full socket's reset is named by its call site.
    let cause = if full && cfg_get!(call_sites) == 1 { callsite::take(sk) } else { cause };
    // A connected full socket's own tuple; else the segment's: timewait and
    // request sockets have no inet_sport, and a listener (answering an ACK
    // or a bad handshake segment) has no peer — its owner is still the listener's.
    let connected = full && state != TCP_LISTEN;
    let e = if connected || skb == 0 {
        sock_endpoints(sk)
    } else if steps::skip("endpoints") {
        NO_ENDPOINTS
    } else {
        skb_endpoints(skb, &tcp)
    };
    let netns = if skb == 0 { 0 } else { announce(&e, sk, skb) };
    if sk == 0 && skb != 0 {
        origin::talking(&e, &tcp);
    }
    let origin = Origin { sk, skb, cgroup: if full { owner_cgroup(sk) } else { 0 }, netns };
    if record(view::SENT, cause, &e, reason, 0, flags, &origin) && skb != 0 && counters::capturing() {
        capture_trigger(skb, cause);
    }
    0
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    received(ctx.arg(0));
    0
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

/// `received`/`rejected_invalid`: an RST the stack dropped as invalid (out of
/// window, not the exact sequence, PAWS) — blind or injected resets, or a
/// middlebox. From `skb:kfree_skb`, filtered by drop reasons named in BTF.
#[btf_tracepoint(function = "kfree_skb")]
pub fn kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let reason = ctx.arg::<u64>(2) & 0xffff_ffff;
    let Some(byte) = slot(reason >> 3, DROP_REASON_BYTES) else { return 0 };
    if cfg_get!(rst_drop_reasons[byte]) & (1 << (reason & 7)) == 0 {
        return 0;
    }
    let skb: u64 = ctx.arg(0);
    let tcp = tcp_start(tcp_header(skb));
    let flags = tcp_flags(&tcp);
    if flags & TCP_RST == 0 {
        return 0;
    }
    // The socket it was for (>= 6.11): its namespace and owner. The branch
    // the kernel lacks the argument for is pruned (CONFIG is read-only).
    let sk: u64 = if cfg_get!(kfree_rx_sk) == 1 { ctx.arg(3) } else { 0 };
    let state: u8 = kread(sk, cfg_get!(sk_state));
    let full = full_socket(sk, state);
    let origin = Origin { sk, skb, cgroup: if full { owner_cgroup(sk) } else { 0 }, netns: 0 };
    let _ =
        record(view::RECEIVED, cause::REJECTED_INVALID, &skb_endpoints(skb, &tcp), NO_REASON, state, flags, &origin);
    0
}

/// Do nothing: the baselines for measuring the tracepoint hooks' own cost.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn empty_tp_send(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn empty_tp_receive(_ctx: BtfTracePointContext) -> i32 {
    0
}
