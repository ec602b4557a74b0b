//! BENCHMARKS.md is written by several commands: `cargo xtask bench` writes the file,
//! and `soak`, `load` and `fuzz` each own one section of it, kept between
//! `<!-- section:NAME -->` and `<!-- /section:NAME -->` markers. Each command replaces
//! only its own section, and the bench keeps every marked section when it rewrites the
//! rest, so no command clobbers another's figures.

use crate::util::{root, Result};

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- section:{name} -->"),
        format!("<!-- /section:{name} -->"),
    )
}

/// The marked sections of `text`, whole (markers included), in order.
pub fn sections(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("<!-- section:") {
        let after = &rest[i..];
        let Some(name_end) = after.find(" -->") else {
            break;
        };
        let name = &after["<!-- section:".len()..name_end];
        let (_, close) = markers(name);
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j + close.len()].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

/// `text` with section `name` set to `body` (replaced where it is, else appended).
pub fn with_section(text: &str, name: &str, body: &str) -> String {
    let (open, close) = markers(name);
    let block = format!("{open}\n{}\n{close}", body.trim_end());
    if let (Some(i), Some(j)) = (text.find(&open), text.find(&close)) {
        if i < j {
            return format!("{}{block}{}", &text[..i], &text[j + close.len()..]);
        }
    }
    let mut out = text.trim_end().to_string();
    out.push_str("\n\n");
    out.push_str(&block);
    out.push('\n');
    out
}

/// The bench's new text with every marked section of `old` appended to it.
pub fn keep_sections(new: &str, old: &str) -> String {
    let mut out = new.trim_end().to_string();
    for s in sections(old) {
        out.push_str("\n\n");
        out.push_str(&s);
    }
    out.push('\n');
    out
}

/// Writes section `name` of BENCHMARKS.md.
pub fn write_section(name: &str, body: &str) -> Result {
    let path = root().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(&path, with_section(&old, name, body))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place_and_kept_by_the_bench() {
        let doc = "# Benchmarks\n\n## Sizes\n\nrow\n";
        let a = with_section(doc, "soak", "## Soak\n\nfirst");
        assert_eq!(
            a,
            "# Benchmarks\n\n## Sizes\n\nrow\n\n<!-- section:soak -->\n## Soak\n\nfirst\n<!-- /section:soak -->\n"
        );
        let b = with_section(&a, "load", "## Load\n\nknee");
        let c = with_section(&b, "soak", "## Soak\n\nsecond");
        assert!(c.contains("second") && !c.contains("first") && c.contains("knee"));
        assert!(c.find("section:soak").unwrap() < c.find("section:load").unwrap());
        // the bench rewrites the file: both sections survive, in order
        let rewritten = keep_sections("# Benchmarks\n\n## Sizes\n\nnew row\n", &c);
        assert!(rewritten.contains("new row") && !rewritten.contains("\nrow\n"));
        assert_eq!(sections(&rewritten), sections(&c));
        assert_eq!(sections(&rewritten).len(), 2);
    }
}
