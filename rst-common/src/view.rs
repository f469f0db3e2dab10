//! Where a reset was seen (contract §1). Codes cross the kernel boundary; never renumber.

pub const SENT: u8 = 0;
pub const RECEIVED: u8 = 1;
pub const WIRE_IN: u8 = 2;
pub const WIRE_OUT: u8 = 3;
/// Number of views.
pub const COUNT: u8 = 4;
