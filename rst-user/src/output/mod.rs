//! Renderings of a [`crate::model::Snapshot`]. Outputs only read; they never write back.

pub mod exposition;
pub mod http;
pub mod live;
pub mod metrics;
pub mod pcap;
pub mod process;
pub mod text;
