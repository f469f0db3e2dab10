//! The sample record sent through the ring buffer.

/// One reset, as seen by one view. Addresses are in network byte order
/// (IPv4 in the first 4 bytes); ports in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub ts_ns: u64,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub local_port: u16,
    pub remote_port: u16,
    /// Raw `enum sk_rst_reason` value (`sent` only), else [`NO_REASON`].
    pub reason: u32,
    /// Process id, 0 when the reset did not run in the process that caused it.
    pub pid: u32,
    /// Interface index (wire views), else 0.
    pub ifindex: u32,
    pub view: u8,
    pub cause: u8,
    /// 4 or 6; 0 when unknown.
    pub family: u8,
    /// TCP state of the socket (`received`: before the reset), 0 when none.
    pub state: u8,
    /// TCP flags byte of the RST (wire views) or of the triggering segment (`sent`).
    pub tcp_flags: u8,
    pub _pad: [u8; 3],
    pub comm: [u8; 16],
}

pub const NO_REASON: u32 = u32::MAX;

/// Bytes of packet kept in a [`Capture`].
pub const CAPTURE_BYTES: usize = 96;
/// `Capture::kind`: the segment that triggered a reset, from its IP header on.
pub const CAPTURE_TRIGGER: u8 = 0;
/// `Capture::kind`: an RST as seen on the wire, from its Ethernet header on.
pub const CAPTURE_FRAME: u8 = 1;

/// Packet bytes for `--pcap`, sent through the `CAPTURES` ring for sampled resets.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    pub ts_ns: u64,
    pub view: u8,
    pub cause: u8,
    pub kind: u8,
    pub _pad: u8,
    /// Bytes valid in `data`.
    pub caplen: u32,
    pub data: [u8; CAPTURE_BYTES],
}
pub const CAPTURE_SIZE: usize = 112;
const _: () = assert!(size_of::<Capture>() == CAPTURE_SIZE);

#[cfg(feature = "user")]
unsafe impl aya::Pod for Capture {}
pub const SAMPLE_SIZE: usize = 80;
const _: () = assert!(size_of::<Sample>() == SAMPLE_SIZE);

#[cfg(feature = "user")]
unsafe impl aya::Pod for Sample {}
