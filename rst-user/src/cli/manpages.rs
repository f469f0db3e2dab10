//! `rstwatch man DIR`: the man pages, generated from the command line's own
//! definitions (clap_mangen): rstwatch(8) and one page per subcommand.

use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

use crate::{cli::Cli, error::Error};

/// Writes `rstwatch.8` and `rstwatch-<subcommand>.8` into `dir`; returns the paths.
pub fn write(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |what, source| Error::Io { what, source };
    std::fs::create_dir_all(dir).map_err(|e| io("creating the man page directory", e))?;
    let mut root = Cli::command();
    root.build();
    let mut pages = vec![("rstwatch".to_string(), root.clone())];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("rstwatch-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name).version(root.get_version().unwrap_or_default().to_string())));
    }
    let mut written = Vec::new();
    for (name, cmd) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).section("8").render(&mut page).map_err(|e| io("rendering a man page", e))?;
        let path = dir.join(format!("{name}.8"));
        std::fs::write(&path, page).map_err(|e| io("writing a man page", e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_page_per_visible_command_in_section_8() {
        let dir = std::env::temp_dir().join(format!("rstwatch-man-{}", std::process::id()));
        let pages = super::write(&dir).unwrap();
        let names: Vec<String> = pages.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for n in ["rstwatch.8", "rstwatch-run.8", "rstwatch-snapshot.8", "rstwatch-top.8", "rstwatch-completions.8"] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        assert!(!names.iter().any(|x| x.contains("reaper")), "hidden commands get no page");
        let run = std::fs::read_to_string(dir.join("rstwatch-run.8")).unwrap();
        assert!(run.starts_with(".ie") || run.contains(".TH rstwatch-run 8"), "{}", &run[..200.min(run.len())]);
        assert!(run.contains("fold\\-seconds"), "every option is documented");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
