//! `--pcap DIR`: per cause, the segments that triggered a reset
//! (`trigger-<view>-<cause>.pcap`, raw IP) and the resets seen on the wire
//! (`<view>-<cause>.pcap`, Ethernet), readable by tcpdump and Wireshark.
//! Bounded and rotated: a file holds N packets of at most 96 bytes; when it
//! is full the next packet moves it to `<name>.1.pcap` (and `.1` to `.2`, …)
//! and starts a new one; at most K files per cause are kept, the oldest
//! removed. So a cause never takes more than K × (24 + N × 112) bytes.

use crate::pipeline::names;
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
use rst_common::event::{CAPTURE_BYTES, CAPTURE_TRIGGER, Capture};

use crate::error::Error;

pub struct PcapSink {
    dir: PathBuf,
    per_file: usize,
    /// Files kept per cause, the one being written included.
    keep: usize,
    /// Realtime minus monotonic (the programs' clock), in ns.
    clock_offset: Duration,
    files: HashMap<String, (PcapWriter<File>, usize)>,
}

/// Decodes one `CAPTURES` record.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<Capture> {
    crate::pipeline::decode::record(bytes)
}

impl PcapSink {
    pub fn new(dir: &Path, per_file: usize, keep: usize) -> Result<Self, Error> {
        let unusable = |e: std::io::Error| Error::PcapDir { dir: dir.to_path_buf(), detail: e.to_string() };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        // Find out now, not at the first sampled reset.
        let probe = dir.join(".rstwatch-write-test");
        std::fs::write(&probe, b"").map_err(unusable)?;
        let _ = std::fs::remove_file(&probe);

        Ok(Self {
            dir: dir.to_path_buf(),
            per_file: per_file.max(1),
            keep: keep.max(1),
            clock_offset: crate::pipeline::clock::boot_offset(),
            files: HashMap::new(),
        })
    }

    /// `<stem>.pcap` for generation 0, `<stem>.<g>.pcap` for older ones.
    fn path(&self, stem: &str, generation: usize) -> PathBuf {
        if generation == 0 {
            self.dir.join(format!("{stem}.pcap"))
        } else {
            self.dir.join(format!("{stem}.{generation}.pcap"))
        }
    }

    /// Shifts `<stem>.pcap` -> `.1` -> `.2` …, dropping what falls past `keep`.
    fn rotate(&self, stem: &str) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.path(stem, self.keep - 1));
        for g in (0..self.keep - 1).rev() {
            match std::fs::rename(self.path(stem, g), self.path(stem, g + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn open(&self, stem: &str, trigger: bool) -> std::io::Result<PcapWriter<File>> {
        let header = PcapHeader {
            datalink: if trigger { DataLink::RAW } else { DataLink::ETHERNET },
            snaplen: CAPTURE_BYTES as u32,
            ts_resolution: TsResolution::NanoSecond,
            ..PcapHeader::default()
        };
        // Unbuffered: a bounded number of small writes, on disk as they happen.
        let file = File::create(self.path(stem, 0))?;
        PcapWriter::with_header(file, header).map_err(std::io::Error::other)
    }

    /// Appends one capture to its cause's file, rotating a full one first.
    pub fn write(&mut self, c: &Capture) -> std::io::Result<()> {
        let trigger = c.kind == CAPTURE_TRIGGER;
        let stem = format!(
            "{}{}-{}",
            if trigger { "trigger-" } else { "" },
            names::view_name(c.view),
            names::cause_name(c.cause)
        );
        let full = self.files.get(&stem).is_none_or(|(_, n)| *n >= self.per_file);
        if full {
            if self.files.remove(&stem).is_some() {
                self.rotate(&stem)?;
            }
            let writer = self.open(&stem, trigger)?;
            self.files.insert(stem.clone(), (writer, 0));
        }
        let Some((writer, n)) = self.files.get_mut(&stem) else { return Ok(()) };
        let caplen = (c.caplen as usize).min(CAPTURE_BYTES);
        let ts = self.clock_offset + Duration::from_nanos(c.ts_ns);
        writer.write_packet(&PcapPacket::new(ts, caplen as u32, &c.data[..caplen])).map_err(std::io::Error::other)?;
        *n += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rst_common::{
        cause,
        event::{CAPTURE_FRAME, Capture},
        view,
    };

    use super::*;

    fn packets(path: &Path) -> Vec<u64> {
        let mut r = pcap_file::pcap::PcapReader::new(File::open(path).unwrap()).unwrap();
        let mut ts = Vec::new();
        while let Some(p) = r.next_packet() {
            ts.push(u64::from(p.unwrap().timestamp.subsec_nanos()));
        }
        ts
    }

    #[test]
    fn full_files_rotate_and_only_k_are_kept() {
        let dir = std::env::temp_dir().join(format!("rstw-pcap-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut sink = PcapSink::new(&dir, 2, 3).unwrap();
        sink.clock_offset = Duration::ZERO;
        for ts in 1..=7 {
            let c = Capture {
                ts_ns: ts,
                view: view::WIRE_OUT,
                cause: cause::REFUSAL,
                kind: CAPTURE_FRAME,
                _pad: 0,
                caplen: 54,
                data: [0; CAPTURE_BYTES],
            };
            sink.write(&c).unwrap();
        }
        // newest first: 7 | 5 6 | 3 4; 1 2 fell off the end
        assert_eq!(packets(&dir.join("wire_out-refusal.pcap")), vec![7]);
        assert_eq!(packets(&dir.join("wire_out-refusal.1.pcap")), vec![5, 6]);
        assert_eq!(packets(&dir.join("wire_out-refusal.2.pcap")), vec![3, 4]);
        assert!(!dir.join("wire_out-refusal.3.pcap").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
