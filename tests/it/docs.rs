//! The documentation against the code, so the two cannot drift apart: every HTTP
//! route the router declares is in `docs/http-api.md`, every command and
//! subcommand of the CLI is somewhere in `docs/` or the README, every key the
//! `x-objectos` validator knows is in `docs/artifact.md`, the README links every
//! page of `docs/`, and nothing the project ships points outside the repository.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read `{relative}`: {e}"))
}

/// `docs/*.md`, in name order.
fn doc_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("a readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages
}

/// The README and every page of `docs/`, with their paths.
fn documentation() -> Vec<(PathBuf, String)> {
    let mut out = vec![(root().join("README.md"), read("README.md"))];
    for page in doc_pages() {
        let text = std::fs::read_to_string(&page).expect("a readable page");
        out.push((page, text));
    }
    out
}

/// Every route of the router as (METHOD, path). They come from the OpenAPI
/// document's route list, which a unit test of `server::openapi` holds equal to
/// the routes `router()` declares (read from its source): a route added to the
/// router fails that test until it is listed, and this one until it is
/// documented.
fn router_routes() -> Vec<(String, String)> {
    let doc = objectos::server::openapi::document(None);
    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut routes = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("a path item").keys() {
            routes.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_is_in_the_http_api_page() {
    let page = read("docs/http-api.md");
    let routes = router_routes();
    assert!(routes.len() > 30, "too few routes: {routes:?}");
    let missing: Vec<String> = routes
        .iter()
        .map(|(method, path)| format!("{method} {path}"))
        .filter(|route| !page.contains(&format!("`{route}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/http-api.md does not document these routes (write each as `METHOD /path`): {missing:?}"
    );
}

/// Every command as typed after `objectos`: `init`, `user add`, `audit tail`, …
fn command_paths() -> Vec<String> {
    fn walk(command: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" || sub.is_hide_set() {
                continue;
            }
            let path = if prefix.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{prefix} {}", sub.get_name())
            };
            walk(sub, &path, out);
            out.push(path);
        }
    }
    let mut out = Vec::new();
    walk(&objectos::cli::Cli::command(), "", &mut out);
    out
}

/// Whether `text` holds `objectos PATH` as a whole command (`objectos team add`
/// is not found in `objectos team add-member`).
fn mentions_command(text: &str, path: &str) -> bool {
    let needle = format!("objectos {path}");
    text.match_indices(&needle).any(|(at, _)| {
        !text[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn every_command_of_the_cli_is_documented() {
    let docs = documentation();
    let paths = command_paths();
    assert!(paths.iter().any(|p| p == "user set-password"));
    let missing: Vec<&String> = paths
        .iter()
        .filter(|path| !docs.iter().any(|(_, text)| mentions_command(text, path)))
        .collect();
    assert!(
        missing.is_empty(),
        "no page of docs/ nor the README mentions these commands (as `objectos COMMAND`): {missing:?}"
    );
}

#[test]
fn every_x_objectos_key_is_in_the_artifact_page() {
    use objectos::artifact::keys::{APPROVALS_KEYS, OBJECT_POLICY_KEYS, POLICY_KEYS};
    let page = read("docs/artifact.md");
    let keys = POLICY_KEYS
        .iter()
        .map(|k| format!("x-objectos.{k}"))
        .chain(
            OBJECT_POLICY_KEYS
                .iter()
                .map(|k| format!("x-objectos.objects.<object>.{k}")),
        )
        .chain(
            APPROVALS_KEYS
                .iter()
                .map(|k| format!("x-objectos.approvals.{k}")),
        );
    let missing: Vec<String> = keys
        .filter(|key| !page.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/artifact.md does not document these `x-objectos` keys: {missing:?}"
    );
}

#[test]
fn the_readme_links_every_docs_page() {
    let readme = read("README.md");
    for page in doc_pages() {
        let name = page.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            readme.contains(&format!("(docs/{name})")),
            "README.md does not link `docs/{name}`"
        );
    }
}

/// The error codes the code can emit, read from `src/` (test modules left out):
/// the code of every `ApiError` constructor, every `"code": "…"` and `code: "…"`
/// literal (the assistant's stream, import reports), every code a stream's
/// `fail` is given, and every code a `fn code(&self)` answers.
fn emitted_error_codes() -> std::collections::BTreeMap<String, String> {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("a readable folder") {
            let path = entry.expect("a readable entry").path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    /// The code at the start of `rest` if it is a quoted code (`"a_code"`).
    fn quoted(rest: &str) -> Option<&str> {
        let rest = rest.trim_start().strip_prefix('"')?;
        let end = rest.find('"')?;
        let code = &rest[..end];
        (!code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .then_some(code)
    }
    let mut sources = Vec::new();
    files(&root().join("src"), &mut sources);
    let mut codes = std::collections::BTreeMap::new();
    for path in sources {
        let text = std::fs::read_to_string(&path).expect("a readable source");
        // Leave out test modules (`#[cfg(test)] mod … { … }`, closed at column 0).
        let mut text = text.as_str().to_string();
        while let Some(start) = text.find("#[cfg(test)]\nmod ") {
            let end = text[start..]
                .find("\n}\n")
                .map_or(text.len(), |e| start + e + 3);
            text.replace_range(start..end, "");
        }
        let shown = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut found = |code: &str| {
            codes
                .entry(code.to_string())
                .or_insert_with(|| shown.clone());
        };
        for marker in [
            "ApiError::bad_request(",
            "ApiError::forbidden(",
            "\"code\": ",
            "code: ",
            "fail(&out, ",
            "conflict(",
        ] {
            for (at, _) in text.match_indices(marker) {
                if let Some(code) = quoted(&text[at + marker.len()..]) {
                    found(code);
                }
            }
        }
        for (at, _) in text.match_indices("ApiError::new(") {
            // The status (a number or a variable), then the code: a literal, or
            // a variable (whose values are found where they are written).
            let rest = &text[at + "ApiError::new(".len()..];
            let status = rest.split(',').next().unwrap_or("");
            if status.contains('(') || status.contains('"') {
                continue;
            }
            if let Some(rest) = rest.get(status.len() + 1..)
                && let Some(code) = quoted(rest)
            {
                found(code);
            }
        }
        for (at, _) in text.match_indices("fn code(&self)") {
            let body = &text[at..];
            let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
            for (arrow, _) in body.match_indices("=> ") {
                if let Some(code) = quoted(&body[arrow + 3..]) {
                    found(code);
                }
            }
        }
    }
    codes
}

/// Every error code the code can emit is in `docs/errors.md`, so a client
/// author finds every code they can meet in one place.
#[test]
fn every_error_code_is_in_the_errors_page() {
    let codes = emitted_error_codes();
    for expected in [
        "not_found",
        "internal",
        "limit_exceeded",
        "field_predicate_denied",
        "turn_limit",
        "model_timeout",
        "invalid_row",
    ] {
        assert!(
            codes.contains_key(expected),
            "the scan misses `{expected}`: {codes:?}"
        );
    }
    let page = read("docs/errors.md");
    let missing: Vec<String> = codes
        .iter()
        .filter(|(code, _)| !page.contains(&format!("| `{code}` |")))
        .map(|(code, file)| format!("`{code}` ({file})"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/errors.md has no row for: {}",
        missing.join(", ")
    );
    // And the other way: every code the page lists is one the code can emit.
    let stale: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|code| !codes.contains_key(*code))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/errors.md lists codes nothing emits: {stale:?}"
    );
}

/// What the code says of itself stands alone too: no comment or string in
/// `src/`, `benches/`, `scripts/`, `fuzz/`, `contrib/` or `tests/` sends a reader
/// to the design document outside the repository; comments name a page of
/// `docs/` instead.
#[test]
fn the_code_points_at_nothing_outside_the_repository() {
    // Built from pieces so that this file does not match its own patterns.
    let patterns = [
        format!("{}/shared", ".."),
        format!("design{}", ".md"),
        format!("design {}", "§"),
    ];
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("a readable entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "target" | "node_modules" | "corpus" | "artifacts") {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["src", "benches", "scripts", "fuzz", "contrib", "tests"] {
        walk(&root().join(dir), &mut files);
    }
    assert!(
        files.iter().any(|f| f.ends_with("src/lib.rs")),
        "the walk found the sources"
    );
    let mut found = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue; // not text
        };
        for (n, line) in text.lines().enumerate() {
            for pattern in &patterns {
                if line.contains(pattern.as_str()) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the code points outside the repository:\n{}",
        found.join("\n")
    );
}

/// What the project ships stands alone: the README, `docs/`, the manual pages
/// and the benchmark results name no file outside the repository, and every relative link resolves.
#[test]
fn the_documentation_points_at_nothing_outside_the_repository() {
    let mut shipped = documentation();
    for entry in std::fs::read_dir(root().join("man")).expect("man/ exists") {
        let path = entry.expect("a readable entry").path();
        let text = std::fs::read_to_string(&path).expect("a readable page");
        shipped.push((path, text));
    }
    shipped.push((
        root().join("benches/RESULTS.md"),
        read("benches/RESULTS.md"),
    ));
    let repository = root().canonicalize().expect("the repository root");
    for (path, text) in &shipped {
        for outside in [
            format!("{}/shared", ".."),
            format!("design{}", ".md"),
            format!("design {}", "§"),
        ] {
            assert!(
                !text.contains(outside.as_str()),
                "`{}` points outside the repository (`{outside}`)",
                path.display()
            );
        }
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            let resolved = path
                .parent()
                .expect("a page has a folder")
                .join(file)
                .canonicalize()
                .unwrap_or_else(|_| {
                    panic!(
                        "`{}` links `{target}`, which does not exist",
                        path.display()
                    )
                });
            assert!(
                resolved.starts_with(&repository),
                "`{}` links `{target}`, outside the repository",
                path.display()
            );
        }
    }
}
