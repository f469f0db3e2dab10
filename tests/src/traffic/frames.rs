//! Hand-built Ethernet frames for BPF_PROG_TEST_RUN: IPv4/IPv6, VLAN tags,
//! TCP flags and sequence numbers chosen by the test. Checksums are not
//! computed: the programs never read them.

pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;
pub const SYN: u8 = 0x02;

#[derive(Clone, Copy)]
pub enum Ip {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

#[derive(Clone)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub flags: u8,
    /// Data offset in 32-bit words (5 = no options).
    pub doff: u8,
    pub payload: Vec<u8>,
}

impl Tcp {
    #[must_use]
    pub fn new(sport: u16, dport: u16, seq: u32, flags: u8) -> Self {
        Self { sport, dport, seq, flags, doff: 5, payload: Vec::new() }
    }

    /// The TCP header (checksum zero) and payload.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let mut h = vec![0u8; 20];
        h[0..2].copy_from_slice(&self.sport.to_be_bytes());
        h[2..4].copy_from_slice(&self.dport.to_be_bytes());
        h[4..8].copy_from_slice(&self.seq.to_be_bytes());
        h[12] = self.doff << 4;
        h[13] = self.flags;
        h[14..16].copy_from_slice(&512u16.to_be_bytes());
        h.extend_from_slice(&self.payload);
        h
    }
}

/// Ethernet (+ one 802.1Q tag per entry of `vlans`) + IP + TCP.
#[must_use]
pub fn frame(vlans: &[u16], ip: Ip, tcp: &Tcp) -> Vec<u8> {
    let l4 = tcp.bytes();
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for (i, id) in vlans.iter().enumerate() {
        let tpid: u16 = if i == 0 && vlans.len() > 1 { 0x88a8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    match ip {
        Ip::V4(src, dst) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let total = u16::try_from(20 + l4.len()).expect("small frame");
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            h.extend_from_slice(&src);
            h.extend_from_slice(&dst);
            f.extend_from_slice(&h);
        }
        Ip::V6(src, dst) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let len = u16::try_from(l4.len()).expect("small frame");
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&len.to_be_bytes());
            h.extend_from_slice(&[6, 64]);
            h.extend_from_slice(&src);
            h.extend_from_slice(&dst);
            f.extend_from_slice(&h);
        }
    }
    f.extend_from_slice(&l4);
    f
}
