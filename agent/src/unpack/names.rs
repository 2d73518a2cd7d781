//! The checks on names: an entry's name made a relative path of normal
//! components only (no root, drive, `..` or NUL), and a symlink's target
//! resolved lexically from its own directory, refused if it leaves the target
//! and otherwise written in normal form.

use std::path::{Component, Path, PathBuf};

use super::UnpackError;

/// Checks an entry name and returns it as a path of normal components only (empty for
/// the target itself, as in `./`).
pub(super) fn entry_path(shown: &str, path: &Path) -> Result<PathBuf, UnpackError> {
    let bad = |reason| UnpackError::BadName {
        entry: shown.to_owned(),
        reason,
    };
    if shown.is_empty() {
        return Err(bad("empty"));
    }
    if shown.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let mut rel = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(UnpackError::AbsolutePath {
                    entry: shown.to_owned(),
                })
            }
            Component::ParentDir => {
                return Err(UnpackError::ParentDir {
                    entry: shown.to_owned(),
                })
            }
            Component::CurDir => {}
            Component::Normal(name) => {
                // `C:x` is a harmless name here but a drive on Windows: refuse it everywhere
                // so a package means the same thing on every computer.
                if rel.as_os_str().is_empty() && is_drive(name.as_encoded_bytes()) {
                    return Err(UnpackError::AbsolutePath {
                        entry: shown.to_owned(),
                    });
                }
                check_windows_name(name.as_encoded_bytes()).map_err(bad)?;
                rel.push(name);
            }
        }
    }
    Ok(rel)
}

fn is_drive(name: &[u8]) -> bool {
    matches!(name, [letter, b':', ..] if letter.is_ascii_alphabetic())
}

/// Windows silently drops trailing dots and spaces and reads `:` as a stream separator,
/// so there such names would not be what was checked.
#[cfg(windows)]
fn check_windows_name(name: &[u8]) -> Result<(), &'static str> {
    if name.contains(&b':') {
        return Err("contains ':'");
    }
    if matches!(name.last(), Some(b'.' | b' ')) {
        return Err("ends with a dot or a space");
    }
    Ok(())
}

#[cfg(not(windows))]
fn check_windows_name(_name: &[u8]) -> Result<(), &'static str> {
    Ok(())
}

/// Resolves a symlink's target lexically from the link's directory and returns it in
/// normal form: the `..`s needed to climb from that directory, then names. Directories
/// above an entry were checked to be real, so climbing them lands where the lexical
/// resolution says, whatever later entries do.
pub(super) fn link_target(
    shown: &str,
    rel: &Path,
    link: &Path,
    shown_link: &str,
) -> Result<PathBuf, UnpackError> {
    let escape = || UnpackError::SymlinkEscape {
        entry: shown.to_owned(),
        target: shown_link.to_owned(),
    };
    if shown_link.is_empty() || shown_link.contains('\0') {
        return Err(UnpackError::Corrupt {
            reason: format!("symlink '{shown}' has an empty or NUL-bearing target"),
        });
    }
    let dir: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    let mut at = dir.clone();
    for (index, component) in link.components().enumerate() {
        match component {
            Component::Prefix(_) | Component::RootDir => return Err(escape()),
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop().ok_or_else(escape)?;
            }
            Component::Normal(name) => {
                if index == 0 && is_drive(name.as_encoded_bytes()) {
                    return Err(escape());
                }
                check_windows_name(name.as_encoded_bytes()).map_err(|_| escape())?;
                at.push(component);
            }
        }
    }
    let common = dir.iter().zip(&at).take_while(|(a, b)| a == b).count();
    let mut normal = PathBuf::new();
    for _ in common..dir.len() {
        normal.push("..");
    }
    for component in &at[common..] {
        normal.push(component);
    }
    if normal.as_os_str().is_empty() {
        normal.push(".");
    }
    Ok(normal)
}
