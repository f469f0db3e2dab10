//! The tc programs: `wire_in` (every RST arriving on a watched interface, tc
//! ingress: the default) and `wire_out` (every RST leaving it, tc egress);
//! TCX links on kernels >= 6.6, clsact filters before. Always TC_ACT_OK. A
//! header in the skb's linear part is read in place; else through
//! bpf_skb_load_bytes, so non-linear skbs parse too.

use aya_ebpf::{
    EbpfContext,
    bindings::TC_ACT_OK,
    check_bounds_signed,
    helpers::{bpf_sk_fullsock, bpf_skb_load_bytes},
    macros::classifier,
    programs::TcContext,
};
use rst_common::{
    event::{CAPTURE_BYTES, PAYLOAD_BYTES},
    maps::FlowKey,
    view,
};

use crate::{
    counters,
    packet::{self, Frame},
};

impl Frame for TcContext {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        // Single fields and the capture's copy: through the helper (reading
        // these in place too would take two copies of the capture on the stack).
        self.load::<T>(off).ok()
    }

    #[inline(always)]
    fn bytes<'a, const N: usize>(&'a self, off: usize, buf: &'a mut [u8; N]) -> Option<&'a [u8; N]> {
        let start = self.data();
        if start + off + N <= self.data_end() {
            // SAFETY: within the linear data (checked just above), which outlives the program run.
            return Some(unsafe { &*((start + off) as *const [u8; N]) });
        }
        *buf = self.load::<[u8; N]>(off).ok()?;
        Some(buf)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.len() as usize
    }

    #[inline(always)]
    fn load_into(&self, off: usize, buf: &mut [u8; PAYLOAD_BYTES], n: usize) -> bool {
        if !check_bounds_signed(n as i64, 1, PAYLOAD_BYTES as i64) {
            return false;
        }
        unsafe { bpf_skb_load_bytes(self.as_ptr().cast(), off as u32, buf.as_mut_ptr().cast(), n as u32) == 0 }
    }

    /// Straight from the skb into the ring's record: no copy on the BPF
    /// stack (tc ingress's frame would pass 5.10's 512 bytes across calls).
    #[inline(always)]
    fn capture_into(&self, data: &mut [u8; CAPTURE_BYTES]) -> u32 {
        let n = (self.len() as usize).min(CAPTURE_BYTES);
        if !check_bounds_signed(n as i64, 1, CAPTURE_BYTES as i64) {
            return 0;
        }
        let ok = unsafe { bpf_skb_load_bytes(self.as_ptr().cast(), 0, data.as_mut_ptr().cast(), n as u32) == 0 };
        if ok { n as u32 } else { 0 }
    }
}

const SOCK_RAW: u32 = 3;

/// Whether the TCP stack made this RST. Its owner says so: a TCP socket
/// (aborts: close(), linger, timers); a time-wait or request socket (their
/// replies from 6.13); or the stack's TCP control socket (raw, protocol
/// TCP), which sends every other reply to a segment. A raw TCP socket that
/// is not the control socket this CPU learned is taken for it only if the
/// stack announced this reply (then it is learned); else it is a user's raw
/// socket. Without an owner (firewall rejects, forwarded packets,
/// IPPROTO_RAW sockets, IPv6 replies before 6.13) only an announcement
/// makes it the stack's.
#[inline(always)]
fn from_stack(ctx: &TcContext, key: &FlowKey) -> bool {
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return counters::take_stack_rst(key);
    }
    let full = unsafe { bpf_sk_fullsock(sk) };
    if full.is_null() {
        // A time-wait or request socket's reply (6.13+). Announced before
        // the control socket was known: consume it.
        let _ = counters::take_stack_rst(key);
        counters::pair_reply(key);
        return true;
    }
    let (ty, proto) = unsafe { ((*full).type_, (*full).protocol) };
    if proto != u32::from(crate::proto::IPPROTO_TCP) {
        return counters::take_stack_rst(key);
    }
    if ty != SOCK_RAW {
        return true;
    }
    if counters::is_control_socket(key.family, sk as u64) {
        counters::pair_reply(key);
        return true;
    }
    let announced = counters::take_stack_rst(key);
    if announced {
        counters::learn_control_socket(key.family, sk as u64);
        counters::pair_reply(key);
    }
    announced
}

#[classifier]
pub fn rst_tc_egress(ctx: TcContext) -> i32 {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    packet::observe(&ctx, view::WIRE_OUT, false, ifindex, |key| from_stack(&ctx, key));
    TC_ACT_OK
}

/// `wire_in` at tc ingress (the default hook): what XDP would see, after
/// the driver and GRO (one run per GRO packet of bulk traffic; an RST is
/// never merged), before netfilter and the stack. A VLAN tag is already in
/// the skb's metadata here, so the frame starts with the inner type.
#[classifier]
pub fn rst_tc_ingress(ctx: TcContext) -> i32 {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    packet::observe(&ctx, view::WIRE_IN, true, ifindex, |_| true);
    TC_ACT_OK
}

/// Does nothing: the baseline for measuring the hook's own cost (egress).
#[classifier]
pub fn empty_tc(_ctx: TcContext) -> i32 {
    TC_ACT_OK
}

/// Does nothing: the baseline at tc ingress (a program of its own, so the
/// kernel's run counts of the two hooks stay apart).
#[classifier]
pub fn empty_tc_in(_ctx: TcContext) -> i32 {
    TC_ACT_OK
}
