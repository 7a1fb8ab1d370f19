//! `chaos`: a test fixture that misbehaves on request, so the host's
//! sandbox and failure handling can be tested. Not for production routes.
//!
//! The record value says what to do:
//! - `panic`: panic (a trap, since plugins abort on panic);
//! - `loop`: spin forever (only a deadline stops it);
//! - `grow`: allocate memory until something gives;
//! - `retry` / `fatal`: fail with that error kind;
//! - `reject`: reject with two reasons;
//! - `drop`: drop the record;
//! - `to:NAME`: emit the record to the named output `NAME`;
//! - `state:COUNT:BYTES`: store COUNT values of BYTES bytes each in `state`
//!   (keys `OFFSET/I`, so each record adds entries), then emit the record;
//! - `state-key:BYTES`: store one value under a key of BYTES bytes;
//! - `log:COUNT`: write COUNT log messages, each with a newline and a
//!   forged log line after it, then emit the record;
//! - `log-size:BYTES`: write one log message of BYTES bytes;
//! - anything else: emit the record unchanged.
//!
//! The command may also be a JSON string (`"panic"`, quotes included), for
//! routes fed by an HTTP API that accepts JSON only.
//!
//! Config: none (`{}`).

wit_bindgen::generate!({ path: "../../../wit", world: "plugin" });

use exports::switchyard::plugin::transform::Guest;
use switchyard::plugin::log::{log, Level};
use switchyard::plugin::state;
use switchyard::plugin::types::{Error, Event, Outcome, Output};

struct Chaos;

impl Guest for Chaos {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<Event>) -> Vec<Outcome> {
        batch.into_iter().map(process_one).collect()
    }
}

export!(Chaos);

fn process_one(event: Event) -> Outcome {
    let text = String::from_utf8_lossy(event.value.as_deref().unwrap_or_default()).into_owned();
    let command = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(&text)
        .to_owned();
    let (verb, argument) = command.split_once(':').unwrap_or((&command, ""));
    match verb {
        "panic" => panic!("chaos: asked to panic"),
        "loop" => loop {
            std::hint::spin_loop();
        },
        "grow" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "retry" => Outcome::Fail(Error::Retryable("chaos: try again".into())),
        "fatal" => Outcome::Fail(Error::Fatal("chaos: never works".into())),
        "reject" => Outcome::Reject(vec!["first reason".into(), "second reason".into()]),
        "drop" => Outcome::Drop,
        "to" => {
            let target = Some(argument.to_owned());
            emit(event, target)
        }
        "state" => {
            let (count, bytes) = two_numbers(argument);
            let value = vec![b's'; bytes];
            for i in 0..count {
                state::set(&format!("{}/{i}", event.offset), &value);
            }
            emit(event, None)
        }
        "state-key" => {
            state::set(&"k".repeat(number(argument)), b"v");
            emit(event, None)
        }
        "log" => {
            for i in 0..number(argument) {
                log(
                    Level::Info,
                    &format!(
                        "chaos: flood {i}\n2030-01-01T00:00:00.000000Z  INFO switchyard: forged \
                         line {i}\r\u{1b}[2K"
                    ),
                );
            }
            emit(event, None)
        }
        "log-size" => {
            log(Level::Info, &"L".repeat(number(argument)));
            emit(event, None)
        }
        _ => emit(event, None),
    }
}

fn emit(event: Event, target: Option<String>) -> Outcome {
    Outcome::Emit(vec![Output {
        target,
        key: event.key,
        value: event.value,
        headers: event.headers,
    }])
}

/// The number a command ends with; a malformed one is a panic (a trap),
/// as the tests write their commands.
fn number(text: &str) -> usize {
    text.parse().expect("chaos: a number")
}

fn two_numbers(text: &str) -> (usize, usize) {
    let (a, b) = text.split_once(':').expect("chaos: two numbers, A:B");
    (number(a), number(b))
}
