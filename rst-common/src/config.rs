//! Read-only configuration the loader writes into the programs before load
//! (`EbpfLoader::override_global`): everything kernel-specific — tracepoint
//! field offsets, struct offsets and enum values — comes from the running
//! kernel's tracefs and BTF, never from this source.

/// Marks an offset or value the running kernel does not have.
pub const ABSENT: u32 = u32::MAX;

/// Field offsets of one tracepoint record (from its tracefs `format` file).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpLayout {
    pub skbaddr: u32,
    pub skaddr: u32,
    pub reason: u32,
    /// `saddr`/`daddr`: either `struct sockaddr_in6`-sized (kernel >= 6.10
    /// `tcp_send_reset`) or 4-byte IPv4 with separate `_v6` fields.
    pub saddr: u32,
    pub daddr: u32,
    /// 1 when `saddr`/`daddr` hold a `sockaddr_in`/`sockaddr_in6`.
    pub sockaddr_form: u32,
    pub saddr_v6: u32,
    pub daddr_v6: u32,
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
}

impl TpLayout {
    pub const ABSENT: Self = Self {
        skbaddr: ABSENT,
        skaddr: ABSENT,
        reason: ABSENT,
        saddr: ABSENT,
        daddr: ABSENT,
        sockaddr_form: 0,
        saddr_v6: ABSENT,
        daddr_v6: ABSENT,
        sport: ABSENT,
        dport: ABSENT,
        family: ABSENT,
    };
}

/// Entries of [`Config::reason_cause`]; reasons at or past it map to `other`.
pub const REASON_SLOTS: usize = 64;
/// Entries of [`Config::state_cause`].
pub const STATE_SLOTS: usize = 16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Offsets into kernel structs (BTF).
    pub skb_data: u32,
    pub sk_state: u32,
    pub sk_flags: u32,
    pub sk_lingertime: u32,
    /// Bit number of SOCK_LINGER in `sk_flags` (`enum sock_flags`).
    pub sock_linger_bit: u32,
    pub send: TpLayout,
    pub recv: TpLayout,
    /// `enum sk_rst_reason` value -> cause code (or a `REFINE_*` marker).
    pub reason_cause: [u8; REASON_SLOTS],
    /// TCP state (before the reset) -> `received` cause code.
    pub state_cause: [u8; STATE_SLOTS],
}

impl Config {
    pub const ABSENT: Self = Self {
        skb_data: ABSENT,
        sk_state: ABSENT,
        sk_flags: ABSENT,
        sk_lingertime: ABSENT,
        sock_linger_bit: ABSENT,
        send: TpLayout::ABSENT,
        recv: TpLayout::ABSENT,
        reason_cause: [crate::cause::UNSPECIFIED; REASON_SLOTS],
        state_cause: [crate::cause::OTHER; STATE_SLOTS],
    };
}

const _: () = assert!(size_of::<Config>() == 5 * 4 + 2 * 11 * 4 + REASON_SLOTS + STATE_SLOTS);

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
