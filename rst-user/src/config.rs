//! The config file (`/etc/rstwatch/rstwatch.toml`, or `--config FILE`).
//! Unknown keys and bad values are rejected with the file, the line and what
//! is allowed.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;
use toml::Spanned;

use crate::error::Error;

pub const DEFAULT_PATH: &str = "/etc/rstwatch/rstwatch.toml";

/// Every key is optional; flags on the command line win over the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub interfaces: Option<Vec<Spanned<String>>>,
    pub wire: Option<bool>,
    pub wire_in: Option<crate::kernel::loader::WireIn>,
    pub listen: Option<Spanned<String>>,
    pub sample_rate: Option<u32>,
    pub ring_bytes: Option<Spanned<u32>>,
    pub port_keys: Option<Spanned<u32>>,
    pub peer_keys: Option<Spanned<u32>>,
    pub owner_keys: Option<Spanned<u32>>,
    pub cgroup_root: Option<PathBuf>,
    pub top: Option<usize>,
    pub poll_ms: Option<Spanned<u64>>,
    pub pin_dir: Option<PathBuf>,
    pub pin: Option<bool>,
    pub summary_seconds: Option<u64>,
    pub alert_window_seconds: Option<f64>,
    pub scan_ports: Option<usize>,
    pub listener_down_rate: Option<f64>,
    pub rst_flood_rate: Option<f64>,
    pub owner_metrics: Option<bool>,
    pub netns: Option<Spanned<String>>,
    pub fold_seconds: Option<u64>,
    pub origin: Option<bool>,
    pub web_config: Option<std::path::PathBuf>,
}

/// A parsed file with its text, to name lines in later errors.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
    pub file: ConfigFile,
}

impl Loaded {
    /// 1-based line of a byte offset.
    #[must_use]
    pub fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    #[must_use]
    pub fn error<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> Error {
        Error::Config { path: self.path.clone(), line: self.line(spanned.span().start), message: message.into() }
    }

    /// `listen`, parsed.
    pub fn listen(&self) -> Result<Option<SocketAddr>, Error> {
        self.file
            .listen
            .as_ref()
            .map(|l| {
                crate::cli::listen_addr(l.get_ref())
                    .map_err(|why| self.error(l, format!("listen = {:?} is not an address: {why}", l.get_ref())))
            })
            .transpose()
    }

    /// `netns`, resolved to its inode.
    pub fn netns(&self) -> Result<Option<u32>, Error> {
        self.file
            .netns
            .as_ref()
            .map(|n| crate::kernel::netns::resolve(n.get_ref()).map_err(|why| self.error(n, format!("netns: {why}"))))
            .transpose()
    }

    /// Checks values the types alone do not.
    fn validate(&self) -> Result<(), Error> {
        self.listen()?;
        self.netns()?;
        if let Some(r) = &self.file.ring_bytes
            && (*r.get_ref() < 4096 || !r.get_ref().is_power_of_two())
        {
            return Err(self.error(r, format!("ring_bytes = {} must be a power of two of at least 4096", r.get_ref())));
        }
        for k in [&self.file.port_keys, &self.file.peer_keys, &self.file.owner_keys].into_iter().flatten() {
            if !(1..=rst_common::maps::MAX_KEYS).contains(k.get_ref()) {
                return Err(
                    self.error(k, format!("key budgets must be at least 1 and at most {}", rst_common::maps::MAX_KEYS))
                );
            }
        }
        if let Some(p) = &self.file.poll_ms
            && !(50..=60_000).contains(p.get_ref())
        {
            return Err(self.error(p, format!("poll_ms = {} must be within 50..=60000", p.get_ref())));
        }
        Ok(())
    }
}

/// Parses config text; `path` only names the file in errors.
pub fn parse(path: &Path, text: String) -> Result<Loaded, Error> {
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        Error::Config { path: path.to_path_buf(), line, message: e.message().trim().to_string() }
    })?;
    let loaded = Loaded { path: path.to_path_buf(), text, file };
    loaded.validate()?;
    Ok(loaded)
}

/// Reads `explicit`, else the default file when it exists, else nothing.
pub fn load(explicit: Option<&Path>) -> Result<Option<Loaded>, Error> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|source| Error::ConfigUnreadable { path: path.clone(), detail: source.to_string() })?;
    parse(&path, text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("/etc/rstwatch/rstwatch.toml"), text.into()).unwrap_err().to_string()
    }

    #[test]
    fn accepts_every_documented_key() {
        // uncomment the `# key = value` lines of the shipped example
        let text: String = include_str!("../../packaging/rstwatch.toml")
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(kv)
                    if kv
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
                {
                    kv
                }
                _ => l,
            })
            .fold(String::new(), |mut acc, l| {
                acc.push_str(l);
                acc.push('\n');
                acc
            });
        let c = parse(Path::new("x.toml"), text).unwrap();
        assert_eq!(c.file.interfaces.as_ref().map(Vec::len), Some(1));
        assert_eq!(c.file.sample_rate, Some(200));
        assert_eq!(c.file.wire_in, Some(crate::kernel::loader::WireIn::Tc), "the shipped default");
        assert_eq!(c.listen().unwrap(), Some("127.0.0.1:9477".parse().unwrap()));
    }

    #[test]
    fn unknown_key_names_file_line_and_allowed_keys() {
        let e = err("sample_rate = 10\nsampel_rate = 5\n");
        assert!(e.contains("/etc/rstwatch/rstwatch.toml line 2"), "{e}");
        assert!(e.contains("unknown field `sampel_rate`") && e.contains("sample_rate"), "{e}");
    }

    #[test]
    fn bad_values_name_their_line() {
        assert!(err("\n\nring_bytes = 1000\n").contains("line 3: ring_bytes = 1000 must be a power of two"));
        assert!(err("listen = \"localhost\"\n").contains("line 1: listen = \"localhost\" is not an address"));
        assert!(err("port_keys = 0\n").contains("line 1: key budgets must be at least 1"));
        assert!(err("sample_rate = -3\n").contains("line 1"));
        assert!(err("interfaces = \"eth0\"\n").contains("line 1"));
        let e = err("\nwire_in = \"generic\"\n");
        assert!(e.contains("line 2") && e.contains("unknown variant `generic`, expected `tc` or `xdp`"), "{e}");
    }
}
