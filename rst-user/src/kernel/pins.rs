//! Pinned counter maps under one bpffs directory: a restart or upgrade keeps
//! counting; `--fresh` (or a changed layout) starts from zero. A directory
//! belongs to one scope — the network namespace of the daemon that pinned it
//! (its interfaces) and the namespace it counts (`--netns`, or all) — marked
//! by an empty bpffs directory `scope-OWN-COUNTED` beside the maps: a daemon
//! of another scope never resumes those counters silently.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use aya::maps::MapInfo;
use rst_common::maps::{self, HotPeer, HotPort, OwnerKey, PeerKey, SampleState};

use crate::{error::Error, kernel::loader::Sizes};

fn mounted_bpffs(dir: &Path) -> bool {
    // bpffs magic, statfs(2)
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let Ok(c) = CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    unsafe { libc::statfs(c.as_ptr(), &raw mut st) == 0 && st.f_type == BPF_FS_MAGIC }
}

/// Makes sure `dir` exists on a bpffs, mounting /sys/fs/bpf when nothing is there.
pub fn prepare(dir: &Path) -> Result<(), Error> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    if !mounted_bpffs(parent) {
        if parent != Path::new("/sys/fs/bpf") {
            return Err(Error::Pin {
                dir: dir.into(),
                detail: format!(
                    "{} is not a bpffs mount; mount one with `mount -t bpf bpf {}`",
                    parent.display(),
                    parent.display()
                ),
            });
        }
        let c = |s: &str| CString::new(s).expect("no NUL");
        // SAFETY: plain mount(2) with valid C strings.
        if unsafe { libc::mount(c("bpf").as_ptr(), c("/sys/fs/bpf").as_ptr(), c("bpf").as_ptr(), 0, std::ptr::null()) }
            != 0
        {
            return Err(Error::Pin {
                dir: dir.into(),
                detail: format!("mounting bpffs on /sys/fs/bpf: {}", std::io::Error::last_os_error()),
            });
        }
        tracing::info!("mounted bpffs on /sys/fs/bpf (it was not mounted)");
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Pin { dir: dir.into(), detail: e.to_string() })
}

/// Removes the pinned counters: the next load starts from zero.
pub fn remove(dir: &Path) -> Result<(), Error> {
    for name in maps::PINNED {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Pin { dir: dir.into(), detail: format!("removing {name}: {e}") }),
        }
    }
    Ok(())
}

/// (key size, value size, max entries) this build creates each pinned map with.
fn expected(name: &str, sizes: &Sizes) -> (u32, u32, u32) {
    let v = size_of::<u64>() as u32;
    match name {
        maps::COUNTS => (4, v, maps::COUNT_SLOTS),
        maps::PORTS => (4, v, sizes.port_keys),
        maps::PEERS => (size_of::<PeerKey>() as u32, v, sizes.peer_keys),
        maps::OWNERS => (size_of::<OwnerKey>() as u32, v, sizes.owner_keys),
        maps::OVERFLOW => (4, v, maps::OVERFLOW_SLOTS),
        maps::UNANNOUNCED => (4, v, 1),
        maps::HOT_PORTS => (4, size_of::<HotPort>() as u32, maps::HOT_SLOTS),
        maps::HOT_PEERS => (4, size_of::<HotPeer>() as u32, maps::HOT_SLOTS),
        maps::ORIGINS => (4, v, rst_common::origin::SLOTS),
        _ => (4, size_of::<SampleState>() as u32, maps::STAT_SLOTS),
    }
}

/// Names the first pinned map whose layout differs from this build's, if any.
#[must_use]
pub fn mismatch(dir: &Path, sizes: &Sizes) -> Option<String> {
    maps::PINNED.iter().find_map(|name| {
        let info = MapInfo::from_pin(dir.join(name)).ok()?;
        let found = (info.key_size(), info.value_size(), info.max_entries());
        let want = expected(name, sizes);
        (found != want)
            .then(|| format!("{name} is pinned with (key, value, entries) {found:?}, this run wants {want:?}"))
    })
}

/// Paths to hand to the loader.
#[must_use]
pub fn paths(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    maps::PINNED.iter().map(|n| (*n, dir.join(n))).collect()
}

/// Whether counters from an earlier run are there to be reused.
#[must_use]
pub fn exist(dir: &Path) -> bool {
    maps::PINNED.iter().any(|n| dir.join(n).exists())
}

/// Who may resume a pin directory: the daemon's own network namespace and the
/// one it counts (`--netns`; None: all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope {
    pub own: u32,
    pub counted: Option<u32>,
}

impl Scope {
    fn marker(self) -> String {
        format!("scope-{}-{}", self.own, self.counted.map_or_else(|| "all".into(), |n| n.to_string()))
    }

    fn describe(marker: &str) -> String {
        let mut it = marker.trim_start_matches("scope-").splitn(2, '-');
        let (own, counted) = (it.next().unwrap_or("?"), it.next().unwrap_or("?"));
        let counted = if counted == "all" { "every namespace".into() } else { format!("namespace {counted}") };
        format!("a daemon in network namespace {own} counting {counted}")
    }
}

fn markers(dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries.filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with("scope-")).collect()
}

/// Makes `dir` ours: refuses counters pinned by a daemon of another scope
/// (unless `fresh`, which the caller has already acted on), adopts unmarked
/// ones of an earlier version, and marks the directory with `scope`.
pub fn claim(dir: &Path, scope: Scope, fresh: bool) -> Result<(), Error> {
    let ours = scope.marker();
    let theirs: Vec<String> = markers(dir).into_iter().filter(|m| *m != ours).collect();
    if let Some(other) = theirs.first().filter(|_| !fresh && exist(dir)) {
        return Err(Error::PinsOfAnother {
            dir: dir.into(),
            theirs: Scope::describe(other),
            ours: Scope::describe(&ours),
        });
    }
    for m in &theirs {
        std::fs::remove_dir(dir.join(m))
            .map_err(|e| Error::Pin { dir: dir.into(), detail: format!("removing {m}: {e}") })?;
    }
    match std::fs::create_dir(dir.join(&ours)) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(Error::Pin { dir: dir.into(), detail: format!("marking it {ours}: {e}") })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_reads_as_a_sentence() {
        let s = Scope { own: 4_026_531_840, counted: None };
        assert_eq!(s.marker(), "scope-4026531840-all");
        assert_eq!(Scope::describe(&s.marker()), "a daemon in network namespace 4026531840 counting every namespace");
        let t = Scope { own: 1, counted: Some(2) };
        assert_eq!(Scope::describe(&t.marker()), "a daemon in network namespace 1 counting namespace 2");
    }
}
