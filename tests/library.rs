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

#[test]
fn every_environment_variable_the_code_reads_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut files = vec![root.join("images/bitcoind/build.sh")];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut named = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("REGBOX_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            named.insert(name.trim_end_matches('_').to_string());
        }
    }
    assert!(named.contains("REGBOX_CLUSTER"), "{named:?}");
    for name in named {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README does not document {name}"
        );
    }
}
