//! The read-only configuration global (see `rst_common::config`).

use rst_common::config::Config;

/// Overwritten by the loader before load with values read from the running kernel.
#[unsafe(no_mangle)]
pub static CONFIG: Config = Config::ABSENT;

/// Reads one field of [`CONFIG`] without letting the compiler fold the default in.
macro_rules! cfg_get {
    ($($field:tt)+) => {
        unsafe { core::ptr::read_volatile(&raw const $crate::config::CONFIG.$($field)+) }
    };
}
pub(crate) use cfg_get;
