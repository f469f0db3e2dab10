//! rstwatch kernel programs: maps, load-time configuration, panic handler,
//! license. One hook family per module.
#![no_std]
#![no_main]
// BPF atomic add: core::sync::atomic has no 64-bit atomics on the bpf target.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod callsite;
mod config;
mod counters;
mod fentry;
mod origin;
mod packet;
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
