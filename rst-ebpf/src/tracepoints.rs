//! `sent` and `received`: the TCP stack's own view, from the tracepoints
//! `tcp:tcp_send_reset` and `tcp:tcp_receive_reset`. Field offsets come from
//! tracefs and struct offsets from BTF, both through CONFIG.
//! Checked on Linux 6.18 (record layouts changed in 6.10:
//! https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/include/trace/events/tcp.h?h=v6.10).

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::tracepoint,
    programs::TracePointContext,
};
use rst_common::{
    cause,
    config::{ABSENT, REASON_SLOTS, STATE_SLOTS, TpLayout},
    event::{NO_REASON, Sample},
    maps::FlowKey,
    view,
};

use crate::{
    config::{CONFIG, cfg_get},
    counters,
    packet::{AF_INET, AF_INET6},
};

/// Linux ABI address family numbers, as the tracepoints record them.
const LINUX_AF_INET6: u16 = 10;
const TCP_SYN: u8 = 0x02;
const TCPHDR_FLAGS: u64 = 13;

struct Endpoints {
    family: u8,
    local: [u8; 16],
    remote: [u8; 16],
    lport: u16,
    rport: u16,
}

#[inline(always)]
fn field<T: Copy + Default>(ctx: &TracePointContext, off: u32) -> T {
    if off == ABSENT {
        return T::default();
    }
    unsafe { ctx.read_at::<T>(off as usize) }.unwrap_or_default()
}

#[inline(always)]
fn kread<T: Copy + Default>(base: u64, off: u32) -> T {
    if base == 0 || off == ABSENT {
        return T::default();
    }
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T) }.unwrap_or_default()
}

/// Addresses and ports; `saddr` is always the local side (the send tracepoint
/// reverses the triggering segment's tuple itself).
#[inline(always)]
fn endpoints(ctx: &TracePointContext, l: &TpLayout) -> Endpoints {
    let mut e = Endpoints { family: 0, local: [0; 16], remote: [0; 16], lport: 0, rport: 0 };
    if l.sockaddr_form == 1 {
        // struct sockaddr_in / sockaddr_in6: family, port (network order), address.
        let s: [u8; 28] = field_arr(ctx, l.saddr);
        let d: [u8; 28] = field_arr(ctx, l.daddr);
        let fam = u16::from_ne_bytes([s[0], s[1]]);
        e.lport = u16::from_be_bytes([s[2], s[3]]);
        e.rport = u16::from_be_bytes([d[2], d[3]]);
        if fam == LINUX_AF_INET6 {
            e.family = AF_INET6;
            e.local.copy_from_slice(&s[8..24]);
            e.remote.copy_from_slice(&d[8..24]);
        } else {
            e.family = AF_INET;
            e.local[..4].copy_from_slice(&s[4..8]);
            e.remote[..4].copy_from_slice(&d[4..8]);
        }
    } else {
        let fam: u16 = field(ctx, l.family);
        e.lport = field(ctx, l.sport);
        e.rport = field(ctx, l.dport);
        if fam == LINUX_AF_INET6 {
            e.family = AF_INET6;
            e.local = field_arr(ctx, l.saddr_v6);
            e.remote = field_arr(ctx, l.daddr_v6);
        } else {
            e.family = AF_INET;
            let s: [u8; 4] = field_arr(ctx, l.saddr);
            let d: [u8; 4] = field_arr(ctx, l.daddr);
            e.local[..4].copy_from_slice(&s);
            e.remote[..4].copy_from_slice(&d);
        }
    }
    e
}

#[inline(always)]
fn field_arr<const N: usize>(ctx: &TracePointContext, off: u32) -> [u8; N] {
    if off == ABSENT {
        return [0; N];
    }
    unsafe { ctx.read_at::<[u8; N]>(off as usize) }.unwrap_or([0; N])
}

/// Whether the socket had SO_LINGER {on, 0} (SOCK_LINGER set, sk_lingertime 0).
#[inline(always)]
fn lingers_zero(sk: u64) -> bool {
    let bit = cfg_get!(sock_linger_bit);
    if sk == 0 || bit >= 64 {
        return false;
    }
    let flags: u64 = kread(sk, cfg_get!(sk_flags));
    let lingertime: u64 = kread(sk, cfg_get!(sk_lingertime));
    flags & (1 << bit) != 0 && lingertime == 0
}

/// TCP flags of the segment that triggered a socketless reset (`skb->data` is
/// its TCP header when the tracepoint fires).
#[inline(always)]
fn trigger_flags(skb: u64) -> u8 {
    let data: u64 = kread(skb, cfg_get!(skb_data));
    if data == 0 {
        return 0;
    }
    kread(data, TCPHDR_FLAGS as u32)
}

#[inline(always)]
fn sent_cause(reason: u32, sk: u64, skb: u64, flags: u8) -> u8 {
    let marker = if reason == NO_REASON {
        // Kernel without the reason field: all we know is whether a socket existed.
        if sk == 0 { cause::REFINE_BY_SYN } else { cause::LINGER_ELSE_UNSPECIFIED }
    } else if (reason as usize) < REASON_SLOTS {
        cfg_get!(reason_cause[reason as usize])
    } else {
        cause::OTHER
    };
    match marker {
        cause::REFINE_BY_SYN if skb == 0 => cause::UNSPECIFIED,
        cause::REFINE_BY_SYN if flags & TCP_SYN != 0 => cause::CLOSED_PORT,
        cause::REFINE_BY_SYN => cause::STALE_SEGMENT,
        cause::LINGER_ELSE_BAD_STATE | cause::LINGER_ELSE_UNSPECIFIED if lingers_zero(sk) => {
            cause::LINGER_ABORT
        }
        cause::LINGER_ELSE_BAD_STATE => cause::BAD_STATE,
        cause::LINGER_ELSE_UNSPECIFIED => cause::UNSPECIFIED,
        c => c,
    }
}

#[inline(always)]
fn record(view: u8, cause: u8, e: &Endpoints, reason: u32, state: u8, flags: u8) {
    counters::count(view, cause, e.lport, e.family, &e.remote);
    let mut s = Sample {
        local_addr: e.local,
        remote_addr: e.remote,
        local_port: e.lport,
        remote_port: e.rport,
        reason,
        view,
        cause,
        family: e.family,
        state,
        tcp_flags: flags,
        ..Sample::default()
    };
    if cause::runs_in_process(cause) {
        s.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        s.comm = bpf_get_current_comm().unwrap_or_default();
    }
    counters::emit(s);
}

#[tracepoint]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    let l = unsafe { core::ptr::read_volatile(&raw const CONFIG.send) };
    let sk: u64 = field(&ctx, l.skaddr);
    let skb: u64 = field(&ctx, l.skbaddr);
    let reason = if l.reason == ABSENT { NO_REASON } else { field::<u32>(&ctx, l.reason) };
    let flags = if sk == 0 { trigger_flags(skb) } else { 0 };
    let cause = sent_cause(reason, sk, skb, flags);
    let e = endpoints(&ctx, &l);
    if skb != 0 {
        // A reply to a segment: it leaves through the stack's control socket
        // right after this tracepoint, so tc egress will look for it here.
        counters::announce_stack_rst(&FlowKey { family: e.family, _pad: [0; 3], lport: e.lport, rport: e.rport, local: e.local, remote: e.remote });
    }
    record(view::SENT, cause, &e, reason, 0, flags);
    0
}

#[tracepoint]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    let l = unsafe { core::ptr::read_volatile(&raw const CONFIG.recv) };
    let sk: u64 = field(&ctx, l.skaddr);
    // tcp_reset() fires this before tcp_done(): the state is still the one the reset hit.
    let state: u8 = kread(sk, cfg_get!(sk_state));
    let cause = if (state as usize) < STATE_SLOTS {
        cfg_get!(state_cause[state as usize])
    } else {
        cause::OTHER
    };
    let e = endpoints(&ctx, &l);
    record(view::RECEIVED, cause, &e, NO_REASON, state, 0);
    0
}

/// Does nothing: the baseline for measuring the tracepoint hooks' own cost.
#[tracepoint]
pub fn empty_tp(_ctx: TracePointContext) -> u32 {
    0
}
