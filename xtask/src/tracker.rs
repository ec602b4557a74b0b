//! Builds the browser tracker into `dist/public/` (served by the worker's static
//! assets):
//!
//! - `t.js`: wasm-bindgen's `--target no-modules` glue followed by
//!   `tracker/js/loader.js`, minified by esbuild into one IIFE (one script, no
//!   global but `window.closeloop`);
//! - `t/closeloop.<hash>.wasm`: the tracker built with the `tracker` profile, run
//!   through wasm-bindgen and `wasm-opt -Oz`; `<hash>` is the first 16 hex digits of
//!   its SHA-256, so it can be cached forever;
//! - `_headers`: the wasm `immutable` for a year, `t.js` 5 minutes, both with
//!   `Access-Control-Allow-Origin: *` (sites load them cross-origin; the wasm is
//!   fetched in CORS mode).

use crate::util::{self, root, step, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate's name as cargo writes its wasm file.
const CRATE_FILE: &str = "closeloop_tracker";

/// Flags of the download build:
/// - `--cfg closeloop_tracker_bin`: the tracker is `no_std` with a trapping panic
///   handler (no formatting code linked; see tracker/src/lib.rs). Only valid when the
///   package is built alone, as here, so that nothing turns on wasm-bindgen's `std`.
/// - no `reference-types` and `multivalue`: wasm-bindgen then keeps JS objects in its
///   small JS-side heap instead of generating externref shims around every export
///   (~0.5 KB gzip less in all). wasm-bindgen sees this because the `tracker` profile
///   strips the `target_features` section (std's precompiled objects would list
///   reference-types there) and the module exports no `__externref_table_alloc`.
const TRACKER_RUSTFLAGS: &str =
    "--cfg closeloop_tracker_bin -C target-feature=-reference-types,-multivalue";

/// The wasm features rustc 1.95 enables for wasm32-unknown-unknown with
/// [`TRACKER_RUSTFLAGS`]; wasm-opt must be given exactly these (never
/// `--all-features`: it may emit instructions browsers reject).
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-bulk-memory-opt",
    "--enable-call-indirect-overlong",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
];

/// Largest function (in binaryen's size measure) that wasm-opt still inlines into
/// its only caller (see [`build`]).
const ONE_CALLER_INLINE_MAX: u32 = 30;

/// The first line of `t.js` (see [`build`]).
pub const COMPILE_HINT: &str = "//# allFunctionsCalledOnLoad";

/// How long browsers may cache `t.js` (the wasm it names changes with each build).
const LOADER_MAX_AGE: u32 = 300;

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| format!("{}: not UTF-8", p.display()))
}

/// The content hash used in the wasm file name: 16 hex digits of SHA-256.
pub fn content_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `_headers` file for the worker's static assets.
pub fn headers_file() -> String {
    format!(
        "/t.js\n  Cache-Control: public, max-age={LOADER_MAX_AGE}\n  Access-Control-Allow-Origin: *\n\
         /t/*\n  Cache-Control: public, max-age=31536000, immutable\n  Access-Control-Allow-Origin: *\n"
    )
}

/// Builds the tracker into `dist/public/` (see the module doc).
pub fn build() -> Result {
    let root = root();
    let work = target_dir().join("tracker-build");
    let public = root.join("dist").join("public");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    std::fs::create_dir_all(public.join("t")).map_err(|e| format!("{}: {e}", public.display()))?;

    step(
        "tracker: cargo build (wasm32, profile tracker)",
        "tracker-cargo",
        util::cargo()
            .args([
                "build",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                "tracker",
                "-p",
                "closeloop-tracker",
            ])
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
                TRACKER_RUSTFLAGS,
            ),
    )?;
    let wasm = target_dir()
        .join("wasm32-unknown-unknown")
        .join("tracker")
        .join(format!("{CRATE_FILE}.wasm"));

    step(
        "tracker: wasm-bindgen --target no-modules",
        "tracker-bindgen",
        Command::new("wasm-bindgen").args([
            "--target",
            "no-modules",
            "--no-typescript",
            // The loader always passes the wasm's URL.
            "--omit-default-module-path",
            "--out-dir",
            path_str(&work)?,
            path_str(&wasm)?,
        ]),
    )?;
    let bg = work.join(format!("{CRATE_FILE}_bg.wasm"));
    let opt = work.join("closeloop.opt.wasm");
    let mut wasm_opt = Command::new(util::node_tool("binaryen/bin/wasm-opt"));
    wasm_opt
        .args(WASM_FEATURES)
        // Import, export and module names become one or two letters (the
        // wasm-bindgen names carry 16-hex-digit hashes, in the wasm and again in
        // the glue); wasm-opt prints the renaming as JSON, applied to the glue below.
        .arg("--minify-imports-and-exports-and-modules")
        // Twice: the second round still finds ~50 B (`--converge` would rerun the
        // renaming too).
        .args(["-Oz", "-Oz"])
        // Functions with one caller are inlined only when small: Chromium compiles
        // a wasm function on its first call, on the main thread, so the entry
        // points (`cl`'s ops) must stay apart for `start` to compile only its own
        // code (a `cl` holding every op's body cost ~0.5-2 ms to compile at start).
        .arg(format!(
            "--one-caller-inline-max-function-size={ONE_CALLER_INLINE_MAX}"
        ))
        // Functions of up to 5 bytes are inlined everywhere (binaryen's default:
        // 2): about as small, and ~10 fewer functions to compile lazily.
        .arg("--always-inline-max-function-size=5")
        .args(["--strip-debug", "--strip-producers"])
        .arg(&bg)
        .arg("-o")
        .arg(&opt);
    step("tracker: wasm-opt -Oz", "tracker-wasm-opt", &mut wasm_opt)?;
    let renames = util::log_dir().join("tracker-wasm-opt.log");
    let renames =
        std::fs::read_to_string(&renames).map_err(|e| format!("{}: {e}", renames.display()))?;

    let bytes = std::fs::read(&opt).map_err(|e| format!("{}: {e}", opt.display()))?;
    let name = format!("closeloop.{}.wasm", content_hash(&bytes));
    // Old hashed files are removed: only the current one is served.
    if let Ok(dir) = std::fs::read_dir(public.join("t")) {
        for entry in dir.flatten() {
            let n = entry.file_name();
            let n = n.to_string_lossy();
            if n.starts_with("closeloop.") && n.ends_with(".wasm") && n != name.as_str() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let wasm_out = public.join("t").join(&name);
    std::fs::write(&wasm_out, &bytes).map_err(|e| format!("{}: {e}", wasm_out.display()))?;

    let glue = std::fs::read_to_string(work.join(format!("{CRATE_FILE}.js")))
        .map_err(|e| format!("wasm-bindgen glue: {e}"))?;
    let glue = apply_renames(&glue, &renames, &format!("./{CRATE_FILE}_bg.js"))?;
    let glue = slim_init(&glue)?;
    let loader = std::fs::read_to_string(root.join("tracker").join("js").join("loader.js"))
        .map_err(|e| format!("tracker/js/loader.js: {e}"))?;
    let src = work.join("t.src.js");
    std::fs::write(&src, format!("{glue}\n{loader}"))
        .map_err(|e| format!("{}: {e}", src.display()))?;
    let define = format!("--define:WASM_PATH=\"t/{name}\"");
    let outfile = format!("--outfile={}", path_str(&public.join("t.js"))?);
    step(
        "tracker: esbuild --minify (glue + loader -> t.js)",
        "tracker-esbuild",
        Command::new(util::node_tool(".bin/esbuild")).args([
            path_str(&src)?,
            "--minify",
            "--legal-comments=none",
            "--format=iife",
            "--target=es2017",
            // V8's explicit compile hint (Chrome 136+; a plain comment elsewhere):
            // compile every function of t.js eagerly, with the script, which an
            // async script does on a background thread while it streams in. Without
            // it each glue and loader function is compiled on its first call, on
            // the main thread, ~30 of them inside `start()` (~1 ms in a trace).
            &format!("--banner:js={COMPILE_HINT}"),
            &define,
            &outfile,
            "--log-level=warning",
        ]),
    )?;
    let headers = public.join("_headers");
    std::fs::write(&headers, headers_file()).map_err(|e| format!("{}: {e}", headers.display()))?;
    util::note(format!("tracker: dist/public/t.js + dist/public/t/{name}"));
    Ok(())
}

/// Replaces `from` by `to` where `from` is not followed by a name character (so
/// that `__wbindgen_export` does not match inside `__wbindgen_export2`); returns
/// the text and how many were replaced.
fn replace_name(text: &str, from: &str, to: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut n = 0;
    while let Some(i) = rest.find(from) {
        let (before, after) = rest.split_at(i);
        let tail = &after[from.len()..];
        out.push_str(before);
        if tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            out.push_str(from);
        } else {
            out.push_str(to);
            n += 1;
        }
        rest = tail;
    }
    out.push_str(rest);
    (out, n)
}

/// What [`slim_init`] puts in place of wasm-bindgen's loading code: `init(url)`
/// instantiates the wasm with `instantiateStreaming` (compiled while it downloads;
/// the worker serves it as `application/wasm`), falling back to an `ArrayBuffer`
/// where that is missing or fails.
const SLIM_INIT: &str = "    function __wbg_init(url) {
        const imports = __wbg_get_imports();
        const W = WebAssembly;
        const bytes = () => fetch(url).then(r => r.arrayBuffer()).then(b => W.instantiate(b, imports));
        return (W.instantiateStreaming ? W.instantiateStreaming(fetch(url), imports).catch(bytes) : bytes())
            .then(r => __wbg_finalize_init(r.instance, r.module));
    }
    return Object.assign(__wbg_init, exports);
";

/// Cuts what the tracker never uses from wasm-bindgen's `--target no-modules`
/// glue (about 1.5 KB before minifying, with long warning strings that no minifier
/// can drop): the default module path computed from `document.currentScript`
/// (the loader always passes the wasm's URL), `initSync`, the deprecated-argument
/// warnings and the `Response` checks of `__wbg_load`, replaced by [`SLIM_INIT`].
/// Fails when the glue does not have the expected shape (another wasm-bindgen
/// version), rather than shipping a broken loader.
pub fn slim_init(glue: &str) -> Result<String> {
    const SCRIPT_SRC: &str = "    let script_src;
    if (typeof document !== 'undefined' && document.currentScript !== null) {
        script_src = new URL(document.currentScript.src, location.href).toString();
    }
";
    const LOAD: &str = "    async function __wbg_load(module, imports) {";
    const END: &str = "    return Object.assign(__wbg_init, { initSync }, exports);\n";
    if glue.matches(SCRIPT_SRC).count() != 1 || glue.matches("script_src").count() != 2 {
        return Err("wasm-bindgen glue: the default module path is not where expected".into());
    }
    let glue = glue.replacen(SCRIPT_SRC, "", 1);
    let (Some(a), Some(b)) = (glue.find(LOAD), glue.find(END)) else {
        return Err("wasm-bindgen glue: its init code is not where expected".into());
    };
    if a > b || glue.matches(LOAD).count() != 1 {
        return Err("wasm-bindgen glue: its init code is not where expected".into());
    }
    Ok(format!(
        "{}{SLIM_INIT}{}",
        &glue[..a],
        &glue[b + END.len()..]
    ))
}

/// The import module name wasm-opt's `--minify-imports-and-exports-and-modules`
/// gives every import (binaryen's `ENV`, not printed in its JSON).
const MINIFIED_MODULE: &str = "a";

/// Applies wasm-opt's `--minify-imports-and-exports-and-modules` renaming (the JSON
/// it printed, found in `log`) to wasm-bindgen's glue: import functions are the
/// glue's `name: function` keys, exports are read as `wasm.name`, and the import
/// module `module` becomes the minified one. Fails when an import is not found in
/// the glue (the wasm would not instantiate).
pub fn apply_renames(glue: &str, log: &str, module: &str) -> Result<String> {
    let json = match (log.find('{'), log.rfind('}')) {
        (Some(a), Some(b)) if a < b => &log[a..=b],
        _ => return Err("wasm-opt printed no renaming".into()),
    };
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("wasm-opt renaming: {e}"))?;
    let list = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let mut glue = glue.to_string();
    for imp in list("imports") {
        let f = |i: usize| imp.get(i).and_then(|x| x.as_str()).unwrap_or("");
        let (m, old, new) = (f(0), f(1), f(2));
        if m != module || old.is_empty() || new.is_empty() {
            return Err(format!("unexpected import in the tracker wasm: {imp}"));
        }
        let (g, n) = replace_name(
            &glue,
            &format!("{old}: function"),
            &format!("{new}: function"),
        );
        if n != 1 {
            return Err(format!("import {old}: found {n} times in the glue"));
        }
        glue = g;
    }
    let (g, n) = replace_name(
        &glue,
        &format!("\"{module}\": import0"),
        &format!("\"{MINIFIED_MODULE}\": import0"),
    );
    if n != 1 {
        return Err(format!(
            "import module {module}: found {n} times in the glue"
        ));
    }
    glue = g;
    for exp in list("exports") {
        let f = |i: usize| exp.get(i).and_then(|x| x.as_str()).unwrap_or("");
        let (old, new) = (f(0), f(1));
        if old.is_empty() || new.is_empty() {
            return Err(format!("unexpected export in the tracker wasm: {exp}"));
        }
        glue = replace_name(&glue, &format!("wasm.{old}"), &format!("wasm.{new}")).0;
    }
    Ok(glue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_reach_imports_exports_and_module() {
        let glue = "const import0 = {\n x_export: function(a) { return wasm.x_export2(a); },\n \
                    x_export2: function() { return wasm.memory; },\n};\n\
                    return { \"./t_bg.js\": import0 };";
        let log = r#"{"imports": [["./t_bg.js", "x_export", "a"], ["./t_bg.js", "x_export2", "b"]],
                      "exports": [["memory", "G"], ["x_export2", "H"]]}"#;
        let out = apply_renames(glue, log, "./t_bg.js").unwrap_or_default();
        assert_eq!(
            out,
            "const import0 = {\n a: function(a) { return wasm.H(a); },\n \
             b: function() { return wasm.G; },\n};\nreturn { \"a\": import0 };"
        );
        // an import the glue does not define is an error, not a broken download
        let bad = r#"{"imports": [["./t_bg.js", "missing", "a"]], "exports": []}"#;
        assert!(apply_renames(glue, bad, "./t_bg.js").is_err());
    }

    #[test]
    fn slim_init_replaces_the_loading_code_and_refuses_other_shapes() {
        let glue = "let wasm_bindgen = (function(exports) {
    let script_src;
    if (typeof document !== 'undefined' && document.currentScript !== null) {
        script_src = new URL(document.currentScript.src, location.href).toString();
    }
    function cl() {}
    function __wbg_finalize_init(instance, module) {}
    async function __wbg_load(module, imports) {
        console.warn('long');
    }
    function initSync(module) {}
    return Object.assign(__wbg_init, { initSync }, exports);
})({ __proto__: null });
";
        let out = slim_init(glue).unwrap_or_default();
        assert!(out.starts_with("let wasm_bindgen = (function(exports) {\n    function cl() {}\n"));
        assert!(out.contains(SLIM_INIT));
        assert!(out.ends_with(
            "    return Object.assign(__wbg_init, exports);\n})({ __proto__: null });\n"
        ));
        for gone in ["script_src", "console.warn", "initSync", "__wbg_load"] {
            assert!(!out.contains(gone), "{gone}");
        }
        assert!(slim_init("let wasm_bindgen = 1;").is_err());
    }

    #[test]
    fn content_hash_is_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(content_hash(b"abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn headers_cache_the_wasm_forever_and_allow_cross_origin() {
        let h = headers_file();
        assert!(h.contains("/t/*\n  Cache-Control: public, max-age=31536000, immutable\n"));
        assert!(h.contains("/t.js\n  Cache-Control: public, max-age=300\n"));
        assert_eq!(h.matches("Access-Control-Allow-Origin: *").count(), 2);
    }
}
