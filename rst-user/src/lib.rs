//! rstwatch's userspace: kernel probing, loading, the pipeline
//! (source -> decode -> aggregate -> snapshot) and its outputs. The binary
//! (`main.rs`) only parses the command line and runs one of these.

pub mod aggregate;
pub mod alerts;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod error;
pub mod kernel;
pub mod loader;
pub mod manpages;
pub mod model;
pub mod notify;
pub mod output;
pub mod owners;
pub mod payload;
pub mod pins;
pub mod privileges;
pub mod reaper;
pub mod settings;
pub mod source;
pub mod tui;
pub mod wire;
