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
    /// The file is fine, but this edit cannot be written into it.
    #[error("{0}")]
    Unsupported(String),
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
    let mut table = table;
    // After everything else in the file: a table without a place is
    // written right after the previous route's header, before that
    // route's own `[[routes.chain]]` or `[routes.sink]` tables, which it
    // would then take for its own.
    table.set_position(Some(last_position(&doc) + 1));
    routes_mut(&mut doc)?.push(table);
    checked(doc)
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
    let old = routes.get_mut(i).expect("found above");
    // In the old route's place; its sub-tables go with it, and the new one
    // has none.
    let mut table = table;
    table.set_position(old.position());
    *old = table;
    checked(doc)
}

/// `text` without route `name`.
pub fn remove_route(text: &str, name: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let routes = routes_mut(&mut doc)?;
    let i = position(routes, name).ok_or_else(|| EditError::NotFound(name.to_owned()))?;
    routes.remove(i);
    checked(doc)
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
    checked(doc)
}

/// The edited file as text, once it reads back as TOML: an edit that
/// would break the file is a fault here, reported as one, never blamed on
/// the file.
fn checked(doc: DocumentMut) -> Result<String, EditError> {
    let text = doc.to_string();
    match text.parse::<toml::Table>() {
        Ok(_) => Ok(text),
        Err(e) => {
            tracing::error!("an admin edit of the routes file would not read back: {e}");
            Err(EditError::Unsupported(format!(
                "this edit cannot be written into this routes file without changing its meaning \
                 ({}); nothing was changed: edit the file itself",
                e.message()
            )))
        }
    }
}

/// The largest position of any table in `doc` (0 if none has one).
fn last_position(doc: &DocumentMut) -> isize {
    fn walk(table: &Table, last: &mut isize) {
        if let Some(p) = table.position() {
            *last = (*last).max(p);
        }
        for (_, item) in table.iter() {
            match item {
                Item::Table(t) => walk(t, last),
                Item::ArrayOfTables(a) => a.iter().for_each(|t| walk(t, last)),
                _ => {}
            }
        }
    }
    let mut last = 0;
    walk(doc.as_table(), &mut last);
    last
}

/// Turn every table inside `table` into an inline one (arrays of tables
/// into arrays of inline tables), chains one step per line: the route is
/// then one `[[routes]]` table with nothing of it elsewhere in the file.
fn inline_everything(table: &mut Table) {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_owned()).collect();
    for key in keys {
        let item = table.get_mut(&key).expect("listed above");
        match std::mem::take(item) {
            Item::Table(mut t) => {
                inline_everything(&mut t);
                *item = Item::Value(toml_edit::Value::InlineTable(t.into_inline_table()));
            }
            Item::ArrayOfTables(tables) => {
                let mut array = toml_edit::Array::new();
                for mut t in tables.into_iter() {
                    inline_everything(&mut t);
                    let mut value = toml_edit::Value::InlineTable(t.into_inline_table());
                    value.decor_mut().set_prefix("\n  ");
                    array.push_formatted(value);
                }
                array.set_trailing("\n");
                array.set_trailing_comma(true);
                *item = Item::Value(toml_edit::Value::Array(array));
            }
            other => *item = other,
        }
    }
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
    let mut table = table;
    inline_everything(&mut table);
    table.fmt();
    table.set_implicit(false);
    table.decor_mut().set_prefix("\n");
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

    /// The routes of `text` as JSON, by name, as the admin API sends them.
    fn routes_of(text: &str) -> Vec<(String, Value)> {
        let file: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let routes = serde_json::to_value(&file["routes"]).unwrap();
        routes
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_owned(), r.clone()))
            .collect()
    }

    /// A three-route file in the README's inline style, with dotted keys
    /// inside `[[routes.chain]]` tables as the shipped file has them.
    const MIXED: &str = r#"plugins_dir = "plugins"

[[routes]]
name = "orders"
source = { topics = ["orders.raw"], group = "orders-router" }
chain = [
  { plugin = "json-set", config = { set = { routed_by = "switchyard" } } },
  { plugin = "uppercase", config = { fields = ["name"] } },
]
sink = { topic = "orders.clean" }

[[routes]]
name = "audit"
source = { topics = ["orders.raw"] }
sink = { topic = "orders.audit" }

[[routes.chain]]
plugin = "validate"
config.schema = { type = "object" }
config.unknown_fields = "drop"

[[routes.chain]]
plugin = "json-set"
config.set = { audited = true }

[[routes]]
name = "last"
source = { topics = ["x"] }
sink = { topic = "y" }

[routes.dead_letter]
topic = "y.dlq"
"#;

    #[test]
    fn every_edit_of_the_shipped_files_and_every_documented_style_reads_back() {
        let shipped = include_str!("../../../switchyard.toml");
        let kubernetes = include_str!("../../../deploy/kubernetes/switchyard.toml");
        for (what, file) in [
            ("switchyard.toml", shipped),
            ("kubernetes", kubernetes),
            ("mixed", MIXED),
        ] {
            let before = routes_of(file);
            let check = |edited: &str, expect: Vec<(String, Value)>| {
                let after = routes_of(edited);
                assert_eq!(
                    after, expect,
                    "{what}: the routes changed otherwise:\n{edited}"
                );
                crate::config::Config::parse(edited, std::path::Path::new("r.toml"))
                    .unwrap_or_else(|e| panic!("{what}: {e}\n{edited}"));
            };
            // Add a route like each one there.
            for (name, route) in &before {
                let mut copy = route.clone();
                copy["name"] = json!(format!("{name}-copy"));
                let edited = match add_route(file, &copy) {
                    Ok(edited) => edited,
                    // A new route may not reuse another's secrets: refused
                    // for that reason alone.
                    Err(e) if e.to_string().contains("secret references not allowed") => continue,
                    Err(e) => panic!("{what}: adding a copy of {name}: {e}"),
                };
                let mut expect = before.clone();
                expect.push((format!("{name}-copy"), copy));
                check(&edited, expect);
            }
            // Replace each by a changed version of itself; remove and pause
            // each.
            for (i, (name, route)) in before.iter().enumerate() {
                let mut changed = route.clone();
                changed["source"]["topics"] = json!(["elsewhere"]);
                let edited = replace_route(file, name, &changed)
                    .unwrap_or_else(|e| panic!("{what}: replacing {name}: {e}"));
                let mut expect = before.clone();
                expect[i].1 = changed;
                check(&edited, expect);

                let edited = remove_route(file, name).unwrap();
                let mut expect = before.clone();
                expect.remove(i);
                check(&edited, expect);

                let edited = set_paused(file, name, true).unwrap();
                let mut expect = before.clone();
                expect[i].1["paused"] = json!(true);
                check(&edited, expect);
            }
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
