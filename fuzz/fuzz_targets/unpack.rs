//! Fuzzes the agent's archive unpacker, `unpack::unpack`, on arbitrary package files:
//! zip and tar.gz as given, a tar that the target gzips itself (so the tar reader is
//! reached without the fuzzer having to produce deflate streams), and a plain file whose
//! name is the input's first line. Each run unpacks into a fresh temporary directory with
//! small limits, then checks what the unpacker promises:
//!
//! - nothing appeared outside the target (every path of the run's directory is the
//!   input file, the directories above the target, or inside the target);
//! - every symlink inside points inside when resolved lexically from its directory;
//! - every hard link of a file inside is inside (no link to a file elsewhere);
//! - the file data written stays within the byte limit;
//! - a refused archive leaves nothing behind: the target it created is gone again;
//! - an accepted one's manifest survives JSON (the agent's history keeps it), and
//!   removing it (what uninstalling a `store` package does) takes away everything,
//!   the target included, keeping nothing, since everything in it was this unpack's.
//!
//! The run's directory is removed at the end of each input.
#![no_main]

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use sitecast_agent::manifest::{remove, Manifest};
use sitecast_agent::unpack::{unpack, UnpackLimits};
use sitecast_common::info::Archive;

const LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 1 << 20,
    max_entries: 256,
};

/// The directory above the targets above the target: a relative escape of up to four
/// `..` still lands inside the run's directory, where the walk sees it.
const ABOVE: &str = "a/b/c";

/// One directory per process, holding one run's directory at a time.
fn jail() -> &'static Path {
    static JAIL: OnceLock<PathBuf> = OnceLock::new();
    JAIL.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("sitecast-fuzz-unpack-")
            .tempdir()
            .expect("a temporary directory")
            // libFuzzer exits without running destructors; scripts/fuzz.sh points
            // TMPDIR at a directory it removes afterwards.
            .keep()
    })
}

/// The input as a package file, and how to unpack it.
fn package(data: &[u8]) -> (Archive, Vec<u8>, String) {
    let Some((&mode, rest)) = data.split_first() else {
        return (Archive::None, Vec::new(), "package".to_owned());
    };
    match mode % 4 {
        0 => (Archive::Zip, rest.to_vec(), String::new()),
        1 => (Archive::TarGz, rest.to_vec(), String::new()),
        2 => {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(rest).expect("gzip into memory");
            (
                Archive::TarGz,
                gz.finish().expect("gzip into memory"),
                String::new(),
            )
        }
        _ => {
            let (name, body) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &[][..]),
            };
            let name = String::from_utf8_lossy(name).into_owned();
            (Archive::None, body.to_vec(), name)
        }
    }
}

/// `link`'s target resolved lexically from `dir` (both relative to the target), or
/// `None` if it climbs above the target or is absolute.
fn resolve(dir: &Path, link: &Path) -> Option<PathBuf> {
    let mut parts: Vec<Component<'_>> = dir.components().collect();
    for component in link.components() {
        match component {
            Component::Normal(_) => parts.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Checks the target's contents: symlinks inside, hard links inside.
fn check_target(target: &Path) {
    let mut links: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(target.join(&rel)).expect("read a directory of the target") {
            let entry = entry.expect("a directory entry");
            let rel = rel.join(entry.file_name());
            let meta = fs::symlink_metadata(target.join(&rel)).expect("stat an entry");
            let kind = meta.file_type();
            if kind.is_dir() {
                stack.push(rel);
            } else if kind.is_symlink() {
                let link = fs::read_link(target.join(&rel)).expect("read a symlink");
                let dir = rel.parent().unwrap_or(Path::new(""));
                assert!(
                    resolve(dir, &link).is_some(),
                    "symlink {} -> {} points outside the target",
                    rel.display(),
                    link.display()
                );
            } else {
                assert!(kind.is_file(), "{} is not a file", rel.display());
                let seen = links.entry(meta.ino()).or_insert((meta.nlink(), 0));
                seen.1 += 1;
            }
        }
    }
    for (ino, (nlink, inside)) in links {
        assert_eq!(
            nlink, inside,
            "inode {ino} has hard links outside the target"
        );
    }
}

/// Every path under `run`, relative to it.
fn walk(run: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(run.join(&rel)).expect("read a directory of the run") {
            let rel = rel.join(entry.expect("a directory entry").file_name());
            if fs::symlink_metadata(run.join(&rel))
                .expect("stat an entry")
                .is_dir()
            {
                stack.push(rel.clone());
            }
            out.push(rel);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (archive, bytes, name) = package(data);
    let run = jail().join("run");
    let above = run.join(ABOVE);
    fs::create_dir_all(&above).expect("create the run's directory");
    let input = run.join("package");
    fs::write(&input, &bytes).expect("write the package file");
    let target = above.join("target");

    let result = unpack(archive, &input, &target, &name, &LIMITS, None);

    let target_rel = Path::new(ABOVE).join("target");
    for path in walk(&run) {
        let allowed = path == Path::new("package")
            || Path::new(ABOVE).starts_with(&path)
            || path.starts_with(&target_rel);
        assert!(allowed, "{} appeared outside the target", path.display());
    }
    let jailed: Vec<_> = fs::read_dir(jail())
        .expect("read the jail")
        .map(|e| e.expect("a directory entry").file_name())
        .collect();
    assert_eq!(
        jailed,
        ["run"],
        "something appeared beside the run's directory"
    );
    assert_eq!(
        fs::read(&input).expect("read the package file back"),
        bytes,
        "the package file was changed"
    );

    match result {
        Ok(unpacked) => {
            assert!(unpacked.bytes <= LIMITS.max_bytes);
            check_target(&target);
            let json = serde_json::to_string(&unpacked.manifest).expect("a manifest serialises");
            let again: Manifest = serde_json::from_str(&json).expect("a manifest reads back");
            assert_eq!(
                again, unpacked.manifest,
                "the manifest changed through {json}"
            );
            let removal = remove(&again);
            assert!(
                removal.ok() && removal.kept.is_empty(),
                "removing the manifest did not take everything away: {removal}"
            );
            assert!(
                fs::symlink_metadata(&target).is_err(),
                "removing the manifest left {:?}",
                walk(&target)
            );
        }
        Err(e) => assert!(
            fs::symlink_metadata(&target).is_err(),
            "a refused archive ({e}) left its target behind"
        ),
    }

    fs::remove_dir_all(&run).expect("remove the run's directory");
});
