//! Cause codes (contract §2). One numbering across all views; names live on the
//! user side. Codes cross the kernel boundary: never renumber, only append.

pub const OTHER: u8 = 0;
// sent
pub const CLOSED_PORT: u8 = 1;
pub const STALE_SEGMENT: u8 = 2;
pub const LINGER_ABORT: u8 = 3;
pub const FIN_WAIT2_ABORT: u8 = 4;
pub const CLOSE_WITH_UNREAD_DATA: u8 = 5;
pub const ABORT_ON_DATA: u8 = 6;
pub const ABORT_ON_MEMORY: u8 = 7;
pub const KEEPALIVE_TIMEOUT: u8 = 8;
pub const DISCONNECT_WITH_DATA: u8 = 9;
pub const TIMEWAIT_SOCKET: u8 = 10;
pub const INVALID_ACK: u8 = 11;
pub const PAWS: u8 = 12;
pub const BAD_FLAGS: u8 = 13;
pub const BAD_STATE: u8 = 14;
pub const MPTCP: u8 = 15;
pub const UNSPECIFIED: u8 = 16;
// received
pub const REFUSED: u8 = 17;
pub const PEER_RESET: u8 = 18;
pub const RESET_WHILE_CLOSING: u8 = 19;
pub const RESET_IN_HANDSHAKE: u8 = 20;
// wire_in / wire_out
pub const REFUSAL: u8 = 21;
pub const STRAY_REPLY: u8 = 22;
pub const ABORT: u8 = 23;
pub const NOT_FROM_STACK: u8 = 24;
pub const MALFORMED: u8 = 25;
// received, from the drop path
pub const REJECTED_INVALID: u8 = 26;

/// Every cause code above, once (the daemon's catalogue must name each).
pub const ALL: [u8; 27] = [
    OTHER,
    CLOSED_PORT,
    STALE_SEGMENT,
    LINGER_ABORT,
    FIN_WAIT2_ABORT,
    CLOSE_WITH_UNREAD_DATA,
    ABORT_ON_DATA,
    ABORT_ON_MEMORY,
    KEEPALIVE_TIMEOUT,
    DISCONNECT_WITH_DATA,
    TIMEWAIT_SOCKET,
    INVALID_ACK,
    PAWS,
    BAD_FLAGS,
    BAD_STATE,
    MPTCP,
    UNSPECIFIED,
    REFUSED,
    PEER_RESET,
    RESET_WHILE_CLOSING,
    RESET_IN_HANDSHAKE,
    REFUSAL,
    STRAY_REPLY,
    ABORT,
    NOT_FROM_STACK,
    MALFORMED,
    REJECTED_INVALID,
];

/// Slots reserved per view in the counter array (codes are `< SLOTS`).
pub const SLOTS: u8 = 32;

/// Not causes: markers in [`crate::config::Config::reason_cause`] telling the
/// `sent` program to refine the reason from the packet or the socket.
/// NO_SOCKET: `closed_port` if the triggering segment had SYN, else `stale_segment`.
pub const REFINE_BY_SYN: u8 = 0xfe;
/// TCP_STATE: `linger_abort` if the socket had SO_LINGER {1,0}, else `bad_state`.
pub const LINGER_ELSE_BAD_STATE: u8 = 0xfd;
/// NOT_SPECIFIED: `linger_abort` if the socket had SO_LINGER {1,0}, else `unspecified`.
pub const LINGER_ELSE_UNSPECIFIED: u8 = 0xfc;

/// Causes whose reset runs in the process that caused it (close()/shutdown()
/// paths), so the current task may be named. Never softirq/timer resets.
#[must_use]
pub const fn runs_in_process(cause: u8) -> bool {
    matches!(cause, LINGER_ABORT | FIN_WAIT2_ABORT | CLOSE_WITH_UNREAD_DATA | DISCONNECT_WITH_DATA | BAD_STATE)
}

/// Index of a (view, cause) pair in the counter arrays.
#[must_use]
pub const fn slot(view: u8, cause: u8) -> u32 {
    view as u32 * SLOTS as u32 + (cause % SLOTS) as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_is_listed_once_and_fits_its_slots() {
        let mut seen = [false; super::SLOTS as usize];
        for c in super::ALL {
            assert!(c < super::SLOTS, "{c}");
            assert!(!seen[usize::from(c)], "{c} twice");
            seen[usize::from(c)] = true;
        }
    }
}
