//! Network namespaces by inode: the daemon's own, and the one `--netns`
//! names (an inode number, `/run/netns/NAME`, `NAME`, or `/proc/PID/ns/net`).

use std::{os::unix::fs::MetadataExt as _, path::Path};

/// `ioctl(NS_GET_NSTYPE)` (linux/nsfs.h, `_IO(0xb7, 0x3)`): the namespace type of an nsfs file.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

const FORMS: &str = "name a network namespace as an inode number (`lsns -t net`), /run/netns/NAME, NAME (`ip netns`) or /proc/PID/ns/net";

/// Inode of this process's network namespace.
#[must_use]
pub fn own() -> Option<u32> {
    inode_of(Path::new("/proc/self/ns/net"))
}

fn inode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().and_then(|m| u32::try_from(m.ino()).ok())
}

/// The inode `spec` names. A path (or an `ip netns` name) must be a network
/// namespace; a bare number is taken as an inode (it may belong to a
/// namespace no process or mount shows yet).
pub fn resolve(spec: &str) -> Result<u32, String> {
    if let Ok(n) = spec.parse::<u32>() {
        return if n == 0 { Err(format!("0 is no namespace; {FORMS}")) } else { Ok(n) };
    }
    let path = if spec.contains('/') { Path::new(spec).to_path_buf() } else { Path::new("/run/netns").join(spec) };
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}; {FORMS}", path.display()))?;
    // SAFETY: an ioctl without arguments on a file we hold open.
    let kind = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(format!("{} is not a network namespace; {FORMS}", path.display()));
    }
    inode_of(&path).ok_or_else(|| format!("{}: no inode; {FORMS}", path.display()))
}

/// Whether any process or `/run/netns` entry is in namespace `inode` now
/// (for one warning line when a selected namespace is nowhere to be seen).
#[must_use]
pub fn in_use(inode: u32) -> bool {
    let procs = std::fs::read_dir("/proc").into_iter().flatten().flatten().map(|e| e.path().join("ns/net"));
    let named = std::fs::read_dir("/run/netns").into_iter().flatten().flatten().map(|e| e.path());
    procs.chain(named).any(|p| inode_of(&p) == Some(inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_a_user_types() {
        let own = own().expect("our own namespace");
        assert_eq!(resolve("/proc/self/ns/net"), Ok(own));
        assert_eq!(resolve(&own.to_string()), Ok(own));
        assert!(in_use(own));
        assert!(resolve("0").unwrap_err().contains("0 is no namespace"));
        let e = resolve("rstwatch-no-such-ns").unwrap_err();
        assert!(e.contains("/run/netns/rstwatch-no-such-ns") && e.contains("lsns -t net"), "{e}");
        let e = resolve("/proc/self/ns/uts").unwrap_err();
        assert!(e.contains("is not a network namespace"), "{e}");
        assert!(resolve("/etc/hostname").unwrap_err().contains("is not a network namespace"));
    }
}
