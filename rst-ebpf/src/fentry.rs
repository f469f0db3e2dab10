//! fentry programs where the tracepoints fall short.
//!
//! `sent` resets with no full socket on kernels before 6.10: a SYN to a
//! closed port, a segment for a connection that is gone, a TIME_WAIT reply.
//! There `tcp:tcp_send_reset` fires only `if (sk && sk_fullsock(sk))`, so
//! these are counted at the entry of `tcp_v4_send_reset` /
//! `tcp_v6_send_reset`, repeating the function's own checks that return
//! before a reset is sent (never a reset in reply to a reset; without a
//! socket, only for a segment routed to this host). Full sockets are left to
//! the tracepoint, so no reset is counted twice. Attached only where the
//! tracepoint lacks `reason` (< 6.10; both arrived in 6.10). Checked against:
//! https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/net/ipv4/tcp_ipv4.c?h=v6.1
//! https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/net/ipv6/tcp_ipv6.c?h=v5.10
//! and in the kernel matrix on Debian's 5.10 and 6.1.

use aya_ebpf::{
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use rst_common::{cause, config::ABSENT, event::NO_REASON, view};

use crate::{
    config::cfg_get,
    counters,
    proto::{TCP_NEW_SYN_RECV, TCP_RST, TCP_SYN, TCP_TIME_WAIT, TCPHDR_FLAGS},
    sock::{full_socket, kread, owner_cgroup, skb_endpoints, tcp_flags, tcp_header, tcp_start},
    stack::{Origin, announce, capture_trigger, received, record},
};

/// `enum rtn_type` and `RTF_LOCAL` are UAPI (include/uapi/linux/rtnetlink.h, ipv6_route.h).
const RTN_LOCAL: u16 = 2;
const RTF_LOCAL: u32 = 0x8000_0000;
/// `SKB_DST_NOREF`: the low bit of `_skb_refdst` is a flag, not address.
const SKB_DST_NOREF: u64 = 1;

/// Whether a segment with no socket was routed to this host: `tcp_v4_send_reset`
/// returns unless `rt_type == RTN_LOCAL`, `tcp_v6_send_reset` unless the route is `RTF_LOCAL`.
#[inline(always)]
fn routed_here(skb: u64, v6: bool) -> bool {
    let refdst = cfg_get!(skb_refdst);
    if refdst == ABSENT {
        return true;
    }
    let dst = kread::<u64>(skb, refdst) & !SKB_DST_NOREF;
    if v6 {
        cfg_get!(rt6i_flags) == ABSENT || kread::<u32>(dst, cfg_get!(rt6i_flags)) & RTF_LOCAL != 0
    } else {
        cfg_get!(rt_type) == ABSENT || kread::<u16>(dst, cfg_get!(rt_type)) == RTN_LOCAL
    }
}

#[inline(always)]
fn send_reset(ctx: &FEntryContext, v6: bool) {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let state: u8 = kread(sk, cfg_get!(sk_state));
    if full_socket(sk, state) {
        return; // the tracepoint counts it
    }
    let th = tcp_header(skb);
    if th == 0 {
        return;
    }
    let tcp = tcp_start(th);
    let flags = tcp_flags(&tcp);
    if flags & TCP_RST != 0 || (sk == 0 && !routed_here(skb, v6)) {
        return; // the kernel sends nothing
    }
    let cause = if sk == 0 {
        if flags & TCP_SYN != 0 { cause::CLOSED_PORT } else { cause::STALE_SEGMENT }
    } else if state == TCP_TIME_WAIT {
        cause::TIMEWAIT_SOCKET
    } else {
        cause::UNSPECIFIED
    };
    let e = skb_endpoints(skb, &tcp);
    let netns = announce(&e, sk, skb);
    if sk == 0 {
        crate::origin::talking(&e, &tcp);
    }
    if record(view::SENT, cause, &e, NO_REASON, 0, flags, &Origin { sk, skb, cgroup: 0, netns })
        && counters::capturing()
    {
        capture_trigger(skb, cause);
    }
    counters::push_reply(&e);
}

#[fentry(function = "tcp_v4_send_reset")]
pub fn sent_no_full_socket_v4(ctx: FEntryContext) -> i32 {
    counters::sent_start();
    send_reset(&ctx, false);
    counters::sent_done();
    0
}

#[fentry(function = "tcp_v6_send_reset")]
pub fn sent_no_full_socket_v6(ctx: FEntryContext) -> i32 {
    counters::sent_start();
    send_reset(&ctx, true);
    counters::sent_done();
    0
}

/// `received`: `tcp_reset(sk, skb)` (kernels >= 5.12), counted only when the
/// segment has RST. The kernel also calls it on its own socket when data
/// reaches an orphan (it sends a RST, TCPAbortOnData): no RST arrived then.
/// Checked against:
/// https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/net/ipv4/tcp_input.c?h=v6.1
#[fentry(function = "tcp_reset")]
pub fn received_rst(ctx: FEntryContext) -> i32 {
    if kread::<u8>(tcp_header(ctx.arg(1)), TCPHDR_FLAGS) & TCP_RST != 0 {
        received(ctx.arg(0));
    }
    0
}

/// `received`/`reset_in_handshake` for a request socket (NEW_SYN_RECV): a RST
/// in window makes `tcp_check_req(listener, skb, req, fastopen, ...)` drop
/// the request (`inet_csk_reqsk_queue_drop`, EmbryonicRsts) without
/// `tcp_reset()`; one out of window leaves it hashed. TCP Fast Open
/// children do go through `tcp_reset()` (counted there). Checked against:
/// https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/net/ipv4/tcp_minisocks.c?h=v6.1
#[fexit(function = "tcp_check_req")]
pub fn received_in_handshake(ctx: FExitContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let req: u64 = ctx.arg(2);
    let fastopen: u8 = ctx.arg(3);
    let off = cfg_get!(req_hash_pprev);
    let th = tcp_header(skb);
    if fastopen != 0 || off == ABSENT || th == 0 {
        return 0;
    }
    let tcp = tcp_start(th);
    let flags = tcp_flags(&tcp);
    if flags & TCP_RST == 0 || kread::<u64>(req, off) != 0 {
        return 0;
    }
    let origin = Origin { sk, skb, cgroup: owner_cgroup(sk), netns: 0 };
    let _ = record(
        view::RECEIVED,
        cause::RESET_IN_HANDSHAKE,
        &skb_endpoints(skb, &tcp),
        NO_REASON,
        TCP_NEW_SYN_RECV,
        flags,
        &origin,
    );
    0
}
