//! The contracts' JSON Schemas (draft 2020-12), generated from the Rust
//! types, and what is derived from them: the per-type schemas, the list of
//! personal fields, and the folder's README.
//!
//! The union schema is schemars' schema of [`Envelope`], for the documents
//! as they are written (the serialise contract: every field present,
//! nullable ones as `null`). Each event type's schema is that union with
//! its one branch of `oneOf` merged in, so the envelope's fields are
//! described once, in the Rust types.
//!
//! Objects' keys are sorted, so the files do not depend on whether some
//! other crate of the build turns on serde_json's `preserve_order`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::generate::SchemaSettings;
use schemars::{json_schema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::{Envelope, EVENT_TYPES, VERSION};

/// The file of the union schema: any event of this version.
const UNION_FILE: &str = "mobility-event.v1.json";

/// The schema of the envelope's `version`: this version, as a constant.
pub(crate) fn version(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "const": VERSION })
}

/// Every schema with its file name: `<Type>.v1.json` for each event type,
/// in the order of [`EVENT_TYPES`], then the union, `mobility-event.v1.json`.
pub fn schemas() -> Vec<(String, Value)> {
    let union = union_schema();
    let mut all: Vec<(String, Value)> = EVENT_TYPES
        .iter()
        .map(|t| (format!("{t}.v{VERSION}.json"), event_schema(&union, t)))
        .collect();
    all.push((UNION_FILE.to_owned(), union));
    all
}

/// Every file of `docs/schemas/internal/` with its exact content: the
/// schemas (pretty-printed, with a final newline) and `README.md`.
pub fn schema_files() -> Vec<(String, String)> {
    let schemas = schemas();
    let readme = readme(&schemas);
    let mut files: Vec<(String, String)> = schemas
        .into_iter()
        .map(|(name, schema)| {
            let text = serde_json::to_string_pretty(&schema).expect("a schema always serialises");
            (name, text + "\n")
        })
        .collect();
    files.push(("README.md".to_owned(), readme));
    files
}

fn union_schema() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Envelope>();
    let mut value = schema.to_value();
    value.sort_all_objects();
    value
}

/// The schema of the events of `type_name`: the union's envelope with that
/// type's branch, and only the definitions it uses.
fn event_schema(union: &Value, type_name: &str) -> Value {
    let branch = union["oneOf"]
        .as_array()
        .and_then(|branches| {
            branches
                .iter()
                .find(|b| b["properties"]["type"]["const"] == type_name)
        })
        .unwrap_or_else(|| panic!("the union schema has no branch for {type_name}"));
    let mut schema = union.as_object().expect("a schema object").clone();
    schema.remove("oneOf");
    schema.insert("title".to_owned(), type_name.into());
    schema.insert("description".to_owned(), branch["description"].clone());
    let properties = schema["properties"]
        .as_object_mut()
        .expect("envelope properties");
    for (name, property) in branch["properties"].as_object().expect("branch properties") {
        properties.insert(name.clone(), property.clone());
    }
    let required = schema["required"]
        .as_array_mut()
        .expect("envelope required");
    required.extend(
        branch["required"]
            .as_array()
            .expect("branch required")
            .iter()
            .cloned(),
    );

    let all_defs = union["$defs"].as_object().expect("union definitions");
    let mut used = BTreeSet::new();
    let mut pending = refs(&schema["properties"]);
    while let Some(name) = pending.pop() {
        if used.insert(name.clone()) {
            pending.extend(refs(&all_defs[&name]));
        }
    }
    let defs: Map<String, Value> = used
        .into_iter()
        .map(|name| {
            let def = all_defs[&name].clone();
            (name, def)
        })
        .collect();
    schema.insert("$defs".to_owned(), Value::Object(defs));
    let mut value = Value::Object(schema);
    value.sort_all_objects();
    value
}

/// The names of the definitions `value` refers to (`#/$defs/<name>`).
fn refs(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, v)| match (key.as_str(), v) {
                ("$ref", Value::String(r)) => r
                    .strip_prefix("#/$defs/")
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
                _ => refs(v),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(refs).collect(),
        _ => Vec::new(),
    }
}

/// `reference`'s target in `root`, for a `#/$defs/...` reference.
fn resolve<'a>(root: &'a Value, property: &'a Value) -> &'a Value {
    match property["$ref"].as_str().and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => root.pointer(pointer).unwrap_or(&Value::Null),
        None => property,
    }
}

/// For each event type, the JSON Pointers of the fields its schema marks
/// `"x-personal": true`: envelope fields first, then the payload's, each
/// level in alphabetical order.
pub(crate) fn personal_pointers_by_type() -> BTreeMap<String, Vec<String>> {
    schemas()
        .into_iter()
        .filter(|(name, _)| name != UNION_FILE)
        .map(|(_, schema)| {
            let mut pointers = Vec::new();
            collect_personal(&schema, &schema, "", &mut pointers);
            pointers.sort_by(|a, b| (a.matches('/').count(), a).cmp(&(b.matches('/').count(), b)));
            let type_name = schema["title"]
                .as_str()
                .expect("a titled schema")
                .to_owned();
            (type_name, pointers)
        })
        .collect()
}

fn collect_personal(root: &Value, schema: &Value, prefix: &str, out: &mut Vec<String>) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let pointer = format!("{prefix}/{}", name.replace('~', "~0").replace('/', "~1"));
        let target = resolve(root, property);
        if property["x-personal"] == true || target["x-personal"] == true {
            out.push(pointer.clone());
        }
        collect_personal(root, target, &pointer, out);
    }
}

/// The README of the schemas' folder: the events, their fields, which are
/// personal, and the versioning rule, all from the schemas.
fn readme(schemas: &[(String, Value)]) -> String {
    let mut out = String::new();
    let union = &schemas.last().expect("the union schema").1;
    out.push_str(&format!(
        "# Internal events, version {VERSION}\n\
         \n\
         <!-- Generated from the Rust types of `mobility/contracts` by\n     \
         `cargo run -p mobility-contracts --bin mobility-schemas -- docs/schemas/internal`;\n     \
         edit those types, not this file. -->\n\
         \n\
         The mobility platform's internal events: one JSON document per event, an\n\
         envelope (who, when, which event) around the event's `payload`. The JSON\n\
         Schemas (draft 2020-12) in this folder describe them: `<Type>.v{VERSION}.json`\n\
         for the events of one type, `{UNION_FILE}` for any event.\n\
         \n\
         Fields marked **personal** identify or locate a person; the schemas mark\n\
         them with `\"x-personal\": true`, and `mobility_contracts::personal_pointers`\n\
         lists them per event type.\n\
         \n\
         ## Envelope\n\
         \n\
         {}\n\
         | `/type` | string | | The event's type: one of those below. |\n\
         | `/payload` | object | | The event's payload: its fields depend on the type. |\n\
         \n\
         ## Events\n\
         \n\
         | Type | Schema | What happened | Personal fields |\n\
         |---|---|---|---|\n",
        field_table(union, union, "")
    ));
    let personal = personal_pointers_by_type();
    for (file, schema) in &schemas[..schemas.len() - 1] {
        let type_name = schema["title"].as_str().expect("a titled schema");
        let pointers: Vec<String> = personal[type_name]
            .iter()
            .map(|p| format!("`{p}`"))
            .collect();
        out.push_str(&format!(
            "| `{type_name}` | [`{file}`]({file}) | {} | {} |\n",
            one_line(&schema["description"]),
            pointers.join(", ")
        ));
    }
    for (_, schema) in &schemas[..schemas.len() - 1] {
        let payload = resolve(schema, &schema["properties"]["payload"]);
        out.push_str(&format!(
            "\n### {}\n\n{}\n\n{}\n",
            schema["title"].as_str().expect("a titled schema"),
            one_line(&schema["description"]),
            field_table(schema, payload, "/payload")
        ));
    }
    out.push_str(
        "\n## Versioning\n\
         \n\
         Every event carries `\"version\": 1`. A breaking change (a field removed,\n\
         renamed, retyped or made required, an enum value removed, a meaning\n\
         changed) is a new version: `v2` schemas published alongside these, and\n\
         events with `\"version\": 2`, while consumers move over. Adding an optional\n\
         field keeps the version, so consumers should ignore fields they do not\n\
         know.\n",
    );
    out
}

/// A Markdown table of `schema`'s fields (`prefix` + name), in the order
/// of its `required` list (the Rust types' field order).
fn field_table(root: &Value, schema: &Value, prefix: &str) -> String {
    let mut table = String::from("| Field | Type | Personal | Description |\n|---|---|---|---|");
    let order = schema["required"].as_array().cloned().unwrap_or_default();
    for name in order.iter().filter_map(Value::as_str) {
        let property = &schema["properties"][name];
        let target = resolve(root, property);
        let personal = property["x-personal"] == true || target["x-personal"] == true;
        let description = match property.get("description") {
            Some(d) => d,
            None => &target["description"],
        };
        table.push_str(&format!(
            "\n| `{prefix}/{name}` | {} | {} | {} |",
            type_label(target),
            if personal { "**personal**" } else { "" },
            one_line(description)
        ));
    }
    table
}

/// How a field's schema reads in a table: `string (uuid)`, `string or
/// null`, `number >= 0`, `"TripEnded"`, `` `Bus` | `Tram` ``...
fn type_label(schema: &Value) -> String {
    if let Some(c) = schema.get("const") {
        return format!("`{c}`");
    }
    let values: Vec<&Value> = match (schema.get("enum"), schema.get("oneOf")) {
        (Some(Value::Array(values)), _) => values.iter().collect(),
        (_, Some(Value::Array(branches))) => {
            branches.iter().filter_map(|b| b.get("const")).collect()
        }
        _ => Vec::new(),
    };
    if !values.is_empty() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect();
        return values.join(" \\| ");
    }
    let mut label = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "object".to_owned(),
    };
    if let Some(format) = schema["format"]
        .as_str()
        .filter(|f| !matches!(*f, "double" | "uint32"))
    {
        label.push_str(&format!(" ({format})"));
    }
    if let Some(min) = schema.get("minimum") {
        label.push_str(&format!(" >= {min}"));
    }
    label
}

/// A description on one line, as a table cell needs it.
fn one_line(description: &Value) -> String {
    description
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}
