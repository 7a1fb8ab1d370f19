//! Secrets in plugin configuration, kept out of the routes file.
//!
//! Anywhere in a chain step's `config`, a table with the single key `$env`
//! or `$file` stands for a secret string:
//!
//! ```toml
//! config.hash_key = { "$env" = "REDACT_HASH_KEY" }          # an environment variable
//! config.hash_key = { "$file" = "/run/secrets/redact-key" } # a file's text, relative to the routes file
//! ```
//!
//! They are read when the routes file is loaded; the plugin gets the value.
//! A file's trailing newline is dropped. Messages name the variable or the
//! file, never the value.

use std::path::Path;

use toml::{Table, Value};

/// `config` with every secret reference replaced by its value.
pub fn resolve_table(config: &Table, base: &Path) -> Result<Table, String> {
    config
        .iter()
        .map(|(key, value)| Ok((key.clone(), resolve(value, &format!("config.{key}"), base)?)))
        .collect()
}

/// A setting that is a string, or a secret reference to one; `at` names it
/// in messages.
pub fn resolve_string(value: &Value, at: &str, base: &Path) -> Result<String, String> {
    match resolve(value, at, base)? {
        Value::String(s) => Ok(s),
        _ => Err(format!(
            "{at}: must be a string or a secret reference ({{ \"$env\" = \"NAME\" }} or {{ \"$file\" = \"path\" }})"
        )),
    }
}

fn resolve(value: &Value, at: &str, base: &Path) -> Result<Value, String> {
    match value {
        Value::Table(table) => match secret_of(table, at, base)? {
            Some(secret) => Ok(Value::String(secret)),
            None => table
                .iter()
                .map(|(key, v)| Ok((key.clone(), resolve(v, &format!("{at}.{key}"), base)?)))
                .collect::<Result<Table, String>>()
                .map(Value::Table),
        },
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| resolve(v, &format!("{at}[{i}]"), base))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// The secret a `{ "$env" = ... }` or `{ "$file" = ... }` table names.
fn secret_of(table: &Table, at: &str, base: &Path) -> Result<Option<String>, String> {
    let reference = |key: &str| match table.get(key) {
        Some(Value::String(name)) if table.len() == 1 => Ok(Some(name.clone())),
        Some(_) if table.len() == 1 => Err(format!("{at}: `{key}` must be a string")),
        Some(_) => Err(format!(
            "{at}: a secret reference has `{key}` as its only key"
        )),
        None => Ok(None),
    };
    if let Some(name) = reference("$env")? {
        return std::env::var(&name)
            .map(Some)
            .map_err(|_| format!("{at}: environment variable `{name}` is not set"));
    }
    if let Some(file) = reference("$file")? {
        let path = base.join(&file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{at}: cannot read secret file {}: {e}", path.display()))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        return Ok(Some(text.strip_suffix('\r').unwrap_or(text).to_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn env_and_file_references_become_their_values_anywhere() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "file-secret\n").unwrap();
        // The test binary's own environment: a variable set for this test only.
        std::env::set_var("SWITCHYARD_TEST_SECRET_A", "env-secret");
        let resolved = resolve_table(
            &table(
                r#"
                top = { "$env" = "SWITCHYARD_TEST_SECRET_A" }
                nested = { inner = { "$file" = "key" }, keep = 1 }
                list = [{ "$env" = "SWITCHYARD_TEST_SECRET_A" }, "plain"]
                "#,
            ),
            dir.path(),
        )
        .unwrap();
        assert_eq!(resolved["top"].as_str(), Some("env-secret"));
        assert_eq!(resolved["nested"]["inner"].as_str(), Some("file-secret"));
        assert_eq!(resolved["nested"]["keep"].as_integer(), Some(1));
        assert_eq!(resolved["list"][0].as_str(), Some("env-secret"));
        assert_eq!(resolved["list"][1].as_str(), Some("plain"));
    }

    #[test]
    fn a_missing_secret_is_named_by_where_it_is_and_what_it_names() {
        let base = Path::new("/nonexistent-dir");
        for (text, expect) in [
            (
                r#"k = { "$env" = "SWITCHYARD_TEST_SECRET_UNSET" }"#,
                "config.k: environment variable `SWITCHYARD_TEST_SECRET_UNSET` is not set",
            ),
            (
                r#"a = { b = { "$file" = "key" } }"#,
                "config.a.b: cannot read secret file /nonexistent-dir/key: ",
            ),
            (r#"k = { "$env" = 1 }"#, "config.k: `$env` must be a string"),
            (
                r#"k = { "$env" = "X", other = 1 }"#,
                "config.k: a secret reference has `$env` as its only key",
            ),
        ] {
            let err = resolve_table(&table(text), base).unwrap_err();
            assert!(err.starts_with(expect), "{text}: {err}");
        }
    }
}
