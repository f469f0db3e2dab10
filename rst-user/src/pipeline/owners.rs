//! Socket owners: cgroup v2 id -> cgroup path -> systemd unit or container.
//! The kernel counts socket-bound resets by the socket's cgroup id
//! (`sk_cgrp_data`); this names them. The id of a cgroup v2 directory is its
//! inode number, so one walk of the cgroup2 mount finds every live id.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// Who owns a socket, as far as its cgroup tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// A systemd unit (`nginx.service`), a container (`container:0123456789ab`),
    /// the cgroup path, or `cgroup:<id>` when the cgroup was gone before it was seen.
    pub name: String,
    /// The cgroup's path under the cgroup2 mount, when found.
    pub path: Option<String>,
}

/// The owner named by a cgroup path: a container id wins over the unit that
/// holds it, a unit over the bare path.
#[must_use]
pub fn owner_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().rev() {
        if let Some(id) = container_id(part) {
            return format!("container:{}", &id[..12]);
        }
    }
    parts
        .iter()
        .rev()
        .find(|p| p.rsplit_once('.').is_some_and(|(_, kind)| kind == "service" || kind == "scope"))
        .map_or_else(|| if path.is_empty() { "/".into() } else { path.to_string() }, |u| (*u).to_string())
}

/// The 64-hex container id in a cgroup name: `docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`, or a
/// bare id (cgroupfs driver: `/docker/<id>`, `/kubepods/.../<id>`).
fn container_id(part: &str) -> Option<&str> {
    let id = part.strip_suffix(".scope").map_or(part, |p| p.rsplit('-').next().unwrap_or(p));
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Where cgroup v2 is mounted, from a mountinfo text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mount = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// This host's cgroup v2 mount, from `/proc/self/mountinfo`.
#[must_use]
pub fn cgroup2_root() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo").ok().as_deref().and_then(cgroup2_mount)
}

/// Walks the cgroup2 mount when an id is unknown, at most every `RESCAN`
/// (an id not found then is named `cgroup:<id>` for good: no walk per poll).
/// Remembers only the ids it was last asked about.
pub struct Resolver {
    root: Option<PathBuf>,
    known: BTreeMap<u64, Owner>,
    last_scan: Option<Instant>,
}

const RESCAN: Duration = Duration::from_millis(200);
/// Directories visited per walk, so a host with a runaway cgroup tree stays cheap.
const MAX_CGROUPS: usize = 65_536;

/// Whether `dir` is a cgroup v2 mount (or a cgroup in one).
#[must_use]
pub fn is_cgroup2(dir: &Path) -> bool {
    dir.join("cgroup.controllers").exists()
}

impl Resolver {
    /// `root`: the cgroup2 mount to walk (`--cgroup-root`), else the one in
    /// mountinfo; without one, owners are named by id only (one log line).
    #[must_use]
    pub fn new(root: Option<PathBuf>) -> Self {
        let root = root.or_else(cgroup2_root);
        match &root {
            Some(r) => tracing::debug!(root = %r.display(), "resolving socket owners under the cgroup2 mount"),
            None => {
                tracing::warn!("no cgroup2 mount: socket owners are shown as cgroup ids (mount cgroup2 to name them)");
            }
        }
        Self { root, known: BTreeMap::new(), last_scan: None }
    }

    /// Names the ids in `ids` it can (an id missing from the answer is not
    /// walked for yet: show it as [`gone`]) and forgets the others.
    pub fn resolve(&mut self, ids: &[u64]) -> &BTreeMap<u64, Owner> {
        let asked: std::collections::BTreeSet<u64> = ids.iter().copied().collect();
        self.known.retain(|id, _| asked.contains(id));
        let unknown: Vec<u64> = ids.iter().copied().filter(|id| !self.known.contains_key(id)).collect();
        if !unknown.is_empty() && self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN) {
            self.last_scan = Some(Instant::now());
            let found = self.root.as_deref().map(walk).unwrap_or_default();
            for id in unknown {
                let owner = match found.get(&id) {
                    Some(path) => Owner { name: owner_name(path), path: Some(path.clone()) },
                    None => gone(id),
                };
                self.known.insert(id, owner);
            }
        }
        &self.known
    }
}

/// The name of a cgroup id not (yet) found under the mount.
#[must_use]
pub fn gone(id: u64) -> Owner {
    Owner { name: format!("cgroup:{id}"), path: None }
}

/// inode (= cgroup id) -> path relative to `root` ("/" for the root), for every cgroup.
fn walk(root: &Path) -> HashMap<u64, String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = HashMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        if out.len() >= MAX_CGROUPS {
            break;
        }
        let Ok(meta) = std::fs::metadata(&dir) else { continue };
        out.insert(meta.ino(), if rel.is_empty() { "/".into() } else { rel.clone() });
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), format!("{rel}/{}", e.file_name().to_string_lossy())));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_units_name_their_cgroups() {
        assert_eq!(owner_name("/system.slice/nginx.service"), "nginx.service");
        assert_eq!(owner_name("/user.slice/user-1000.slice/session-3.scope"), "session-3.scope");
        // A service's own sub-cgroups (delegation) still belong to the service.
        assert_eq!(owner_name("/system.slice/foo.service/worker"), "foo.service");
    }

    #[test]
    fn containers_are_named_by_short_id() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(owner_name(&format!("/system.slice/docker-{id}.scope")), "container:0123456789ab");
        assert_eq!(
            owner_name(&format!("/kubepods.slice/kubepods-burstable.slice/cri-containerd-{id}.scope")),
            "container:0123456789ab"
        );
        assert_eq!(owner_name(&format!("/kubepods/burstable/pod1234/{id}")), "container:0123456789ab");
        assert_eq!(owner_name(&format!("/docker/{id}")), "container:0123456789ab");
    }

    #[test]
    fn other_cgroups_are_their_path() {
        assert_eq!(owner_name("/"), "/");
        assert_eq!(owner_name("/batch/jobs"), "/batch/jobs");
        assert_eq!(owner_name("/docker-notanid.scope"), "docker-notanid.scope");
    }

    #[test]
    fn walks_the_tree_by_inode_and_forgets_what_is_no_longer_asked_for() {
        use std::os::unix::fs::MetadataExt as _;
        let root = std::env::temp_dir().join(format!("rstw-owners-{}", std::process::id()));
        let unit = root.join("system.slice/web.service");
        std::fs::create_dir_all(&unit).unwrap();
        let id = std::fs::metadata(&unit).unwrap().ino();
        let mut r = Resolver::new(Some(root.clone()));
        let names = r.resolve(&[id, 1]).clone();
        assert_eq!(names[&id], Owner { name: "web.service".into(), path: Some("/system.slice/web.service".into()) });
        assert_eq!(names[&1].name, "cgroup:1", "not under this root");
        r.resolve(&[id]);
        assert_eq!(r.known.keys().copied().collect::<Vec<_>>(), vec![id], "memory follows what is counted");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn finds_the_cgroup2_mount() {
        let mi = "25 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw\n\
                  35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup2_mount(mi), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(cgroup2_mount("25 30 0:22 / /sys rw - sysfs sysfs rw\n"), None);
    }
}
