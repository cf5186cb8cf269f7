//! What a library user compiles: without the default `cli` feature the crate builds and pulls in no
//! command-line crates.

use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn without_the_cli_feature_the_library_needs_no_command_line_crates() {
    let tree = cargo(&[
        "tree",
        "--offline",
        "--no-default-features",
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(crates.contains(&"bollard"), "{tree}");
    for cli_only in [
        "clap",
        "clap_complete",
        "clap_mangen",
        "indicatif",
        "tracing-subscriber",
    ] {
        assert!(
            !crates.contains(&cli_only),
            "{cli_only} is compiled without `cli`:\n{tree}"
        );
    }
    let with_cli = cargo(&[
        "tree",
        "--offline",
        "--edges",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    assert!(
        with_cli.lines().any(|l| l.starts_with("clap ")),
        "{with_cli}"
    );
}

#[test]
fn without_the_cli_feature_the_library_compiles() {
    // Its own target directory: the test run holds the lock of the main one.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-cli");
    cargo(&[
        "check",
        "--offline",
        "--quiet",
        "--lib",
        "--no-default-features",
        "--target-dir",
        target.to_str().unwrap(),
    ]);
}
