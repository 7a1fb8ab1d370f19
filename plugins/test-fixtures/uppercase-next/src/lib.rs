//! Test fixture: "the next version" of `uppercase`. Same config
//! (`{"fields": [...]}`), same output, except that it also trims
//! surrounding whitespace; so it disagrees with `uppercase` exactly on the
//! records whose listed fields have some. The shadow-mode tests know which
//! fraction of their records that is.

use serde_json::Value;
use switchyard_guest::json::{config_object, map_object};
use switchyard_guest::{export_plugin, Event, Outcome, Plugin};

struct UppercaseNext;

impl Plugin for UppercaseNext {
    const NAME: &'static str = "uppercase";
    type Config = Vec<String>;

    fn configure(config: &str) -> Result<Vec<String>, String> {
        let mut top = config_object(config, r#"{"fields": ["name"]}"#)?;
        match top.remove("fields") {
            Some(Value::Array(names)) => names
                .into_iter()
                .map(|n| match n {
                    Value::String(n) => Ok(n),
                    other => Err(format!("\"fields\" must hold only strings, found {other}")),
                })
                .collect(),
            _ => Err("config needs a \"fields\" array of field names".into()),
        }
    }

    fn process(fields: &Vec<String>, event: Event) -> Outcome {
        map_object(event, |object| {
            for name in fields {
                if let Some(Value::String(s)) = object.get_mut(name) {
                    *s = s.trim().to_uppercase();
                }
            }
            Ok(())
        })
    }
}

export_plugin!(UppercaseNext);
