//! The kernel's names -> our cause codes (contract §2). Pure: the loader feeds
//! it the enum values read from BTF, and the programs get the resulting tables.

use rst_common::{
    cause::{
        self, ABORT_ON_DATA, ABORT_ON_MEMORY, BAD_FLAGS, CLOSE_WITH_UNREAD_DATA, DISCONNECT_WITH_DATA, FIN_WAIT2_ABORT,
        INVALID_ACK, KEEPALIVE_TIMEOUT, LINGER_ELSE_BAD_STATE, LINGER_ELSE_UNSPECIFIED, MPTCP, PAWS, PEER_RESET,
        REFINE_BY_SYN, REFUSED, RESET_IN_HANDSHAKE, RESET_WHILE_CLOSING, TIMEWAIT_SOCKET,
    },
    config::{DROP_REASON_BYTES, REASON_SLOTS, STATE_SLOTS},
};

/// Cause (or refine marker) for one `enum sk_rst_reason` enumerator name.
#[must_use]
pub fn reason_cause(name: &str) -> u8 {
    match name.trim_start_matches("SK_RST_REASON_") {
        "NO_SOCKET" => REFINE_BY_SYN,
        "TCP_STATE" => LINGER_ELSE_BAD_STATE,
        "NOT_SPECIFIED" => LINGER_ELSE_UNSPECIFIED,
        "TCP_ABORT_ON_LINGER" => FIN_WAIT2_ABORT,
        "TCP_ABORT_ON_CLOSE" => CLOSE_WITH_UNREAD_DATA,
        "TCP_ABORT_ON_DATA" => ABORT_ON_DATA,
        "TCP_ABORT_ON_MEMORY" => ABORT_ON_MEMORY,
        "TCP_KEEPALIVE_TIMEOUT" => KEEPALIVE_TIMEOUT,
        "TCP_DISCONNECT_WITH_DATA" => DISCONNECT_WITH_DATA,
        "TCP_TIMEWAIT_SOCKET" => TIMEWAIT_SOCKET,
        "TCP_INVALID_ACK_SEQUENCE" | "TCP_TOO_OLD_ACK" | "TCP_ACK_UNSENT_DATA" | "TCP_OLD_ACK" => INVALID_ACK,
        "TCP_RFC7323_PAWS" => PAWS,
        "TCP_FLAGS" | "INVALID_SYN" => BAD_FLAGS,
        n if n.starts_with("MPTCP_RST_") => MPTCP,
        _ => cause::OTHER,
    }
}

/// Table indexed by reason value; values past the table map to `other` in the kernel.
#[must_use]
pub fn reason_table(values: &[(String, u64)]) -> [u8; REASON_SLOTS] {
    let mut t = [cause::OTHER; REASON_SLOTS];
    for (name, v) in values {
        if let Some(slot) = usize::try_from(*v).ok().and_then(|v| t.get_mut(v)) {
            *slot = reason_cause(name);
        }
    }
    t
}

/// Bitmap of the `enum skb_drop_reason` values under which a dropped RST was
/// rejected as invalid: the sequence checks of tcp_validate_incoming(). Not
/// PAWS: Linux accepts a RST that fails PAWS ("Reset is accepted even if it
/// did not pass PAWS", tcp_validate_incoming()), so no RST is dropped for it.
#[must_use]
pub fn rst_drop_reasons(values: &[(String, u64)]) -> [u8; DROP_REASON_BYTES] {
    const NAMES: [&str; 4] = ["TCP_RESET", "TCP_INVALID_SEQUENCE", "TCP_OLD_SEQUENCE", "TCP_INVALID_END_SEQUENCE"];
    let mut bits = [0u8; DROP_REASON_BYTES];
    for (name, v) in values {
        if NAMES.contains(&name.trim_start_matches("SKB_DROP_REASON_"))
            && let Some(b) = usize::try_from(*v).ok().and_then(|v| bits.get_mut(v / 8).map(|b| (b, v % 8)))
        {
            *b.0 |= 1 << b.1;
        }
    }
    bits
}

/// `received` cause by socket state. TCP states are UAPI (`BPF_TCP_*` in
/// include/uapi/linux/bpf.h, kept equal to the kernel's by BUILD_BUG_ON), so
/// they are the one set of kernel numbers safe to name here.
#[must_use]
pub fn state_table() -> [u8; STATE_SLOTS] {
    const SYN_SENT: usize = 2;
    const SYN_RECV: usize = 3;
    const FIN_WAIT1: usize = 4;
    const FIN_WAIT2: usize = 5;
    const CLOSE_WAIT: usize = 8;
    const LAST_ACK: usize = 9;
    const CLOSING: usize = 11;
    const NEW_SYN_RECV: usize = 12;
    let mut t = [cause::OTHER; STATE_SLOTS];
    t[SYN_SENT] = REFUSED;
    t[1] = PEER_RESET; // ESTABLISHED
    t[CLOSE_WAIT] = PEER_RESET;
    for s in [FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK] {
        t[s] = RESET_WHILE_CLOSING;
    }
    t[SYN_RECV] = RESET_IN_HANDSHAKE;
    t[NEW_SYN_RECV] = RESET_IN_HANDSHAKE;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values as on Linux 6.18; other kernels number them differently, which is
    /// the point: the table follows the names.
    fn v6_18() -> Vec<(String, u64)> {
        [
            "NOT_SPECIFIED",
            "NO_SOCKET",
            "TCP_INVALID_ACK_SEQUENCE",
            "TCP_RFC7323_PAWS",
            "TCP_TOO_OLD_ACK",
            "TCP_ACK_UNSENT_DATA",
            "TCP_FLAGS",
            "TCP_OLD_ACK",
            "TCP_ABORT_ON_DATA",
            "TCP_TIMEWAIT_SOCKET",
            "INVALID_SYN",
            "TCP_ABORT_ON_CLOSE",
            "TCP_ABORT_ON_LINGER",
            "TCP_ABORT_ON_MEMORY",
            "TCP_STATE",
            "TCP_KEEPALIVE_TIMEOUT",
            "TCP_DISCONNECT_WITH_DATA",
            "MPTCP_RST_EUNSPEC",
            "MPTCP_RST_EMPTCP",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("SK_RST_REASON_{n}"), i as u64))
        .collect()
    }

    #[test]
    fn table_follows_names_not_numbers() {
        let t = reason_table(&v6_18());
        assert_eq!(t[1], REFINE_BY_SYN);
        assert_eq!(t[14], LINGER_ELSE_BAD_STATE);
        assert_eq!(t[0], LINGER_ELSE_UNSPECIFIED);
        assert_eq!(t[11], CLOSE_WITH_UNREAD_DATA);
        assert_eq!(t[12], FIN_WAIT2_ABORT);
        assert_eq!(t[17], MPTCP);
        // a kernel that inserts a value shifts every number after it
        let mut shifted = v6_18();
        shifted.insert(2, ("SK_RST_REASON_SOMETHING_NEW".into(), 2));
        for (i, e) in shifted.iter_mut().enumerate() {
            e.1 = i as u64;
        }
        let t2 = reason_table(&shifted);
        assert_eq!(t2[2], cause::OTHER);
        assert_eq!(t2[15], LINGER_ELSE_BAD_STATE);
    }

    #[test]
    fn every_contract_reason_has_its_cause() {
        assert_eq!(reason_cause("SK_RST_REASON_TCP_ABORT_ON_DATA"), ABORT_ON_DATA);
        assert_eq!(reason_cause("SK_RST_REASON_TCP_OLD_ACK"), INVALID_ACK);
        assert_eq!(reason_cause("SK_RST_REASON_INVALID_SYN"), BAD_FLAGS);
        assert_eq!(reason_cause("SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT"), KEEPALIVE_TIMEOUT);
        assert_eq!(reason_cause("SK_RST_REASON_MAX"), cause::OTHER);
    }

    #[test]
    fn drop_reasons_by_name() {
        let v = |n: &str, x: u64| (format!("SKB_DROP_REASON_{n}"), x);
        let bits = rst_drop_reasons(&[
            v("NO_SOCKET", 2),
            v("TCP_RESET", 9),
            v("TCP_INVALID_SEQUENCE", 70),
            v("TCP_CSUM", 71),
            v("TCP_RFC7323_PAWS", 72),
        ]);
        assert_eq!(bits[1], 1 << 1);
        assert_eq!(bits[8], 1 << 6);
        assert_eq!(bits[0], 0);
        assert_eq!(bits.iter().map(|b| b.count_ones()).sum::<u32>(), 2);
    }

    #[test]
    fn received_causes_by_state() {
        let t = state_table();
        assert_eq!(t[2], REFUSED);
        assert_eq!(t[1], PEER_RESET);
        assert_eq!(t[8], PEER_RESET);
        assert_eq!(t[5], RESET_WHILE_CLOSING);
        assert_eq!(t[7], cause::OTHER);
    }
}
