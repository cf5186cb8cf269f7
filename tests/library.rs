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

/// The crates the library compiles, one `name vX` per line, with these feature flags.
fn dependencies(features: &[&str]) -> String {
    let mut args = vec!["tree", "--offline", "--edges", "normal", "--prefix", "none"];
    args.extend(["--format", "{p}"]);
    args.extend(features);
    cargo(&args)
}

#[test]
fn without_the_cli_feature_the_library_needs_no_command_line_crates() {
    let tree = dependencies(&["--no-default-features"]);
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(crates.contains(&"bollard"), "{tree}");
    for cli_only in [
        "clap",
        "clap_complete",
        "clap_mangen",
        "image",
        "indicatif",
        "plotters",
        "tracing-subscriber",
    ] {
        assert!(
            !crates.contains(&cli_only),
            "{cli_only} is compiled without `cli`:\n{tree}"
        );
    }
    let with_cli = dependencies(&[]);
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
    // The README and every page of the book (docs/src) together.
    let mut readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for entry in std::fs::read_dir(root.join("docs/src")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            readme.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let help = std::fs::read_to_string(root.join("src/cli/args.rs")).unwrap();
    let script = std::fs::read_to_string(root.join("images/bitcoind/build.sh")).unwrap();
    let mut sources = vec![script.clone()];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let name_at = |text: &str| -> String {
        text.chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut named = std::collections::BTreeSet::new();
    for text in &sources {
        // regbox's own variables, wherever they are named; others where the code reads them.
        for (at, _) in text.match_indices("REGBOX_") {
            named.insert(name_at(&text[at..]).trim_end_matches('_').to_string());
        }
        for opener in ["env::var(\"", "env = \""] {
            for (at, _) in text.match_indices(opener) {
                named.insert(name_at(&text[at + opener.len()..]));
            }
        }
    }
    // The script's environment: `${NAME:-default}` of a variable it does not set itself.
    for (at, _) in script.match_indices("${") {
        let name = name_at(&script[at + 2..]);
        if script[at + 2 + name.len()..].starts_with(":-")
            && !script.contains(&format!("\n{name}="))
        {
            named.insert(name);
        }
    }
    named.retain(|n| n.starts_with(|c: char| c.is_ascii_uppercase()));
    for expected in [
        "REGBOX_CLUSTER",
        "TMPDIR",
        "SOURCE_DATE_EPOCH",
        "REGBOX_DEBIAN_MIRROR",
    ] {
        assert!(
            named.contains(expected),
            "{expected} not found in {named:?}"
        );
    }
    for name in named {
        assert!(
            readme.contains(&format!("`{name}`")),
            "neither README.md nor the book (docs/src) documents {name}"
        );
        assert!(
            help.contains(&format!("\n  {name} ")),
            "--help does not list {name}"
        );
    }
}
