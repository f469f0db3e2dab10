//! A real terminal for `rstwatch top`: a private tmux server (own socket),
//! killed on drop.

use std::{process::Command, time::Duration};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `cmd` (a shell command) in a detached `w`x`h` session.
    #[must_use]
    pub fn start(cmd: &str, w: u16, h: u16) -> Self {
        let t = Self { socket: format!("rstw-{}", std::process::id()) };
        let (w, h) = (w.to_string(), h.to_string());
        t.tmux(&["new-session", "-d", "-s", "top", "-x", &w, "-y", &h, cmd]);
        t
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("running tmux")
    }

    #[must_use]
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    pub fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "top", keys]);
    }

    /// Waits (at most 10 s) until the screen satisfies `ok`; returns it.
    pub fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        crate::wait::until(what, Duration::from_secs(10), Duration::from_millis(200), || {
            let s = self.screen();
            if ok(&s) { Ok(s) } else { Err(format!("screen:\n{s}")) }
        })
    }

    #[must_use]
    pub fn alive(&self) -> bool {
        self.tmux(&["has-session", "-t", "top"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}
