//! The OpenAPI document served at `/openapi.json` describes every operation
//! with every status it answers, and the contracts' nullability.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;

/// (method, path, statuses) of every documented operation. `default` stands
/// for injected faults, which may have any status 400..=599.
const OPERATIONS: &[(&str, &str, &[&str])] = &[
    ("get", "/users", &["200", "default"]),
    ("get", "/users/{id}", &["200", "400", "404", "default"]),
    (
        "post",
        "/users",
        &["201", "400", "409", "413", "415", "default"],
    ),
    (
        "post",
        "/users/{id}",
        &["200", "400", "404", "413", "415", "default"],
    ),
    ("get", "/trips", &["200", "default"]),
    ("get", "/trips/{id}", &["200", "400", "404", "default"]),
    (
        "post",
        "/trips",
        &["201", "400", "409", "413", "415", "default"],
    ),
    (
        "post",
        "/trips/{id}",
        &["200", "400", "404", "413", "415", "default"],
    ),
    (
        "post",
        "/_mock/faults",
        &["200", "400", "401", "403", "413", "415"],
    ),
    ("delete", "/_mock/faults", &["200", "401", "403"]),
    ("get", "/_mock/stats", &["200"]),
    ("post", "/_mock/reset", &["200", "401", "403"]),
];

async fn spec() -> Value {
    let address = support::start().await;
    let response = reqwest::get(format!("http://{address}/openapi.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn every_operation_is_documented_with_every_status_it_answers() {
    let spec = spec().await;
    assert_eq!(spec["info"]["title"], "Mock CRM");
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<_> = OPERATIONS
        .iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(documented, expected);

    for (method, path, statuses) in OPERATIONS {
        let operation = &spec["paths"][path][method];
        let documented: BTreeSet<&str> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = statuses.iter().copied().collect();
        assert_eq!(documented, expected, "{method} {path}");

        let tag = match path.split('/').nth(1).unwrap() {
            "_mock" => "mock control",
            collection => collection,
        };
        assert_eq!(
            operation["tags"],
            serde_json::json!([tag]),
            "{method} {path}"
        );
    }
    let created = &spec["paths"]["/users"]["post"]["responses"]["201"];
    assert!(created["headers"].get("Location").is_some(), "{created}");
    // The controls that change the mock declare its control token; the
    // rest, the counters included, are open.
    assert_eq!(
        spec["components"]["securitySchemes"]["control_token"]["scheme"],
        "bearer"
    );
    for (method, path, _) in OPERATIONS {
        let guarded = matches!(
            (*method, *path),
            ("post" | "delete", "/_mock/faults") | ("post", "/_mock/reset")
        );
        let security = &spec["paths"][path][method]["security"];
        if guarded {
            assert_eq!(
                security,
                &serde_json::json!([{"control_token": []}]),
                "{method} {path}"
            );
        } else {
            assert!(security.is_null(), "{method} {path}: {security}");
        }
    }
}

#[tokio::test]
async fn the_contracts_mark_exactly_the_nullable_fields_as_nullable() {
    let spec = spec().await;
    let schemas = &spec["components"]["schemas"];
    for (name, required, nullable) in [
        (
            "User",
            &["Id", "LastName", "Email", "LastTripDate"][..],
            &["FirstName", "LastTripType", "LastTripId"][..],
        ),
        (
            "Trip",
            &["Id", "UserId", "Price", "StartDate", "Type"][..],
            &["From", "To", "EndDate"][..],
        ),
    ] {
        let schema = &schemas[name];
        let documented_required: BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no required list: {schema}"))
            .iter()
            .map(|field| field.as_str().unwrap())
            .collect();
        assert_eq!(
            documented_required,
            required.iter().copied().collect(),
            "{name}"
        );
        let properties = schema["properties"].as_object().unwrap();
        let fields: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = required.iter().chain(nullable).copied().collect();
        assert_eq!(fields, expected, "{name}");
        for (field, property) in properties {
            assert_eq!(
                is_nullable(property),
                nullable.contains(&field.as_str()),
                "{name}.{field}: {property}"
            );
        }
    }
    for (name, field) in [
        ("User", "LastTripDate"),
        ("Trip", "StartDate"),
        ("Trip", "EndDate"),
    ] {
        let property = &schemas[name]["properties"][field];
        assert_eq!(
            property["format"], "date-time",
            "{name}.{field}: {property}"
        );
    }
}

/// OpenAPI 3.1 writes nullability as a `null` among the types; 3.0 as
/// `nullable: true`.
fn is_nullable(property: &Value) -> bool {
    let null_type = match &property["type"] {
        Value::Array(types) => types.iter().any(|t| t == "null"),
        other => other == "null",
    };
    null_type || property["nullable"] == true
}

#[tokio::test]
async fn the_document_states_what_the_server_refuses() {
    let spec = spec().await;
    let schemas = &spec["components"]["schemas"];
    // Unknown fields are refused.
    for name in ["User", "Trip", "UserReplacement", "TripReplacement"] {
        assert_eq!(
            schemas[name]["additionalProperties"], false,
            "{name}: {}",
            schemas[name]
        );
    }
    assert_eq!(
        schemas["User"]["properties"]["Email"]["pattern"],
        "^[^@]+@[^@]+$"
    );
    // A replacement takes its `Id` from the path.
    for (path, name) in [
        ("/users/{id}", "UserReplacement"),
        ("/trips/{id}", "TripReplacement"),
    ] {
        let body = &spec["paths"][path]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(
            body["schema"]["$ref"],
            format!("#/components/schemas/{name}"),
            "{path}"
        );
        assert!(schemas[name]["properties"].get("Id").is_none(), "{name}");
        assert!(
            !schemas[name]["required"]
                .as_array()
                .unwrap()
                .contains(&Value::from("Id")),
            "{name}"
        );
    }
    // A fault needs an end: `for_ms` or `count`, not null.
    let fault = &schemas["Fault"];
    let ends = &fault["allOf"][1]["anyOf"];
    assert_eq!(
        ends[0]["required"],
        serde_json::json!(["for_ms"]),
        "{fault}"
    );
    assert_eq!(ends[1]["required"], serde_json::json!(["count"]), "{fault}");
    assert_eq!(ends[1]["properties"]["count"]["type"], "integer");
    assert_eq!(
        fault["allOf"][0]["properties"]["count"]["maximum"],
        1_000_000_000
    );
}
