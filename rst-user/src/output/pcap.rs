//! `--pcap DIR`: per cause, the first N segments that triggered a reset
//! (`trigger-<view>-<cause>.pcap`, raw IP) and the resets seen on the wire
//! (`<view>-<cause>.pcap`, Ethernet), readable by tcpdump and Wireshark.
//! Bounded: N packets of at most 96 bytes per file.

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    time::Duration,
};

use pcap_file::{
    DataLink, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};
use rst_common::event::{CAPTURE_BYTES, CAPTURE_SIZE, CAPTURE_TRIGGER, Capture};

use crate::{error::Error, model};

pub struct PcapSink {
    dir: PathBuf,
    per_file: usize,
    /// Realtime minus monotonic (the programs' clock), in ns.
    clock_offset: Duration,
    files: HashMap<String, (PcapWriter<File>, usize)>,
}

/// Decodes one `CAPTURES` record.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<Capture> {
    (bytes.len() >= CAPTURE_SIZE).then(|| {
        // SAFETY: Capture is repr(C) plain data; the length is checked.
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Capture>()) }
    })
}

fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

impl PcapSink {
    pub fn new(dir: &Path, per_file: usize) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { what: "creating the --pcap directory", source })?;
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(Self {
            dir: dir.to_path_buf(),
            per_file,
            clock_offset: wall.saturating_sub(monotonic_now()),
            files: HashMap::new(),
        })
    }

    /// Appends one capture to its file, unless that file is full.
    pub fn write(&mut self, c: &Capture) -> std::io::Result<()> {
        let trigger = c.kind == CAPTURE_TRIGGER;
        let name = format!(
            "{}{}-{}.pcap",
            if trigger { "trigger-" } else { "" },
            model::view_name(c.view),
            model::cause_name(c.cause)
        );
        if !self.files.contains_key(&name) {
            let header = PcapHeader {
                datalink: if trigger { DataLink::RAW } else { DataLink::ETHERNET },
                snaplen: CAPTURE_BYTES as u32,
                ts_resolution: TsResolution::NanoSecond,
                ..PcapHeader::default()
            };
            // Unbuffered: a bounded number of small writes, on disk as they happen.
            let file = File::create(self.dir.join(&name))?;
            let writer = PcapWriter::with_header(file, header).map_err(std::io::Error::other)?;
            self.files.insert(name.clone(), (writer, 0));
        }
        let Some((writer, n)) = self.files.get_mut(&name) else { return Ok(()) };
        if *n >= self.per_file {
            return Ok(());
        }
        let caplen = (c.caplen as usize).min(CAPTURE_BYTES);
        let ts = self.clock_offset + Duration::from_nanos(c.ts_ns);
        writer.write_packet(&PcapPacket::new(ts, caplen as u32, &c.data[..caplen])).map_err(std::io::Error::other)?;
        *n += 1;
        if *n == self.per_file {
            tracing::info!(file = %name, "pcap file complete ({} packets)", self.per_file);
        }
        Ok(())
    }
}
