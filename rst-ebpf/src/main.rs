//! rstwatch kernel programs: maps, load-time configuration, panic handler,
//! license. One hook family per module.
#![no_std]
#![no_main]
// BPF atomic add: core::sync::atomic has no 64-bit atomics on the bpf target.
#![feature(core_intrinsics)]
#![allow(internal_features)]
// Every helper is inlined on purpose: a bpf-to-bpf call costs stack (512 bytes
// across calls on Linux 5.10) and verifier work at each call site.
#![allow(clippy::inline_always, reason = "BPF: calls between our functions cost stack and verifier work")]
#![allow(clippy::needless_pass_by_value, reason = "program entry points take their context by value (aya's macros)")]
#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    reason = "sequence-space distances and helper return values, in the forms the verifier bounds"
)]

mod callsite;
mod config;
mod counters;
mod fentry;
mod origin;
mod packet;
mod proto;
mod sample;
mod sock;
mod stack;
mod steps;
mod tc;
mod tracepoints;
mod xdp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
