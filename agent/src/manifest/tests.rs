//! What unpack records, and removal taking away exactly that: files, nested
//! directories deepest first, the store path only if created, and nothing that is no
//! longer what the install made (a replaced symlink, a rewritten file, a directory
//! with foreign files, anything reached through a symlink).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;

use sitecast_common::info::Archive;

use super::*;
use crate::unpack::{unpack, UnpackLimits};

/// A tar.gz of `(name, kind)` entries: `"d"` a directory, `"f"` a file holding its
/// name, `"l:TARGET"` a symlink, `"h:TARGET"` a hard link.
fn tar_gz(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, kind) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match *kind {
            "d" => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, name, std::io::empty())
                    .unwrap();
            }
            "f" => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(name.len() as u64);
                builder
                    .append_data(&mut header, name, name.as_bytes())
                    .unwrap();
            }
            link => {
                let (kind, target) = link.split_once(':').unwrap();
                header.set_entry_type(if kind == "l" {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

struct Scene {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    store: PathBuf,
    package: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        Scene {
            store: base.join("opt").join("store"),
            package: base.join("package.tar.gz"),
            base,
            _tmp: tmp,
        }
    }

    fn install(&self, entries: &[(&str, &str)]) -> Manifest {
        fs::write(&self.package, tar_gz(entries)).unwrap();
        unpack(
            Archive::TarGz,
            &self.package,
            &self.store,
            "unused",
            &UnpackLimits::default(),
            None,
        )
        .unwrap()
        .manifest
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.store.join(rel)
    }

    /// Every path under the store, sorted ("dir/" for directories).
    fn tree(&self) -> Vec<String> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = format!("{prefix}{}", entry.file_name().to_str().unwrap());
                let kind = entry.file_type().unwrap();
                if kind.is_dir() {
                    out.push(format!("{name}/"));
                    walk(&entry.path(), &format!("{name}/"), out);
                } else {
                    out.push(name);
                }
            }
        }
        let mut out = Vec::new();
        if self.store.exists() {
            walk(&self.store, "", &mut out);
        }
        out.sort();
        out
    }
}

fn listing(manifest: &Manifest) -> Vec<String> {
    manifest
        .entries
        .iter()
        .map(|e| format!("{:?} {}", e.kind, e.path.display()))
        .collect()
}

fn kept(removal: &Removal) -> Vec<(String, &'static str)> {
    removal
        .kept
        .iter()
        .map(|(path, why)| (path.display().to_string(), *why))
        .collect()
}

#[test]
fn unpack_records_what_it_created_in_creation_order_with_inodes() {
    let scene = Scene::new();
    let manifest = scene.install(&[
        ("bin/", "d"),
        ("bin/tool", "f"),
        ("share/doc/readme", "f"),
        ("current", "l:bin/tool"),
        ("bin/alias", "h:bin/tool"),
        // Written twice: recorded once, as what it became last.
        ("twice", "f"),
        ("twice", "l:bin/tool"),
    ]);
    assert_eq!(manifest.root, scene.store);
    assert_eq!(
        listing(&manifest),
        [
            "Dir bin",
            "File bin/tool",
            "Dir share",
            "Dir share/doc",
            "File share/doc/readme",
            "Symlink current",
            "File bin/alias",
            "Symlink twice",
        ]
    );
    for entry in &manifest.entries {
        let meta = fs::symlink_metadata(scene.path(entry.path.to_str().unwrap())).unwrap();
        assert_eq!(meta.ino(), entry.ino, "{}", entry.path.display());
    }
    assert_eq!(
        manifest.root_created,
        Some(fs::metadata(&scene.store).unwrap().ino())
    );

    // Into a store path that exists: what was there is not the package's.
    let scene = Scene::new();
    fs::create_dir_all(scene.path("share")).unwrap();
    let manifest = scene.install(&[("share/doc/readme", "f")]);
    assert_eq!(manifest.root_created, None);
    assert_eq!(
        listing(&manifest),
        ["Dir share/doc", "File share/doc/readme"]
    );
}

#[test]
fn a_plain_file_is_the_single_entry() {
    let scene = Scene::new();
    fs::write(&scene.package, b"#!/bin/sh\n").unwrap();
    let manifest = unpack(
        Archive::None,
        &scene.package,
        &scene.store,
        "tool.sh",
        &UnpackLimits::default(),
        None,
    )
    .unwrap()
    .manifest;
    assert_eq!(listing(&manifest), ["File tool.sh"]);
    assert!(manifest.root_created.is_some());
    let removal = remove(&manifest);
    assert_eq!((removal.files, removal.dirs), (1, 1), "{removal}");
    assert!(!scene.store.exists());
    // The directory above the store path was created too, but is the admin's layout.
    assert!(scene.base.join("opt").is_dir());
}

#[test]
fn removal_takes_files_and_nested_directories_deepest_first_and_the_created_root() {
    let scene = Scene::new();
    let manifest = scene.install(&[
        ("a/b/c/deep.txt", "f"),
        ("a/b/mid.txt", "f"),
        ("a/link", "l:b/mid.txt"),
        ("top.txt", "f"),
    ]);
    let removal = remove(&manifest);
    assert!(removal.ok(), "{removal}");
    assert_eq!((removal.files, removal.dirs), (4, 4), "{removal}");
    assert!(removal.kept.is_empty(), "{removal}");
    assert!(!scene.store.exists());
    // Removing again finds nothing to do and nothing wrong.
    let again = remove(&manifest);
    assert!(again.ok() && again.kept.is_empty(), "{again}");
    assert_eq!((again.files, again.dirs), (0, 0));
}

#[test]
fn what_was_there_before_the_install_stays() {
    let scene = Scene::new();
    fs::create_dir_all(scene.path("etc")).unwrap();
    fs::write(scene.path("etc/site.conf"), "admin's").unwrap();
    let manifest = scene.install(&[("etc/app.conf", "f"), ("lib/app.so", "f")]);
    let removal = remove(&manifest);
    assert!(removal.ok(), "{removal}");
    assert_eq!((removal.files, removal.dirs), (2, 1), "{removal}");
    assert_eq!(scene.tree(), ["etc/", "etc/site.conf"]);
    assert_eq!(
        fs::read_to_string(scene.path("etc/site.conf")).unwrap(),
        "admin's"
    );
}

#[test]
fn a_symlink_replaced_by_a_directory_or_a_file_is_left_alone() {
    let scene = Scene::new();
    let manifest = scene.install(&[
        ("target.txt", "f"),
        ("to-dir", "l:target.txt"),
        ("to-file", "l:target.txt"),
        ("still-link", "l:target.txt"),
    ]);
    fs::remove_file(scene.path("to-dir")).unwrap();
    fs::create_dir(scene.path("to-dir")).unwrap();
    fs::write(scene.path("to-dir/theirs"), "x").unwrap();
    fs::remove_file(scene.path("to-file")).unwrap();
    fs::write(scene.path("to-file"), "someone else's").unwrap();
    let removal = remove(&manifest);
    assert!(removal.ok(), "{removal}");
    assert_eq!(removal.files, 2, "{removal}");
    assert_eq!(scene.tree(), ["to-dir/", "to-dir/theirs", "to-file"]);
    let store = scene.store.display().to_string();
    let mut kept = kept(&removal);
    kept.sort();
    assert_eq!(
        kept,
        [
            (store.clone(), "not empty"),
            (
                format!("{store}/to-dir"),
                "no longer what the install created"
            ),
            (
                format!("{store}/to-file"),
                "no longer what the install created"
            ),
        ]
    );
}

#[test]
fn a_file_rewritten_since_the_install_is_left_alone() {
    let scene = Scene::new();
    let manifest = scene.install(&[("shared.dll", "f"), ("mine.txt", "f")]);
    // Another package (or a later version) wrote its own file there: a new inode,
    // made before the old one is freed so the number cannot be reused.
    fs::write(scene.path(".shared.tmp"), "v2").unwrap();
    fs::rename(scene.path(".shared.tmp"), scene.path("shared.dll")).unwrap();
    let removal = remove(&manifest);
    assert!(removal.ok(), "{removal}");
    assert_eq!(removal.files, 1);
    assert_eq!(scene.tree(), ["shared.dll"]);
    assert_eq!(fs::read_to_string(scene.path("shared.dll")).unwrap(), "v2");
}

#[test]
fn a_directory_that_got_foreign_files_is_kept_with_them() {
    let scene = Scene::new();
    let manifest = scene.install(&[("data/", "d"), ("data/seed.db", "f"), ("data/sub/x", "f")]);
    fs::write(scene.path("data/user.db"), "the user's").unwrap();
    let removal = remove(&manifest);
    assert!(removal.ok(), "{removal}");
    assert_eq!((removal.files, removal.dirs), (2, 1), "{removal}");
    assert_eq!(scene.tree(), ["data/", "data/user.db"]);
    let store = scene.store.display().to_string();
    assert_eq!(
        kept(&removal),
        [
            (format!("{store}/data"), "not empty"),
            (store.clone(), "not empty"),
        ]
    );
    assert!(removal.to_string().contains("kept:"), "{removal}");
}

#[test]
fn removal_never_goes_through_a_symlink() {
    let scene = Scene::new();
    let manifest = scene.install(&[("sub/file", "f"), ("sub/inner/deep", "f")]);
    // Somebody swapped the package's directory for a link to elsewhere, where files
    // of the same names live.
    let elsewhere = scene.base.join("elsewhere");
    fs::create_dir_all(elsewhere.join("inner")).unwrap();
    fs::write(elsewhere.join("file"), "precious").unwrap();
    fs::write(elsewhere.join("inner/deep"), "precious").unwrap();
    fs::rename(scene.path("sub"), scene.base.join("moved")).unwrap();
    symlink(&elsewhere, scene.path("sub")).unwrap();
    let removal = remove(&manifest);
    assert!(removal.ok(), "{removal}");
    assert_eq!((removal.files, removal.dirs), (0, 0), "{removal}");
    assert_eq!(
        fs::read_to_string(elsewhere.join("file")).unwrap(),
        "precious"
    );
    assert_eq!(
        fs::read_to_string(elsewhere.join("inner/deep")).unwrap(),
        "precious"
    );
    assert!(fs::symlink_metadata(scene.path("sub"))
        .unwrap()
        .file_type()
        .is_symlink());
    let reasons: BTreeMap<String, &str> = kept(&removal).into_iter().collect();
    let store = scene.store.display().to_string();
    assert_eq!(
        reasons[&format!("{store}/sub/file")],
        "a directory above it is no longer a directory"
    );
    assert_eq!(
        reasons[&format!("{store}/sub")],
        "no longer what the install created"
    );
}

#[test]
fn a_manifest_naming_anything_but_a_plain_relative_path_is_refused() {
    let scene = Scene::new();
    fs::create_dir_all(&scene.store).unwrap();
    let victim = scene.base.join("victim");
    fs::write(&victim, "keep me").unwrap();
    let ino = fs::metadata(&victim).unwrap().ino();
    let manifest = Manifest {
        root: scene.store.clone(),
        root_created: None,
        entries: vec![Entry {
            kind: EntryKind::File,
            path: "../../victim".into(),
            ino,
        }],
    };
    let removal = remove(&manifest);
    assert!(!removal.ok());
    assert!(
        removal.to_string().contains("could not remove"),
        "{removal}"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn the_summary_names_a_few_paths_and_counts_the_rest() {
    let removal = Removal {
        files: 3,
        dirs: 1,
        kept: (0..25)
            .map(|n| (PathBuf::from(format!("/s/{n}")), "not empty"))
            .collect(),
        failed: Vec::new(),
    };
    let text = removal.to_string();
    assert!(
        text.starts_with("removed 3 files or symlinks and 1 directories"),
        "{text}"
    );
    assert!(text.contains("/s/9 (not empty)"));
    assert!(!text.contains("/s/10 "));
    assert!(text.ends_with("and 15 more"), "{text}");
}
