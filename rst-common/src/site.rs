//! Call sites of the kernel's reset senders, for kernels without `enum
//! sk_rst_reason` (< 6.10). There each caller of `tcp_send_active_reset()`
//! and `tcp_v{4,6}_send_reset()` still means one reason (6.10 only made it an
//! argument), told apart by what the caller itself tested: the socket's
//! state and flags, the segment. The daemon resolves these functions in
//! /proc/kallsyms; the `sent` program finds the caller on the kernel stack.
//! Codes cross the kernel boundary: never renumber, only append.

/// Not in the table (an empty slot, or a function the table does not know).
pub const UNKNOWN: u8 = 0;
/// The functions that send: `tcp_send_active_reset`, `tcp_v4_send_reset`,
/// `tcp_v6_send_reset`. The frame after one of them is the call site.
pub const EMITTER: u8 = 1;
/// `__tcp_close`/`tcp_close`: unread data (ABORT_ON_CLOSE), FIN_WAIT2 with
/// TCP_LINGER2 < 0 (ABORT_ON_LINGER), orphans over the memory limit (ABORT_ON_MEMORY).
pub const CLOSE: u8 = 2;
/// `tcp_disconnect`: SO_LINGER {1,0} close, connect(AF_UNSPEC) (TCP_STATE,
/// or DISCONNECT_WITH_DATA from CLOSING/LAST_ACK).
pub const DISCONNECT: u8 = 3;
/// `tcp_abort`: `ss -K`, SOCK_DESTROY (TCP_STATE).
pub const ABORT: u8 = 4;
/// `tcp_keepalive_timer`: keepalive timeout, or an orphan's FIN_WAIT2 timeout (TCP_STATE).
pub const KEEPALIVE: u8 = 5;
/// `tcp_out_of_resources` and the retransmit/probe timers it is inlined into (ABORT_ON_MEMORY).
pub const RESOURCES: u8 = 6;
/// `tcp_v{4,6}_do_rcv`, `tcp_v{4,6}_rcv`: a segment a socket's state rejects
/// (`tcp_rcv_state_process()` or `tcp_child_process()` asked for a reset).
pub const RECEIVE: u8 = 7;
/// `tcp_check_req`: a bad segment for a request socket (INVALID_SYN).
pub const CHECK_REQ: u8 = 8;

/// The call-site table is the `SITES` hash map: kernel text in 16-byte
/// buckets (key: address >> `BUCKET_SHIFT`), each value the kind of every
/// byte of its bucket, one nibble per byte (byte k: bits 4k..4k+4). Exact
/// for functions that share a bucket, one lookup per frame for the program,
/// and no loop over ranges for the verifier.
pub const BUCKET_SHIFT: u32 = 4;
/// Bytes per bucket.
pub const BUCKET_BYTES: u64 = 1 << BUCKET_SHIFT;

/// The kind of byte `ip` in a bucket whose value is `nibbles`.
#[must_use]
pub const fn kind_in(nibbles: u64, ip: u64) -> u64 {
    (nibbles >> ((ip & (BUCKET_BYTES - 1)) * 4)) & 0xf
}

/// Kernel frames read per reset: the program's own, the tracepoint's, the
/// sender's and its caller's fit with room to spare.
pub const FRAMES: usize = 12;

/// The kernel functions of each kind, by name (`.cold`, `.isra.N` and other
/// compiler suffixes match their base name).
pub const FUNCTIONS: [(&str, u8); 19] = [
    ("tcp_send_active_reset", EMITTER),
    ("tcp_v4_send_reset", EMITTER),
    ("tcp_v6_send_reset", EMITTER),
    ("__tcp_close", CLOSE),
    ("tcp_close", CLOSE),
    ("tcp_disconnect", DISCONNECT),
    ("tcp_abort", ABORT),
    ("tcp_keepalive_timer", KEEPALIVE),
    ("tcp_out_of_resources", RESOURCES),
    ("tcp_write_timeout", RESOURCES),
    ("tcp_probe_timer", RESOURCES),
    ("tcp_retransmit_timer", RESOURCES),
    ("tcp_write_timer_handler", RESOURCES),
    ("tcp_write_timer", RESOURCES),
    ("tcp_v4_do_rcv", RECEIVE),
    ("tcp_v6_do_rcv", RECEIVE),
    ("tcp_v4_rcv", RECEIVE),
    ("tcp_v6_rcv", RECEIVE),
    ("tcp_check_req", CHECK_REQ),
];
