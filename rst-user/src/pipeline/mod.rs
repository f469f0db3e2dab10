//! The pure middle of the flow: kernel records in, snapshots out. Nothing
//! here touches the kernel or serves anyone; every file is tested without root.

pub mod aggregate;
pub mod alerts;
pub mod clock;
pub mod decode;
pub mod model;
pub mod names;
pub mod origins;
pub mod owners;
pub mod payload;
