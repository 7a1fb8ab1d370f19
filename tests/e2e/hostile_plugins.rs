//! Hostile plugins written in WebAssembly text, for what a plugin compiled
//! from Rust cannot do: several linear memories in one instance, outputs
//! that all point at one region of memory, and components that create many
//! core instances or huge tables. Each is encoded into a component of the
//! `switchyard:plugin` world the way `switchyard plugin build` makes one
//! (world metadata embedded, then wit-component).
//!
//! The record value's first byte says what a [`hostile`] plugin does with
//! it: `g` grows every extra memory and touches it, `a` emits outputs
//! aliasing one region; anything else is emitted unchanged (the tests' own
//! records start with `o`, as `ok-0`).

use std::path::Path;

/// The world the components are encoded against: the host's own.
const WIT: &str = include_str!("../../wit/plugin.wit");

/// What a [`hostile`] plugin holds beyond an ordinary one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hostility {
    /// Linear memories besides the canonical ABI's, one page each at first.
    pub extra_memories: usize,
    /// Pages each extra memory grows by on a `g` record.
    pub grow_pages: u32,
    /// Outputs of an `a` record, each pointing at the same region.
    pub alias_outputs: u32,
    /// Bytes of that region.
    pub alias_bytes: u32,
}

/// Canonical ABI layouts (wasm32): `event` is 72 bytes, its `value` an
/// `option<list<u8>>` at 12 (discriminant; pointer at 16, length at 20);
/// `output` is 44 bytes: `target` at 0, `key` at 12, `value` at 24
/// (pointer at 28, length at 32), `headers` at 36; `outcome` is 16 bytes,
/// discriminant at 0 (`emit` 0), the list at 4 and 8.
const MODULE: &str = r#"
(module
  (memory (export "memory") 1)
  EXTRA_MEMORIES
  ;; A bump allocator, reset after each call: everything a call allocates
  ;; is dead once the host has lifted its results.
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
  (func (export "switchyard:plugin/transform@0.1.0#init")
    (param i32 i32) (result i32)
    (local $ret i32)
    (local.set $ret (call $alloc (i32.const 4) (i32.const 12)))
    (i32.store8 (local.get $ret) (i32.const 0))
    (local.get $ret))
  (func (export "cabi_post_switchyard:plugin/transform@0.1.0#init") (param i32)
    (global.set $heap (i32.const 1024)))
  ;; Grow every extra memory and write to all of it, so that it is resident.
  (func $grow_all
    GROW_ALL)
  ;; emit: ALIAS_OUTPUTS outputs whose values all point at one region.
  (func $alias (param $oc i32)
    (local $region i32) (local $outs i32) (local $o i32) (local $j i32)
    (local.set $region (call $alloc (i32.const 1) (i32.const ALIAS_BYTES)))
    (memory.fill (local.get $region) (i32.const 97) (i32.const ALIAS_BYTES))
    (local.set $outs (call $alloc (i32.const 4) (i32.mul (i32.const ALIAS_OUTPUTS) (i32.const 44))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (i32.const ALIAS_OUTPUTS)))
        (local.set $o (i32.add (local.get $outs) (i32.mul (local.get $j) (i32.const 44))))
        (i32.store8 (local.get $o) (i32.const 0))
        (i32.store8 offset=12 (local.get $o) (i32.const 0))
        (i32.store8 offset=24 (local.get $o) (i32.const 1))
        (i32.store offset=28 (local.get $o) (local.get $region))
        (i32.store offset=32 (local.get $o) (i32.const ALIAS_BYTES))
        (i32.store offset=36 (local.get $o) (i32.const 0))
        (i32.store offset=40 (local.get $o) (i32.const 0))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $next)))
    (i32.store8 (local.get $oc) (i32.const 0))
    (i32.store offset=4 (local.get $oc) (local.get $outs))
    (i32.store offset=8 (local.get $oc) (i32.const ALIAS_OUTPUTS)))
  (func (export "switchyard:plugin/transform@0.1.0#process")
    (param $events i32) (param $n i32) (result i32)
    (local $outcomes i32) (local $outputs i32) (local $ret i32)
    (local $i i32) (local $ev i32) (local $oc i32) (local $out i32) (local $cmd i32)
    (local.set $outcomes (call $alloc (i32.const 4) (i32.mul (local.get $n) (i32.const 16))))
    (local.set $outputs (call $alloc (i32.const 4) (i32.mul (local.get $n) (i32.const 44))))
    (local.set $ret (call $alloc (i32.const 4) (i32.const 8)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $ev (i32.add (local.get $events) (i32.mul (local.get $i) (i32.const 72))))
        (local.set $oc (i32.add (local.get $outcomes) (i32.mul (local.get $i) (i32.const 16))))
        (local.set $out (i32.add (local.get $outputs) (i32.mul (local.get $i) (i32.const 44))))
        (local.set $cmd (i32.const 0))
        (if (i32.and
              (i32.ne (i32.load8_u offset=12 (local.get $ev)) (i32.const 0))
              (i32.ne (i32.load offset=20 (local.get $ev)) (i32.const 0)))
          (then (local.set $cmd (i32.load8_u (i32.load offset=16 (local.get $ev))))))
        (if (i32.eq (local.get $cmd) (i32.const 103)) (then (call $grow_all)))
        (if (i32.eq (local.get $cmd) (i32.const 97))
          (then (call $alias (local.get $oc)))
          (else
            ;; emit([output]): no target, the event's key, value and headers.
            (i32.store8 (local.get $out) (i32.const 0))
            (memory.copy
              (i32.add (local.get $out) (i32.const 12))
              (local.get $ev)
              (i32.const 32))
            (i32.store8 (local.get $oc) (i32.const 0))
            (i32.store offset=4 (local.get $oc) (local.get $out))
            (i32.store offset=8 (local.get $oc) (i32.const 1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.store (local.get $ret) (local.get $outcomes))
    (i32.store offset=4 (local.get $ret) (local.get $n))
    (local.get $ret))
  (func (export "cabi_post_switchyard:plugin/transform@0.1.0#process") (param i32)
    (global.set $heap (i32.const 1024))))
"#;

/// A component of the world whose module holds what `hostility` says.
pub fn hostile(hostility: Hostility) -> Vec<u8> {
    let memories: String = (1..=hostility.extra_memories)
        .map(|k| format!("(memory $m{k} 1)\n"))
        .collect();
    let grow_all: String = (1..=hostility.extra_memories)
        .map(|k| {
            format!(
                "(if (i32.eq (memory.grow $m{k} (i32.const {pages})) (i32.const -1))
                   (then unreachable))
                 (memory.fill $m{k} (i32.const 0) (i32.const 1)
                   (i32.shl (memory.size $m{k}) (i32.const 16)))\n",
                pages = hostility.grow_pages
            )
        })
        .collect();
    let text = MODULE
        .replace("EXTRA_MEMORIES", &memories)
        .replace(
            "GROW_ALL",
            if grow_all.is_empty() {
                "nop"
            } else {
                &grow_all
            },
        )
        .replace("ALIAS_OUTPUTS", &hostility.alias_outputs.to_string())
        .replace("ALIAS_BYTES", &hostility.alias_bytes.to_string());
    encode(&text)
}

/// The module `text` made a component of the world.
fn encode(text: &str) -> Vec<u8> {
    let mut bindgen = wit_component::metadata::Bindgen::default();
    let package = bindgen
        .resolve
        .push_source("wit/plugin.wit", WIT)
        .expect("wit/plugin.wit parses");
    let world = bindgen
        .resolve
        .select_world(&[package], Some("plugin"))
        .expect("wit/plugin.wit has the world `plugin`");
    let mut module = wat::parse_str(text).expect("valid WAT");
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
        .expect("the module encodes as a component of the world")
}

/// `component` with the core module `module_wat` appended and instantiated
/// `count` times: the same plugin, plus core instances that do nothing but
/// hold what their module declares (memories, tables). Component sections
/// may come in any order, so appending a core module section and a core
/// instance section keeps the component valid.
pub fn with_extra_instances(component: &[u8], module_wat: &str, count: u32) -> Vec<u8> {
    let module = wat::parse_str(module_wat).expect("valid WAT");
    let module_index = top_level_sections(component)
        .filter(|&(id, _)| id == CORE_MODULE_SECTION)
        .count() as u32;
    let mut out = component.to_vec();
    section(&mut out, CORE_MODULE_SECTION, &module);
    let mut instances = Vec::new();
    leb128(count as usize, &mut instances);
    for _ in 0..count {
        instances.push(0x00); // instantiate a module...
        leb128(module_index as usize, &mut instances);
        instances.push(0x00); // ...with no arguments
    }
    section(&mut out, CORE_INSTANCE_SECTION, &instances);
    out
}

const CORE_MODULE_SECTION: u8 = 1;
const CORE_INSTANCE_SECTION: u8 = 2;

/// The top-level sections of a component: id and payload.
fn top_level_sections(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = &bytes[8..];
    std::iter::from_fn(move || {
        let (&id, after_id) = rest.split_first()?;
        let (size, after_size) = read_leb128(after_id);
        let (payload, next) = after_size.split_at(size);
        rest = next;
        Some((id, payload))
    })
}

fn read_leb128(bytes: &[u8]) -> (usize, &[u8]) {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, &bytes[i + 1..]);
        }
    }
    panic!("truncated LEB128")
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(out: &mut Vec<u8>, id: u8, payload: &[u8]) {
    out.push(id);
    leb128(payload.len(), out);
    out.extend_from_slice(payload);
}

/// Write `bytes` as `dir/NAME.wasm`.
pub fn install(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(format!("{name}.wasm")), bytes).expect("write a plugin");
}
