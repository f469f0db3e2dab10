//! A real nginx (Debian's package) in a test namespace and a cgroup of its
//! own, configured to answer every request with `return 444` and
//! `reset_timedout_connection on`: it closes each connection with
//! SO_LINGER {1,0}, the seed's second way to reset.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{namespaces::cgroup::Cgroup, namespaces::netns::Netns, wait};

pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx listening on `addr` inside `ns`, its master (and so its
    /// workers and sockets) in `cgroup` from the first instruction.
    #[must_use]
    pub fn start(ns: &Netns, addr: SocketAddr, cgroup: &Cgroup) -> Self {
        Self::start_answering(ns, addr, Some(cgroup), "return 444;")
    }

    /// An nginx in `ns` answering every request with 200 `ok` (the
    /// benchmark's short connections), in the caller's cgroup.
    #[must_use]
    pub fn start_ok(ns: &Netns, addr: SocketAddr) -> Self {
        Self::start_answering(ns, addr, None, "return 200 \"ok\\n\";")
    }

    /// Starts nginx on `addr` in `ns` (in `cgroup`, if given), `location /` doing `answer`.
    fn start_answering(ns: &Netns, addr: SocketAddr, cgroup: Option<&Cgroup>, answer: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rstw-nginx-{}-{}", std::process::id(), addr.port()));
        std::fs::create_dir_all(&dir).expect("nginx prefix");
        let d = dir.display();
        let conf = format!(
            "daemon off; master_process on; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{ listen {addr}; reset_timedout_connection on; location / {{ {answer} }} }}
}}
"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        // sh joins the cgroup, then execs into the namespace and nginx: every process nginx makes starts there.
        let cgroup_procs = cgroup.map_or_else(|| "/dev/null".into(), |c| c.dir.join("cgroup.procs"));
        let child = Command::new("sh")
            .args(["-c", "echo $$ > \"$1\" && shift && exec \"$@\"", "sh"])
            .arg(&cgroup_procs)
            .args(["nsenter", &format!("--net={}", ns.path()), "nginx", "-p"])
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("starting nginx (cargo xtask test installs it)");
        let n = Self { child, dir };
        wait::until_true("nginx to listen", Duration::from_secs(10), || {
            ns.run(|| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
        });
        n
    }

    /// Process ids of nginx's workers (children of the master).
    #[must_use]
    pub fn workers(&self) -> Vec<u32> {
        let path = format!("/proc/{0}/task/{0}/children", self.child.id());
        std::fs::read_to_string(path).unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: fast shutdown, the master takes its workers along.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(libc::pid_t::try_from(self.child.id()).expect("pid fits"), libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
