//! The OpenAPI 3 document of the mock, generated from the handlers'
//! annotations, at `GET /openapi.json`; Swagger UI, served from files built
//! into the binary (nothing is fetched at build or run time), at `/swagger`.

use axum::Router;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::{mock, records};

/// Where the document is served.
const SPEC_PATH: &str = "/openapi.json";
/// Where Swagger UI is served.
const UI_PATH: &str = "/swagger";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mock CRM",
        description = "An in-memory mock of the CRM's REST API: users and trips. Data is lost when the process exits.\n\nEvery answer is JSON. Errors read `{\"error\": \"...\"}`, with `\"problems\": [\"Field: what is wrong\", ...]` listing every validation problem at once. A method a path does not support gets 405 (with `Allow`), an unknown path 404.\n\nThe `mock control` operations inject faults into `/users...` and `/trips...`, read traffic counters and reset everything. Injecting, clearing and resetting need the control token the mock was started with (`MOCK_CRM_CONTROL_TOKEN`) as a bearer token; without one configured they answer 403."
    ),
    modifiers(&ControlTokenScheme, &Replacements, &FaultEnd),
    paths(
        records::list_users,
        records::get_user,
        records::create_user,
        records::replace_user,
        records::list_trips,
        records::get_trip,
        records::create_trip,
        records::replace_trip,
        mock::set_fault,
        mock::clear_fault,
        mock::stats,
        mock::reset,
    ),
    tags(
        (name = "users", description = "Registered users of the mobility platform"),
        (name = "trips", description = "Trips made by registered users"),
        (name = "mock control", description = "Not part of the CRM: fault injection, traffic counters and reset, for tests"),
    )
)]
struct ApiDoc;

/// The bearer scheme of the controls that change the mock.
struct ControlTokenScheme;

impl Modify for ControlTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "control_token",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The body of a replacement (`POST /users/{id}`, `POST /trips/{id}`):
/// the record without `Id`, which the path gives. (A body may repeat it,
/// equal to the path's; the schema leaves it out, as JSON Schema cannot
/// compare a body with a path.)
struct Replacements;

impl Modify for Replacements {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (record, path) in [("User", "/users/{id}"), ("Trip", "/trips/{id}")] {
            let Some(RefOr::T(Schema::Object(mut object))) =
                components.schemas.get(record).cloned()
            else {
                panic!("the document has no `{record}` object schema");
            };
            object.properties.shift_remove("Id");
            object.required.retain(|field| field != "Id");
            object.description = Some(format!(
                "{} Its `Id` is the path's: a body may leave it out (or repeat it, equal).",
                object.description.unwrap_or_default()
            ));
            let name = format!("{record}Replacement");
            components
                .schemas
                .insert(name.clone(), RefOr::T(Schema::Object(object)));
            let body = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.request_body.as_mut())
                .unwrap_or_else(|| panic!("POST {path} has no request body"));
            body.content.insert(
                "application/json".into(),
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    name,
                )))),
            );
        }
    }
}

/// A fault must end: `for_ms` or `count` (not null), which the derived
/// schema cannot say.
struct FaultEnd;

impl Modify for FaultEnd {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let fault = components
            .schemas
            .get("Fault")
            .cloned()
            .expect("the document has the `Fault` schema");
        let given = |field: &str| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(Type::Integer))
                .required(field)
        };
        let with_an_end = AllOfBuilder::new()
            .item(fault)
            .item(
                AnyOfBuilder::new()
                    .item(given("for_ms"))
                    .item(given("count")),
            )
            .build();
        components
            .schemas
            .insert("Fault".into(), RefOr::T(Schema::AllOf(with_an_end)));
    }
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new(UI_PATH)
        .url(SPEC_PATH, ApiDoc::openapi())
        .into()
}
