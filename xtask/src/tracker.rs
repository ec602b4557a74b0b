//! Builds the browser tracker into `dist/public/` (served by the worker's static
//! assets), and checks what every visitor downloads:
//!
//! - `t.js`: `tracker/js/loader.js`, minified by esbuild into one IIFE (one
//!   script, no global but `window.closeloop`), with the wasm's hashed path in it;
//! - `t/closeloop.<hash>.wasm`: the tracker built with the `tracker` profile and
//!   run through `wasm-opt` ([`WASM_OPT_PASSES`]); `<hash>` is the first 16 hex
//!   digits of its SHA-256, so it can be cached forever. No wasm-bindgen: the
//!   tracker's imports are the loader's own (tracker/src/js.rs);
//! - `_headers`: the wasm `immutable` for a year, `t.js` 5 minutes, both with
//!   `Access-Control-Allow-Origin: *` (sites load them cross-origin; the wasm is
//!   fetched in CORS mode).
//!
//! The build fails when the wasm links any `core::fmt` or panic code (see
//! [`check_symbols`]); `cargo xtask test` fails when the download passes
//! [`BUDGET_GZIP`] (see [`check_budget`]).

use crate::util::{self, root, step, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate's name as cargo writes its wasm file.
const CRATE_FILE: &str = "closeloop_tracker";

/// Everything a visitor downloads (`t.js` + the wasm), gzipped, at most (issue 17).
pub const BUDGET_GZIP: usize = 12_288;

/// Flags of the download build:
/// - `--cfg closeloop_tracker_bin`: the tracker is `no_std` with a trapping panic
///   handler (see tracker/src/lib.rs). Only valid when the package is built alone,
///   as here.
/// - no `reference-types` and `multivalue`: nothing in the tracker uses them, and
///   without them the module needs only WebAssembly's core features plus bulk
///   memory (sign extension, non-trapping conversions, mutable globals). The
///   output is byte for byte as small either way (measured: 14,383 B).
const TRACKER_RUSTFLAGS: &str =
    "--cfg closeloop_tracker_bin -C target-feature=-reference-types,-multivalue";

/// The wasm features rustc 1.95 enables for wasm32-unknown-unknown with
/// [`TRACKER_RUSTFLAGS`]; wasm-opt must be given exactly these (never
/// `--all-features`: it may emit instructions browsers reject).
pub const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-bulk-memory-opt",
    "--enable-call-indirect-overlong",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
];

/// The wasm-opt passes of the download, the winner of the bench's side-by-side
/// table (`cargo xtask bench --only sizes`, BENCHMARKS.md):
/// - `-Oz` twice: the second round still finds a little (`--converge` would run
///   until nothing changes, for no gain here);
/// - functions with one caller are inlined only when small: Chromium compiles a
///   wasm function on its first call, on the main thread, so the entry points
///   (`cl`'s ops) must stay apart for `start` to compile only its own code;
/// - functions of up to 5 bytes are inlined everywhere (binaryen's default: 2):
///   about as small, and fewer functions to compile lazily.
pub const WASM_OPT_PASSES: [&str; 4] = [
    "-Oz",
    "-Oz",
    "--one-caller-inline-max-function-size=30",
    "--always-inline-max-function-size=5",
];

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

/// Where the build keeps its intermediate files: `target/tracker-build/`.
pub fn work_dir() -> PathBuf {
    target_dir().join("tracker-build")
}

/// The cargo output: the tracker before wasm-opt, with its function names.
pub fn cargo_wasm() -> PathBuf {
    target_dir()
        .join("wasm32-unknown-unknown")
        .join("tracker")
        .join(format!("{CRATE_FILE}.wasm"))
}

/// The optimised wasm with its function names kept (for twiggy and the bench's
/// table of sizes per function group); the download is this less its names.
pub fn named_wasm() -> PathBuf {
    work_dir().join("closeloop.named.wasm")
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

/// `wasm-opt` with the tracker's features.
pub fn wasm_opt() -> Command {
    let mut c = Command::new(util::node_tool("binaryen/bin/wasm-opt"));
    c.args(WASM_FEATURES);
    c
}

/// Builds the tracker into `dist/public/` (see the module doc).
pub fn build() -> Result {
    let root = root();
    let work = work_dir();
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
            )
            // Function names kept for the symbol check; wasm-opt strips them.
            .env("CARGO_PROFILE_TRACKER_STRIP", "false"),
    )?;
    let wasm = cargo_wasm();
    let bytes = std::fs::read(&wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    check_symbols(&bytes)?;

    let named = named_wasm();
    step(
        "tracker: wasm-opt -Oz",
        "tracker-wasm-opt",
        wasm_opt()
            .args(WASM_OPT_PASSES)
            .args(["-g", "--strip-dwarf", "--strip-producers"])
            .arg("--strip-target-features")
            .arg(&wasm)
            .arg("-o")
            .arg(&named),
    )?;
    let opt = work.join("closeloop.opt.wasm");
    step(
        "tracker: wasm-opt --strip-debug (function names out)",
        "tracker-wasm-strip",
        wasm_opt()
            .arg("--strip-debug")
            .arg(&named)
            .arg("-o")
            .arg(&opt),
    )?;
    let bytes = std::fs::read(&opt).map_err(|e| format!("{}: {e}", opt.display()))?;
    if !has_custom_section(&bytes, "n")? {
        return Err("the tracker wasm lost its names section `n` (tracker/src/lib.rs)".into());
    }
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

    let loader = root.join("tracker").join("js").join("loader.js");
    let define = format!("--define:WASM_PATH=\"t/{name}\"");
    let outfile = format!("--outfile={}", path_str(&public.join("t.js"))?);
    step(
        "tracker: esbuild --minify (loader -> t.js)",
        "tracker-esbuild",
        Command::new(util::node_tool(".bin/esbuild")).args([
            path_str(&loader)?,
            "--minify",
            "--legal-comments=none",
            "--format=iife",
            "--target=es2017",
            // V8's explicit compile hint (Chrome 136+; a plain comment elsewhere):
            // compile every function of t.js eagerly, with the script, which an
            // async script does on a background thread while it streams in. Without
            // it each loader function is compiled on its first call, on the main
            // thread.
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

/// The names of the module's functions (its `name` section), with their indexes.
pub fn function_names(wasm: &[u8]) -> Result<Vec<(u32, String)>> {
    use wasmparser::{KnownCustom, Name, Parser, Payload};
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("reading the tracker wasm: {e}"))?;
        let Payload::CustomSection(c) = payload else {
            continue;
        };
        let KnownCustom::Name(names) = c.as_known() else {
            continue;
        };
        for sub in names {
            if let Ok(Name::Function(map)) = sub {
                for n in map.into_iter().flatten() {
                    out.push((n.index, n.name.to_string()));
                }
            }
        }
    }
    Ok(out)
}

fn has_custom_section(wasm: &[u8], name: &str) -> Result<bool> {
    use wasmparser::{Parser, Payload};
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CustomSection(c) = payload.map_err(|e| e.to_string())? {
            if c.name() == name {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The functions of a linked tracker that must not be there: any of `core::fmt`
/// (formatting costs kilobytes: its machinery, digit tables, panic messages) or of
/// panicking (a panic path means an `unwrap`, an index or a slice that can fail,
/// and with it a message and a location). Names are searched as linked (mangled:
/// `_ZN4core3fmt…`, `…panic_fmt…`, or demangled), so `fmt` or `panic` anywhere
/// in a name counts.
pub fn forbidden_symbols(names: &[(u32, String)]) -> Vec<String> {
    names
        .iter()
        .filter(|(_, n)| n.contains("fmt") || n.contains("panic"))
        .map(|(_, n)| n.clone())
        .collect()
}

/// Fails when the tracker links `core::fmt` or panic code (see
/// [`forbidden_symbols`]), or has no function names to check.
pub fn check_symbols(wasm: &[u8]) -> Result {
    let names = function_names(wasm)?;
    if names.is_empty() {
        return Err("the tracker wasm has no function names: cannot check for fmt code".into());
    }
    let bad = forbidden_symbols(&names);
    if bad.is_empty() {
        util::note(format!(
            "tracker: {} functions, none of core::fmt or panicking",
            names.len()
        ));
        return Ok(());
    }
    let mut msg = format!(
        "the tracker links {} formatting or panicking function(s), which every visitor \
         would download (an `unwrap`, indexing, slicing, `format!` or an `alloc` collection \
         somewhere; see tracker/README.md):",
        bad.len()
    );
    for b in bad.iter().take(20) {
        msg.push_str("\n  ");
        msg.push_str(b);
    }
    Err(msg)
}

/// One downloaded file's sizes.
pub struct FileSize {
    /// Its path under `dist/public/`.
    pub name: String,
    /// Raw bytes.
    pub raw: usize,
    /// `gzip -9`.
    pub gzip: usize,
    /// `brotli -q 11`.
    pub brotli: usize,
}

/// Sizes of what a visitor downloads: `t.js` and the wasm (the build must have run).
pub fn download_sizes() -> Result<Vec<FileSize>> {
    let public = root().join("dist").join("public");
    let mut files: Vec<PathBuf> = vec![public.join("t.js")];
    if let Ok(rd) = std::fs::read_dir(public.join("t")) {
        files.extend(
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm")),
        );
    }
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f)
                .map_err(|e| format!("{}: {e} (was the tracker built?)", f.display()))?;
            Ok(FileSize {
                name: f.strip_prefix(&public).unwrap_or(f).display().to_string(),
                raw: bytes.len(),
                gzip: gzip_len(&bytes)?,
                brotli: brotli_len(&bytes)?,
            })
        })
        .collect()
}

/// `gzip -9` size.
pub fn gzip_len(bytes: &[u8]) -> Result<usize> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).map_err(|e| e.to_string())?;
    enc.finish().map(|v| v.len()).map_err(|e| e.to_string())
}

/// `brotli -q 11` size.
pub fn brotli_len(bytes: &[u8]) -> Result<usize> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        w.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(out.len())
}

/// The budget's verdict on `files`: `Ok(line)` within [`BUDGET_GZIP`], else the
/// same line as the error.
pub fn budget_verdict(files: &[FileSize]) -> Result<String> {
    let gz: usize = files.iter().map(|f| f.gzip).sum();
    let br: usize = files.iter().map(|f| f.brotli).sum();
    let parts: Vec<String> = files
        .iter()
        .map(|f| format!("{} {}", f.name, f.gzip))
        .collect();
    let line = format!(
        "tracker download {gz} B gzip ({}), {br} B brotli; budget {BUDGET_GZIP} B gzip",
        parts.join(" + ")
    );
    if files.iter().any(|f| f.name.ends_with(".wasm")) && gz <= BUDGET_GZIP {
        Ok(line)
    } else {
        Err(format!("{line}: OVER BUDGET (or no wasm built)"))
    }
}

/// `cargo xtask test`'s size check: fails when `t.js` + the wasm, gzipped, pass
/// [`BUDGET_GZIP`].
pub fn check_budget() -> Result<String> {
    budget_verdict(&download_sizes()?)
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

    #[test]
    fn fmt_and_panic_symbols_are_caught_mangled_or_not() {
        let names: Vec<(u32, String)> = [
            "closeloop_tracker::send::flush::h0123",
            "_ZN4core3fmt9Formatter12pad_integral17h0123E",
            "core::panicking::panic_fmt",
            "_RNvCs123_7___rustc17rust_begin_unwind",
            "<u32 as core::fmt::Display>::fmt",
            "_ZN17closeloop_tracker5panic17h0123E",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u32, n.to_string()))
        .collect();
        let bad = forbidden_symbols(&names);
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert!(!bad.iter().any(|n| n.contains("send::flush")));
        assert!(!bad.iter().any(|n| n.contains("rust_begin_unwind")));
    }

    #[test]
    fn the_budget_counts_every_file_gzipped() {
        let f = |name: &str, gzip| FileSize {
            name: name.into(),
            raw: 0,
            gzip,
            brotli: gzip - 100,
        };
        // 2,000 + 10,288 = 12,288: exactly the budget passes
        let ok = [f("t.js", 2_000), f("t/closeloop.x.wasm", 10_288)];
        assert!(budget_verdict(&ok).is_ok());
        // one byte more fails
        let over = [f("t.js", 2_001), f("t/closeloop.x.wasm", 10_288)];
        let e = budget_verdict(&over).unwrap_err();
        assert!(e.contains("12289 B gzip"), "{e}");
        // no wasm at all is no pass
        assert!(budget_verdict(&[f("t.js", 500)]).is_err());
    }

    /// The real check on a real module: a wasm whose name section lists a
    /// `core::fmt` function is refused (the module is hand-assembled: one function,
    /// its name in the `name` section).
    #[test]
    fn check_symbols_reads_the_name_section() {
        fn module(name: &str) -> Vec<u8> {
            let mut m = b"\0asm\x01\0\0\0".to_vec();
            // type section: one type () -> ()
            m.extend([1, 4, 1, 0x60, 0, 0]);
            // function section: one function of type 0
            m.extend([3, 2, 1, 0]);
            // code section: one body, no locals, `end`
            m.extend([10, 4, 1, 2, 0, 0x0b]);
            // custom section "name", subsection 1 (functions): [0 -> name]
            let mut names = vec![1u8, 0, 0, name.len() as u8];
            names.extend(name.as_bytes());
            names[1] = (names.len() - 2) as u8;
            // count of the map: one entry, placed after the subsection size
            names.insert(2, 1);
            names[1] += 1;
            let mut custom = vec![4u8];
            custom.extend(b"name");
            custom.extend(&names);
            m.push(0);
            m.push(custom.len() as u8);
            m.extend(custom);
            m
        }
        assert!(check_symbols(&module("closeloop_tracker::cl")).is_ok());
        let e = check_symbols(&module("_ZN4core3fmt5write17h0E")).unwrap_err();
        assert!(e.contains("core3fmt"), "{e}");
    }
}
