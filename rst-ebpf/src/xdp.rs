//! `wire_in` with `--wire-in xdp`: every RST arriving on a watched interface,
//! native XDP only (tc ingress is the default: XDP on a veth turns off its
//! peer's segmentation offload). Always XDP_PASS. The payload program
//! declares fragment support (`xdp.frags`, 5.18+, as `bpf_xdp_load_bytes`),
//! so a jumbo-MTU device attaches it natively; headers are read from the
//! first buffer. Checked on Linux 6.18 and 5.10, 6.1, 6.12 in the kernel
//! matrix (`cargo xtask test --kernels`).

use aya_ebpf::{
    EbpfContext, bindings::xdp_action, check_bounds_signed, helpers::bpf_xdp_load_bytes, macros::xdp,
    programs::XdpContext,
};
use rst_common::{event::PAYLOAD_BYTES, view};

use crate::packet::{self, Frame};

/// Address of `n` bytes at `off` in the frame, if they are all inside it
/// (the one bounds check the verifier sees for every header read).
#[inline(always)]
fn at(ctx: &XdpContext, off: usize, n: usize) -> Option<usize> {
    let start = ctx.data();
    (start + off + n <= ctx.data_end()).then_some(start + off)
}

impl Frame for XdpContext {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        let p = at(self, off, size_of::<T>())?;
        // SAFETY: within the frame (checked by `at`).
        Some(unsafe { core::ptr::read_unaligned(p as *const T) })
    }

    #[inline(always)]
    fn bytes<'a, const N: usize>(&'a self, off: usize, _buf: &'a mut [u8; N]) -> Option<&'a [u8; N]> {
        let p = at(self, off, N)?;
        // SAFETY: within the frame (checked by `at`), which outlives the program run.
        Some(unsafe { &*(p as *const [u8; N]) })
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

/// An XDP frame on a kernel without `bpf_xdp_load_bytes` (< 5.18): the
/// same parsing and counting, no payload copy (the verifier rejects a
/// program that names an unknown helper, so this is a program of its own).
struct NoLoadBytes<'a>(&'a XdpContext);

impl Frame for NoLoadBytes<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, off: usize) -> Option<T> {
        self.0.read(off)
    }

    #[inline(always)]
    fn bytes<'a, const N: usize>(&'a self, off: usize, buf: &'a mut [u8; N]) -> Option<&'a [u8; N]> {
        self.0.bytes(off, buf)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        Frame::len(self.0)
    }

    #[inline(always)]
    fn load_into(&self, _off: usize, _buf: &mut [u8; PAYLOAD_BYTES], _n: usize) -> bool {
        false
    }
}

#[xdp(frags)]
pub fn rst_xdp(ctx: XdpContext) -> u32 {
    packet::observe(&ctx, view::WIRE_IN, true, ctx.ingress_ifindex() as u32, |_| true);
    xdp_action::XDP_PASS
}

/// `rst_xdp` for kernels < 5.18 (no payload bytes in samples).
#[xdp]
pub fn rst_xdp_no_payload(ctx: XdpContext) -> u32 {
    packet::observe(&NoLoadBytes(&ctx), view::WIRE_IN, true, ctx.ingress_ifindex() as u32, |_| true);
    xdp_action::XDP_PASS
}

/// Does nothing: the baseline for measuring the hook's own cost.
#[xdp]
pub fn empty_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
