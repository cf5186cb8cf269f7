//! Builds the node image's first process (`images/init/init.rs`, see there) as a small static binary
//! that regbox carries inside itself and puts into every node image it builds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "images/init/init.rs";
    println!("cargo::rerun-if-changed={source}");
    // Shared with regbox: the drifting clock's files.
    println!("cargo::rerun-if-changed=src/core/faults/faketime.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args(["--edition", "2021", "--crate-name", "regbox_init"])
        // Static, so that it runs whatever libraries a node image has (or lacks).
        .args(["-C", "target-feature=+crt-static", "-C", "opt-level=s"])
        .args(["-C", "panic=abort", "-C", "strip=symbols"])
        .arg(source)
        .arg("-o")
        .arg(out.join("regbox-init"))
        .status()
        .expect("run rustc for the node image's init");
    assert!(status.success(), "rustc could not build {source}");
}
