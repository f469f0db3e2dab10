//! `wire_out`: every RST leaving a watched interface (tc egress, TCX link on
//! kernels >= 6.6). Always TC_ACT_OK. Reads go through bpf_skb_load_bytes, so
//! non-linear skbs parse too.

use aya_ebpf::{bindings::TC_ACT_OK, macros::classifier, programs::TcContext};
use rst_common::view;

use crate::packet::{self, Frame};

impl Frame for TcContext {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        // Direct packet access with a variable offset does not pass the
        // verifier here (6.18); the helper is checked by the kernel instead.
        self.load::<T>(off).ok()
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.len() as usize
    }
}

#[classifier]
pub fn rst_tc_egress(ctx: TcContext) -> i32 {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    packet::observe(&ctx, view::WIRE_OUT, false, ifindex);
    TC_ACT_OK as i32
}

/// Does nothing: the baseline for measuring the hook's own cost.
#[classifier]
pub fn empty_tc(_ctx: TcContext) -> i32 {
    TC_ACT_OK as i32
}
