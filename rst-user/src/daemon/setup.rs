//! Settings for a run: the command line and the config file, checked
//! before anything is loaded (every interface exists, the cgroup root is cgroup v2).

use crate::{
    cli::RunArgs,
    config::{self, Loaded},
    error::Error,
    kernel::side::Options,
    output::web_config::WebConfig,
    settings::Settings,
};

/// Every interface must exist; one named in the config file gets its line.
fn check_interfaces(settings: &Settings, file: Option<&Loaded>) -> Result<(), Error> {
    for name in &settings.ifaces {
        let c = std::ffi::CString::new(name.as_str()).map_err(|_| Error::NoInterface { name: name.clone() })?;
        // SAFETY: valid C string.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } != 0 {
            continue;
        }
        let in_file = file.and_then(|l| {
            l.file.interfaces.as_ref().and_then(|v| v.iter().find(|s| s.get_ref() == name)).map(|s| (l, s))
        });
        return Err(match in_file {
            Some((l, s)) => l.error(s, format!("interface {name:?} does not exist: list interfaces with `ip link`")),
            None => Error::NoInterface { name: name.clone() },
        });
    }
    Ok(())
}

/// `--web-config FILE`, read and checked (certificates, keys, hashes); none: plain HTTP, no auth.
pub(super) fn web_config(settings: &Settings) -> Result<WebConfig, Error> {
    let Some(path) = &settings.web_config else { return Ok(WebConfig::default()) };
    WebConfig::load(path).map_err(|detail| Error::WebConfig { path: path.clone(), detail })
}

pub(super) fn settings(args: &RunArgs) -> Result<(Settings, Option<Loaded>), Error> {
    let file = config::load(args.config.as_deref())?;
    let s = Settings::resolve(args, file.as_ref())?;
    if args.no_wire && !args.ifaces.is_empty() {
        tracing::warn!(ignored = ?args.ifaces, "--no-wire: no interface is watched, --iface is ignored");
    }
    check_interfaces(&s, file.as_ref())?;
    if let Some(dir) = s.cgroup_root.as_deref().filter(|d| !crate::pipeline::owners::is_cgroup2(d)) {
        return Err(Error::NoCgroupRoot { dir: dir.to_path_buf() });
    }
    Ok((s, file))
}

/// What the kernel side needs of the settings.
pub(super) fn kernel_options(s: &Settings) -> Options {
    Options {
        btf: s.btf.clone(),
        netns: s.netns,
        origin: s.origin,
        ifaces: s.ifaces.clone(),
        wire_in: s.wire_in,
        pin_dir: s.pin_dir.clone(),
        fresh: s.fresh,
        ring_bytes: s.ring_bytes,
        port_keys: s.port_keys,
        peer_keys: s.peer_keys,
        owner_keys: s.owner_keys,
        sample_rate: s.sample_rate,
        capture: s.pcap.is_some(),
        fold_seconds: s.fold_seconds,
    }
}
