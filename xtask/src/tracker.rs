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
            "--out-dir",
            path_str(&work)?,
            path_str(&wasm)?,
        ]),
    )?;
    let bg = work.join(format!("{CRATE_FILE}_bg.wasm"));
    let opt = work.join("closeloop.opt.wasm");
    let mut wasm_opt = Command::new(util::node_tool("binaryen/bin/wasm-opt"));
    wasm_opt
        .arg("-Oz")
        .args(WASM_FEATURES)
        .args(["--strip-debug", "--strip-producers"])
        .arg(&bg)
        .arg("-o")
        .arg(&opt);
    step("tracker: wasm-opt -Oz", "tracker-wasm-opt", &mut wasm_opt)?;

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
            "--format=iife",
            "--target=es2017",
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

#[cfg(test)]
mod tests {
    use super::*;

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
