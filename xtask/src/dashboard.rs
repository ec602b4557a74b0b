//! Builds the marketer's dashboard (`dashboard/`) into `dist/public/dashboard/`, where the
//! worker's static assets serve it at `/dashboard/`:
//!
//! - `dashboard.js`: `dashboard/src/main.tsx` (TypeScript, Preact, Chart.js) bundled and
//!   minified by esbuild (the npm package the project pins) into one ES module;
//! - `index.html` and `dashboard.css`, copied;
//! - the dashboard's block of `dist/public/_headers`: a strict Content-Security-Policy
//!   (scripts, styles and API calls from the worker's own origin only, no inline code,
//!   Trusted Types, `frame-ancestors 'none'`), `X-Content-Type-Options`, `Referrer-Policy`
//!   and revalidation of every file (`no-cache`: the names carry no hash). The tracker's build writes the file first; this block is
//!   appended (or replaced), between its own markers, so either build can run again.
//!
//! `cargo xtask lint` type-checks the sources with `tsc --noEmit` ([`typecheck`]).

use crate::util::{self, note, root, step, Result};
use std::path::Path;
use std::process::Command;

/// The files copied as they are.
pub const COPIED: [&str; 2] = ["index.html", "dashboard.css"];
/// The bundle esbuild writes.
pub const BUNDLE: &str = "dashboard.js";
/// The entry point of the bundle.
pub const ENTRY: &str = "dashboard/src/main.tsx";

/// The Content-Security-Policy of every dashboard answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; object-src 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

const BEGIN: &str = "# dashboard: begin (xtask/src/dashboard.rs)";
const END: &str = "# dashboard: end";

/// The dashboard's block of `_headers`.
pub fn headers_block() -> String {
    let common = format!(
        "  Content-Security-Policy: {CSP}\n  X-Content-Type-Options: nosniff\n  \
         Referrer-Policy: no-referrer\n  X-Frame-Options: DENY\n"
    );
    // (`/dashboard/*` matches `/dashboard/` too; two rules that both matched would have
    // their values joined)
    format!(
        "{BEGIN}\n/dashboard\n{common}/dashboard/*\n{common}{END}\n",
        common = format!("{common}  Cache-Control: no-cache\n")
    )
}

/// `headers` with the dashboard's block replaced (or appended).
pub fn with_block(headers: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in headers.lines() {
        if line == BEGIN {
            skipping = true;
        } else if line == END {
            skipping = false;
        } else if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&headers_block());
    out
}

/// Puts the dashboard's block into `dist/public/_headers` (the tracker's build rewrites the
/// file: `cargo xtask build tracker` calls this after it).
pub fn write_headers() -> Result {
    let headers = root().join("dist").join("public").join("_headers");
    let old = std::fs::read_to_string(&headers).unwrap_or_default();
    std::fs::write(&headers, with_block(&old)).map_err(|e| format!("{}: {e}", headers.display()))
}

/// Bundles, copies and writes the headers (see the module docs).
pub fn build() -> Result {
    let root = root();
    let public = root.join("dist").join("public");
    let dest = public.join("dashboard");
    copy(&root.join("dashboard"), &dest)?;
    let esbuild = util::node_tool(".bin/esbuild");
    step(
        "bundling the dashboard (esbuild: TypeScript, Preact, Chart.js)",
        "dashboard-esbuild",
        Command::new(esbuild).args([
            ENTRY,
            "--bundle",
            "--minify",
            "--format=esm",
            "--target=chrome100,firefox100,safari15",
            "--jsx=automatic",
            "--jsx-import-source=preact",
            "--legal-comments=none",
            &format!("--outfile={}", dest.join(BUNDLE).display()),
            "--log-level=warning",
        ]),
    )?;
    write_headers()?;
    let size = std::fs::metadata(dest.join(BUNDLE)).map_or(0, |m| m.len());
    note(format!(
        "dashboard: dist/public/dashboard/ (index.html, dashboard.css, {BUNDLE} {} KB)",
        size / 1024
    ));
    Ok(())
}

/// `tsc --noEmit` over `dashboard/` (strict; see `dashboard/tsconfig.json`).
pub fn typecheck() -> Result {
    step(
        "tsc --noEmit (dashboard)",
        "lint-tsc",
        Command::new(util::node_tool(".bin/tsc")).args(["-p", "dashboard/tsconfig.json"]),
    )
}

/// Copies [`COPIED`] from `src` to `dest` (created if missing) and removes any other
/// file in `dest` but the bundle, so a stale file never lingers.
pub fn copy(src: &Path, dest: &Path) -> Result {
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    for name in COPIED {
        let from = src.join(name);
        let to = dest.join(name);
        std::fs::copy(&from, &to)
            .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
    }
    let entries = std::fs::read_dir(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let known = name
            .to_str()
            .is_some_and(|n| COPIED.contains(&n) || n == BUNDLE);
        if !known && entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_files_and_drops_stale_ones() {
        let base = std::env::temp_dir().join(format!("xtask-dashboard-{}", std::process::id()));
        let src = base.join("src");
        let dest = base.join("out").join("dashboard");
        std::fs::create_dir_all(&src).expect("src dir");
        std::fs::create_dir_all(&dest).expect("dest dir");
        for (name, body) in [
            ("index.html", "<p>hi</p>"),
            ("dashboard.css", "p{}"),
            ("notes.txt", "not part of it"),
        ] {
            std::fs::write(src.join(name), body).expect("write src");
        }
        std::fs::write(dest.join("old.js"), "stale").expect("write stale");
        std::fs::write(dest.join(BUNDLE), "1;").expect("write bundle");

        copy(&src, &dest).expect("copy");

        let mut names: Vec<String> = std::fs::read_dir(&dest)
            .expect("read dest")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["dashboard.css", "dashboard.js", "index.html"]);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_missing_source_file_is_a_readable_error() {
        let base =
            std::env::temp_dir().join(format!("xtask-dashboard-miss-{}", std::process::id()));
        let err = copy(&base.join("nowhere"), &base.join("out")).expect_err("must fail");
        assert!(err.contains("index.html"), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn the_headers_block_is_appended_once_and_keeps_the_trackers() {
        let tracker = "/t.js\n  Cache-Control: public, max-age=300\n";
        let once = with_block(tracker);
        let twice = with_block(&once);
        assert_eq!(once, twice, "rebuilding does not add a second block");
        assert!(once.starts_with(tracker), "{once}");
        assert_eq!(once.matches("frame-ancestors 'none'").count(), 2, "{once}");
    }

    #[test]
    fn the_repository_has_the_dashboard_sources() {
        for name in COPIED {
            assert!(root().join("dashboard").join(name).is_file(), "{name}");
        }
        assert!(root().join(ENTRY).is_file());
    }
}
