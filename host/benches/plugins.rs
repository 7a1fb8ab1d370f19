//! Microbenchmarks of the plugin layer: what a plugin call costs per record
//! at several batch sizes, what a fresh instance costs against a pooled
//! one, and what the compile cache saves on load.
//!
//! ```sh
//! cargo build -p switchyard && scripts/build-plugins.sh target/debug/switchyard
//! cargo bench -p switchyard --bench plugins            # every group
//! cargo bench -p switchyard --bench plugins -- call/   # one group
//! ```
//!
//! Two plugins are measured:
//! - `echo-wat` and `drop-wat`, components written here in WebAssembly text:
//!   `echo-wat` emits each record unchanged (its key, value and headers
//!   point at the input the host lowered), `drop-wat` drops every record.
//!   They do no work of their own, so what they cost is the host-guest
//!   boundary: lowering the batch into the guest, the call, lifting the
//!   outcomes back (for `echo-wat`, one 512-byte value per record).
//! - `json-set`, the bundled plugin (Rust, serde_json in the guest), as a
//!   real transform: parse each record, set a field, serialise it again.
//!
//! Records are 512-byte JSON objects, as in the events API.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use switchyard::plugin::bindings::{Event, Outcome};
use switchyard::plugin::cache::{content_hash, CacheOutcome};
use switchyard::plugin::pool::Limits;
use switchyard::plugin::{InstancePool, LoadedPlugin, PluginRuntime};
use switchyard::route::chain::{Chain, Destination};

const BATCH_SIZES: [usize; 3] = [1, 16, 256];
const RECORD_BYTES: usize = 512;
const ROUTE: &str = "bench";
const JSON_SET_CONFIG: &str = r#"{"set":{"routed_by":"switchyard"}}"#;

/// Generous limits: a deadline hit would measure the trap path instead.
const LIMITS: Limits = Limits {
    call_timeout: Duration::from_secs(5),
    memory_bytes: 64 << 20,
};

/// The world the WAT components are encoded against: the host's own.
const WIT: &str = include_str!("../../wit/plugin.wit");

/// A guest with no work of its own. `MODE` is replaced by the body of the
/// per-record loop. Canonical ABI layouts (wasm32): `event` is 72 bytes
/// aligned to 8, its `key`, `value` and `headers` at offsets 0, 12 and 24
/// (32 bytes); `output` is 44 bytes, `target` at 0 then the same three
/// fields from 12; `outcome` is 16 bytes, discriminant at 0 (`emit` 0,
/// `drop` 1), payload at 4.
const NO_OP_WAT: &str = r#"
(module
  (memory (export "memory") 1)
  ;; A bump allocator, reset by the post-return functions: everything a call
  ;; allocates (its lowered input, its outcomes) is dead once the host has
  ;; lifted the results.
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (param $align i32) (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow
                (i32.shr_u
                  (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                  (i32.const 16)))
              (i32.const -1))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))
  (func (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32)
    (result i32)
    (local $new i32)
    (local.set $new (call $alloc (local.get $align) (local.get $new_size)))
    (if (local.get $old)
      (then
        (memory.copy (local.get $new) (local.get $old)
          (select (local.get $old_size) (local.get $new_size)
            (i32.lt_u (local.get $old_size) (local.get $new_size))))))
    (local.get $new))
  ;; init: result<_, string>, `ok` whatever the config.
  (func (export "switchyard:plugin/transform@0.1.0#init")
    (param i32 i32) (result i32)
    (local $ret i32)
    (local.set $ret (call $alloc (i32.const 4) (i32.const 12)))
    (i32.store8 (local.get $ret) (i32.const 0))
    (local.get $ret))
  (func (export "cabi_post_switchyard:plugin/transform@0.1.0#init") (param i32)
    (global.set $heap (i32.const 1024)))
  (func (export "switchyard:plugin/transform@0.1.0#process")
    (param $events i32) (param $n i32) (result i32)
    (local $outcomes i32) (local $outputs i32) (local $ret i32)
    (local $i i32) (local $oc i32) (local $out i32)
    (local.set $outcomes (call $alloc (i32.const 4) (i32.mul (local.get $n) (i32.const 16))))
    (local.set $outputs (call $alloc (i32.const 4) (i32.mul (local.get $n) (i32.const 44))))
    (local.set $ret (call $alloc (i32.const 4) (i32.const 8)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $oc (i32.add (local.get $outcomes) (i32.mul (local.get $i) (i32.const 16))))
        (local.set $out (i32.add (local.get $outputs) (i32.mul (local.get $i) (i32.const 44))))
        MODE
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.store (local.get $ret) (local.get $outcomes))
    (i32.store offset=4 (local.get $ret) (local.get $n))
    (local.get $ret))
  (func (export "cabi_post_switchyard:plugin/transform@0.1.0#process") (param i32)
    (global.set $heap (i32.const 1024))))
"#;

/// `emit([output])` with no target and the event's key, value and headers.
const ECHO_BODY: &str = r#"
        (i32.store8 (local.get $out) (i32.const 0))
        (memory.copy
          (i32.add (local.get $out) (i32.const 12))
          (i32.add (local.get $events) (i32.mul (local.get $i) (i32.const 72)))
          (i32.const 32))
        (i32.store8 (local.get $oc) (i32.const 0))
        (i32.store offset=4 (local.get $oc) (local.get $out))
        (i32.store offset=8 (local.get $oc) (i32.const 1))"#;

/// `drop`.
const DROP_BODY: &str = "(i32.store8 (local.get $oc) (i32.const 1))";

/// A component of the `switchyard:plugin` world from the no-op module with
/// `body` as its per-record step, the way `switchyard plugin build` makes
/// one from a core module: world metadata embedded, then encoded.
fn no_op_component(body: &str) -> Vec<u8> {
    let mut bindgen = wit_component::metadata::Bindgen::default();
    let package = bindgen
        .resolve
        .push_source("wit/plugin.wit", WIT)
        .expect("wit/plugin.wit parses");
    let world = bindgen
        .resolve
        .select_world(&[package], Some("plugin"))
        .expect("wit/plugin.wit has the world `plugin`");
    let mut module = wat::parse_str(NO_OP_WAT.replace("MODE", body)).expect("valid WAT");
    wit_component::embed_component_metadata(
        &mut module,
        &bindgen.resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("world metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .expect("the no-op module encodes as a component of the world")
}

/// Built plugin components: `SWITCHYARD_TEST_PLUGINS` (as for the tests),
/// else `target/plugins` of the workspace.
fn built_plugins_dir() -> PathBuf {
    std::env::var_os("SWITCHYARD_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"))
}

/// One plugin under test: its file and how a route step configures it.
struct Subject {
    name: &'static str,
    path: PathBuf,
    config: &'static str,
    loaded: LoadedPlugin,
}

struct Fixtures {
    /// Holds the plugin files and the warm compile cache; removed on exit.
    _dir: tempfile::TempDir,
    runtime: PluginRuntime,
    echo: Subject,
    drop: Subject,
    json_set: Subject,
}

/// Built once per run and shared by every group.
fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let source = built_plugins_dir().join("json-set.wasm");
        let json_set = std::fs::read(&source).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}. Build the plugins first: \
                 `cargo build -p switchyard && scripts/build-plugins.sh target/debug/switchyard` \
                 (or point SWITCHYARD_TEST_PLUGINS at a directory holding json-set.wasm)",
                source.display()
            )
        });
        let dir = tempfile::tempdir().expect("temp dir");
        // A copy, so that a rebuild of target/plugins during a run does not
        // change what is measured half-way.
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(format!("{name}.wasm"));
            std::fs::write(&path, bytes).expect("writing a plugin file");
            path
        };
        let echo_path = write("echo-wat", &no_op_component(ECHO_BODY));
        let drop_path = write("drop-wat", &no_op_component(DROP_BODY));
        let json_set_path = write("json-set", &json_set);
        let runtime = PluginRuntime::new(dir.path().join("cache")).expect("plugin runtime");
        let subject = |name, path: PathBuf, config| Subject {
            name,
            loaded: runtime.load(&path).expect("loading a plugin"),
            path,
            config,
        };
        Fixtures {
            echo: subject("echo-wat", echo_path, "{}"),
            drop: subject("drop-wat", drop_path, "{}"),
            json_set: subject("json-set", json_set_path, JSON_SET_CONFIG),
            runtime,
            _dir: dir,
        }
    })
}

fn pool(subject: &Subject) -> InstancePool {
    InstancePool::new(
        fixtures().runtime.clone(),
        subject.loaded.clone(),
        subject.config.to_owned(),
        ROUTE,
        LIMITS,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", subject.name))
}

/// A JSON object of exactly `RECORD_BYTES` bytes, a little different per
/// offset so that no two records of a batch are the same.
fn record(offset: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"userId":"u{offset}","type":"purchase","time":"2026-11-25T10:00:00Z","data":{{"amount":{offset}.5,"currency":"EUR"}},"pad":""#
    );
    let tail = r#""}"#;
    let pad = RECORD_BYTES - head.len() - tail.len();
    let value = format!("{head}{}{tail}", "x".repeat(pad));
    assert_eq!(value.len(), RECORD_BYTES);
    value.into_bytes()
}

fn batch(size: usize) -> Vec<Event> {
    (0..size)
        .map(|offset| Event {
            key: Some(format!("u{offset}").into_bytes()),
            value: Some(record(offset)),
            headers: vec![],
            topic: "bench.in".into(),
            partition: 0,
            offset: offset as i64,
            timestamp_ms: Some(1_764_000_000_000),
        })
        .collect()
}

/// Fails the run if a plugin does not do what the figures claim it does.
fn check(subject: &Subject, outcomes: &[Outcome], events: &[Event]) {
    assert_eq!(outcomes.len(), events.len(), "{}", subject.name);
    for (outcome, event) in outcomes.iter().zip(events) {
        match (subject.name, outcome) {
            ("drop-wat", Outcome::Drop) => {}
            ("echo-wat", Outcome::Emit(out)) => {
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].key, event.key);
                assert_eq!(out[0].value, event.value);
            }
            ("json-set", Outcome::Emit(out)) => {
                let value = out[0].value.as_deref().unwrap_or_default();
                assert!(
                    std::str::from_utf8(value)
                        .unwrap()
                        .ends_with(r#""routed_by":"switchyard"}"#),
                    "json-set did not set the field"
                );
            }
            (name, other) => panic!("{name}: unexpected outcome {other:?}"),
        }
    }
}

/// Time per batch of `InstancePool::process` on a warm pool (criterion
/// reports records/s from it), for each plugin and batch size; and
/// `Chain::run` of a one-step `json-set` chain, the same call plus what the
/// route does with the outcomes (routing, the chain header on each output).
fn call(c: &mut Criterion) {
    let f = fixtures();
    let mut group = c.benchmark_group("call");
    for subject in [&f.drop, &f.echo, &f.json_set] {
        let pool = pool(subject);
        for size in BATCH_SIZES {
            let events = batch(size);
            check(subject, &pool.process(&events).unwrap(), &events);
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(
                BenchmarkId::new(subject.name, size),
                &events,
                |b, events| b.iter(|| pool.process(black_box(events)).unwrap()),
            );
        }
    }
    let chain = Chain::new(
        vec![pool(&f.json_set)],
        Destination::topic("bench.out"),
        &BTreeMap::new(),
    );
    for size in BATCH_SIZES {
        let events = batch(size);
        assert!(chain.run(&events).iter().all(|r| r.is_ok()));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(
            BenchmarkId::new("chain-json-set", size),
            &events,
            |b, events| b.iter(|| chain.run(black_box(events))),
        );
    }
    group.finish();
}

/// A fresh instance against a pooled one. The pool has no way to
/// instantiate without keeping the instance, so `InstancePool::new` (which
/// instantiates and `init`s one, as a route start, a version swap and the
/// replacement of a trapped instance do) stands for it; `new+drop` adds
/// dropping it, which a replaced instance costs as well. Against it: a
/// one-record call on a warm pool, which takes the idle instance.
fn instance(c: &mut Criterion) {
    let f = fixtures();
    let mut group = c.benchmark_group("instance");
    let one = batch(1);
    for subject in [&f.echo, &f.json_set] {
        group.bench_function(BenchmarkId::new("new", subject.name), |b| {
            b.iter_batched(|| (), |()| pool(subject), BatchSize::PerIteration)
        });
        group.bench_function(BenchmarkId::new("new+drop", subject.name), |b| {
            b.iter(|| drop(black_box(pool(subject))))
        });
        let warm = pool(subject);
        group.bench_function(BenchmarkId::new("pooled-call", subject.name), |b| {
            b.iter(|| warm.process(black_box(&one)).unwrap())
        });
    }
    group.finish();
}

/// `PluginRuntime::load` from a warm compile cache against a compile into
/// an empty one (a new runtime on a new temp dir each iteration, made
/// outside the timing). The load also hashes the file (the cache key), so
/// that hash is measured on its own beside it.
fn load(c: &mut Criterion) {
    let f = fixtures();
    let mut group = c.benchmark_group("load");
    for subject in [&f.echo, &f.json_set] {
        let warm = f.runtime.load(&subject.path).unwrap();
        assert_eq!(warm.cache, CacheOutcome::Hit, "{}", subject.name);
        group.bench_function(BenchmarkId::new("cached", subject.name), |b| {
            b.iter(|| f.runtime.load(black_box(&subject.path)).unwrap())
        });
        let bytes = std::fs::read(&subject.path).unwrap();
        group.bench_function(BenchmarkId::new("content-hash", subject.name), |b| {
            b.iter(|| content_hash(black_box(&bytes)))
        });
    }
    // A compile takes tens to hundreds of milliseconds: fewer samples.
    group.sample_size(10);
    for subject in [&f.echo, &f.json_set] {
        group.bench_function(BenchmarkId::new("compile", subject.name), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let runtime = PluginRuntime::new(dir.path().to_owned()).unwrap();
                    (dir, runtime)
                },
                |(dir, runtime)| {
                    let loaded = runtime.load(&subject.path).unwrap();
                    assert_eq!(loaded.cache, CacheOutcome::Compiled);
                    // Dropped after the timing, with the temp dir.
                    (dir, runtime, loaded)
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, call, instance, load);
criterion_main!(benches);
