//! Reading the daemon's JSON snapshot (contract §4) in tests.

use serde_json::Value;

pub struct Snapshot {
    pub json: Value,
}

impl Snapshot {
    #[must_use]
    pub fn parse(text: &str) -> Self {
        Self { json: serde_json::from_str(text).unwrap_or_else(|e| panic!("snapshot is not JSON ({e}): {text}")) }
    }

    /// The rows of `list` (`ports`, `peers`, `owners`, `recent`, ...) of (view, cause).
    pub fn rows<'a>(&'a self, list: &str, view: &'a str, cause: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.json[list]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(move |r| r["view"] == view && r["cause"] == cause)
    }

    #[must_use]
    pub fn total(&self, view: &str) -> u64 {
        self.json["totals"][view].as_u64().expect("totals has every view")
    }

    #[must_use]
    pub fn cause(&self, view: &str, cause: &str) -> u64 {
        self.rows("causes", view, cause).filter_map(|r| r["count"].as_u64()).sum()
    }

    #[must_use]
    pub fn port(&self, view: &str, cause: &str, port: u16) -> u64 {
        self.rows("ports", view, cause).filter(|r| r["port"] == port).filter_map(|r| r["count"].as_u64()).sum()
    }

    /// Count of `port` across every cause of `view`, as (cause, count) pairs.
    #[must_use]
    pub fn port_causes(&self, view: &str, port: u16) -> Vec<(String, u64)> {
        self.json["ports"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|r| r["view"] == view && r["port"] == port)
            .map(|r| (r["cause"].as_str().unwrap_or_default().to_string(), r["count"].as_u64().unwrap_or(0)))
            .collect()
    }

    #[must_use]
    pub fn peer(&self, view: &str, cause: &str, addr: &str) -> u64 {
        self.rows("peers", view, cause).filter(|r| r["addr"] == addr).filter_map(|r| r["count"].as_u64()).sum()
    }

    /// Recent samples of (view, cause) whose local endpoint has `port`.
    #[must_use]
    pub fn recent(&self, view: &str, cause: &str, port: u16) -> Vec<Value> {
        let suffix = format!(":{port}");
        self.rows("recent", view, cause)
            .filter(|r| r["local"].as_str().is_some_and(|l| l.ends_with(&suffix)))
            .cloned()
            .collect()
    }

    /// Received RSTs of `view` judged `origin` (contract §2a), over every cause or one (`cause` "").
    #[must_use]
    pub fn origin(&self, view: &str, cause: &str, origin: &str) -> u64 {
        self.json["origins"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|r| r["view"] == view && (cause.is_empty() || r["cause"] == cause) && r["origin"] == origin)
            .filter_map(|r| r["count"].as_u64())
            .sum()
    }

    /// Verdicts of `view` corrected from `from` to `to`.
    #[must_use]
    pub fn corrected(&self, view: &str, from: &str, to: &str) -> u64 {
        self.json["origin_corrections"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|r| r["view"] == view && r["from"] == from && r["to"] == to)
            .filter_map(|r| r["count"].as_u64())
            .sum()
    }
}
