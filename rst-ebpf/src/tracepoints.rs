//! `sent` and `received`: the TCP stack's own view, from the tracepoints
//! `tcp:tcp_send_reset(sk, skb, reason)` and `tcp:tcp_receive_reset(sk)`,
//! attached as BTF tracepoints (tp_btf). Unlike classic tracepoint programs,
//! these are not skipped while a bpf() syscall runs on the same CPU (the
//! daemon reading its maps), so no reset goes uncounted. Struct offsets come
//! from BTF through CONFIG. Checked on Linux 6.18:
//! https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/include/trace/events/tcp.h?h=v6.18

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use rst_common::{
    cause,
    config::{DROP_REASON_BYTES, REASON_SLOTS},
    event::NO_REASON,
    view,
};

use crate::{
    callsite,
    config::cfg_get,
    counters, origin,
    proto::{TCP_LISTEN, TCP_RST, TCP_SYN},
    sock::{
        NO_ENDPOINTS, closed_with_linger_zero, full_socket, kread, owner_cgroup, skb_endpoints, slot, sock_endpoints,
        tcp_flags, tcp_header, tcp_start,
    },
    stack::{Origin, announce, capture_trigger, received, record},
    steps,
};

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

#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    counters::sent_start();
    send_reset(&ctx);
    counters::sent_done();
    0
}

#[inline(always)]
fn send_reset(ctx: &BtfTracePointContext) {
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
    if skb != 0 {
        counters::push_reply(&e);
    }
}

#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    received(ctx.arg(0));
    0
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
