//! The tree is the data flow (docs/architecture.md): every source file
//! belongs to one stage, and a stage imports only the stages it may. Fails
//! on an import against the flow, and on a file outside every stage.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// What each stage may import (besides itself). The flow runs kernel →
/// pipeline → output; `pipeline` is pure and imports nothing of ours but
/// errors; `setup` (command line, settings, config file) is read by every
/// side; `tui` is a client of a running daemon, `daemon` composes the rest.
const RULES: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("pipeline", &["error"]),
    ("kernel", &["pipeline", "error"]),
    ("output", &["pipeline", "error"]),
    ("setup", &["kernel", "output", "pipeline", "error"]),
    ("tui", &["setup", "output", "pipeline", "error"]),
    ("daemon", &["setup", "kernel", "pipeline", "output", "error"]),
];

/// The stage of a file, by its path under `src/`.
fn stage_of(rel: &Path) -> Option<&'static str> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(match first {
        "pipeline" => "pipeline",
        "kernel" => "kernel",
        "output" => "output",
        "cli" | "settings.rs" | "config.rs" => "setup",
        "tui" => "tui",
        "daemon" => "daemon",
        "error.rs" => "error",
        _ => return None,
    })
}

/// The stage a top-level module of the crate belongs to.
fn stage_of_module(module: &str) -> Option<&'static str> {
    stage_of(Path::new(match module {
        "cli" | "settings" | "config" => "cli",
        "error" => "error.rs",
        other => other,
    }))
}

/// The top-level modules a source names through `crate::` (single paths and
/// the first segment of each item of a `crate::{..}` group).
fn imports(src: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeSet::new();
    for (at, _) in src.match_indices("crate::") {
        if src[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // rst_crate:: or similar
        }
        let rest = &src[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut head = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => head = true,
                    c if depth == 1 && head && (c.is_alphabetic() || c == '_') => {
                        out.insert(ident(&group[i..]));
                        head = false;
                    }
                    c if !c.is_whitespace() && depth == 1 => head = false,
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_follows_the_flow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel == Path::new("lib.rs") || rel == Path::new("main.rs") {
            continue; // the crate root declares every stage; main runs them
        }
        let Some(stage) = stage_of(rel) else {
            wrong
                .push(format!("{}: in no stage (put it in a stage's folder, see docs/architecture.md)", rel.display()));
            continue;
        };
        let allowed = RULES.iter().find(|(s, _)| *s == stage).map(|(_, a)| *a).unwrap();
        for module in imports(&fs::read_to_string(file).unwrap()) {
            match stage_of_module(&module) {
                Some(to) if to == stage || allowed.contains(&to) => {}
                Some(to) => wrong.push(format!("{}: {stage} imports {module} ({to}), against the flow", rel.display())),
                None => wrong.push(format!("{}: imports crate::{module}, which is in no stage", rel.display())),
            }
        }
    }
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), src.display());
    assert!(wrong.is_empty(), "imports against the flow:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_single_paths_and_groups() {
    let src = "use crate::{error::Error, pipeline::model::{self, Snapshot}, output};\nlet x = crate::kernel::wire::Wire::new();";
    let got: Vec<_> = imports(src).into_iter().collect();
    assert_eq!(got, ["error", "kernel", "output", "pipeline"]);
}

#[test]
fn an_import_against_the_flow_is_caught() {
    // pipeline may not reach into the kernel side.
    let allowed = RULES.iter().find(|(s, _)| *s == "pipeline").unwrap().1;
    assert!(!allowed.contains(&stage_of_module("kernel").unwrap()));
    assert_eq!(stage_of_module("settings"), Some("setup"));
    assert_eq!(stage_of(Path::new("kernel/wire.rs")), Some("kernel"));
    assert_eq!(stage_of(Path::new("stray.rs")), None);
}

#[test]
fn the_architecture_page_names_every_folder_and_top_level_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = fs::read_to_string(root.join("../docs/architecture.md")).expect("docs/architecture.md");
    for entry in fs::read_dir(root.join("src")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let shown = if path.is_dir() { format!("rst-user/src/{name}/") } else { name.clone() };
        if name == "lib.rs" || name == "main.rs" {
            continue;
        }
        assert!(page.contains(&shown), "docs/architecture.md does not mention {shown}");
    }
}
