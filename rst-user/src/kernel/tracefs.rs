//! Finds (or mounts) tracefs and reads the tracepoints' `format` files: which
//! tracepoints and arguments (e.g. `reason`) this kernel has.

use std::{
    collections::HashMap,
    ffi::CString,
    path::{Path, PathBuf},
};

use crate::error::Error;

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs root, mounting it at `/sys/kernel/tracing` when nothing is mounted.
pub fn root() -> Result<PathBuf, Error> {
    if let Some(p) = CANDIDATES.iter().map(Path::new).find(|p| p.join("events").is_dir()) {
        return Ok(p.to_path_buf());
    }
    let target = CANDIDATES[0];
    let c = |s: &str| CString::new(s).expect("no NUL");
    // SAFETY: plain mount(2) with valid C strings.
    let rc =
        unsafe { libc::mount(c("tracefs").as_ptr(), c(target).as_ptr(), c("tracefs").as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(Error::NoTracefs { detail: std::io::Error::last_os_error().to_string() });
    }
    tracing::info!(path = target, "mounted tracefs (it was not mounted)");
    Ok(PathBuf::from(target))
}

/// field name -> (offset, size), parsed from a tracepoint `format` file.
#[must_use]
pub fn parse_format(text: &str) -> HashMap<String, (u32, u32)> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let mut decl = None;
        let mut offset = None;
        let mut size = None;
        for part in line.trim().split(';') {
            let part = part.trim();
            if let Some(d) = part.strip_prefix("field:") {
                decl = Some(d);
            } else if let Some(o) = part.strip_prefix("offset:") {
                offset = o.parse().ok();
            } else if let Some(s) = part.strip_prefix("size:") {
                size = s.parse().ok();
            }
        }
        if let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) {
            let name = decl.rsplit([' ', '*']).next().unwrap_or(decl);
            let name = name.split('[').next().unwrap_or(name);
            fields.insert(name.to_string(), (offset, size));
        }
    }
    fields
}

/// The fields of `events/<category>/<name>/format`; None when the tracepoint is absent.
#[must_use]
pub fn fields(root: &Path, category: &str, name: &str) -> Option<HashMap<String, (u32, u32)>> {
    let text = std::fs::read_to_string(root.join("events").join(category).join(name).join("format")).ok()?;
    Some(parse_format(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEND_6_18: &str = "name: tcp_send_reset
ID: 2280
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int state;\toffset:24;\tsize:4;\tsigned:1;
\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;
\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;
\tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;

print fmt: \"skbaddr=%p\", REC->skbaddr
";

    const RECV_6_18: &str = "format:
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:__u16 sport;\toffset:16;\tsize:2;\tsigned:0;
\tfield:__u16 dport;\toffset:18;\tsize:2;\tsigned:0;
\tfield:__u16 family;\toffset:20;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:22;\tsize:4;\tsigned:0;
\tfield:__u8 daddr[4];\toffset:26;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:30;\tsize:16;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:46;\tsize:16;\tsigned:0;
\tfield:__u64 sock_cookie;\toffset:64;\tsize:8;\tsigned:0;
";

    #[test]
    fn parses_field_offsets_and_sizes() {
        let send = parse_format(SEND_6_18);
        assert_eq!(send.get("reason"), Some(&(28, 4)));
        assert_eq!(send.get("saddr"), Some(&(32, 28)));
        assert_eq!(send.get("skbaddr"), Some(&(8, 8)));
        let recv = parse_format(RECV_6_18);
        assert_eq!(recv.get("saddr_v6"), Some(&(30, 16)));
        assert!(!recv.contains_key("reason"));
    }
}
