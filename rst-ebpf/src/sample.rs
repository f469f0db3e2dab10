//! What every sample says, whichever hook counted the reset: which reset
//! (view, cause, TCP flags, the kernel's reason), its tuple and the origin
//! verdict. Each hook then adds its own fields (the stack: state, owner,
//! namespace, process; the wire: interface, payload).

use rst_common::{event::Sample, maps::FlowKey};

use crate::origin::Verdict;

#[inline(always)]
pub(crate) fn describe(s: &mut Sample, view: u8, cause: u8, flags: u8, reason: u32, flow: &FlowKey, verdict: Verdict) {
    verdict.fill(s);
    s.local_addr = flow.local;
    s.remote_addr = flow.remote;
    s.local_port = flow.lport;
    s.remote_port = flow.rport;
    s.reason = reason;
    s.view = view;
    s.cause = cause;
    s.family = flow.family;
    s.tcp_flags = flags;
}
