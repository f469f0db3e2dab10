//! `sent` causes of socket resets by call site, on kernels without `enum
//! sk_rst_reason` (< 6.10). Each caller of the reset senders still means one
//! reason there; 6.10 only made it an argument. The caller is the kernel
//! frame right after the sender (`rst_common::site`), and within a caller the
//! reason is what the caller itself tested before it sent, read back from
//! the socket and the segment. Checked against Debian's 5.10, 6.1 and 6.12
//! sources (net/ipv4/tcp.c, tcp_timer.c, tcp_input.c, tcp_ipv4.c,
//! tcp_minisocks.c, net/ipv6/tcp_ipv6.c) and in the kernel matrix.
//! Only full sockets come here: the cold path, never the socketless storm.
//!
//! A program of its own on `tcp:tcp_send_reset`, attached only on those
//! kernels and before the counting one, which takes the cause it leaves
//! (so the counting program, near the old verifiers' limits, stays as small
//! as it was). Per CPU the causes form a short stack: a reset that
//! interrupts another between the two programs pushes and takes its own.

use aya_ebpf::{
    EbpfContext,
    helpers::generated::bpf_get_stack,
    macros::{btf_tracepoint, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use rst_common::{
    cause,
    config::ABSENT,
    site::{self, BUCKET_SHIFT, FRAMES},
};

use crate::{
    config::cfg_get,
    proto::{TCP_ACK, TCP_CLOSE, TCP_FIN_WAIT2, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT},
    sock::{TcpStart, closed_with_linger_zero, full_socket, kread, tcp_flags, tcp_start},
};

/// TCP states the callers test (UAPI `BPF_TCP_*`; LISTEN and the others
/// the tracepoints test are in tracepoints.rs).
/// `sk_shutdown` bit set by shutdown(SHUT_WR) and close().
const SEND_SHUTDOWN: u8 = 2;

#[map]
static UNKNOWN_SITE: Array<u64> = Array::with_max_entries(1, 0);

/// Nesting this deep between the two programs on one CPU (process context,
/// softirq, hardirq, NMI) is more than the kernel can do.
const DEPTH: usize = 4;

/// Causes on their way from `sent_call_site` to `tcp_send_reset`, per CPU.
#[repr(C)]
#[derive(Clone, Copy)]
struct Pending {
    depth: u64,
    sk: [u64; DEPTH],
    cause: [u64; DEPTH],
}

#[map]
static PENDING: PerCpuArray<Pending> = PerCpuArray::with_max_entries(1, 0);

/// Sized by the daemon to its table.
#[map]
static SITES: HashMap<u64, u64> = HashMap::with_max_entries(1, 0);

/// The kind of kernel function `ip` is in (`site::UNKNOWN` if none).
#[inline(always)]
fn kind_of(ip: u64) -> u64 {
    match unsafe { SITES.get(ip >> BUCKET_SHIFT) } {
        Some(nibbles) => site::kind_in(*nibbles, ip),
        None => u64::from(site::UNKNOWN),
    }
}

/// The function that called the reset's sender: (its kind, the return
/// address in it). The frames before the sender are the program's and the
/// tracepoint's own; a sender the compiler inlined leaves its caller first.
#[inline(always)]
fn caller<C: EbpfContext>(ctx: &C) -> (u64, u64) {
    let unknown = u64::from(site::UNKNOWN);
    let mut ips = [0u64; FRAMES];
    let bytes = unsafe { bpf_get_stack(ctx.as_ptr(), ips.as_mut_ptr().cast(), (FRAMES * 8) as u32, 0) };
    let frames = if bytes > 0 { (bytes as usize / 8).min(FRAMES) } else { 0 };
    let mut after_sender = false;
    let mut i = 0;
    while i < frames {
        let ip = ips[i];
        let kind = kind_of(ip);
        if kind == u64::from(site::EMITTER) {
            after_sender = true;
        } else if after_sender || kind != unknown {
            return (kind, ip);
        }
        i += 1;
    }
    (unknown, 0)
}

#[inline(always)]
fn flag(sk: u64, bit: u32) -> bool {
    bit < 64 && kread::<u64>(sk, cfg_get!(sk_flags)) & (1 << bit) != 0
}

/// `after(a, b)` of the kernel: `a` comes after `b` in sequence space.
#[inline(always)]
fn after(a: u32, b: u32) -> bool {
    (b.wrapping_sub(a) as i32) < 0
}

/// TCP_STATE in 6.10+, refined as there: SO_LINGER {1,0} closes are `linger_abort`.
#[inline(always)]
fn by_state(sk: u64) -> u8 {
    if closed_with_linger_zero(sk) { cause::LINGER_ABORT } else { cause::BAD_STATE }
}

/// `__tcp_close()`: unread data is reset before the socket is orphaned
/// (SOCK_DEAD); after, FIN_WAIT2 with TCP_LINGER2 < 0 (our FIN acked:
/// snd_una == write_seq, which no other state still open there has), else
/// the orphan was over the memory limit.
#[inline(always)]
fn closed(sk: u64) -> u8 {
    if !flag(sk, cfg_get!(sock_dead_bit)) {
        return cause::CLOSE_WITH_UNREAD_DATA;
    }
    let linger2: i32 = kread(sk, cfg_get!(tp_linger2));
    let una: u32 = kread(sk, cfg_get!(tp_snd_una));
    let write: u32 = kread(sk, cfg_get!(tp_write_seq));
    if linger2 < 0 && una == write { cause::FIN_WAIT2_ABORT } else { cause::ABORT_ON_MEMORY }
}

/// `tcp_disconnect()`: from CLOSING or LAST_ACK (the peer's FIN arrived,
/// SOCK_DONE, and ours is queued, SEND_SHUTDOWN) it resets only with data
/// unsent, DISCONNECT_WITH_DATA; from every other state TCP_STATE. A close()
/// with SO_LINGER {1,0} marks the socket shut both ways first: that is
/// `linger_abort`, as 6.10+ calls its TCP_STATE.
#[inline(always)]
fn disconnected(sk: u64) -> u8 {
    if closed_with_linger_zero(sk) {
        return cause::LINGER_ABORT;
    }
    let shutdown: u8 = kread(sk, cfg_get!(sk_shutdown));
    if flag(sk, cfg_get!(sock_done_bit)) && shutdown & SEND_SHUTDOWN != 0 {
        cause::DISCONNECT_WITH_DATA
    } else {
        cause::BAD_STATE
    }
}

/// `tcp_v{4,6}_do_rcv()`/`tcp_v{4,6}_rcv()`: `tcp_rcv_state_process()` asked
/// for a reset. By the state it left: a listener sent an ACK (TCP_FLAGS);
/// SYN_SENT with a SYN-ACK whose ACK is outside (snd_una, snd_nxt]
/// (INVALID_ACK_SEQUENCE), else the one failing PAWS; SYN_RECV with an
/// unacceptable ACK (OLD_ACK and kin); a socket it just closed because data
/// arrived after close() (ABORT_ON_DATA).
#[inline(always)]
fn received_segment(sk: u64, state: u8, tcp: &TcpStart) -> Option<u8> {
    match state {
        TCP_LISTEN if tcp_flags(tcp) & TCP_ACK != 0 => Some(cause::BAD_FLAGS),
        TCP_SYN_SENT => {
            let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
            let una: u32 = kread(sk, cfg_get!(tp_snd_una));
            let nxt: u32 = kread(sk, cfg_get!(tp_snd_nxt));
            Some(if !after(ack, una) || after(ack, nxt) { cause::INVALID_ACK } else { cause::PAWS })
        }
        TCP_SYN_RECV => Some(cause::INVALID_ACK),
        TCP_CLOSE => Some(cause::ABORT_ON_DATA),
        _ => None,
    }
}

/// The cause of a reset from full socket `sk` (in `state`) by its call site;
/// `unspecified` where the table does not know the caller (its address goes
/// to `UNKNOWN_SITE` for the daemon's log line) — never a guess.
#[inline(always)]
fn cause<C: EbpfContext>(ctx: &C, sk: u64, state: u8, tcp: &TcpStart) -> u8 {
    if cfg_get!(sock_dead_bit) == ABSENT {
        return cause::UNSPECIFIED;
    }
    let (kind, ip) = caller(ctx);
    let known = match kind as u8 {
        site::CLOSE => Some(closed(sk)),
        site::DISCONNECT => Some(disconnected(sk)),
        site::ABORT => Some(by_state(sk)),
        site::KEEPALIVE if state == TCP_FIN_WAIT2 => Some(by_state(sk)),
        site::KEEPALIVE => Some(cause::KEEPALIVE_TIMEOUT),
        site::RESOURCES => Some(cause::ABORT_ON_MEMORY),
        site::RECEIVE => received_segment(sk, state, tcp),
        site::CHECK_REQ => Some(cause::BAD_FLAGS),
        _ => None,
    };
    known.unwrap_or_else(|| {
        if let Some(p) = UNKNOWN_SITE.get_ptr_mut(0) {
            unsafe { *p = if ip == 0 { 1 } else { ip } };
        }
        cause::UNSPECIFIED
    })
}

/// Names a full socket's reset by its call site, for `tcp_send_reset` to take.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn sent_call_site(ctx: BtfTracePointContext) -> i32 {
    let sk: u64 = ctx.arg(0);
    let skb: u64 = ctx.arg(1);
    let state: u8 = kread(sk, cfg_get!(sk_state));
    if !full_socket(sk, state) {
        return 0;
    }
    let tcp = tcp_start(kread(skb, cfg_get!(skb_data)));
    let c = cause(&ctx, sk, state, &tcp);
    if let Some(p) = PENDING.get_ptr_mut(0) {
        let p = unsafe { &mut *p };
        let d = (p.depth as usize) & (DEPTH - 1);
        p.sk[d] = sk;
        p.cause[d] = u64::from(c);
        p.depth = (d + 1) as u64;
    }
    0
}

/// The cause `sent_call_site` left for `sk` (the newest such entry), or
/// `unspecified` if there is none (that program did not run).
#[inline(always)]
pub(crate) fn take(sk: u64) -> u8 {
    let Some(p) = PENDING.get_ptr_mut(0) else { return cause::UNSPECIFIED };
    let p = unsafe { &mut *p };
    let top = p.depth as usize;
    let mut k = 1;
    while k <= DEPTH {
        let d = top.wrapping_sub(k) & (DEPTH - 1);
        if p.sk[d] == sk {
            p.sk[d] = 0;
            p.depth = d as u64;
            return p.cause[d] as u8;
        }
        k += 1;
    }
    cause::UNSPECIFIED
}
