//! The OpenAPI 3 document of the event APIs, generated from the handlers'
//! annotations, at `GET /openapi.json`; Swagger UI, served from files built
//! into the binary, at `/swagger`.
//!
//! The document describes the server that serves it: what depends on the
//! routes file (whether `GET /events` needs a bearer token, its largest
//! `limit`) is written into it at start, so that clients and contract
//! tests read what this server enforces.

use axum::Router;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{events, streams, AppState};

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

/// What of the document depends on the routes file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `GET /events` needs a bearer token.
    pub events_read_token: bool,
    /// Largest `limit` of `GET /events`.
    pub events_max_limit: usize,
}

impl Settings {
    pub fn of(state: &AppState) -> Settings {
        Settings {
            events_read_token: state
                .events_api
                .as_ref()
                .is_some_and(|api| api.reads_need_token()),
            events_max_limit: state
                .events_api
                .as_ref()
                .map_or(crate::config::MAX_EVENTS_LIMIT, |api| api.max_limit()),
        }
    }
}

/// The document of a server with `settings`.
pub fn document(settings: Settings) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let read = doc
        .paths
        .paths
        .get_mut("/events")
        .and_then(|path| path.get.as_mut())
        .expect("GET /events is in the document");
    let max = settings.events_max_limit;
    let default = events::DEFAULT_LIMIT.min(max);
    for parameter in read.parameters.iter_mut().flatten() {
        if parameter.name == "limit" {
            parameter.description = Some(format!(
                "How many, 1 to {max}; default {default}. A larger one is a 400 naming the largest"
            ));
            parameter.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1usize))
                    .maximum(Some(max))
                    .default(Some(default.into()))
                    .into(),
            );
        }
    }
    if settings.events_read_token {
        read.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
    doc
}

/// `/openapi.json` and Swagger UI, for the server `state` describes.
pub fn router<S: Clone + Send + Sync + 'static>(state: &AppState) -> Router<S> {
    SwaggerUi::new(UI_PATH)
        .url(SPEC_PATH, document(Settings::of(state)))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_states_the_read_token_and_the_largest_limit() {
        let open = serde_json::to_value(document(Settings {
            events_read_token: false,
            events_max_limit: 1000,
        }))
        .unwrap();
        let read = &open["paths"]["/events"]["get"];
        assert!(read.get("security").is_none(), "{read}");
        assert_eq!(read["parameters"][0]["schema"]["maximum"], 1000);
        assert_eq!(read["parameters"][0]["schema"]["default"], 20);

        let guarded = serde_json::to_value(document(Settings {
            events_read_token: true,
            events_max_limit: 10,
        }))
        .unwrap();
        let read = &guarded["paths"]["/events"]["get"];
        assert_eq!(read["security"], serde_json::json!([{"bearer": []}]));
        assert_eq!(read["parameters"][0]["schema"]["maximum"], 10);
        assert_eq!(read["parameters"][0]["schema"]["default"], 10);
        assert_eq!(
            guarded["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }
}
