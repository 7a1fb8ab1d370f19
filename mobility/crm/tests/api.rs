//! The mock's HTTP API over a real socket: every status of every endpoint,
//! the validation rules, date-time normalisation, creation order, fault
//! injection, counters and reset. Every answer is also checked to be JSON.

mod support;

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ALLOW, CONTENT_TYPE, LOCATION};
use reqwest::Method;
use serde_json::{json, Value};

/// A fresh mock and a client for it.
struct Crm {
    base: String,
    client: reqwest::Client,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn problems(&self) -> Vec<String> {
        serde_json::from_value(self.body["problems"].clone())
            .unwrap_or_else(|_| panic!("no problems list in {}", self.body))
    }

    fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {}", self.body))
    }
}

impl Crm {
    /// A mock whose controls unlock with [`support::CONTROL_TOKEN`], which
    /// this client sends to them.
    async fn start() -> Self {
        Self::at(support::start().await)
    }

    fn at(address: std::net::SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            base: format!("http://{address}"),
            client,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, Vec::new()).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(
            Method::POST,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Any request, with the control token for the mock's controls (but
    /// the counters, which are open).
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let control = path.starts_with("/_mock/") && path != "/_mock/stats";
        let bearer = format!("Bearer {}", support::CONTROL_TOKEN);
        let authorization = control.then_some(bearer.as_str());
        self.send_as(method, path, content_type, body, authorization)
            .await
    }

    /// Any request, with `authorization` as its `Authorization`; asserts
    /// that the answer is JSON, as every answer of the mock (but Swagger
    /// UI's files) must be.
    async fn send_as(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        authorization: Option<&str>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        assert_eq!(
            headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{method} {path} -> {status}: {text}"
        );
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} -> {status}: not JSON ({e}): {text}"));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn stats(&self) -> Value {
        let answer = self.get("/_mock/stats").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body
    }
}

fn user(id: &str) -> Value {
    json!({
        "Id": id,
        "LastName": "Lovelace",
        "FirstName": "Ada",
        "Email": "ada@example.com",
        "LastTripType": "bike",
        "LastTripId": "t-1",
        "LastTripDate": "2026-01-01T10:00:00Z"
    })
}

fn trip(id: &str, user_id: &str) -> Value {
    json!({
        "Id": id,
        "UserId": user_id,
        "From": "Central Station",
        "To": "Airport",
        "Price": 12.5,
        "StartDate": "2026-01-01T10:00:00Z",
        "EndDate": "2026-01-01T10:25:00Z",
        "Type": "bike"
    })
}

fn without(mut record: Value, field: &str) -> Value {
    record.as_object_mut().unwrap().remove(field);
    record
}

fn with(mut record: Value, field: &str, value: Value) -> Value {
    record[field] = value;
    record
}

#[tokio::test]
async fn a_created_user_is_returned_with_its_location_and_can_be_fetched() {
    let crm = Crm::start().await;
    let created = crm.post("/users", user("u-1")).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.headers[LOCATION], "/users/u-1");
    assert_eq!(created.body, user("u-1"));

    let fetched = crm.get("/users/u-1").await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, user("u-1"));
}

#[tokio::test]
async fn a_created_trip_is_returned_with_its_location_and_can_be_fetched() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    let created = crm.post("/trips", trip("t-1", "u-1")).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.headers[LOCATION], "/trips/t-1");
    assert_eq!(created.body, trip("t-1", "u-1"));

    let fetched = crm.get("/trips/t-1").await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, trip("t-1", "u-1"));
}

#[tokio::test]
async fn the_location_of_an_id_with_reserved_characters_leads_back_to_it() {
    let crm = Crm::start().await;
    let created = crm.post("/users", user("a/b c")).await;
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.headers[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(location, "/users/a%2Fb%20c");
    let fetched = crm.get(&location).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["Id"], "a/b c");
}

#[tokio::test]
async fn lists_return_records_in_creation_order() {
    let crm = Crm::start().await;
    for id in ["u-3", "u-1", "u-2"] {
        assert_eq!(crm.post("/users", user(id)).await.status, 201);
    }
    for id in ["t-b", "t-a"] {
        assert_eq!(crm.post("/trips", trip(id, "u-1")).await.status, 201);
    }
    // A replacement keeps the record's place.
    let replaced = crm
        .post("/users/u-3", with(user("u-3"), "LastName", json!("Byron")))
        .await;
    assert_eq!(replaced.status, 200);

    let users = crm.get("/users").await;
    assert_eq!(users.status, 200);
    let ids: Vec<&str> = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["u-3", "u-1", "u-2"]);
    assert_eq!(users.body[0]["LastName"], "Byron");

    let trips = crm.get("/trips").await;
    assert_eq!(trips.status, 200);
    let ids: Vec<&str> = trips
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["Id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t-b", "t-a"]);
}

#[tokio::test]
async fn empty_lists_are_empty_arrays() {
    let crm = Crm::start().await;
    assert_eq!(crm.get("/users").await.body, json!([]));
    assert_eq!(crm.get("/trips").await.body, json!([]));
}

#[tokio::test]
async fn nullable_fields_may_be_absent_or_null_and_are_always_returned() {
    let crm = Crm::start().await;
    let mut absent = user("u-absent");
    let mut null = user("u-null");
    for field in ["FirstName", "LastTripType", "LastTripId"] {
        absent = without(absent, field);
        null = with(null, field, Value::Null);
    }
    for body in [absent, null] {
        let created = crm.post("/users", body).await;
        assert_eq!(created.status, 201, "{created:?}");
        for field in ["FirstName", "LastTripType", "LastTripId"] {
            assert_eq!(
                created.body.get(field),
                Some(&Value::Null),
                "{field}: {created:?}"
            );
        }
        let id = created.body["Id"].as_str().unwrap().to_owned();
        assert_eq!(crm.get(&format!("/users/{id}")).await.body, created.body);
    }

    let mut absent = trip("t-absent", "u-null");
    let mut null = trip("t-null", "u-null");
    for field in ["From", "To", "EndDate"] {
        absent = without(absent, field);
        null = with(null, field, Value::Null);
    }
    for body in [absent, null] {
        let created = crm.post("/trips", body).await;
        assert_eq!(created.status, 201, "{created:?}");
        for field in ["From", "To", "EndDate"] {
            assert_eq!(
                created.body.get(field),
                Some(&Value::Null),
                "{field}: {created:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_required_field_absent_or_null_is_refused() {
    let crm = Crm::start().await;
    for field in ["Id", "LastName", "Email", "LastTripDate"] {
        for body in [
            without(user("u-1"), field),
            with(user("u-1"), field, Value::Null),
        ] {
            let answer = crm.post("/users", body).await;
            assert_eq!(answer.status, 400, "{answer:?}");
            assert_eq!(answer.error(), "invalid user");
            assert_eq!(answer.problems(), [format!("{field}: required")]);
        }
    }
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    for field in ["Id", "UserId", "Price", "StartDate", "Type"] {
        for body in [
            without(trip("t-1", "u-1"), field),
            with(trip("t-1", "u-1"), field, Value::Null),
        ] {
            let answer = crm.post("/trips", body).await;
            assert_eq!(answer.status, 400, "{answer:?}");
            assert_eq!(answer.error(), "invalid trip");
            assert_eq!(answer.problems(), [format!("{field}: required")]);
        }
    }
    assert_eq!(crm.get("/users").await.body.as_array().unwrap().len(), 1);
    assert_eq!(crm.get("/trips").await.body, json!([]));
}

#[tokio::test]
async fn date_times_are_stored_as_instants_and_returned_in_utc() {
    let crm = Crm::start().await;
    let cases = [
        ("2026-01-01T12:00:00+02:00", "2026-01-01T10:00:00Z"),
        ("2025-12-31T23:30:00-01:00", "2026-01-01T00:30:00Z"),
        ("2026-01-01T10:00:00.000Z", "2026-01-01T10:00:00Z"),
        ("2026-01-01T10:00:00.5+00:00", "2026-01-01T10:00:00.500Z"),
        ("2026-01-01T10:00:00.123456Z", "2026-01-01T10:00:00.123456Z"),
    ];
    for (index, (sent, returned)) in cases.into_iter().enumerate() {
        let id = format!("u-{index}");
        let created = crm
            .post("/users", with(user(&id), "LastTripDate", json!(sent)))
            .await;
        assert_eq!(created.status, 201, "{sent}: {created:?}");
        assert_eq!(created.body["LastTripDate"], returned, "{sent}");
        assert_eq!(
            crm.get(&format!("/users/{id}")).await.body["LastTripDate"],
            returned
        );
    }
    let created = crm
        .post(
            "/trips",
            with(
                with(
                    trip("t-1", "u-0"),
                    "StartDate",
                    json!("2026-01-01T11:00:00+01:00"),
                ),
                "EndDate",
                json!("2026-01-01T11:25:00.250+01:00"),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["StartDate"], "2026-01-01T10:00:00Z");
    assert_eq!(created.body["EndDate"], "2026-01-01T10:25:00.250Z");
}

#[tokio::test]
async fn a_date_time_without_an_offset_or_not_rfc_3339_is_refused() {
    let crm = Crm::start().await;
    for bad in [
        "yesterday",
        "2026-01-01T10:00:00",
        "2026-01-01",
        "01/01/2026 10:00",
    ] {
        let answer = crm
            .post("/users", with(user("u-1"), "LastTripDate", json!(bad)))
            .await;
        assert_eq!(answer.status, 400, "{bad}: {answer:?}");
        assert_eq!(
            answer.problems(),
            [format!("LastTripDate: not an RFC 3339 date-time: {bad:?}")]
        );
    }
    let answer = crm
        .post(
            "/users",
            with(user("u-1"), "LastTripDate", json!(1767261600)),
        )
        .await;
    assert_eq!(
        answer.problems(),
        ["LastTripDate: must be a string, got a number"]
    );
}

#[tokio::test]
async fn every_problem_of_a_user_is_reported_at_once() {
    let crm = Crm::start().await;
    let body = json!({
        "Id": "",
        "LastName": 5,
        "FirstName": false,
        "LastTripDate": "yesterday",
        "lastTripId": "t-1",
        "Phone": "+33 1 23 45 67 89"
    });
    let answer = crm.post("/users", body).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.error(), "invalid user");
    assert_eq!(
        answer.problems(),
        [
            "Id: must not be empty",
            "LastName: must be a string, got a number",
            "FirstName: must be a string, got a boolean",
            "Email: required",
            "LastTripDate: not an RFC 3339 date-time: \"yesterday\"",
            "Phone: unknown field",
            "lastTripId: unknown field (did you mean `LastTripId`?)",
        ]
    );
}

#[tokio::test]
async fn every_problem_of_a_trip_is_reported_at_once() {
    let crm = Crm::start().await;
    let body = json!({
        "Id": "t-1",
        "UserId": "u-9",
        "From": 1,
        "Price": -3,
        "StartDate": "2026-13-01T10:00:00Z",
        "EndDate": "soon",
        "Type": "",
        "Distance": 4.2
    });
    let answer = crm.post("/trips", body).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.error(), "invalid trip");
    assert_eq!(
        answer.problems(),
        [
            "UserId: no user `u-9`",
            "From: must be a string, got a number",
            "Price: must be >= 0, got -3",
            "StartDate: not an RFC 3339 date-time: \"2026-13-01T10:00:00Z\"",
            "EndDate: not an RFC 3339 date-time: \"soon\"",
            "Type: must not be empty",
            "Distance: unknown field",
        ]
    );
}

#[tokio::test]
async fn an_email_needs_one_at_with_text_on_both_sides() {
    let crm = Crm::start().await;
    for bad in [
        "ada.example.com",
        "@example.com",
        "ada@",
        "ada@@example.com",
    ] {
        let answer = crm
            .post("/users", with(user("u-1"), "Email", json!(bad)))
            .await;
        assert_eq!(answer.status, 400, "{bad}: {answer:?}");
        assert_eq!(
            answer.problems(),
            [format!("Email: not an email address: {bad:?}")]
        );
    }
    let answer = crm
        .post("/users", with(user("u-1"), "Email", json!("")))
        .await;
    assert_eq!(answer.problems(), ["Email: must not be empty"]);
}

#[tokio::test]
async fn a_price_must_be_a_number_of_zero_or_more() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    let answer = crm
        .post("/trips", with(trip("t-1", "u-1"), "Price", json!("12.5")))
        .await;
    assert_eq!(answer.problems(), ["Price: must be a number, got a string"]);
    let answer = crm
        .post("/trips", with(trip("t-1", "u-1"), "Price", json!(-0.01)))
        .await;
    assert_eq!(answer.problems(), ["Price: must be >= 0, got -0.01"]);
    let free = crm
        .post("/trips", with(trip("t-1", "u-1"), "Price", json!(0)))
        .await;
    assert_eq!(free.status, 201, "{free:?}");
    assert_eq!(free.body["Price"], 0.0);
}

#[tokio::test]
async fn a_trip_of_an_unknown_user_is_refused_on_creation_and_replacement() {
    let crm = Crm::start().await;
    let answer = crm.post("/trips", trip("t-1", "u-9")).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.problems(), ["UserId: no user `u-9`"]);

    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    assert_eq!(crm.post("/trips", trip("t-1", "u-1")).await.status, 201);
    let answer = crm.post("/trips/t-1", trip("t-1", "u-9")).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.problems(), ["UserId: no user `u-9`"]);
    assert_eq!(crm.get("/trips/t-1").await.body["UserId"], "u-1");
}

#[tokio::test]
async fn fields_unknown_to_the_contract_are_refused() {
    let crm = Crm::start().await;
    let answer = crm
        .post(
            "/users",
            with(user("u-1"), "email", json!("ada@example.com")),
        )
        .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        answer.problems(),
        ["email: unknown field (did you mean `Email`?)"]
    );
    assert_eq!(crm.get("/users").await.body, json!([]));
}

#[tokio::test]
async fn malformed_json_and_bodies_that_are_not_objects_are_refused() {
    let crm = Crm::start().await;
    for path in [
        "/users",
        "/users/u-1",
        "/trips",
        "/trips/t-1",
        "/_mock/faults",
    ] {
        let answer = crm
            .send(
                Method::POST,
                path,
                Some("application/json"),
                b"{\"Id\": ".to_vec(),
            )
            .await;
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        assert!(answer.error().starts_with("malformed JSON: "), "{answer:?}");
        assert!(answer.body.get("problems").is_none(), "{answer:?}");

        let answer = crm.post(path, json!([user("u-1")])).await;
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        assert_eq!(
            answer.error(),
            "request body must be a JSON object, got an array"
        );
    }
}

#[tokio::test]
async fn a_body_not_sent_as_json_is_refused_with_415() {
    let crm = Crm::start().await;
    let body = user("u-1").to_string().into_bytes();
    for path in [
        "/users",
        "/users/u-1",
        "/trips",
        "/trips/t-1",
        "/_mock/faults",
    ] {
        let answer = crm
            .send(Method::POST, path, Some("text/plain"), body.clone())
            .await;
        assert_eq!(answer.status, 415, "{path}: {answer:?}");
        assert_eq!(
            answer.error(),
            "Content-Type must be application/json, got \"text/plain\""
        );
        let answer = crm.send(Method::POST, path, None, body.clone()).await;
        assert_eq!(answer.status, 415, "{path}: {answer:?}");
        assert_eq!(
            answer.error(),
            "missing Content-Type: send the body as application/json"
        );
    }
    // Parameters are allowed, and the media type is case-insensitive.
    let answer = crm
        .send(
            Method::POST,
            "/users",
            Some("Application/JSON; charset=utf-8"),
            body,
        )
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    let crm = Crm::start().await;
    let huge = with(user("u-1"), "LastName", json!("x".repeat(64 * 1024)));
    for path in [
        "/users",
        "/users/u-1",
        "/trips",
        "/trips/t-1",
        "/_mock/faults",
    ] {
        let answer = crm.post(path, huge.clone()).await;
        assert_eq!(answer.status, 413, "{path}: {answer:?}");
        assert_eq!(answer.error(), "request body is larger than 65536 bytes");
    }
    // Just under the limit is fine.
    let name = "x".repeat(60 * 1024);
    let answer = crm
        .post("/users", with(user("u-1"), "LastName", json!(name)))
        .await;
    assert_eq!(answer.status, 201);
}

#[tokio::test]
async fn an_existing_id_cannot_be_created_again() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    let again = crm
        .post("/users", with(user("u-1"), "LastName", json!("Byron")))
        .await;
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(again.error(), "user `u-1` already exists");
    assert_eq!(crm.get("/users/u-1").await.body["LastName"], "Lovelace");

    assert_eq!(crm.post("/trips", trip("t-1", "u-1")).await.status, 201);
    let again = crm.post("/trips", trip("t-1", "u-1")).await;
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(again.error(), "trip `t-1` already exists");
    assert_eq!(crm.get("/trips").await.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_replacement_is_the_whole_record_with_the_id_from_the_path() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);

    // Without Id, and without a nullable field, which becomes null.
    let body = without(
        without(with(user("u-1"), "LastName", json!("Byron")), "Id"),
        "FirstName",
    );
    let replaced = crm.post("/users/u-1", body).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let expected = with(
        with(user("u-1"), "LastName", json!("Byron")),
        "FirstName",
        Value::Null,
    );
    assert_eq!(replaced.body, expected);
    assert_eq!(crm.get("/users/u-1").await.body, expected);

    // With the same Id.
    let replaced = crm.post("/users/u-1", user("u-1")).await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.body, user("u-1"));

    // A required field left out is a problem: the body is the whole record.
    let answer = crm.post("/users/u-1", without(user("u-1"), "Email")).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.problems(), ["Email: required"]);

    assert_eq!(crm.post("/trips", trip("t-1", "u-1")).await.status, 201);
    let replaced = crm
        .post(
            "/trips/t-1",
            without(with(trip("t-1", "u-1"), "Price", json!(3)), "Id"),
        )
        .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.body["Id"], "t-1");
    assert_eq!(crm.get("/trips/t-1").await.body["Price"], 3.0);
}

#[tokio::test]
async fn a_replacement_whose_id_differs_from_the_path_is_refused() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    assert_eq!(crm.post("/users", user("u-2")).await.status, 201);
    let answer = crm.post("/users/u-1", user("u-2")).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        answer.problems(),
        ["Id: `u-2` differs from the id in the path, `u-1`"]
    );

    let answer = crm
        .post("/users/u-1", with(user("u-1"), "Id", Value::Null))
        .await;
    assert_eq!(
        answer.problems(),
        ["Id: must be the id in the path or absent, got null"]
    );

    assert_eq!(crm.post("/trips", trip("t-1", "u-1")).await.status, 201);
    let answer = crm.post("/trips/t-1", trip("t-2", "u-1")).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(
        answer.problems(),
        ["Id: `t-2` differs from the id in the path, `t-1`"]
    );
    assert_eq!(crm.get("/users/u-1").await.body, user("u-1"));
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let crm = Crm::start().await;
    let answer = crm.get("/users/x").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error(), "user `x` not found");
    let answer = crm.get("/trips/x").await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error(), "trip `x` not found");

    let answer = crm.post("/users/x", user("x")).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(answer.error(), "user `x` not found");
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    let answer = crm.post("/trips/x", without(trip("x", "u-1"), "Id")).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert_eq!(answer.error(), "trip `x` not found");
    // Replacement never creates.
    assert_eq!(crm.get("/trips").await.body, json!([]));
}

#[tokio::test]
async fn an_id_that_is_not_utf8_once_decoded_is_400() {
    let crm = Crm::start().await;
    let answer = crm.get("/users/%FF").await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(!answer.error().is_empty());
}

#[tokio::test]
async fn unknown_paths_are_404_and_unsupported_methods_405() {
    let crm = Crm::start().await;
    for path in ["/customers", "/users/u-1/trips", "/_mock"] {
        let answer = crm.get(path).await;
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
        assert_eq!(answer.error(), format!("no route for GET {path}"));
    }
    for (method, path) in [
        (Method::DELETE, "/users"),
        (Method::PUT, "/users/u-1"),
        (Method::PATCH, "/trips"),
        (Method::DELETE, "/trips/t-1"),
        (Method::GET, "/_mock/faults"),
        (Method::POST, "/_mock/stats"),
        (Method::GET, "/_mock/reset"),
    ] {
        let answer = crm.send(method.clone(), path, None, Vec::new()).await;
        assert_eq!(answer.status, 405, "{method} {path}: {answer:?}");
        assert_eq!(
            answer.error(),
            format!("method {method} not allowed on {path}")
        );
        assert!(answer.headers.contains_key(ALLOW), "{answer:?}");
    }
    let answer = crm.send(Method::DELETE, "/users", None, Vec::new()).await;
    assert_eq!(answer.headers[ALLOW], "GET,HEAD,POST");
}

#[tokio::test]
async fn the_root_redirects_to_the_api_explorer() {
    let crm = Crm::start().await;
    let answer = crm.get("/").await;
    assert_eq!(answer.status, 307);
    assert_eq!(answer.headers[LOCATION], "/swagger/");
}

#[tokio::test]
async fn a_counted_fault_answers_that_many_requests_then_the_api_recovers() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    let fault = crm
        .post("/_mock/faults", json!({"status": 503, "count": 2}))
        .await;
    assert_eq!(fault.status, 200, "{fault:?}");
    assert_eq!(
        fault.body,
        json!({"status": 503, "for_ms": null, "count": 2, "delay_ms": null})
    );

    let first = crm.get("/users").await;
    assert_eq!(first.status, 503);
    assert_eq!(first.body, json!({"error": "injected fault"}));
    // Writes are faulted too, and do not happen.
    let second = crm.post("/trips", trip("t-1", "u-1")).await;
    assert_eq!(second.status, 503);
    assert_eq!(second.body, json!({"error": "injected fault"}));

    let recovered = crm.get("/trips").await;
    assert_eq!(recovered.status, 200);
    assert_eq!(recovered.body, json!([]));

    assert_eq!(
        crm.stats().await,
        json!({
            "requests": 4,
            "faulted": 2,
            "by_status": {"200": 1, "201": 1, "503": 2},
            "users": 1,
            "trips": 0
        })
    );
}

#[tokio::test]
async fn a_timed_fault_lasts_its_time_then_the_api_recovers() {
    let crm = Crm::start().await;
    let fault = crm
        .post("/_mock/faults", json!({"status": 502, "for_ms": 1500}))
        .await;
    assert_eq!(fault.status, 200, "{fault:?}");
    for path in ["/users", "/trips/t-1", "/users/u-1", "/nowhere/below/users"] {
        let answer = crm.get(path).await;
        let faulted = path != "/nowhere/below/users";
        assert_eq!(answer.status == 502, faulted, "{path}: {answer:?}");
    }
    // The mock's own endpoints are never faulted.
    assert_eq!(crm.get("/_mock/stats").await.status, 200);

    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(crm.get("/users").await.status, 200);
    let stats = crm.stats().await;
    assert_eq!(stats["faulted"], 3);
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["by_status"], json!({"200": 1, "502": 3}));
}

#[tokio::test]
async fn a_fault_may_add_latency() {
    let crm = Crm::start().await;
    let fault = crm
        .post(
            "/_mock/faults",
            json!({"status": 504, "count": 1, "delay_ms": 300}),
        )
        .await;
    assert_eq!(fault.status, 200, "{fault:?}");
    let started = Instant::now();
    assert_eq!(crm.get("/users").await.status, 504);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    assert_eq!(crm.get("/users").await.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn clearing_the_fault_restores_the_api_at_once() {
    let crm = Crm::start().await;
    let fault = crm
        .post("/_mock/faults", json!({"status": 500, "for_ms": 60000}))
        .await;
    assert_eq!(fault.status, 200);
    assert_eq!(crm.get("/users").await.status, 500);
    let cleared = crm
        .send(Method::DELETE, "/_mock/faults", None, Vec::new())
        .await;
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.body, json!({"cleared": true}));
    assert_eq!(crm.get("/users").await.status, 200);
    let again = crm
        .send(Method::DELETE, "/_mock/faults", None, Vec::new())
        .await;
    assert_eq!(again.body, json!({"cleared": false}));
}

#[tokio::test]
async fn an_invalid_fault_is_refused_with_every_problem() {
    let crm = Crm::start().await;
    let answer = crm
        .post(
            "/_mock/faults",
            json!({"status": 200, "count": 0, "Delay_MS": 5}),
        )
        .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.error(), "invalid fault");
    assert_eq!(
        answer.problems(),
        [
            "status: must be between 400 and 599, got 200",
            "count: must be between 1 and 1000000000, got 0",
            "Delay_MS: unknown field (did you mean `delay_ms`?)",
        ]
    );
    for status in [399, 600] {
        let answer = crm
            .post("/_mock/faults", json!({"status": status, "count": 1}))
            .await;
        assert_eq!(answer.status, 400, "{status}: {answer:?}");
    }
    let answer = crm
        .post("/_mock/faults", json!({"status": 503, "count": null}))
        .await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.problems(), ["for_ms: give for_ms, count or both"]);
    let answer = crm
        .post("/_mock/faults", json!({"status": 503, "count": 1e10}))
        .await;
    assert_eq!(
        answer.problems(),
        ["count: must be between 1 and 1000000000, got 10000000000"]
    );
    let answer = crm.post("/_mock/faults", json!({"for_ms": 10.5})).await;
    assert_eq!(
        answer.problems(),
        [
            "status: required",
            "for_ms: must be a whole number, got 10.5"
        ]
    );
    // Nothing was injected.
    assert_eq!(crm.get("/users").await.status, 200);
    // A whole number written with a fraction of zero is a whole number.
    let answer = crm
        .post("/_mock/faults", json!({"status": 503.0, "count": 1.0}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["count"], 1);
}

#[tokio::test]
async fn stats_count_crm_api_requests_by_status_only() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    assert_eq!(crm.post("/users", user("u-1")).await.status, 409);
    assert_eq!(crm.get("/users/u-2").await.status, 404);
    assert_eq!(crm.post("/trips", trip("t-1", "u-1")).await.status, 201);
    assert_eq!(
        crm.send(Method::PUT, "/trips", None, Vec::new())
            .await
            .status,
        405
    );
    assert_eq!(crm.get("/trips").await.status, 200);
    // Neither the mock's endpoints, the explorer nor other paths count.
    crm.stats().await;
    assert_eq!(crm.get("/customers").await.status, 404);
    let spec = crm
        .client
        .get(format!("{}/openapi.json", crm.base))
        .send()
        .await
        .unwrap();
    assert_eq!(spec.status(), 200);

    assert_eq!(
        crm.stats().await,
        json!({
            "requests": 6,
            "faulted": 0,
            "by_status": {"200": 1, "201": 2, "404": 1, "405": 1, "409": 1},
            "users": 1,
            "trips": 1
        })
    );
}

#[tokio::test]
async fn reset_empties_records_faults_and_counters() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    assert_eq!(crm.post("/trips", trip("t-1", "u-1")).await.status, 201);
    let fault = crm
        .post("/_mock/faults", json!({"status": 503, "count": 5}))
        .await;
    assert_eq!(fault.status, 200);
    assert_eq!(crm.get("/users").await.status, 503);

    let reset = crm
        .send(Method::POST, "/_mock/reset", None, Vec::new())
        .await;
    assert_eq!(reset.status, 200, "{reset:?}");
    let zero = json!({"requests": 0, "faulted": 0, "by_status": {}, "users": 0, "trips": 0});
    assert_eq!(reset.body, zero);
    assert_eq!(crm.stats().await, zero);

    let users = crm.get("/users").await;
    assert_eq!(users.status, 200, "the fault is gone");
    assert_eq!(users.body, json!([]));
    assert_eq!(crm.get("/trips").await.body, json!([]));
    assert_eq!(crm.get("/users/u-1").await.status, 404);
    // The ids are free again.
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
}

#[tokio::test]
async fn mock_control_is_refused_to_anyone_without_the_control_token() {
    let crm = Crm::start().await;
    assert_eq!(crm.post("/users", user("u-1")).await.status, 201);
    let fault = json!({"status": 503, "for_ms": 60000})
        .to_string()
        .into_bytes();
    for (method, path, body) in [
        (Method::POST, "/_mock/faults", fault.clone()),
        (Method::DELETE, "/_mock/faults", Vec::new()),
        (Method::POST, "/_mock/reset", Vec::new()),
    ] {
        for (authorization, error) in [
            (
                None,
                "mock control needs `Authorization: Bearer <control token>`",
            ),
            (
                Some("Basic dXNlcjpwYXNz"),
                "mock control needs `Authorization: Bearer <control token>`",
            ),
            (
                Some("Bearer not-the-control-token-at-all"),
                "the control token is not valid",
            ),
        ] {
            let answer = crm
                .send_as(
                    method.clone(),
                    path,
                    Some("application/json"),
                    body.clone(),
                    authorization,
                )
                .await;
            assert_eq!(
                answer.status, 401,
                "{method} {path} {authorization:?}: {answer:?}"
            );
            assert_eq!(answer.error(), error);
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
        }
    }
    // Nothing happened: no fault, the records are there; the counters are
    // open to anyone.
    assert_eq!(crm.get("/users/u-1").await.status, 200);
    let stats = crm
        .send_as(Method::GET, "/_mock/stats", None, Vec::new(), None)
        .await;
    assert_eq!(stats.status, 200, "{stats:?}");
    assert_eq!(stats.body["users"], 1);
}

#[tokio::test]
async fn mock_control_is_disabled_without_a_control_token() {
    let crm = Crm::at(support::start_with(None).await);
    let bearer = format!("Bearer {}", support::CONTROL_TOKEN);
    for (method, path) in [
        (Method::POST, "/_mock/faults"),
        (Method::DELETE, "/_mock/faults"),
        (Method::POST, "/_mock/reset"),
    ] {
        for authorization in [None, Some(bearer.as_str())] {
            let answer = crm
                .send_as(
                    method.clone(),
                    path,
                    Some("application/json"),
                    br#"{"status": 503, "count": 1}"#.to_vec(),
                    authorization,
                )
                .await;
            assert_eq!(answer.status, 403, "{method} {path}: {answer:?}");
            assert_eq!(
                answer.error(),
                "mock control is disabled: start the mock with a control token \
                 (--control-token or MOCK_CRM_CONTROL_TOKEN)"
            );
        }
    }
    assert_eq!(crm.get("/users").await.status, 200);
    assert_eq!(crm.get("/_mock/stats").await.status, 200);
}

#[test]
fn control_tokens_are_16_characters_or_more_and_never_shown() {
    let short = mock_crm::ControlToken::new("  short  ").unwrap_err();
    assert_eq!(
        short.to_string(),
        "the control token must be at least 16 characters (got 5)"
    );
    let token = mock_crm::ControlToken::new(support::CONTROL_TOKEN).unwrap();
    assert_eq!(format!("{token:?}"), "ControlToken(<withheld>)");
}
