//! Read-only configuration the loader writes into the programs before load
//! (`EbpfLoader::override_global`): everything kernel-specific — struct
//! offsets and enum values — comes from the running kernel's BTF (and
//! tracefs, for which tracepoint arguments exist), never from this source.

/// Marks an offset or value the running kernel does not have.
pub const ABSENT: u32 = u32::MAX;

/// Entries of [`Config::reason_cause`]; reasons at or past it map to `other`.
pub const REASON_SLOTS: usize = 64;
const _: () = assert!(REASON_SLOTS.is_power_of_two());
/// Entries of [`Config::state_cause`].
pub const STATE_SLOTS: usize = 16;
const _: () = assert!(STATE_SLOTS.is_power_of_two());

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// 1 when `tcp_send_reset` carries `enum sk_rst_reason` (kernel >= 6.10).
    pub has_reason: u32,
    /// Offsets into `struct sk_buff` (BTF).
    pub skb_head: u32,
    pub skb_data: u32,
    pub skb_network_header: u32,
    pub skb_transport_header: u32,
    /// Offsets into `struct sock` (its `struct sock_common` included; BTF).
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    /// `inet_sock.inet_sport`: survives the unhash that clears `skc_num` on close.
    pub inet_sport: u32,
    pub sk_dport: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_flags: u32,
    pub sk_lingertime: u32,
    /// `sock.sk_shutdown`: SHUTDOWN_MASK when close() sends the reset.
    pub sk_shutdown: u32,
    /// Bit number of SOCK_LINGER in `sk_flags` (`enum sock_flags`).
    pub sock_linger_bit: u32,
    /// The socket's owner: `sock.sk_cgrp_data.cgroup` (its cgroup v2),
    /// `cgroup.kn` and `kernfs_node.id` (the cgroup id userspace resolves).
    pub sk_cgroup: u32,
    pub cgroup_kn: u32,
    pub kn_id: u32,
    /// The namespace of a reset: `sock.__sk_common.skc_net.net`, or for a
    /// socketless one `sk_buff.dev` -> `net_device.nd_net.net`; then `net.ns.inum`.
    pub sk_net: u32,
    pub skb_dev: u32,
    pub dev_net: u32,
    pub net_inum: u32,
    /// `--netns`: the inode of the one network namespace whose resets the
    /// stack views count (0: every namespace). Set by the daemon, not from BTF.
    pub netns_filter: u32,
    /// The daemon's own network namespace (inode), where its watched
    /// interfaces are: only resets of that namespace are announced to tc
    /// egress (0: announce all, when the namespace cannot be read).
    pub own_netns: u32,
    /// The route of a segment with no socket, for the kernel's own check in
    /// `tcp_v{4,6}_send_reset` (kernels < 6.10, counted by fentry):
    /// `sk_buff._skb_refdst`, `rtable.rt_type`, `rt6_info.rt6i_flags`.
    pub skb_refdst: u32,
    pub rt_type: u32,
    pub rt6i_flags: u32,
    /// `request_sock.__req_common.skc_nulls_node.pprev`: NULL once the
    /// request is unhashed (`inet_csk_reqsk_queue_drop`).
    pub req_hash_pprev: u32,
    /// 1 when `skb:kfree_skb` names the socket the segment was for (`rx_sk`, >= 6.11).
    pub kfree_rx_sk: u32,
    /// 1 when received RSTs are judged (`crate::origin`): the wire programs
    /// keep the peers' handshake TTLs and judge each RST, the stack programs
    /// take the verdict of the RST they handle. 0: every origin `unknown`.
    pub origin: u32,
    /// 1 when the `sent` program gives socket resets their cause by call site
    /// (the kernel function that called the one sending the reset, from the
    /// kernel stack and the `SITES` map, `crate::site::Table`): kernels
    /// without the reason field (< 6.10), where every call site still means one reason.
    pub call_sites: u32,
    /// Bit numbers in `sk_flags` (`enum sock_flags`): SOCK_DEAD (orphaned by
    /// close()), SOCK_DONE (the peer's FIN arrived).
    pub sock_dead_bit: u32,
    pub sock_done_bit: u32,
    /// Offsets into `struct tcp_sock`: what the kernel's callers test before a reset.
    pub tp_linger2: u32,
    pub tp_snd_una: u32,
    pub tp_snd_nxt: u32,
    pub tp_write_seq: u32,
    /// `enum sk_rst_reason` value -> cause code (or a `REFINE_*` marker).
    pub reason_cause: [u8; REASON_SLOTS],
    /// TCP state (before the reset) -> `received` cause code.
    pub state_cause: [u8; STATE_SLOTS],
    /// Bitmap over `enum skb_drop_reason`: the reasons for which a dropped
    /// RST counts as `received`/`rejected_invalid` (TCP_RESET, sequence checks, PAWS).
    pub rst_drop_reasons: [u8; DROP_REASON_BYTES],
}

/// Bytes of [`Config::rst_drop_reasons`] (reasons 0..256).
pub const DROP_REASON_BYTES: usize = 32;

impl Config {
    pub const ABSENT: Self = Self {
        has_reason: 0,
        skb_head: ABSENT,
        skb_data: ABSENT,
        skb_network_header: ABSENT,
        skb_transport_header: ABSENT,
        sk_family: ABSENT,
        sk_state: ABSENT,
        sk_daddr: ABSENT,
        sk_rcv_saddr: ABSENT,
        inet_sport: ABSENT,
        sk_dport: ABSENT,
        sk_v6_daddr: ABSENT,
        sk_v6_rcv_saddr: ABSENT,
        sk_flags: ABSENT,
        sk_lingertime: ABSENT,
        sk_shutdown: ABSENT,
        sock_linger_bit: ABSENT,
        sk_cgroup: ABSENT,
        cgroup_kn: ABSENT,
        kn_id: ABSENT,
        sk_net: ABSENT,
        skb_dev: ABSENT,
        dev_net: ABSENT,
        net_inum: ABSENT,
        netns_filter: 0,
        own_netns: 0,
        skb_refdst: ABSENT,
        rt_type: ABSENT,
        rt6i_flags: ABSENT,
        req_hash_pprev: ABSENT,
        kfree_rx_sk: 0,
        origin: 0,
        call_sites: 0,
        sock_dead_bit: ABSENT,
        sock_done_bit: ABSENT,
        tp_linger2: ABSENT,
        tp_snd_una: ABSENT,
        tp_snd_nxt: ABSENT,
        tp_write_seq: ABSENT,
        reason_cause: [crate::cause::UNSPECIFIED; REASON_SLOTS],
        state_cause: [crate::cause::OTHER; STATE_SLOTS],
        rst_drop_reasons: [0; DROP_REASON_BYTES],
    };
}

const _: () = assert!(size_of::<Config>() == 39 * 4 + REASON_SLOTS + STATE_SLOTS + DROP_REASON_BYTES);

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
