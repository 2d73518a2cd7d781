//! The source model the tidy rules read: every file's path and text, each Rust
//! file's crate, module path and imports, with comments, string contents and
//! `#[cfg(test)]` modules taken out so only what the code names counts.

use std::collections::BTreeSet;
use std::path::Path;

/// The workspace's crates, by directory; `cli` once it is one.
pub const CRATES: &[&str] = &["common", "io", "central", "relay", "agent", "tests", "cli"];

/// A file of the tree: its path from the repository root, `/`-separated.
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// The tree the rules look at: every path (files and directories) and the text
/// of every Rust file. Built from the disk, or from strings in unit tests.
pub struct Tree {
    pub paths: BTreeSet<String>,
    pub rust: Vec<SourceFile>,
}

impl Tree {
    /// A tree of the given files (path, text), as the unit tests build them.
    pub fn of(files: &[(&str, &str)]) -> Tree {
        let mut paths = BTreeSet::new();
        let mut rust = Vec::new();
        for (path, text) in files {
            add_with_parents(&mut paths, path);
            if path.ends_with(".rs") {
                rust.push(SourceFile {
                    path: (*path).to_owned(),
                    text: (*text).to_owned(),
                });
            }
        }
        Tree { paths, rust }
    }

    /// The repository this test binary was built from.
    pub fn workspace() -> Tree {
        let root = repo_root();
        let mut paths = BTreeSet::new();
        let mut rust = Vec::new();
        walk(&root, &root, &mut paths, &mut rust);
        rust.sort_by(|a, b| a.path.cmp(&b.path));
        Tree { paths, rust }
    }

    /// The Rust files that are modules of a crate's library or binaries (not
    /// tests), with their parsed shape.
    pub fn modules(&self) -> Vec<Module<'_>> {
        self.rust.iter().filter_map(Module::of).collect()
    }

    /// The Rust files that are not tests.
    pub fn non_test(&self) -> impl Iterator<Item = &SourceFile> {
        self.rust.iter().filter(|f| !is_test(&f.path))
    }

    pub fn has(&self, path: &str) -> bool {
        self.paths.contains(path.trim_end_matches('/'))
    }
}

pub fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn add_with_parents(paths: &mut BTreeSet<String>, path: &str) {
    let mut prefix = String::new();
    for (i, part) in path.split('/').enumerate() {
        if i > 0 {
            prefix.push('/');
        }
        prefix.push_str(part);
        paths.insert(prefix.clone());
    }
}

fn walk(root: &Path, dir: &Path, paths: &mut BTreeSet<String>, rust: &mut Vec<SourceFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let relative = relative.to_string_lossy().replace('\\', "/");
        paths.insert(relative.clone());
        if path.is_dir() {
            walk(root, &path, paths, rust);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            rust.push(SourceFile {
                path: relative,
                text,
            });
        }
    }
}

/// Whether a Rust file is test code: anything outside a crate's `src/`, the
/// whole `tests` crate (the e2e harness is test code too), and `tests.rs` files
/// or `tests/` directories inside `src/`.
pub fn is_test(path: &str) -> bool {
    let mut parts = path.split('/');
    let (Some(krate), Some(src)) = (parts.next(), parts.next()) else {
        return true;
    };
    if krate == "tests" || src != "src" || !CRATES.contains(&krate) {
        return true;
    }
    path.split('/')
        .skip(2)
        .any(|p| p == "tests" || p == "tests.rs")
}

/// A Rust file of a crate's `src/`, not a test.
pub struct Module<'a> {
    pub krate: &'a str,
    /// `central/src/domain/rules/edit.rs` is `["domain", "rules", "edit"]`; a
    /// crate root (`lib.rs`) is `[]`; `main.rs` is `["main"]`; `bin/*.rs` is `["bin"]`.
    pub path: Vec<String>,
    pub file: &'a SourceFile,
    /// The text with comments, string contents and test modules taken out.
    pub code: String,
}

impl<'a> Module<'a> {
    fn of(file: &'a SourceFile) -> Option<Module<'a>> {
        if is_test(&file.path) {
            return None;
        }
        let (krate, rest) = file.path.split_once("/src/")?;
        let krate = CRATES.iter().find(|c| **c == krate)?;
        let rest = rest.strip_suffix(".rs")?;
        let mut path: Vec<String> = rest.split('/').map(str::to_owned).collect();
        if path.first().is_some_and(|p| p == "bin") {
            path = vec!["bin".to_owned()];
        } else if path == ["lib"] {
            path.clear();
        } else if path.last().is_some_and(|p| p == "mod") {
            path.pop();
        }
        Some(Module {
            krate,
            path,
            file,
            code: without_tests(&code(&file.text)),
        })
    }

    /// The top-level module this file belongs to (`None` for the crate root).
    pub fn top(&self) -> Option<&str> {
        self.path.first().map(String::as_str)
    }

    /// Every path this file names through `crate::` or `super::`, made absolute
    /// (from the crate root): `use` items, groups and inline paths alike.
    pub fn imports(&self) -> Vec<Vec<String>> {
        imports(&self.path, &self.code)
    }
}

/// The text with comments removed and the contents of string and character
/// literals blanked, so neither can look like code.
pub fn code(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
            && raw_string_start(&chars, i + 1).is_some()
        {
            let (hashes, body) = raw_string_start(&chars, i + 1).unwrap_or((0, i + 2));
            out.push_str("\"\"");
            i = body;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
        } else if c == '"' {
            out.push_str("\"\"");
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), or else a lifetime.
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' && j < i + 12 {
                    j += 1;
                }
                out.push_str("' '");
                i = j + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `r"` / `r#"`: the number of hashes and where the body starts.
fn raw_string_start(chars: &[char], mut i: usize) -> Option<(usize, usize)> {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    (chars.get(i) == Some(&'"')).then_some((hashes, i + 1))
}

/// The code without its `#[cfg(test)] mod name { ... }` blocks (their imports
/// and derives are test code).
pub fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let item = trimmed.strip_prefix("pub ").unwrap_or(trimmed).trim_start();
        let is_inline_mod = item.strip_prefix("mod ").is_some_and(|m| {
            let m = m.trim_start();
            let name_end = m
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(m.len());
            m[name_end..].trim_start().starts_with('{')
        });
        if !is_inline_mod {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let Some(open) = after.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifiers a piece of code uses, as whole words.
pub fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !is_ident(c)).filter(|w| !w.is_empty())
}

/// Whether `code` names `name::` as a path's first segment (`axum::Router`,
/// `use sled::Db`), not as the tail of another path (`crate::axum::`).
pub fn names_crate(code: &str, name: &str) -> bool {
    let needle = format!("{name}::");
    code.match_indices(&needle).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        !before.is_some_and(|c| is_ident(c) || c == ':')
    })
}

/// Whether `code` names `name::` anywhere in a path (`sitecast_common::wire::X`, `wire::X`).
pub fn names_module(code: &str, name: &str) -> bool {
    let needle = format!("{name}::");
    code.match_indices(&needle).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        !before.is_some_and(is_ident)
    })
}

/// The absolute paths named from a module at `here` through `crate::`,
/// `super::` (repeated) and groups `{a, b::c}`.
pub fn imports(here: &[String], code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        if !starts_word {
            i += 1;
            continue;
        }
        let base = if at_word(&chars, i, "crate::") {
            i += "crate::".len();
            Some(Vec::new())
        } else if at_word(&chars, i, "super::") {
            let mut base: Vec<String> = here.to_vec();
            while at_word(&chars, i, "super::") {
                base.pop();
                i += "super::".len();
            }
            Some(base)
        } else {
            None
        };
        match base {
            Some(base) => {
                let mut trees = Vec::new();
                i = use_tree(&chars, i, Vec::new(), &mut trees);
                for t in trees {
                    let mut full = base.clone();
                    full.extend(t);
                    out.push(full);
                }
            }
            None => i += 1,
        }
    }
    out
}

fn at_word(chars: &[char], i: usize, word: &str) -> bool {
    word.chars()
        .enumerate()
        .all(|(k, w)| chars.get(i + k) == Some(&w))
}

fn skip_space(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// Parses a use tree (`a::b`, `a::{b, c::d}`, `*`, `x as y`) at `i` under
/// `prefix`, pushing each leaf path; returns where it stopped.
fn use_tree(
    chars: &[char],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    loop {
        i = skip_space(chars, i);
        match chars.get(i) {
            Some('{') => {
                i += 1;
                loop {
                    i = skip_space(chars, i);
                    match chars.get(i) {
                        Some('}') => return i + 1,
                        Some(',') => i += 1,
                        None => return i,
                        _ => {
                            let before = i;
                            i = use_tree(chars, i, path.clone(), out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            Some(c) if is_ident(*c) => {
                let start = i;
                while chars.get(i).is_some_and(|c| is_ident(*c)) {
                    i += 1;
                }
                let segment: String = chars[start..i].iter().collect();
                if segment != "self" {
                    path.push(segment);
                }
                let j = skip_space(chars, i);
                if at_word(chars, j, "::") {
                    i = j + 2;
                    continue;
                }
                out.push(path);
                return i;
            }
            _ => {
                // `*`, or the path ended (`crate::` alone): what was read so far.
                if !path.is_empty() {
                    out.push(path);
                }
                return i;
            }
        }
    }
}
