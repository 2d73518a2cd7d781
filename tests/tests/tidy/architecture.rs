//! `ARCHITECTURE.md` names only what exists: every backticked path is in the
//! tree and every backticked Rust name is in the source.

use std::collections::BTreeSet;

use crate::allowlist;
use crate::source::{code, repo_root, words, Tree, CRATES};

/// What the source declares and names, for looking names up.
pub struct Names {
    words: BTreeSet<String>,
    fns: BTreeSet<String>,
}

impl Names {
    pub fn of(tree: &Tree) -> Names {
        let mut names = Names {
            words: BTreeSet::new(),
            fns: BTreeSet::new(),
        };
        for f in &tree.rust {
            // Module names are the files' and directories' names.
            for part in f.path.split('/') {
                names.words.insert(part.trim_end_matches(".rs").to_owned());
            }
            let code = code(&f.text);
            let mut previous = "";
            for w in words(&code) {
                names.words.insert(w.to_owned());
                if previous == "fn" {
                    names.fns.insert(w.to_owned());
                }
                previous = w;
            }
        }
        names
    }
}

/// The inline code spans of a Markdown text, outside fenced blocks.
pub fn spans(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(inside), Some(_)) = (parts.next(), parts.next()) {
            out.push(inside.to_owned());
        }
        // A span left open at the end of a line: ignore its rest.
    }
    out
}

/// `central/src/{state.rs, serve.rs}` is two paths.
fn expand_braces(token: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (token.find('{'), token.find('}')) else {
        return vec![token.to_owned()];
    };
    if close < open {
        return vec![token.to_owned()];
    }
    let (head, tail) = (&token[..open], &token[close + 1..]);
    token[open + 1..close]
        .split(',')
        .flat_map(|alt| expand_braces(&format!("{head}{}{tail}", alt.trim())))
        .collect()
}

/// A path in the tree, as opposed to a runtime path (`DIR/restart.json`), a
/// key (`computer/package`), a rate (`20MB/s`) or a route (`/api/v1/...`): it
/// names a file by its extension, or starts at a top-level entry of the
/// repository or of a crate (`central/`, `scripts/`, `src/`, `tests/`).
fn looks_like_path(token: &str, tree: &Tree) -> bool {
    if token.contains("::")
        || token.contains("://")
        || token.starts_with('/')
        || token.contains(|c: char| "<>!,=?".contains(c))
    {
        return false;
    }
    if [".rs", ".toml", ".sh", ".md"]
        .iter()
        .any(|ext| token.ends_with(ext))
    {
        return true;
    }
    let Some((first, _)) = token.split_once('/') else {
        return false;
    };
    tree.has(first) || CRATES.iter().any(|c| tree.has(&format!("{c}/{first}")))
}

/// The token with its `{...}` groups taken out, to tell `a/{b, c}.rs` from prose.
fn without_braces(token: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in token.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `*` matches within one path segment.
fn glob_match(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    fn go(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len())
                .take_while(|&k| !s[..k].contains(&'/'))
                .any(|k| go(&p[1..], &s[k..])),
            Some(c) => s.first() == Some(c) && go(&p[1..], &s[1..]),
        }
    }
    go(&p, &s)
}

fn path_exists(tree: &Tree, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let candidates = std::iter::once(path.to_owned())
        .chain(CRATES.iter().map(|c| format!("{c}/{path}")))
        .chain(CRATES.iter().map(|c| format!("{c}/src/{path}")));
    for candidate in candidates {
        if candidate.contains('*') {
            if tree.paths.iter().any(|p| glob_match(&candidate, p)) {
                return true;
            }
        } else if tree.has(&candidate) {
            return true;
        }
    }
    false
}

fn is_ident(word: &str) -> bool {
    !word.is_empty()
        && word.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !word.starts_with(|c: char| c.is_ascii_digit())
}

fn is_camel_case(word: &str) -> bool {
    is_ident(word)
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word.chars().any(|c| c.is_ascii_lowercase())
        && !word.contains('_')
}

/// What a span names that is not in the tree, if anything.
pub fn check_span(span: &str, tree: &Tree, names: &Names) -> Option<String> {
    let token = span.trim();
    if token.contains('{')
        && !without_braces(token).contains(char::is_whitespace)
        && expand_braces(token)
            .iter()
            .all(|p| looks_like_path(p, tree))
    {
        let missing: Vec<String> = expand_braces(token)
            .into_iter()
            .filter(|p| !path_exists(tree, p))
            .collect();
        return (!missing.is_empty()).then(|| format!("`{token}`: no {}", missing.join(", ")));
    }
    if token.contains(char::is_whitespace) {
        return None;
    }
    if looks_like_path(token, tree) {
        return (!path_exists(tree, token)).then(|| format!("`{token}`: no such path"));
    }
    // A Rust name: drop generics and a call's arguments.
    let bare = token.split('<').next().unwrap_or(token);
    let (bare, called) = match bare.split_once('(') {
        Some((name, _)) => (name, true),
        None => (bare, false),
    };
    let segments: Vec<&str> = bare.split("::").collect();
    if segments.len() > 1 {
        if !segments
            .iter()
            .all(|s| is_ident(s) || s.is_empty() || *s == "*")
        {
            return None;
        }
        let missing: Vec<&str> = segments
            .iter()
            .filter(|s| is_ident(s) && !names.words.contains(**s))
            .copied()
            .collect();
        let last = segments.last().copied().unwrap_or_default();
        if !missing.is_empty() {
            return Some(format!(
                "`{token}`: no {} in the source",
                missing.join(", ")
            ));
        }
        if called && is_ident(last) && !is_camel_case(last) && !names.fns.contains(last) {
            return Some(format!("`{token}`: no fn {last} in the source"));
        }
        return None;
    }
    if called && is_ident(bare) && !is_camel_case(bare) {
        return (!names.fns.contains(bare))
            .then(|| format!("`{token}`: no fn {bare} in the source"));
    }
    if is_camel_case(bare) {
        return (!names.words.contains(bare))
            .then(|| format!("`{token}`: no {bare} in the source"));
    }
    None
}

/// Every span of `doc` that names a missing path or Rust name.
pub fn missing(doc: &str, tree: &Tree) -> Vec<String> {
    let names = Names::of(tree);
    let mut seen = BTreeSet::new();
    spans(doc)
        .iter()
        .filter(|s| seen.insert((*s).clone()))
        .filter_map(|s| check_span(s, tree, &names))
        .collect()
}

#[test]
fn architecture_names_only_what_exists() {
    let doc = std::fs::read_to_string(repo_root().join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md at the repository root");
    let problems: Vec<String> = missing(&doc, &Tree::workspace())
        .into_iter()
        .map(|p| format!("ARCHITECTURE.md names {p}"))
        .collect();
    allowlist::assert_none(&problems);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        Tree::of(&[
            (
                "central/src/state.rs",
                "use std::sync::Arc;\npub struct Central;\nimpl Central { pub fn open() {} }",
            ),
            ("central/src/serve.rs", "pub async fn run() {}"),
            (
                "central/src/store/mod.rs",
                "pub trait Store {}\n// pub struct Ghost;",
            ),
            ("central/Cargo.toml", ""),
            ("scripts/check.sh", ""),
        ])
    }

    #[test]
    fn what_exists_passes() {
        let doc = "# Map\n\n`central/src/state.rs`, `src/serve.rs` and `store/mod.rs` under \
                   `central/`; `central/src/{state.rs, serve.rs}`; `central/src/*.rs`; \
                   `scripts/check.sh`; `Central`, `Store`, `serve::run`, `run()`, \
                   `Central::open()`, `Arc<Central>`; prose: `cargo test -p x`, `POST /packages`, \
                   `/api/v1/agent/enroll`, `GET /packages/{id}`, `time_zone`, `ERR_PREVIOUS_FAILED`, \
                   `https://x.org/a`, `DIR/restart.json`, `computer/package`, `20MB/s`, \
                   `cache/<id>/<n>`, `!10.0.0.0/8,10.1.0.0/16`.\n\
                   ```\nGhost central/src/ghost.rs\n```\n";
        assert_eq!(missing(doc, &tree()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_path_or_name_is_reported() {
        let doc = "`central/src/links.rs`, `central/src/{state.rs, quic.rs}`, `central.toml`, \
                   `scripts/deploy.sh`, `src/ghost/`, `Ghost` (only in a comment), `store::Jobs`, `serve::stop()`, \
                   `relays()`.";
        assert_eq!(
            missing(doc, &tree()),
            [
                "`central/src/links.rs`: no such path",
                "`central/src/{state.rs, quic.rs}`: no central/src/quic.rs",
                "`central.toml`: no such path",
                "`scripts/deploy.sh`: no such path",
                "`src/ghost/`: no such path",
                "`Ghost`: no Ghost in the source",
                "`store::Jobs`: no Jobs in the source",
                "`serve::stop()`: no stop in the source",
                "`relays()`: no fn relays in the source",
            ]
        );
    }
}
