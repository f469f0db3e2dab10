//! A real Prometheus server (Debian's `prometheus`) started by a test inside
//! one of its namespaces, on loopback there, with a config and rule files of
//! the test's; stopped and its data removed on drop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{
    namespaces::netns::{Netns, run_in},
    wait,
};

const LISTEN: &str = "127.0.0.1:9090";

pub struct Prometheus {
    ns: String,
    child: Child,
    pub dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `ns` with `config` (YAML; rule files it names
    /// are written first from `files`: (name, text) in its directory) and
    /// waits until it is ready.
    #[must_use]
    pub fn start(ns: &Netns, config: &str, files: &[(&str, String)]) -> Self {
        let dir = std::env::temp_dir().join(format!("rstw-prometheus-{}-{}", std::process::id(), ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("prometheus directory");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("writing a prometheus file");
        }
        std::fs::write(dir.join("prometheus.yml"), config).expect("writing prometheus.yml");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path()))
            .arg("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={LISTEN}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log file"))
            .spawn()
            .expect("starting prometheus (Debian's prometheus package)");
        let p = Self { ns: ns.path(), child, dir };
        wait::until("prometheus to be ready", Duration::from_secs(30), Duration::from_millis(200), || {
            p.get("/-/ready").map(drop).ok_or_else(|| "not ready".to_string())
        });
        p
    }

    fn get(&self, path: &str) -> Option<String> {
        let url = format!("http://{LISTEN}{path}");
        run_in(&self.ns, || ureq::get(&url).call().ok()?.body_mut().read_to_string().ok())
    }

    /// An instant query's result vector (`data.result`).
    #[must_use]
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let url = format!("http://{LISTEN}/api/v1/query");
        let body =
            run_in(&self.ns, || ureq::get(&url).query("query", expr).call().ok()?.body_mut().read_to_string().ok())
                .unwrap_or_else(|| panic!("query failed: {expr}"));
        let v: Value = serde_json::from_str(&body).expect("query answer is JSON");
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The active alerts (`/api/v1/alerts`): pending and firing.
    #[must_use]
    pub fn alerts(&self) -> Vec<Value> {
        let body = self.get("/api/v1/alerts").expect("alerts");
        let v: Value = serde_json::from_str(&body).expect("alerts are JSON");
        v["data"]["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// Scrape targets and their health (`/api/v1/targets`).
    #[must_use]
    pub fn targets(&self) -> Vec<Value> {
        let body = self.get("/api/v1/targets").expect("targets");
        let v: Value = serde_json::from_str(&body).expect("targets are JSON");
        v["data"]["activeTargets"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
