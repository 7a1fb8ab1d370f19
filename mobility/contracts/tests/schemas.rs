//! The checked-in schemas under `docs/schemas/internal/` are exactly what
//! the Rust types generate, so the documentation cannot fall behind the
//! code.

use std::collections::BTreeSet;
use std::path::PathBuf;

const REGENERATE: &str =
    "regenerate with `cargo run -p mobility-contracts --bin mobility-schemas -- docs/schemas/internal`";

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas/internal")
}

#[test]
fn checked_in_schemas_match_the_code() {
    let mut stale = Vec::new();
    for (name, expected) in mobility_contracts::schema_files() {
        let path = folder().join(&name);
        match std::fs::read_to_string(&path) {
            Ok(actual) if actual == expected => {}
            Ok(_) => stale.push(format!(
                "docs/schemas/internal/{name} differs from the code"
            )),
            Err(e) => stale.push(format!("docs/schemas/internal/{name}: {e}")),
        }
    }
    assert!(stale.is_empty(), "{}\n{REGENERATE}", stale.join("\n"));
}

#[test]
fn no_schema_is_checked_in_that_the_code_does_not_generate() {
    let generated: BTreeSet<String> = mobility_contracts::schema_files()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let extra: Vec<String> = std::fs::read_dir(folder())
        .expect("docs/schemas/internal exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !generated.contains(name))
        .collect();
    assert!(
        extra.is_empty(),
        "docs/schemas/internal has files the code does not generate: {extra:?}; delete them and {REGENERATE}"
    );
}
