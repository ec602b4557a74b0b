//! Builds the worker into `edge/build/` without downloading anything: the steps that
//! `worker-build` 0.8.7 performs, done here with the tools the project installs from
//! the registries (`wasm-bindgen-cli` from crates.io, esbuild and binaryen's wasm-opt
//! from npm).
//!
//! Credit: the steps, the `wasm-bindgen` flags, the wasm-opt feature list and the JS
//! shim below reproduce `worker-build` 0.8.7 (cloudflare/workers-rs, Apache-2.0:
//! `worker-build/src/main.rs`, `worker-build/src/build/mod.rs` and
//! `worker-build/src/js/shim.js`). Keep them in step when the `worker` crate moves.
//! Not reproduced: its build lock (xtask runs one build at a time), the
//! `producers` metadata section, the panic=unwind and emscripten shims (unused here).

use crate::util::{self, note, root, step, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `worker-build` 0.8.7's `src/js/shim.js`, verbatim (`$HANDLERS` is filled in below).
const SHIM: &str = r#"import { WorkerEntrypoint } from "cloudflare:workers";
import * as exports from "./index.js";

Error.stackTraceLimit = 100;
const initState = exports.__worker_init_state();

function checkReinitialize() {
  if (initState.criticalError) {
    console.log("Reinitializing Wasm application");
    exports.__wbg_reset_state();
    initState.criticalError = false;
    initState.instanceId++;
  }
}

addEventListener('error', (e) => {
  handleMaybeCritical(e.error);
});

function handleMaybeCritical(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    console.error('Critical', e);
    initState.criticalError = true;
  }
}

class Entrypoint extends WorkerEntrypoint {}

$HANDLERS

const instanceProxyHooks = {
  set: (target, prop, value, receiver) => Reflect.set(target.instance, prop, value, receiver),
  has: (target, prop) => Reflect.has(target.instance, prop),
  deleteProperty: (target, prop) => Reflect.deleteProperty(target.instance, prop),
  apply: (target, thisArg, args) => Reflect.apply(target.instance, thisArg, args),
  construct: (target, args, newTarget) => Reflect.construct(target.instance, args, newTarget),
  getPrototypeOf: (target) => Reflect.getPrototypeOf(target.instance),
  setPrototypeOf: (target, proto) => Reflect.setPrototypeOf(target.instance, proto),
  isExtensible: (target) => Reflect.isExtensible(target.instance),
  preventExtensions: (target) => Reflect.preventExtensions(target.instance),
  getOwnPropertyDescriptor: (target, prop) => Reflect.getOwnPropertyDescriptor(target.instance, prop),
  defineProperty: (target, prop, descriptor) => Reflect.defineProperty(target.instance, prop, descriptor),
  ownKeys: (target) => Reflect.ownKeys(target.instance),
};

const classProxyHooks = {
  construct(ctor, args, newTarget) {
    try {
      checkReinitialize();
      const instance = {
        instance: Reflect.construct(ctor, args, newTarget),
        instanceId: initState.instanceId,
        ctor,
        args,
        newTarget
      };
      return new Proxy(instance, {
        ...instanceProxyHooks,
        get(target, prop, receiver) {
          if (target.instanceId !== initState.instanceId) {
            target.instance = Reflect.construct(target.ctor, target.args, target.newTarget);
            target.instanceId = initState.instanceId;
          }
          const original = Reflect.get(target.instance, prop, receiver);
          if (typeof original !== 'function') return original;
          if (original.constructor === Function) {
            return new Proxy(original, {
              apply(target, thisArg, argArray) {
                checkReinitialize();
                try {
                  return target.apply(thisArg, argArray);
                } catch (e) {
                  handleMaybeCritical(e);
                  throw e;
                }
              }
            });
          } else {
            return new Proxy(original, {
              async apply(target, thisArg, argArray) {
                checkReinitialize();
                try {
                  return await target.apply(thisArg, argArray);
                } catch (e) {
                  handleMaybeCritical(e);
                  throw e;
                }
              }
            });
          }
        }
      });
    } catch (e) {
      initState.criticalError = true;
      throw e;
    }
  }
};

export default new Proxy(Entrypoint, classProxyHooks);"#;

/// wasm-bindgen exports that are plumbing, not handlers (worker-build's `SYSTEM_FNS`).
const SYSTEM_FNS: &[&str] = &["__wbg_reset_state", "__worker_init_state"];

/// Features passed to wasm-opt: worker-build's explicit list (rustc's wasm32 defaults
/// plus exception handling for wasm-bindgen's catch wrappers), never `--all-features`.
const WASM_OPT_FEATURES: &[&str] = &[
    "mutable-globals",
    "sign-ext",
    "nontrapping-float-to-int",
    "bulk-memory",
    "multivalue",
    "reference-types",
    "exception-handling",
];

/// Where the built worker goes (`wrangler.toml`'s `main` is `edge/build/index.js`).
pub fn out_dir() -> PathBuf {
    root().join("edge").join("build")
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

/// Builds the worker into `edge/build/`: `index.js` (the bundled shim and glue) and
/// `index_bg.wasm`. Set `CLOSELOOP_NO_WASM_OPT=1` to skip wasm-opt.
pub fn build() -> Result {
    build_crate("closeloop-edge", "edge", &out_dir())
}

/// Builds any workers-rs cdylib of the workspace (`package`) the same way into `out`
/// (`index.js` + `index_bg.wasm`); `log` prefixes the step logs (`<log>-cargo`, ...).
/// Used by [`build`] and by the ingest benchmark's bare worker (`edge-bare/`).
pub fn build_crate(package: &str, log: &str, out: &Path) -> Result {
    step(
        "building the worker (cargo, wasm32, release)",
        &format!("{log}-cargo"),
        util::cargo().args([
            "build",
            "--release",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            package,
        ]),
    )?;
    let wasm = target_dir()
        .join("wasm32-unknown-unknown")
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    package_wasm(&wasm, log, out)
}

/// The steps after cargo: bindings, wasm-opt (unless `CLOSELOOP_NO_WASM_OPT`), shim and
/// bundle, from a workers-rs cdylib's `wasm` into `out`.
pub fn package_wasm(wasm: &Path, log: &str, out: &Path) -> Result {
    // Everything is made in a staging directory and swapped in at the end, so a worker
    // never sees the glue of one build with the wasm of another.
    let final_out = out.to_path_buf();
    // (under target/, which is ignored, on the same file system as edge/build)
    let out = root()
        .join("target")
        .join(format!("{log}-build-{}", std::process::id()));
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    step(
        "generating bindings (wasm-bindgen)",
        &format!("{log}-wasm-bindgen"),
        Command::new("wasm-bindgen")
            .arg(wasm)
            .arg("--out-dir")
            .arg(&out)
            .args([
                "--no-typescript",
                "--target",
                "module",
                "--out-name",
                "index",
                "--experimental-reset-state-function",
                "--force-enable-abort-handler",
            ]),
    )?;
    if std::env::var_os("CLOSELOOP_NO_WASM_OPT").is_none() {
        wasm_opt(&out.join("index_bg.wasm"), log)?;
    }
    write_shim(&out)?;
    step(
        "bundling the shim (esbuild)",
        &format!("{log}-esbuild"),
        // (absolute paths: `step` runs every tool from the repository root)
        Command::new(util::node_tool(".bin/esbuild"))
            .args([
                "--external:./index_bg.wasm",
                "--external:cloudflare:*",
                "--format=esm",
                "--bundle",
            ])
            .arg(out.join("shim.js"))
            .arg(format!("--outfile={}", out.join("index.js").display()))
            .args(["--allow-overwrite", "--minify"]),
    )?;
    finish(&out)?;
    if final_out.exists() {
        std::fs::remove_dir_all(&final_out).map_err(|e| format!("{}: {e}", final_out.display()))?;
    }
    std::fs::rename(&out, &final_out).map_err(|e| format!("{}: {e}", final_out.display()))?;
    let out = final_out;
    let size = std::fs::metadata(out.join("index_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    let shown = out
        .strip_prefix(root())
        .unwrap_or(&out)
        .display()
        .to_string();
    note(format!(
        "worker built: {shown}/index.js + index_bg.wasm ({} KB)",
        size / 1024
    ));
    Ok(())
}

/// `wasm-opt -O` in place, with exactly the features listed above, keeping names.
fn wasm_opt(wasm: &Path, log: &str) -> Result {
    let tmp = wasm.with_extension("opt.wasm");
    let mut cmd = Command::new(util::node_tool("binaryen/bin/wasm-opt"));
    cmd.arg(wasm).arg("-o").arg(&tmp).arg("-O");
    for f in WASM_OPT_FEATURES {
        cmd.arg(format!("--enable-{f}"));
    }
    cmd.arg("--debuginfo");
    step(
        "optimising the wasm (wasm-opt -O)",
        &format!("{log}-wasm-opt"),
        &mut cmd,
    )?;
    std::fs::rename(&tmp, wasm).map_err(|e| format!("{}: {e}", wasm.display()))
}

/// Writes `shim.js` with the handlers and class wrappers worker-build would generate.
fn write_shim(out: &Path) -> Result {
    let index = out.join("index.js");
    let glue = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
    let mut shim = SHIM.replace("$HANDLERS", &handlers(&glue));
    for class in classes(&glue) {
        shim.push_str(&format!(
            "export const {class} = new Proxy(exports.{class}, classProxyHooks);\n"
        ));
    }
    let path = out.join("shim.js");
    std::fs::write(&path, shim).map_err(|e| format!("{}: {e}", path.display()))
}

/// Each `export` declaration of the glue, from its keyword on (worker-build's
/// `export_decls`).
fn export_decls(content: &str) -> impl Iterator<Item = &str> {
    content.match_indices("export ").filter_map(move |(i, _)| {
        let boundary = i == 0
            || content[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_whitespace() || c == ';' || c == '}');
        boundary.then(|| &content[i..])
    })
}

/// The handler methods of the entrypoint class (worker-build's `generate_handlers`).
fn handlers(glue: &str) -> String {
    let mut names = Vec::new();
    for decl in export_decls(glue) {
        if let Some(rest) = decl
            .strip_prefix("export function")
            .or_else(|| decl.strip_prefix("export async function"))
        {
            if let Some(end) = rest.find('(') {
                names.push(rest[..end].trim());
            }
        } else if let Some(rest) = decl.strip_prefix("export {") {
            if let Some(pos) = rest.find(" as ") {
                let rest = &rest[pos + 4..];
                if let Some(end) = rest.find('}') {
                    names.push(rest[..end].trim());
                }
            }
        }
    }
    let mut out = String::new();
    for name in names.into_iter().filter(|n| !SYSTEM_FNS.contains(n)) {
        if ["fetch", "queue", "scheduled", "email", "connect"].contains(&name) {
            out.push_str(&format!(
                "Entrypoint.prototype.{name} = function {name} (arg) {{\n  return exports.{name}.call(this, arg, this.env, this.ctx);\n}}\n"
            ));
        } else {
            out.push_str(&format!("Entrypoint.prototype.{name} = exports.{name};\n"));
        }
    }
    out
}

/// Exported classes of the glue (worker-build's `add_export_wrappers`).
fn classes(glue: &str) -> Vec<String> {
    let mut names = Vec::new();
    for decl in export_decls(glue) {
        if let Some(rest) = decl.strip_prefix("export class ") {
            if let Some(end) = rest.find('{') {
                names.push(rest[..end].trim().to_string());
            }
        } else if let Some(rest) = decl.strip_prefix("export var ") {
            if let Some((name, def)) = rest.split_once('=') {
                if def.trim_start().starts_with("class") {
                    names.push(name.trim().to_string());
                }
            }
        }
    }
    names
}

/// After bundling: plain `import` of the wasm module (worker-build's `fix_wasm_import`),
/// the shim and snippets removed, and the `worker/shim.mjs` alias written.
fn finish(out: &Path) -> Result {
    let index = out.join("index.js");
    let text = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
    std::fs::write(&index, text.replace("import source ", "import "))
        .map_err(|e| format!("{}: {e}", index.display()))?;
    let _ = std::fs::remove_file(out.join("shim.js"));
    let _ = std::fs::remove_dir_all(out.join("snippets"));
    let worker = out.join("worker");
    std::fs::create_dir_all(&worker).map_err(|e| format!("{}: {e}", worker.display()))?;
    std::fs::write(
        worker.join("shim.mjs"),
        "// Use index.js directly, this file provided for backwards compat\n// with former shim.mjs only.\nexport * from '../index.js';\nexport { default } from '../index.js';\n",
    )
    .map_err(|e| format!("{}: {e}", worker.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_wrap_fetch_and_skip_system_functions() {
        let glue = "export function fetch(req, env, ctx) {}\nexport function __wbg_reset_state() {}\nexport function other(x) {}\n";
        let h = handlers(glue);
        assert!(h.contains("Entrypoint.prototype.fetch = function fetch (arg) {"));
        assert!(h.contains("Entrypoint.prototype.other = exports.other;"));
        assert!(!h.contains("__wbg_reset_state"));
    }

    #[test]
    fn classes_are_found_in_both_spellings() {
        let glue = "export class A {\n}\nexport var B = class B {};\nexport var c = 1;";
        assert_eq!(classes(glue), vec!["A".to_string(), "B".to_string()]);
    }
}
