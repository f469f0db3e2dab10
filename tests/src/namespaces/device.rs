//! What an observer must leave as it found it: a device's offload features
//! (the `active` words `ethtool -k` shows, read with the same ioctl), its MTU
//! and its MTU range. Read inside the device's namespace; no ethtool binary
//! needed, so the kernel matrix's guests read it too.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use super::netns::Netns;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GFEATURES: u32 = 0x3a;
/// Feature words asked for; the kernel answers with as many as it has (2 today).
const WORDS: usize = 4;

/// A device's state as far as an observer could change it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `active` of each feature word (`ethtool -k`).
    pub features: Vec<u32>,
    pub mtu: u64,
    pub min_mtu: u64,
    pub max_mtu: u64,
}

/// `dev`'s state, read in `ns`.
#[must_use]
pub fn state(ns: &Netns, dev: &str) -> State {
    let features = ns.run(|| features(dev));
    let link = ns.exec(&["ip", "-d", "-o", "link", "show", dev]);
    let field = |name: &str| -> u64 {
        let mut words = link.split_whitespace();
        words.find(|w| *w == name).and_then(|_| words.next()).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            panic!("no {name} in: {link}");
        })
    };
    State { features, mtu: field("mtu"), min_mtu: field("minmtu"), max_mtu: field("maxmtu") }
}

#[repr(C)]
struct Features {
    cmd: u32,
    size: u32,
    /// (available, requested, active, never_changed) per word.
    blocks: [[u32; 4]; WORDS],
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut Features,
    _pad: [u8; 16],
}

/// The ETHTOOL_GFEATURES `active` words of `dev` in this thread's namespace.
fn features(dev: &str) -> Vec<u32> {
    // SAFETY: a plain datagram socket, owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor of ours.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = Features { cmd: ETHTOOL_GFEATURES, size: WORDS as u32, blocks: [[0; 4]; WORDS] };
    let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: &raw mut f, _pad: [0; 16] };
    req.name[..dev.len()].copy_from_slice(dev.as_bytes());
    // SAFETY: SIOCETHTOOL with an ifreq whose data points at a buffer of `size` words.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &raw mut req) };
    assert_eq!(rc, 0, "SIOCETHTOOL on {dev}: {}", std::io::Error::last_os_error());
    f.blocks.iter().take((f.size as usize).min(WORDS)).map(|b| b[2]).collect()
}
