//! Types shared by the kernel programs and the daemon: integer codes, the
//! sample record, map keys and the read-only load-time configuration.
//! Everything here is `#[repr(C)]`, fixed-size and free of implicit padding.
#![no_std]

pub mod cause;
pub mod config;
pub mod event;
pub mod maps;
pub mod origin;
pub mod site;
pub mod view;
