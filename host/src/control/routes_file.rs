//! Edits of the routes file made for the admin API. The file stays the one
//! source of truth (a restart runs what the API set up), and an edit keeps
//! the operator's comments and layout: only the route concerned changes.

use serde_json::Value;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use crate::config::RouteConfig;

/// Why an edit cannot be made.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum EditError {
    /// The route given is not a valid route.
    #[error("{0}")]
    Invalid(String),
    #[error("no route named `{0}`")]
    NotFound(String),
    #[error("a route named `{0}` already exists")]
    Exists(String),
    /// The file itself cannot be edited this way.
    #[error("cannot edit the routes file: {0}")]
    File(String),
}

/// `text` with `route` (a route as JSON, as in the routes file) appended.
pub fn add_route(text: &str, route: &Value) -> Result<String, EditError> {
    check_secret_references(text, None, route)?;
    let (name, table) = route_table(route)?;
    let mut doc = parse(text)?;
    let routes = routes_mut(&mut doc)?;
    if position(routes, &name).is_some() {
        return Err(EditError::Exists(name));
    }
    routes.push(table);
    Ok(doc.to_string())
}

/// `text` with route `name` replaced by `route`, in place.
pub fn replace_route(text: &str, name: &str, route: &Value) -> Result<String, EditError> {
    check_secret_references(text, Some(name), route)?;
    let (new_name, table) = route_table(route)?;
    if new_name != name {
        return Err(EditError::Invalid(format!(
            "the route's `name` is {new_name:?}, but the URL names {name:?}"
        )));
    }
    let mut doc = parse(text)?;
    let routes = routes_mut(&mut doc)?;
    let i = position(routes, name).ok_or_else(|| EditError::NotFound(name.to_owned()))?;
    *routes.get_mut(i).expect("found above") = table;
    Ok(doc.to_string())
}

/// `text` without route `name`.
pub fn remove_route(text: &str, name: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let routes = routes_mut(&mut doc)?;
    let i = position(routes, name).ok_or_else(|| EditError::NotFound(name.to_owned()))?;
    routes.remove(i);
    Ok(doc.to_string())
}

/// `text` with route `name`'s `paused` set (and removed when false, the
/// default, so that resuming restores the file as it was).
pub fn set_paused(text: &str, name: &str, paused: bool) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let routes = routes_mut(&mut doc)?;
    let i = position(routes, name).ok_or_else(|| EditError::NotFound(name.to_owned()))?;
    let table = routes.get_mut(i).expect("found above");
    if paused {
        table.insert("paused", toml_edit::value(true));
    } else {
        table.remove("paused");
    }
    Ok(doc.to_string())
}

/// Environment variables no route sent to the admin API may reference,
/// whatever `secrets.api_env` says: the admin token's and the master key's.
const RESERVED_ENV: &[&str] = &["SWITCHYARD_ADMIN_TOKEN", "SWITCHYARD_MASTER_KEY"];

/// A secret reference found in a route.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    /// Where, e.g. `sink.http.headers.Authorization`.
    at: String,
    /// `$env` or `$file`.
    kind: String,
    /// The variable's name or the file's path.
    target: String,
}

/// Refuse the secret references of `route` (sent to the admin API,
/// replacing route `replacing` if given) that `text`, the routes file,
/// does not allow: a file, a variable the file uses for its own secrets or
/// one reserved, or a variable neither in `secrets.api_env` nor referenced
/// the same way by the route being replaced.
fn check_secret_references(
    text: &str,
    replacing: Option<&str>,
    route: &Value,
) -> Result<(), EditError> {
    let mut wanted = Vec::new();
    references(route, String::new(), &mut wanted);
    if wanted.is_empty() {
        return Ok(());
    }
    let file: toml::Table =
        toml::from_str(text).map_err(|e| EditError::File(format!("it is not valid TOML: {e}")))?;
    let as_json = |value: &toml::Value| serde_json::to_value(value).unwrap_or_default();
    // What the replaced route referenced already, anywhere in it.
    let mut had = Vec::new();
    if let (Some(name), Some(toml::Value::Array(routes))) = (replacing, file.get("routes")) {
        if let Some(old) = routes
            .iter()
            .find(|r| r.get("name").and_then(|n| n.as_str()) == Some(name))
        {
            references(&as_json(old), String::new(), &mut had);
        }
    }
    // What the file's own settings reference: never for an API route.
    let mut own = Vec::new();
    for (key, value) in file.iter().filter(|(key, _)| *key != "routes") {
        references(&as_json(value), key.clone(), &mut own);
    }
    let allowed: Vec<&str> = file
        .get("secrets")
        .and_then(|s| s.get("api_env"))
        .and_then(|list| list.as_array())
        .map(|list| list.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut refused = Vec::new();
    for reference in &wanted {
        let Reference { at, kind, target } = reference;
        let kept = had.iter().any(|h| h.kind == *kind && h.target == *target);
        let reason = if kind == "$file" {
            (!kept).then(|| {
                "routes sent to the admin API may not read files (put the route in the routes \
                 file instead)"
                    .to_owned()
            })
        } else if RESERVED_ENV.contains(&target.as_str())
            || own.iter().any(|o| o.kind == "$env" && o.target == *target)
        {
            Some("it holds one of switchyard's own secrets".to_owned())
        } else if !kept && !allowed.contains(&target.as_str()) {
            Some("list it in `secrets.api_env` in the routes file to allow it".to_owned())
        } else {
            None
        };
        if let Some(reason) = reason {
            refused.push(format!(
                "`{at}` references {{ \"{kind}\" = {target:?} }}: {reason}"
            ));
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(EditError::Invalid(format!(
            "invalid route: secret references not allowed through the admin API: {}",
            refused.join("; ")
        )))
    }
}

/// The secret references in `value` (JSON), with where they are.
fn references(value: &Value, at: String, into: &mut Vec<Reference>) {
    let join = |name: &str| {
        if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        }
    };
    match value {
        Value::Object(fields) => {
            for kind in ["$env", "$file"] {
                if let Some(target) = fields.get(kind) {
                    into.push(Reference {
                        at: at.clone(),
                        kind: kind.to_owned(),
                        target: target
                            .as_str()
                            .map_or_else(|| target.to_string(), str::to_owned),
                    });
                }
            }
            for (name, v) in fields {
                if name != "$env" && name != "$file" {
                    references(v, join(name), into);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                references(v, format!("{at}[{i}]"), into);
            }
        }
        _ => {}
    }
}

/// Check `route` as a route and turn it into a `[[routes]]` table.
fn route_table(route: &Value) -> Result<(String, Table), EditError> {
    if let Some(at) = first_null(route, String::new()) {
        return Err(EditError::Invalid(format!(
            "invalid route: `{at}` is null, which the routes file (TOML) cannot hold; leave the field out"
        )));
    }
    let config: RouteConfig = serde_json::from_value(route.clone())
        .map_err(|e| EditError::Invalid(format!("invalid route: {e}")))?;
    // Through TOML text: the way from a JSON value to an editable table.
    let wrapper = serde_json::json!({ "routes": [route] });
    let text = toml::to_string(&wrapper).map_err(|e| {
        EditError::Invalid(format!("invalid route: cannot be written as TOML: {e}"))
    })?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| EditError::Invalid(format!("invalid route: {e}")))?;
    let table = doc
        .remove("routes")
        .and_then(|item| item.into_array_of_tables().ok())
        .and_then(|mut tables| {
            let table = tables.get_mut(0).map(std::mem::take);
            table
        })
        .ok_or_else(|| EditError::Invalid("invalid route: not a table".into()))?;
    Ok((config.name, table))
}

/// Where the first `null` in `value` is, as a path like `chain[0].config.a`.
fn first_null(value: &Value, at: String) -> Option<String> {
    match value {
        Value::Null => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_null(v, format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let at = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            first_null(v, at)
        }),
        _ => None,
    }
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse()
        .map_err(|e| EditError::File(format!("it is not valid TOML: {e}")))
}

fn routes_mut(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, EditError> {
    let item = doc
        .entry("routes")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut().ok_or_else(|| {
        EditError::File(
            "`routes` is not written as `[[routes]]` tables, which is what the admin API edits"
                .into(),
        )
    })
}

fn position(routes: &ArrayOfTables, name: &str) -> Option<usize> {
    routes
        .iter()
        .position(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FILE: &str = r#"# Our routes.
plugins_dir = "plugins"

# Orders, cleaned.
[[routes]]
name = "orders"
source = { topics = ["orders"] }   # the raw topic
sink = { topic = "orders.clean" }
"#;

    fn route(name: &str) -> Value {
        json!({
            "name": name,
            "source": {"topics": ["in"]},
            "chain": [{"plugin": "json-set", "config": {"set": {"a": 1}}}],
            "sink": {"topic": "out"},
        })
    }

    #[test]
    fn adding_keeps_comments_and_the_result_parses_as_a_routes_file() {
        let text = add_route(FILE, &route("new")).unwrap();
        assert!(text.starts_with(FILE), "the existing text is kept:\n{text}");
        let config = crate::config::Config::parse(&text, std::path::Path::new("r.toml")).unwrap();
        let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["orders", "new"]);
        assert_eq!(
            config.routes[1].chain[0].config["set"]["a"].as_integer(),
            Some(1)
        );
        assert_eq!(
            add_route(&text, &route("new")),
            Err(EditError::Exists("new".into()))
        );
    }

    #[test]
    fn replacing_removing_and_pausing_touch_only_that_route() {
        let text = add_route(FILE, &route("new")).unwrap();
        let paused = set_paused(&text, "orders", true).unwrap();
        assert!(
            paused.contains("sink = { topic = \"orders.clean\" }\npaused = true\n"),
            "{paused}"
        );
        assert_eq!(set_paused(&paused, "orders", false).unwrap(), text);

        let mut other = route("new");
        other["sink"]["topic"] = json!("elsewhere");
        let replaced = replace_route(&text, "new", &other).unwrap();
        assert!(
            replaced.starts_with(FILE) && replaced.contains("elsewhere"),
            "{replaced}"
        );
        assert_eq!(
            remove_route(&text, "new").unwrap().trim_end(),
            FILE.trim_end()
        );

        for result in [
            replace_route(&text, "nope", &route("nope")),
            remove_route(&text, "nope"),
            set_paused(&text, "nope", true),
        ] {
            assert_eq!(result, Err(EditError::NotFound("nope".into())));
        }
        let err = replace_route(&text, "new", &route("renamed")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the route's `name` is \"renamed\", but the URL names \"new\""
        );
    }

    #[test]
    fn secret_references_sent_to_the_api_are_refused_unless_allowed() {
        let file = r#"
[subjects]
master_key = { "$env" = "MASTER" }
[secrets]
api_env = ["CRM_TOKEN", "MASTER"]
[[routes]]
name = "crm"
source = { topics = ["a"] }
sink = { http = { url = { "$env" = "CRM_URL" }, headers = { X = { "$file" = "/run/secrets/x" } } } }
"#;
        let route = |sink: Value| json!({"name": "crm", "source": {"topics": ["a"]}, "sink": sink});
        let http =
            |url: Value, header: Value| json!({"http": {"url": url, "headers": {"X": header}}});
        // As the file has it: a replacement keeps its own references.
        let same = route(http(
            json!({"$env": "CRM_URL"}),
            json!({"$file": "/run/secrets/x"}),
        ));
        assert!(replace_route(file, "crm", &same).is_ok());
        // Allowed by name.
        let allowed = route(http(json!("http://crm"), json!({"$env": "CRM_TOKEN"})));
        assert!(replace_route(file, "crm", &allowed).is_ok());
        // A new route does not inherit what another route referenced.
        let mut new = same.clone();
        new["name"] = json!("other");
        let err = add_route(file, &new).unwrap_err().to_string();
        assert!(
            err.contains("`sink.http.url` references { \"$env\" = \"CRM_URL\" }: list it in `secrets.api_env`")
                && err.contains("`sink.http.headers.X` references { \"$file\" = \"/run/secrets/x\" }: routes sent to the admin API may not read files"),
            "{err}"
        );
        // The master key's variable, whatever the allow-list says; reserved
        // names; another file.
        for (header, expect) in [
            (
                json!({"$env": "MASTER"}),
                "holds one of switchyard's own secrets",
            ),
            (
                json!({"$env": "SWITCHYARD_ADMIN_TOKEN"}),
                "holds one of switchyard's own secrets",
            ),
            (json!({"$file": "../../etc/shadow"}), "may not read files"),
        ] {
            let err = replace_route(
                file,
                "crm",
                &route(http(json!("http://crm"), header.clone())),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(expect), "{header}: {err}");
        }
    }

    #[test]
    fn invalid_routes_are_refused_naming_the_problem() {
        let mut bad = route("x");
        bad["snik"] = json!({"topic": "t"});
        let err = add_route(FILE, &bad).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid route: unknown field `snik`"),
            "{err}"
        );
        let err = add_route(FILE, &json!({"name": "x"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `source`"), "{err}");
        let mut null = route("x");
        null["chain"][0]["config"]["set"]["a"] = Value::Null;
        let err = add_route(FILE, &null).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid route: `chain[0].config.set.a` is null, which the routes file (TOML) cannot hold; leave the field out"
        );
        let err = add_route("routes = 1", &route("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not written as `[[routes]]` tables"), "{err}");
    }
}
