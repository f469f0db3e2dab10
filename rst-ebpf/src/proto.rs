//! Protocol numbers the programs test, each defined once: TCP header flags
//! and layout, TCP states (UAPI `BPF_TCP_*`; see rst-user's
//! kernel/classify.rs), address families.

/// TCP flags byte bits, and where the byte is in the header.
pub(crate) const TCP_SYN: u8 = 0x02;
pub(crate) const TCP_RST: u8 = 0x04;
pub(crate) const TCP_ACK: u8 = 0x10;
pub(crate) const TCPHDR_FLAGS: u32 = 13;
/// The fixed TCP header, and the IPv6 one.
pub(crate) const TCP_HLEN: usize = 20;
pub(crate) const IPV6_HLEN: usize = 40;
pub(crate) const IPPROTO_TCP: u8 = 6;

/// TCP states.
pub(crate) const TCP_SYN_SENT: u8 = 2;
pub(crate) const TCP_SYN_RECV: u8 = 3;
pub(crate) const TCP_FIN_WAIT2: u8 = 5;
pub(crate) const TCP_TIME_WAIT: u8 = 6;
pub(crate) const TCP_CLOSE: u8 = 7;
pub(crate) const TCP_LISTEN: u8 = 10;
pub(crate) const TCP_NEW_SYN_RECV: u8 = 12;

/// Address families: ours in samples and keys (the IP version), and Linux's `AF_INET6`.
pub const AF_INET: u8 = 4;
pub const AF_INET6: u8 = 6;
pub(crate) const LINUX_AF_INET6: u16 = 10;
