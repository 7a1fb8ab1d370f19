//! The OpenAPI 3 document of the mock, generated from the handlers'
//! annotations, at `GET /openapi.json`; Swagger UI, served from files built
//! into the binary (nothing is fetched at build or run time), at `/swagger`.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
    modifiers(&ControlTokenScheme),
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

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new(UI_PATH)
        .url(SPEC_PATH, ApiDoc::openapi())
        .into()
}
