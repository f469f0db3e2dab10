//! `wire_in`: every RST arriving on a watched interface. Always XDP_PASS.
//! Checked on Linux 6.18 (native on veth, generic on lo).

use aya_ebpf::{
    EbpfContext, bindings::xdp_action, check_bounds_signed, helpers::bpf_xdp_load_bytes, macros::xdp,
    programs::XdpContext,
};
use rst_common::{event::PAYLOAD_BYTES, view};

use crate::packet::{self, Frame};

impl Frame for XdpContext {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        let start = self.data();
        if start + off + size_of::<T>() > self.data_end() {
            return None;
        }
        Some(unsafe { core::ptr::read_unaligned((start + off) as *const T) })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.data_end() - self.data()
    }

    #[inline(always)]
    fn load_into(&self, off: usize, buf: &mut [u8; PAYLOAD_BYTES], n: usize) -> bool {
        if !check_bounds_signed(n as i64, 1, PAYLOAD_BYTES as i64) {
            return false;
        }
        unsafe { bpf_xdp_load_bytes(self.as_ptr().cast(), off as u32, buf.as_mut_ptr().cast(), n as u32) == 0 }
    }
}

#[xdp]
pub fn rst_xdp(ctx: XdpContext) -> u32 {
    packet::observe(&ctx, view::WIRE_IN, true, ctx.ingress_ifindex() as u32, |_| true);
    xdp_action::XDP_PASS
}

/// Does nothing: the baseline for measuring the hook's own cost.
#[xdp]
pub fn empty_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
