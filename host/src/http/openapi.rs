//! The OpenAPI 3 document of the event APIs, generated from the handlers'
//! annotations, at `GET /openapi.json`; Swagger UI, served from files built
//! into the binary, at `/swagger`.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{events, streams};

/// Where the document is served.
pub const SPEC_PATH: &str = "/openapi.json";
/// Where Swagger UI is served.
pub const UI_PATH: &str = "/swagger";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard event APIs",
        description = "HTTP APIs backed by Kafka through Switchyard's plugin routes: the events API (publish validated events, read the most recent) and the streams API (single-writer streams with per-consumer positions acknowledged over HTTP)."
    ),
    paths(
        events::post_event,
        events::recent_events,
        streams::append,
        streams::read,
        streams::acknowledge,
    ),
    modifiers(&BasicAuth),
    tags(
        (name = "events", description = "Publish user activity events; read the most recent processed ones"),
        (name = "streams", description = "Named streams: one producer each, consumers acknowledge per event name"),
    )
)]
pub struct ApiDoc;

struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SwaggerUi::new(UI_PATH)
        .url(SPEC_PATH, ApiDoc::openapi())
        .into()
}
