//! The book in `docs/` and the README's links into it: `mdbook build docs` succeeds, every relative
//! link and fragment of the built HTML and of README.md names a file and an id that exist, and every
//! page in `docs/src` is reached from SUMMARY.md and linked from the README. Needs `mdbook` on the
//! PATH (test.sh installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `mdbook build docs --dest-dir DEST`, failing the test with mdbook's own words when it cannot.
fn build(dest: &Path) {
    let out = Command::new("mdbook")
        .arg("build")
        .arg(root().join("docs"))
        .arg("--dest-dir")
        .arg(dest)
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "mdbook is not on the PATH; install it with \
             `cargo install mdbook --locked --version 0.5.4` (./test.sh does so when it is missing)"
        ),
        Err(e) => panic!("could not run mdbook: {e}"),
        Ok(out) if !out.status.success() => panic!(
            "`mdbook build docs` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => {}
    }
}

/// Every file under `dir`, as paths relative to it.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// The values of `name="…"` attributes in an HTML text (attribute names preceded by whitespace, so
/// `data-href` is not `href`), with the few entities mdBook writes in attribute values decoded.
fn attributes(html: &str, name: &str) -> Vec<String> {
    let opener = format!("{name}=\"");
    let mut values = Vec::new();
    for (at, _) in html.match_indices(&opener) {
        if !html[..at].ends_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let rest = &html[at + opener.len()..];
        let Some(end) = rest.find('"') else { continue };
        values.push(
            rest[..end]
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        );
    }
    values
}

/// `%XX` escapes decoded (mdBook percent-encodes non-ASCII fragments in links).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A link that leaves this site: a scheme (`https:`, `mailto:`, `javascript:`) or `//host`.
fn is_external(link: &str) -> bool {
    if link.starts_with("//") {
        return true;
    }
    match link.find(':') {
        Some(colon) => {
            let scheme = &link[..colon];
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// `base/link` with `.` and `..` resolved, for a relative `base`; None when it climbs above where
/// `base` is relative to.
fn joined(base: &Path, link: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = base
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for part in Path::new(link).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// mdBook's heading ids (and GitHub's, for the headings here): lowercase, whitespace to `-`,
/// everything but letters, digits, `_` and `-` dropped.
fn heading_id(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c.to_lowercase().next().unwrap())
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The targets of markdown links `[text](target)` outside fenced code blocks.
fn markdown_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some(end) = rest.find(')') {
                links.push(rest[..end].to_string());
            }
        }
    }
    links
}

#[test]
fn the_book_builds_and_every_link_in_it_and_in_the_readme_resolves() {
    let dest = tempfile::tempdir().unwrap();
    let out = dest.path();
    build(out);

    // The ids of every built page, by its path in the output.
    let pages: Vec<PathBuf> = files(out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    assert!(
        pages.iter().any(|p| p == Path::new("index.html")),
        "mdbook wrote no index.html into {}",
        out.display()
    );
    let ids: BTreeMap<PathBuf, BTreeSet<String>> = pages
        .iter()
        .map(|p| {
            let html = std::fs::read_to_string(out.join(p)).unwrap();
            (p.clone(), attributes(&html, "id").into_iter().collect())
        })
        .collect();

    let mut broken = Vec::new();
    let mut checked = 0;
    // Every relative href and src of every built page. None of mdBook's own theme or asset files is
    // skipped: they all resolve inside the output.
    for page in &pages {
        let html = std::fs::read_to_string(out.join(page)).unwrap();
        let dir = page.parent().unwrap_or(Path::new(""));
        for link in attributes(&html, "href")
            .into_iter()
            .chain(attributes(&html, "src"))
        {
            if is_external(&link) {
                continue;
            }
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(percent_decoded(f))),
                None => (link.as_str(), None),
            };
            let path = percent_decoded(path.split('?').next().unwrap());
            checked += 1;
            // `/…` is from the book's root: 404.html's `<base href="/">` (mdBook's default site-url).
            let (dir, path) = match path.strip_prefix('/') {
                Some(from_root) => (Path::new(""), from_root.to_string()),
                None => (dir, path),
            };
            let target = if path.is_empty() && !link.starts_with('/') {
                page.clone()
            } else {
                match joined(dir, &path) {
                    Some(t) => t,
                    None => {
                        // Above the book: a file of the repository, linked as `../../FILE` from
                        // docs/src/PAGE.md so that it works on GitHub, and from the book in its
                        // default place, docs/book/. Checked there, in the repository.
                        let in_repo = joined(&Path::new("docs/book").join(dir), &path);
                        match in_repo {
                            Some(t) if root().join(&t).exists() => {}
                            _ => broken.push(format!(
                                "{}: `{link}`: no such file in the repository (the book's \
                                 default place being docs/book/)",
                                page.display()
                            )),
                        }
                        continue;
                    }
                }
            };
            let full = out.join(&target);
            let exists = full.is_file() || full.join("index.html").is_file();
            if !exists {
                broken.push(format!(
                    "{}: `{link}`: no file {} in the built book",
                    page.display(),
                    target.display()
                ));
                continue;
            }
            if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
                match ids.get(&target) {
                    Some(known) if known.contains(&fragment) => {}
                    Some(_) => broken.push(format!(
                        "{}: `{link}`: {} has no id=\"{fragment}\"",
                        page.display(),
                        target.display()
                    )),
                    None => broken.push(format!(
                        "{}: `{link}`: a fragment into {}, which is not a page",
                        page.display(),
                        target.display()
                    )),
                }
            }
        }
    }

    // README.md: every relative link names a file of the repository; a fragment into the book names
    // an id of the built page, a bare fragment one of the README's own headings.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut readme_ids = BTreeSet::new();
    let mut fenced = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            readme_ids.insert(heading_id(line.trim_start_matches('#').trim()));
        }
    }
    let mut into_book = 0;
    for link in markdown_links(&readme) {
        if is_external(&link) {
            continue;
        }
        let (path, fragment) = match link.split_once('#') {
            Some((p, f)) => (p, Some(f.to_string())),
            None => (link.as_str(), None),
        };
        if path.is_empty() {
            if !readme_ids.contains(fragment.as_deref().unwrap_or("")) {
                broken.push(format!("README.md: `{link}`: no such heading in README.md"));
            }
            continue;
        }
        let Some(target) = joined(Path::new(""), path) else {
            broken.push(format!("README.md: `{link}`: leads out of the repository"));
            continue;
        };
        if !root().join(&target).exists() {
            broken.push(format!(
                "README.md: `{link}`: no such file in the repository"
            ));
            continue;
        }
        let in_book = target
            .strip_prefix("docs/src")
            .ok()
            .filter(|p| p.extension().is_some_and(|e| e == "md"));
        if in_book.is_some() {
            into_book += 1;
        }
        if let Some(fragment) = fragment {
            match in_book {
                Some(page) => {
                    let built = page.with_extension("html");
                    if !ids
                        .get(&built)
                        .is_some_and(|known| known.contains(&fragment))
                    {
                        broken.push(format!(
                            "README.md: `{link}`: the built {} has no id=\"{fragment}\"",
                            built.display()
                        ));
                    }
                }
                None => broken.push(format!(
                    "README.md: `{link}`: a fragment into a file outside the book cannot be checked"
                )),
            }
        }
    }
    println!(
        "checked {checked} links in {} built pages and {into_book} from README.md into the book",
        pages.len()
    );
    assert!(
        into_book > 0,
        "README.md links to no page of the book (docs/src/PAGE.md)"
    );

    // Every page of docs/src is in SUMMARY.md: a page outside it is never built.
    let src = root().join("docs/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<PathBuf> = markdown_links(&summary)
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| PathBuf::from(l.split('#').next().unwrap()))
        .collect();
    // …and the README links to each of them, where every reader starts.
    let from_readme: BTreeSet<PathBuf> = markdown_links(&readme)
        .into_iter()
        .filter_map(|l| {
            let path = l.split('#').next().unwrap().to_string();
            path.strip_prefix("docs/src/").map(PathBuf::from)
        })
        .collect();
    for page in &listed {
        if !from_readme.contains(page) {
            broken.push(format!(
                "README.md: no link to the book's page docs/src/{}",
                page.display()
            ));
        }
    }
    for page in files(&src) {
        if page.extension().is_some_and(|e| e == "md")
            && page != Path::new("SUMMARY.md")
            && !listed.contains(&page)
        {
            broken.push(format!(
                "docs/src/{}: not reachable from SUMMARY.md",
                page.display()
            ));
        }
    }

    assert!(
        broken.is_empty(),
        "{} broken link(s) or orphan page(s):\n  {}",
        broken.len(),
        broken.join("\n  ")
    );
}
