//! The plugin author's kit: `switchyard plugin new` scaffolds a plugin crate
//! that builds at once with `switchyard plugin build`, and
//! `switchyard plugin test` ([`run`]) runs a built component on records from
//! a JSON Lines file, in process, with no broker.
//!
//! The scaffold's files are the templates in `templates/`, compiled into the
//! binary; the WIT file is the repository's own `wit/plugin.wit`, so a new
//! plugin always targets the contract of the host that created it. The guide
//! `docs/writing-a-plugin.md` quotes `templates/lib.rs.txt` verbatim (a test
//! checks it).

pub mod run;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The host's copy of the plugin contract.
pub const WIT: &str = include_str!("../../../wit/plugin.wit");

/// The example plugin's source, `src/lib.rs` of a new plugin.
pub const LIB_RS: &str = include_str!("templates/lib.rs.txt");

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.txt");
const README_MD: &str = include_str!("templates/README.md.txt");
const CONFIG_JSON: &str = include_str!("templates/config.json.txt");
const EVENTS_JSONL: &str = include_str!("templates/events.jsonl.txt");
const GITIGNORE: &str = include_str!("templates/gitignore.txt");

/// The files of a new plugin crate: path relative to the crate, contents.
pub fn scaffold_files(name: &str) -> Vec<(&'static str, String)> {
    let fill = |template: &str| template.replace("{{name}}", name);
    vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        (".gitignore", GITIGNORE.to_owned()),
        ("wit/plugin.wit", WIT.to_owned()),
        ("src/lib.rs", LIB_RS.to_owned()),
        ("README.md", fill(README_MD)),
        ("config.json", fill(CONFIG_JSON)),
        ("events.jsonl", fill(EVENTS_JSONL)),
    ]
}

/// Why `name` cannot name a plugin crate, if it cannot. The name is also the
/// component's file stem and what a routes file's `plugin = "..."` says.
pub fn check_name(name: &str) -> Result<(), String> {
    // Keywords and the names of the standard crates make invalid or
    // confusing library names (`-` becomes `_` in the library name).
    const RESERVED: &[&str] = &[
        "as",
        "async",
        "await",
        "break",
        "const",
        "continue",
        "crate",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "fn",
        "for",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "match",
        "mod",
        "move",
        "mut",
        "pub",
        "ref",
        "return",
        "self",
        "Self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "type",
        "unsafe",
        "use",
        "where",
        "while",
        "abstract",
        "become",
        "box",
        "do",
        "final",
        "gen",
        "macro",
        "override",
        "priv",
        "try",
        "typeof",
        "unsized",
        "virtual",
        "yield",
        "alloc",
        "core",
        "std",
        "proc_macro",
        "test",
    ];
    let first = name.chars().next();
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > 64 {
        return Err("the name is longer than 64 characters".into());
    }
    if !first.is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err("it must start with an ASCII letter".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{c:?} is not allowed: use ASCII letters, digits, `-` and `_`"
        ));
    }
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        return Err("it is a Rust keyword or a standard crate's name".into());
    }
    Ok(())
}

/// Create the plugin crate `<parent>/<name>/`; returns its directory.
/// Refuses an invalid name and an existing directory (nothing is written).
pub fn scaffold(name: &str, parent: &Path) -> anyhow::Result<PathBuf> {
    if let Err(why) = check_name(name) {
        bail!("`{name}` is not a valid plugin crate name: {why}");
    }
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or --dir",
            dir.display()
        );
    }
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // `create_dir` (not `_all`) fails if the directory appeared meanwhile.
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (path, contents) in scaffold_files(name) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

/// `switchyard plugin new NAME --dir PARENT`: scaffold, then say what next.
pub fn new_command(name: &str, parent: &Path) -> anyhow::Result<()> {
    let dir = scaffold(name, parent)?;
    let d = dir.display();
    eprintln!(
        "created plugin `{name}` in {d}\n\
         next:\n  \
         switchyard plugin build {d} --out target/plugins\n  \
         switchyard plugin test target/plugins/{name}.wasm --config {d}/config.json --input {d}/events.jsonl\n\
         then add it to a route: chain = [{{ plugin = \"{name}\", config = {{ ... }} }}]\n\
         guide: docs/writing-a-plugin.md"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_crate_names_and_refuses_others() {
        for ok in ["my-plugin", "a", "geo_ip2", "Tagger"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("1st", "start with an ASCII letter"),
            ("-x", "start with"),
            ("my plugin", "' ' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("héllo", "'é' is not allowed"),
            ("fn", "keyword"),
            ("proc-macro", "standard crate"),
        ] {
            let err = check_name(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn fills_the_name_in_and_ships_the_hosts_wit() {
        let files = scaffold_files("geo-tag");
        let file = |p: &str| &files.iter().find(|(path, _)| *path == p).unwrap().1;
        assert!(file("Cargo.toml").contains("name = \"geo-tag\""));
        assert!(file("Cargo.toml").contains("\n[workspace]\n"));
        assert_eq!(file("wit/plugin.wit"), WIT);
        assert!(WIT.contains("world plugin"));
        assert!(file("config.json").contains("\"tag\": \"geo-tag\""));
        assert!(files.iter().all(|(_, c)| !c.contains("{{")));
    }

    #[test]
    fn scaffolds_once_and_refuses_an_existing_directory() {
        let parent =
            std::env::temp_dir().join(format!("switchyard-plugin-new-{}", std::process::id()));
        let _ = fs::remove_dir_all(&parent);
        let dir = scaffold("demo", &parent).unwrap();
        assert!(dir.join("src/lib.rs").is_file());
        assert!(dir.join("wit/plugin.wit").is_file());
        let err = scaffold("demo", &parent).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let err = scaffold("not ok", &parent).unwrap_err().to_string();
        assert!(err.contains("not a valid plugin crate name"), "{err}");
        fs::remove_dir_all(&parent).unwrap();
    }
}
