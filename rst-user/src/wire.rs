//! The set of watched interfaces, kept in step with the settings (start and reload).

use std::collections::BTreeMap;

use aya::Ebpf;

use crate::{error::Error, loader};

#[derive(Default)]
pub struct Wire {
    links: BTreeMap<String, loader::WireLinks>,
}

impl Wire {
    /// Attaches what is new in `want`, detaches what is gone. `strict`: the
    /// first failure is an error (at start); else it is logged (reload).
    pub fn sync(&mut self, ebpf: &mut Ebpf, want: &[String], strict: bool) -> Result<(), Error> {
        let gone: Vec<String> = self.links.keys().filter(|k| !want.contains(k)).cloned().collect();
        for iface in gone {
            if let Some(links) = self.links.remove(&iface) {
                match loader::detach_wire(ebpf, links) {
                    Ok(()) => tracing::info!(iface, "stopped watching interface"),
                    Err(e) => tracing::warn!(iface, "detaching: {e}"),
                }
            }
        }
        for iface in want {
            if self.links.contains_key(iface) {
                continue;
            }
            match loader::attach_wire(ebpf, iface) {
                Ok(links) => {
                    tracing::info!(iface, "watching interface (XDP ingress, tc egress)");
                    self.links.insert(iface.clone(), links);
                }
                Err(e) if strict => return Err(e),
                Err(e) => tracing::warn!(iface, "not watched: {e}"),
            }
        }
        Ok(())
    }

    #[must_use]
    pub fn watched(&self) -> Vec<String> {
        self.links.keys().cloned().collect()
    }
}
