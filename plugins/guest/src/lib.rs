//! Helpers for writing Switchyard plugins in Rust.
//!
//! A plugin implements [`Plugin`] (turn the config into a value once, then
//! turn each record into an [`Outcome`]) and exports it with
//! [`export_plugin!`]. The crate owns the rest: the bindings of
//! `wit/plugin.wit`, keeping the accepted config for the instance's life,
//! answering a `process` that comes before `init`, and the JSON chores every
//! plugin repeats (object in, object out, a clear reason when a value is not
//! one), and the host's per-subject encryption behind a trait that unit
//! tests can fake ([`subjects`]).
//!
//! (The same example is in docs/writing-a-plugin.md.)
//!
//! ```
//! use switchyard_guest::json::map_object;
//! use switchyard_guest::{export_plugin, Event, Outcome, Plugin};
//!
//! struct Stamp;
//!
//! impl Plugin for Stamp {
//!     const NAME: &'static str = "stamp"; // prefixes refusals of the config
//!     type Config = String;
//!
//!     fn configure(config: &str) -> Result<String, String> {
//!         Ok(config.to_owned())
//!     }
//!
//!     fn process(stamp: &String, event: Event) -> Outcome {
//!         // Tombstones pass, non-objects are rejected with the reason.
//!         map_object(event, |object| {
//!             object.insert("stamp".into(), stamp.clone().into());
//!             Ok(())
//!         })
//!     }
//! }
//!
//! export_plugin!(Stamp);
//! ```

pub mod json;
pub mod mapping;
pub mod subjects;

/// The bindings of the `plugin` world, generated once for every plugin.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        // Plugins export through `export_plugin!`, from their own crate.
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "switchyard_guest::bindings",
    });
}

pub use bindings::switchyard::plugin::log::{log, Level};
pub use bindings::switchyard::plugin::types::{Error, Event, Header, Outcome, Output};
pub use bindings::switchyard::plugin::{clock, state};

/// A record with `key` and `value`, from partition 0 of topic `test` at
/// offset 0, no headers: what a plugin's unit tests feed it.
pub fn test_event(key: Option<&[u8]>, value: Option<&[u8]>) -> Event {
    Event {
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: Vec::new(),
        topic: "test".into(),
        partition: 0,
        offset: 0,
        timestamp_ms: None,
    }
}

/// A plugin: a config accepted once per instance, then records one by one.
pub trait Plugin: 'static {
    /// Prefixes the plugin's error messages, so an operator reading a log or
    /// a dead-letter header knows which step of the chain spoke.
    const NAME: &'static str;

    /// What `configure` makes of the route's config for this chain step.
    type Config: 'static;

    /// Check and prepare the config (the route's `config` table as JSON).
    /// An `Err` refuses it: the route does not start and the operator sees
    /// the message, prefixed with [`Plugin::NAME`].
    fn configure(config: &str) -> Result<Self::Config, String>;

    /// The outcome of one record.
    fn process(config: &Self::Config, event: Event) -> Outcome;

    /// The outcomes of a batch, one per record in order. Override only to
    /// work across the records of a batch.
    fn process_batch(config: &Self::Config, batch: Vec<Event>) -> Vec<Outcome> {
        batch
            .into_iter()
            .map(|event| Self::process(config, event))
            .collect()
    }
}

/// `init`, with the plugin's name in front of a refusal. Used by
/// [`export_plugin!`].
#[doc(hidden)]
pub fn init<P: Plugin>(config: &str) -> Result<P::Config, String> {
    P::configure(config).map_err(|e| format!("{}: {e}", P::NAME))
}

/// `process` for an instance that may not have a config yet. Used by
/// [`export_plugin!`].
#[doc(hidden)]
pub fn process<P: Plugin>(config: Option<&P::Config>, batch: Vec<Event>) -> Vec<Outcome> {
    match config {
        Some(config) => P::process_batch(config, batch),
        // The host always calls `init` first; say so if it ever did not.
        None => batch
            .iter()
            .map(|_| {
                Outcome::Fail(Error::Fatal(format!(
                    "{}: process called before init",
                    P::NAME
                )))
            })
            .collect(),
    }
}

/// Export a [`Plugin`] as the component's `transform` interface.
///
/// Expands to the instance's config slot (an instance runs one call at a
/// time, on one thread, so a thread-local is all it needs) and the
/// `transform` implementation that fills and reads it.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            use ::std::cell::RefCell;
            use ::std::option::Option;
            use ::std::result::Result;
            use ::std::string::String;
            use ::std::vec::Vec;

            use $crate::bindings::exports::switchyard::plugin::transform::Guest;

            type InstanceConfig = <$plugin as $crate::Plugin>::Config;

            ::std::thread_local! {
                static CONFIG: RefCell<Option<InstanceConfig>> = const { RefCell::new(None) };
            }

            struct Export;

            impl Guest for Export {
                fn init(config: String) -> Result<(), String> {
                    let config = $crate::init::<$plugin>(&config)?;
                    CONFIG.with(|slot| *slot.borrow_mut() = Some(config));
                    Ok(())
                }

                fn process(batch: Vec<$crate::Event>) -> Vec<$crate::Outcome> {
                    CONFIG.with(|slot| $crate::process::<$plugin>(slot.borrow().as_ref(), batch))
                }
            }

    $crate::bindings::export_bindings!(Export with_types_in $crate::bindings);
        };
    };
}
