//! Cgroups of the test's own under the cgroup v2 mount, removed on drop:
//! the owners rstwatch must name (a systemd-style unit name, its cgroup id).

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` or, on hybrid hosts, `/sys/fs/cgroup/unified`),
/// found as the daemon finds it.
#[must_use]
pub fn mount() -> PathBuf {
    rst_user::pipeline::owners::cgroup2_root().expect("a cgroup2 mount (rstwatch names owners by their cgroup v2)")
}

/// `rstwatch-test-<pid>.slice/<unit>` under the cgroup2 mount.
pub struct Cgroup {
    pub dir: PathBuf,
    /// Path relative to the mount, as rstwatch reports it (`/…/<unit>`).
    pub rel: String,
}

impl Cgroup {
    /// Creates `<unit>` (e.g. `rstwatch-nginx.service`) in a slice of this test process.
    #[must_use]
    pub fn new(unit: &str) -> Self {
        let slice = format!("rstwatch-test-{}.slice", std::process::id());
        let dir = mount().join(&slice).join(unit);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        Self { dir, rel: format!("/{slice}/{unit}") }
    }

    /// The cgroup id the kernel reports (the directory's inode number).
    #[must_use]
    pub fn id(&self) -> u64 {
        std::fs::metadata(&self.dir).expect("cgroup directory").ino()
    }

    /// Moves process `pid` (all its threads) into this cgroup.
    pub fn add(&self, pid: u32) {
        move_to(&self.dir, pid);
    }

    /// Runs `f` with this whole process inside the cgroup (sockets created
    /// meanwhile belong to it), then moves the process back.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let home = own_cgroup();
        move_to(&self.dir, std::process::id());
        let out = f();
        move_to(&home, std::process::id());
        out
    }
}

fn move_to(dir: &Path, pid: u32) {
    std::fs::write(dir.join("cgroup.procs"), pid.to_string())
        .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", dir.display()));
}

/// This process's own cgroup v2 directory.
fn own_cgroup() -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line");
    mount().join(rel.trim_start_matches('/'))
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Processes leave when they exit: wait (bounded) until it is empty, then remove it.
        let empty = || std::fs::read_to_string(self.dir.join("cgroup.procs")).is_ok_and(|s| s.trim().is_empty());
        for _ in 0..250 {
            if empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(slice) = self.dir.parent() {
            let _ = std::fs::remove_dir(slice);
        }
    }
}
