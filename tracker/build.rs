//! Declares the `closeloop_tracker_bin` cfg, set by `cargo xtask build` for the
//! download build (`no_std` with a trapping panic handler; see src/lib.rs).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(closeloop_tracker_bin)");
}
