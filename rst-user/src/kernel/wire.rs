//! The set of watched interfaces, kept in step with the settings (start,
//! reload) and with the interfaces themselves: one that disappears is
//! dropped with a log line and re-attached when it comes back.

use std::collections::{BTreeMap, BTreeSet};

use aya::Ebpf;

use crate::{error::Error, kernel::loader};

pub struct Wire {
    mode: loader::WireMode,
    /// Removes our legacy tc filters if the daemon dies without detaching (no TCX).
    _reaper: Option<crate::kernel::reaper::Reaper>,
    /// Attached interfaces: name -> (ifindex at attach time, links).
    links: BTreeMap<String, (u32, loader::WireLinks)>,
    /// Wanted but absent (or failing) interfaces, logged once each time they go.
    absent: BTreeSet<String>,
    want: Vec<String>,
    /// `maps::ANNOUNCE_PAIR_*` bits: families whose replies tc egress pairs
    /// with the stack's announcements while an interface is watched.
    paired: u32,
    /// Why the wire programs cannot load on this kernel (a verifier
    /// rejection): then no interface is watched, and nothing is retried.
    unloadable: Option<String>,
}

fn ifindex(name: &str) -> u32 {
    let Ok(c) = std::ffi::CString::new(name) else { return 0 };
    // SAFETY: valid C string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

impl Wire {
    #[must_use]
    pub fn new(mode: loader::WireMode, paired: u32) -> Self {
        let reaper = if mode.tcx { None } else { crate::kernel::reaper::start() };
        Self {
            mode,
            _reaper: reaper,
            links: BTreeMap::new(),
            absent: BTreeSet::new(),
            want: Vec::new(),
            paired,
            unloadable: None,
        }
    }

    /// Attaches what is new in `want`, detaches what is gone. `strict`: the
    /// first failure is an error (at start); else it is logged (reload).
    /// The stack announces its replies while any interface is attached:
    /// from before the first attach to after the last detach.
    pub fn sync(&mut self, ebpf: &mut Ebpf, want: &[String], strict: bool) -> Result<(), Error> {
        self.want = want.to_vec();
        if !want.is_empty() && self.unloadable.is_none() {
            loader::set_announce(ebpf, rst_common::maps::ANNOUNCE_ON | self.paired)?;
        }
        let gone: Vec<String> = self.links.keys().filter(|k| !want.contains(k)).cloned().collect();
        for iface in gone {
            if let Some((_, links)) = self.links.remove(&iface) {
                match loader::detach_wire(ebpf, links, self.mode) {
                    Ok(()) => tracing::info!(iface, "stopped watching interface"),
                    Err(e) => tracing::warn!(iface, "detaching: {e}"),
                }
            }
        }
        self.absent.retain(|i| want.contains(i));
        for iface in want {
            if self.links.contains_key(iface) || self.unloadable.is_some() {
                continue;
            }
            let index = ifindex(iface);
            match loader::attach_wire(ebpf, iface, self.mode) {
                Ok(links) => {
                    let (ingress, egress) = links.hooks(self.mode);
                    let (ingress, egress) = (ingress.name(), egress.name());
                    tracing::info!(iface, ingress, egress, "watching interface");
                    self.links.insert(iface.clone(), (index, links));
                    self.absent.remove(iface);
                }
                // The programs themselves do not load here: one line, the stack views go on.
                Err(Error::Load { detail }) => {
                    tracing::warn!(
                        "the wire programs cannot load on this kernel: wire_in/wire_out stay at zero: {detail}"
                    );
                    self.unloadable = Some(detail);
                }
                Err(e) if strict => return Err(e),
                Err(e) => {
                    if self.absent.insert(iface.clone()) {
                        tracing::warn!(iface, "not watched: {e}; retrying every second");
                    }
                }
            }
        }
        if self.links.is_empty() {
            loader::set_announce(ebpf, 0)?;
        }
        Ok(())
    }

    /// Follows interfaces that disappear (their links die with them) and
    /// come back (possibly with a new index). Call periodically.
    pub fn check(&mut self, ebpf: &mut Ebpf) {
        let vanished: Vec<String> =
            self.links.iter().filter(|(name, (index, _))| ifindex(name) != *index).map(|(n, _)| n.clone()).collect();
        for iface in vanished {
            if let Some((_, links)) = self.links.remove(&iface) {
                // The kernel already dropped the programs with the device; this only frees our handles.
                let _ = loader::detach_wire(ebpf, links, self.mode);
            }
            tracing::warn!(iface, "interface disappeared; it will be watched again when it is back");
            self.absent.insert(iface);
            if self.links.is_empty() {
                let _ = loader::set_announce(ebpf, 0);
            }
        }
        let back: Vec<String> = self.absent.iter().filter(|i| ifindex(i) != 0).cloned().collect();
        if !back.is_empty() {
            let want = self.want.clone();
            let _ = self.sync(ebpf, &want, false);
        }
    }

    /// Each wanted interface, the hooks it got (both or neither), or the ones it will be tried with.
    #[must_use]
    pub fn status(&self) -> Vec<crate::pipeline::model::Interface> {
        let tc = if self.mode.tcx { loader::Hook::Tcx } else { loader::Hook::Clsact };
        let wanted = if self.mode.ingress == loader::WireIn::Xdp { loader::Hook::Xdp } else { tc };
        self.want
            .iter()
            .map(|name| {
                let attached = self.links.get(name).map(|(_, links)| links.hooks(self.mode));
                let (ingress, egress) = attached.unwrap_or((wanted, tc));
                crate::pipeline::model::Interface {
                    name: name.clone(),
                    ingress: ingress.name().into(),
                    egress: egress.name().into(),
                    wire_in: attached.is_some(),
                    wire_out: attached.is_some(),
                    xdp: attached.is_some() && ingress == loader::Hook::Xdp,
                    tc: attached.is_some(),
                }
            })
            .collect()
    }

    /// Why the wire programs cannot load here, if they cannot.
    #[must_use]
    pub fn unloadable(&self) -> Option<&str> {
        self.unloadable.as_deref()
    }

    #[must_use]
    pub fn watched(&self) -> Vec<String> {
        self.links.keys().cloned().collect()
    }
}
