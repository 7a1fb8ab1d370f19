//! Writes the contracts' JSON Schemas and their README into a folder:
//! `cargo run -p mobility-contracts --bin mobility-schemas -- docs/schemas/internal`
//! (the default folder, relative to the current directory).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "docs/schemas/internal".into()),
    );
    if args.next().is_some() {
        eprintln!("usage: mobility-schemas [FOLDER]");
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, text) in mobility_contracts::schema_files() {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
