//! The serving end of the flow: renderings of a [`crate::pipeline::model::Snapshot`]
//! (HTTP, metrics, pcap files, text) and systemd notifications. Outputs only
//! read; they never write back.

pub mod exposition;
pub mod http;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod pcap;
pub mod process;
pub mod text;
pub mod web_config;
