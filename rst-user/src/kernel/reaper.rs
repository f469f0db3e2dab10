//! On kernels without TCX (< 6.6), tc ingress and egress are clsact filters, which the
//! kernel keeps after the process that added it dies. So that a daemon killed
//! with SIGKILL (or crashing) still leaves nothing attached, `run` starts this
//! small helper with a pipe as its stdin: when the daemon is gone, for
//! whatever reason, the pipe closes and the helper removes the daemon's
//! filters (ours by name) from every interface of its network namespace. A
//! daemon that exits cleanly has removed them already; the helper then finds
//! none. The next start also removes any left over (see loader::attach_wire).

use std::{
    io::Read as _,
    process::{Child, Command, Stdio},
};

use crate::kernel::loader;

/// The running helper; dropping it (the daemon's exit) lets it do its work.
pub struct Reaper {
    _child: Child,
}

/// Starts the helper (the daemon's own binary, `rstwatch tc-reaper`).
#[must_use]
pub fn start() -> Option<Reaper> {
    let exe = std::env::current_exe().ok()?;
    match Command::new(exe).arg("tc-reaper").stdin(Stdio::piped()).stdout(Stdio::null()).spawn() {
        Ok(child) => Some(Reaper { _child: child }),
        Err(e) => {
            tracing::warn!(
                "could not start the tc filter reaper ({e}): a daemon killed with SIGKILL will leave its tc filters until the next start"
            );
            None
        }
    }
}

/// The helper's body: wait for the daemon to go, then remove its filters.
pub fn run() {
    // Signals sent to the daemon's process group (Ctrl-C) must not end the helper first.
    // SAFETY: setting the disposition of two signals to ignore.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
    for iface in interfaces() {
        if loader::remove_tc_filters(&iface) {
            tracing::warn!(iface, "removed the tc filters of an rstwatch that did not exit cleanly");
        }
    }
}

/// This network namespace's interfaces (by netlink: /sys/class/net shows the
/// namespace that mounted sysfs, not necessarily ours).
fn interfaces() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return names;
        }
        let mut p = list;
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            names.push(std::ffi::CStr::from_ptr((*p).if_name).to_string_lossy().into_owned());
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    names
}
