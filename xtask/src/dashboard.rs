//! Copies the marketer's dashboard (`dashboard/`: plain HTML, JS and CSS, no build step)
//! into `dist/public/dashboard/`, where the worker's static assets serve it at
//! `/dashboard/`.
//!
//! Safe to run before or after the tracker build: it creates `dist/public/` if needed,
//! touches nothing outside `dist/public/dashboard/`, and removes files there that
//! `dashboard/` no longer has, so a stale copy never lingers.

use crate::util::{note, root, Result};
use std::path::Path;

/// The files the dashboard consists of (and the only ones copied).
pub const FILES: [&str; 3] = ["index.html", "dashboard.js", "dashboard.css"];

/// Copies [`FILES`] from `dashboard/` into `dist/public/dashboard/`.
pub fn build() -> Result {
    let root = root();
    copy(
        &root.join("dashboard"),
        &root.join("dist").join("public").join("dashboard"),
    )?;
    note("dashboard: dist/public/dashboard/ (index.html, dashboard.js, dashboard.css)");
    Ok(())
}

/// Copies [`FILES`] from `src` to `dest` (created if missing) and removes any other
/// file in `dest`.
pub fn copy(src: &Path, dest: &Path) -> Result {
    std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    for name in FILES {
        let from = src.join(name);
        let to = dest.join(name);
        std::fs::copy(&from, &to)
            .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
    }
    let entries = std::fs::read_dir(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let known = name.to_str().is_some_and(|n| FILES.contains(&n));
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
    fn copies_the_three_files_and_drops_stale_ones() {
        let base = std::env::temp_dir().join(format!("xtask-dashboard-{}", std::process::id()));
        let src = base.join("src");
        let dest = base.join("out").join("dashboard");
        std::fs::create_dir_all(&src).expect("src dir");
        std::fs::create_dir_all(&dest).expect("dest dir");
        for (name, body) in [
            ("index.html", "<p>hi</p>"),
            ("dashboard.js", "1;"),
            ("dashboard.css", "p{}"),
            ("notes.txt", "not part of it"),
        ] {
            std::fs::write(src.join(name), body).expect("write src");
        }
        std::fs::write(dest.join("old.js"), "stale").expect("write stale");

        copy(&src, &dest).expect("copy");

        let mut names: Vec<String> = std::fs::read_dir(&dest)
            .expect("read dest")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["dashboard.css", "dashboard.js", "index.html"]);
        assert_eq!(
            std::fs::read_to_string(dest.join("dashboard.js")).expect("read"),
            "1;"
        );
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
    fn the_repository_has_the_dashboard_files() {
        for name in FILES {
            assert!(
                root().join("dashboard").join(name).is_file(),
                "dashboard/{name} is missing"
            );
        }
    }
}
