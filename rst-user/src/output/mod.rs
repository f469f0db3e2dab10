//! Renderings of a [`crate::model::Snapshot`]. Outputs only read; they never write back.

pub mod http;
pub mod live;
pub mod metrics;
pub mod pcap;
pub mod text;
