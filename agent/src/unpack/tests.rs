//! Tests of safe unpacking: archives built byte by byte, each refused one checked
//! against a sibling directory that must stay untouched.

use std::cell::Cell;
use std::io::{Cursor, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::EntryType;
use zip::write::SimpleFileOptions;

use super::formats::{S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK, TAR_METADATA_BUDGET};
use super::*;
use crate::space::SpaceError;

#[derive(Debug, Clone, Copy)]
enum Format {
    Zip,
    TarGz,
}

const FORMATS: [Format; 2] = [Format::Zip, Format::TarGz];

/// Whether an error is the one a case expects.
type Expect = fn(&UnpackError) -> bool;

/// One archive entry, written as is: names are not cleaned up, which is the point.
enum Spec<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    /// Tar only.
    Hardlink(&'a str, &'a str),
    /// A device, FIFO or socket, by its `S_IF*` type.
    Special(&'a str, u32),
    /// Tar only: any header type with any data.
    Tar(&'a str, EntryType, &'a [u8]),
}

impl Format {
    fn archive(self) -> Archive {
        match self {
            Format::Zip => Archive::Zip,
            Format::TarGz => Archive::TarGz,
        }
    }

    fn build(self, specs: &[Spec]) -> Vec<u8> {
        match self {
            Format::Zip => zip_bytes(specs),
            Format::TarGz => tar_gz_bytes(specs),
        }
    }
}

fn raw_field(field: &mut [u8], value: &str) {
    assert!(
        value.len() < field.len(),
        "{value} does not fit a tar header"
    );
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

/// Writes headers byte by byte, so names `tar::Header::set_path` would refuse
/// (`../x`, `/x`) go in unchanged.
fn tar_gz_bytes(specs: &[Spec]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for spec in specs {
        let (name, kind, data, mode, link): (&str, EntryType, &[u8], u32, Option<&str>) =
            match *spec {
                Spec::File(name, data, mode) => (name, EntryType::Regular, data, mode, None),
                Spec::Dir(name) => (name, EntryType::Directory, &[], 0o755, None),
                Spec::Symlink(name, to) => (name, EntryType::Symlink, &[], 0o777, Some(to)),
                Spec::Hardlink(name, to) => (name, EntryType::Link, &[], 0o644, Some(to)),
                Spec::Special(name, kind) => {
                    let kind = match kind {
                        S_IFCHR => EntryType::Char,
                        S_IFBLK => EntryType::Block,
                        S_IFIFO => EntryType::Fifo,
                        other => panic!("tar has no file type {other:o}"),
                    };
                    (name, kind, &[], 0o644, None)
                }
                Spec::Tar(name, kind, data) => (name, kind, data, 0o644, None),
            };
        let mut header = tar::Header::new_gnu();
        raw_field(&mut header.as_old_mut().name, name);
        if let Some(link) = link {
            raw_field(&mut header.as_old_mut().linkname, link);
        }
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn zip_bytes(specs: &[Spec]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default();
    let mut patches = Vec::new();
    for spec in specs {
        match *spec {
            Spec::File(name, data, mode) => {
                writer
                    .start_file(name, options.unix_permissions(mode))
                    .unwrap();
                writer.write_all(data).unwrap();
            }
            Spec::Dir(name) => writer.add_directory(name, options).unwrap(),
            Spec::Symlink(name, to) => writer.add_symlink(name, to, options).unwrap(),
            Spec::Special(name, kind) => {
                writer.start_file(name, options).unwrap();
                patches.push((name, kind | 0o644));
            }
            Spec::Hardlink(..) | Spec::Tar(..) => panic!("zip has no such entries"),
        }
    }
    let mut bytes = writer.finish().unwrap().into_inner();
    for (name, mode) in patches {
        set_zip_mode(&mut bytes, name, mode);
    }
    bytes
}

/// The zip writer only takes permission bits, so file types it cannot express are
/// patched into the central directory's external attributes.
fn set_zip_mode(bytes: &mut [u8], name: &str, mode: u32) {
    let mut from = 0;
    while let Some(pos) = bytes[from..].windows(4).position(|w| w == b"PK\x01\x02") {
        let at = from + pos;
        let name_len = usize::from(u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]));
        if &bytes[at + 46..at + 46 + name_len] == name.as_bytes() {
            bytes[at + 5] = 3; // made by Unix
            bytes[at + 38..at + 42].copy_from_slice(&(mode << 16).to_le_bytes());
            return;
        }
        from = at + 4;
    }
    panic!("no central directory entry for {name}");
}

/// `root/target` (where packages go) next to `root/outside` (which must never change).
struct Scene {
    _root: tempfile::TempDir,
    _packages: tempfile::TempDir,
    root: PathBuf,
    target: PathBuf,
    outside: PathBuf,
    package: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let root_dir = tempfile::tempdir().unwrap();
        let packages = tempfile::tempdir().unwrap();
        let root = root_dir.path().to_path_buf();
        let outside = root.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), "original").unwrap();
        Scene {
            target: root.join("target"),
            package: packages.path().join("package"),
            root,
            outside,
            _root: root_dir,
            _packages: packages,
        }
    }

    fn unpack(&self, format: Format, specs: &[Spec]) -> Result<Unpacked, UnpackError> {
        self.unpack_with(format, specs, &UnpackLimits::default())
    }

    fn unpack_with(
        &self,
        format: Format,
        specs: &[Spec],
        limits: &UnpackLimits,
    ) -> Result<Unpacked, UnpackError> {
        self.unpack_bytes(format.archive(), &format.build(specs), limits)
    }

    fn unpack_bytes(
        &self,
        archive: Archive,
        bytes: &[u8],
        limits: &UnpackLimits,
    ) -> Result<Unpacked, UnpackError> {
        fs::write(&self.package, bytes).unwrap();
        unpack(
            archive,
            &self.package,
            &self.target,
            "setup.bin",
            limits,
            None,
        )
    }

    /// Unpacks with the disk said to have `free` bytes free (a thread's probe).
    fn unpack_in_space(
        &self,
        format: Format,
        specs: &[Spec],
        free: u64,
    ) -> Result<Unpacked, UnpackError> {
        FREE.with(|f| f.set(free));
        fs::write(&self.package, format.build(specs)).unwrap();
        let space = Space {
            keep_free: KEEP_FREE,
            probe: |dir| Ok(FREE.with(Cell::get).saturating_sub(du(dir))),
        };
        unpack(
            format.archive(),
            &self.package,
            &self.target,
            "setup.bin",
            &UnpackLimits::default(),
            Some(space),
        )
    }

    fn assert_nothing_outside(&self) {
        // The target goes too when a refused unpack created it.
        let mut beside = names(&self.root);
        beside.retain(|n| n != "target");
        assert_eq!(beside, ["outside"]);
        assert_eq!(names(&self.outside), ["sentinel"]);
        assert_eq!(
            fs::read_to_string(self.outside.join("sentinel")).unwrap(),
            "original"
        );
    }

    /// `{outside}` in `text` replaced by the absolute path of the outside directory.
    fn with_outside(&self, text: &str) -> String {
        text.replace("{outside}", self.outside.to_str().unwrap())
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Incompressible, reproducible bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn unpack_round_trips_tree_contents_and_exec_bits() {
    for format in FORMATS {
        let scene = Scene::new();
        let script = b"#!/bin/sh\necho hi\n";
        let done = scene
            .unpack(
                format,
                &[
                    Spec::Dir("top/"),
                    Spec::Dir("top/nested/"),
                    Spec::File("top/nested/data.txt", b"hello", 0o666),
                    Spec::File("./top/run.sh", script, 0o4777),
                    Spec::File("loose/deep/file", b"x", 0o640),
                ],
            )
            .unwrap();
        assert_eq!(
            (done.files, done.bytes),
            (3, 5 + script.len() as u64 + 1),
            "{format:?}"
        );
        let t = &scene.target;
        assert_eq!(fs::read(t.join("top/nested/data.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(t.join("top/run.sh")).unwrap(), script);
        assert_eq!(fs::read(t.join("loose/deep/file")).unwrap(), b"x");
        // Executable or not survives; setuid and world-writable do not.
        assert_eq!(mode_of(&t.join("top/run.sh")), 0o755, "{format:?}");
        assert_eq!(mode_of(&t.join("top/nested/data.txt")), 0o644, "{format:?}");
        assert_eq!(mode_of(&t.join("loose/deep/file")), 0o644, "{format:?}");
        assert_eq!(mode_of(&t.join("loose/deep")), 0o755, "{format:?}");
        scene.assert_nothing_outside();
    }
}

#[test]
fn unpack_refuses_names_that_leave_the_target() {
    let cases: [(&str, Expect); 5] = [
        (
            "../x",
            |e| matches!(e, UnpackError::ParentDir { entry } if entry == "../x"),
        ),
        ("a/../../x", |e| matches!(e, UnpackError::ParentDir { .. })),
        ("a/../x", |e| matches!(e, UnpackError::ParentDir { .. })),
        ("", |e| matches!(e, UnpackError::BadName { .. })),
        ("{outside}/abs", |e| {
            matches!(e, UnpackError::AbsolutePath { .. })
        }),
    ];
    for format in FORMATS {
        for (name, expected) in cases {
            let scene = Scene::new();
            let name = scene.with_outside(name);
            let err = scene
                .unpack(format, &[Spec::File(&name, b"evil", 0o644)])
                .unwrap_err();
            assert!(expected(&err), "{format:?} {name:?}: {err}");
            scene.assert_nothing_outside();
        }
    }
}

#[test]
fn unpack_reads_zip_backslashes_as_separators_and_refuses_drives() {
    let cases: [(&str, Expect); 4] = [
        (r"a\..\..\x", |e| matches!(e, UnpackError::ParentDir { .. })),
        ("C:/x", |e| matches!(e, UnpackError::AbsolutePath { .. })),
        (r"C:\x", |e| matches!(e, UnpackError::AbsolutePath { .. })),
        (r"\\server\share\x", |e| {
            matches!(e, UnpackError::AbsolutePath { .. })
        }),
    ];
    for (name, expected) in cases {
        let scene = Scene::new();
        let err = scene
            .unpack(Format::Zip, &[Spec::File(name, b"evil", 0o644)])
            .unwrap_err();
        assert!(expected(&err), "{name:?}: {err}");
        scene.assert_nothing_outside();
    }
    let scene = Scene::new();
    scene
        .unpack(Format::Zip, &[Spec::File(r"dir\file.txt", b"ok", 0o644)])
        .unwrap();
    assert_eq!(fs::read(scene.target.join("dir/file.txt")).unwrap(), b"ok");
}

#[test]
fn unpack_refuses_symlinks_that_point_outside() {
    for format in FORMATS {
        for (name, to) in [
            ("l", "../../outside"),
            ("l", ".."),
            ("sub/l", "../../x"),
            ("sub/l", "x/../../.."),
            ("l", "/etc"),
            ("l", "{outside}"),
        ] {
            let scene = Scene::new();
            let to = &*scene.with_outside(to);
            let err = scene
                .unpack(format, &[Spec::Symlink(name, to)])
                .unwrap_err();
            assert!(
                matches!(&err, UnpackError::SymlinkEscape { entry, target }
                    if entry == name && target == to),
                "{format:?} {name} -> {to}: {err}"
            );
            assert!(!exists(&scene.target.join(name)));
            scene.assert_nothing_outside();
        }
    }
}

#[test]
fn unpack_never_writes_through_a_symlink_to_outside_from_the_same_archive() {
    for format in FORMATS {
        for to in ["../outside", "{outside}"] {
            let scene = Scene::new();
            let to = &*scene.with_outside(to);
            let err = scene
                .unpack(
                    format,
                    &[
                        Spec::Symlink("d", to),
                        Spec::File("d/passwd", b"evil", 0o644),
                    ],
                )
                .unwrap_err();
            assert!(
                matches!(err, UnpackError::SymlinkEscape { .. }),
                "{format:?}: {err}"
            );
            scene.assert_nothing_outside();
        }
    }
}

#[test]
fn unpack_never_writes_through_an_internal_symlink_either() {
    for format in FORMATS {
        let scene = Scene::new();
        let err = scene
            .unpack(
                format,
                &[
                    Spec::Dir("real/"),
                    Spec::Symlink("alias", "real"),
                    Spec::File("alias/f", b"x", 0o644),
                ],
            )
            .unwrap_err();
        assert!(
            matches!(&err, UnpackError::ThroughSymlink { entry, symlink }
                if entry == "alias/f" && symlink == &scene.target.join("alias")),
            "{format:?}: {err}"
        );
        assert!(!exists(&scene.target.join("real/f")));
    }
}

/// Zip readers keep one entry per name, so only tar can name a path twice.
#[test]
fn unpack_tar_replaces_symlinks_but_not_with_files() {
    let scene = Scene::new();
    scene
        .unpack(
            Format::TarGz,
            &[
                Spec::Symlink("l", "a"),
                Spec::Symlink("l", "b"),
                Spec::File("f", b"x", 0o644),
                Spec::Symlink("f", "b"),
            ],
        )
        .unwrap();
    assert_eq!(
        fs::read_link(scene.target.join("l")).unwrap(),
        Path::new("b")
    );
    assert_eq!(
        fs::read_link(scene.target.join("f")).unwrap(),
        Path::new("b")
    );

    let scene = Scene::new();
    let err = scene
        .unpack(
            Format::TarGz,
            &[Spec::Symlink("l", "f"), Spec::File("l", b"x", 0o644)],
        )
        .unwrap_err();
    assert!(matches!(err, UnpackError::ThroughSymlink { .. }), "{err}");
    assert!(!exists(&scene.target.join("f")));
}

#[test]
fn unpack_keeps_internal_symlinks_in_normal_form() {
    for format in FORMATS {
        let scene = Scene::new();
        scene
            .unpack(
                format,
                &[
                    Spec::File("sub/file", b"data", 0o644),
                    Spec::Symlink("link", "sub/file"),
                    Spec::Symlink("sub/self", "./file"),
                    Spec::Symlink("sub/round", "../sub/./file"),
                    Spec::Symlink("sub/root", ".."),
                    Spec::Symlink("here", "."),
                    Spec::Symlink("later", "sub"),
                ],
            )
            .unwrap();
        let t = &scene.target;
        for (link, to) in [
            ("link", "sub/file"),
            ("sub/self", "file"),
            ("sub/round", "file"),
            ("sub/root", ".."),
            ("here", "."),
            ("later", "sub"),
        ] {
            assert_eq!(
                fs::read_link(t.join(link)).unwrap(),
                Path::new(to),
                "{format:?} {link}"
            );
        }
        assert_eq!(fs::read(t.join("link")).unwrap(), b"data");
        assert_eq!(fs::read(t.join("sub/round")).unwrap(), b"data");
        assert_eq!(fs::read(t.join("sub/root/later/file")).unwrap(), b"data");
        scene.assert_nothing_outside();
    }
}

#[test]
fn unpack_tar_hard_links_only_to_files_it_extracted() {
    let scene = Scene::new();
    let done = scene
        .unpack(
            Format::TarGz,
            &[
                Spec::File("f", b"data", 0o755),
                Spec::Hardlink("h", "f"),
                Spec::Hardlink("d/h2", "./f"),
            ],
        )
        .unwrap();
    assert_eq!((done.files, done.bytes), (3, 4));
    let t = &scene.target;
    let ino = fs::metadata(t.join("f")).unwrap().ino();
    assert_eq!(fs::metadata(t.join("h")).unwrap().ino(), ino);
    assert_eq!(fs::metadata(t.join("d/h2")).unwrap().ino(), ino);

    for case in [
        "outside",
        "absolute",
        "not extracted",
        "symlink",
        "directory",
        "itself",
        "replaced by a symlink",
    ] {
        let scene = Scene::new();
        fs::create_dir(&scene.target).unwrap();
        fs::write(scene.target.join("pre"), "already here").unwrap();
        let sentinel = scene.with_outside("{outside}/sentinel");
        let specs = match case {
            "outside" => vec![Spec::Hardlink("h", "../outside/sentinel")],
            "absolute" => vec![Spec::Hardlink("h", &sentinel)],
            "not extracted" => vec![Spec::Hardlink("h", "pre")],
            "symlink" => vec![
                Spec::File("f", b"x", 0o644),
                Spec::Symlink("s", "f"),
                Spec::Hardlink("h", "s"),
            ],
            "directory" => vec![Spec::Dir("d/"), Spec::Hardlink("h", "d")],
            "itself" => vec![Spec::File("h", b"x", 0o644), Spec::Hardlink("h", "h")],
            _ => vec![
                Spec::File("f", b"x", 0o644),
                Spec::Symlink("f", "g"),
                Spec::Hardlink("h", "f"),
            ],
        };
        let err = scene.unpack(Format::TarGz, &specs).unwrap_err();
        assert!(
            matches!(&err, UnpackError::HardlinkEscape { entry, .. } if entry == "h"),
            "{case}: {err}"
        );
        scene.assert_nothing_outside();
    }
}

#[test]
fn unpack_refuses_devices_fifos_and_sockets() {
    for (format, kinds) in [
        (Format::TarGz, [S_IFCHR, S_IFBLK, S_IFIFO]),
        (Format::Zip, [S_IFCHR, S_IFIFO, S_IFSOCK]),
    ] {
        for kind in kinds {
            let scene = Scene::new();
            let err = scene
                .unpack(format, &[Spec::Special("dev", kind)])
                .unwrap_err();
            assert!(
                matches!(&err, UnpackError::SpecialFile { entry, .. } if entry == "dev"),
                "{format:?} {kind:o}: {err}"
            );
            assert!(!exists(&scene.target.join("dev")));
        }
    }
}

#[test]
fn unpack_refuses_pre_existing_symlinks_in_the_target() {
    for format in FORMATS {
        for specs in [
            vec![Spec::File("etc/passwd", b"evil", 0o644)],
            vec![Spec::Dir("etc/sub/")],
            vec![Spec::Dir("etc/")],
            vec![Spec::File("conf", b"evil", 0o644)],
        ] {
            let scene = Scene::new();
            fs::create_dir(&scene.target).unwrap();
            std::os::unix::fs::symlink(&scene.outside, scene.target.join("etc")).unwrap();
            std::os::unix::fs::symlink(scene.outside.join("sentinel"), scene.target.join("conf"))
                .unwrap();
            let err = scene.unpack(format, &specs).unwrap_err();
            assert!(
                matches!(err, UnpackError::ThroughSymlink { .. }),
                "{format:?}: {err}"
            );
            scene.assert_nothing_outside();
        }
    }
}

#[test]
fn unpack_into_a_store_path_keeps_other_files_and_breaks_outside_hard_links() {
    for format in FORMATS {
        let scene = Scene::new();
        let t = &scene.target;
        fs::create_dir_all(t.join("a")).unwrap();
        fs::write(t.join("keep.txt"), "mine").unwrap();
        fs::write(t.join("a/old.txt"), "old").unwrap();
        fs::hard_link(scene.outside.join("sentinel"), t.join("shared")).unwrap();
        scene
            .unpack(
                format,
                &[
                    Spec::File("a/old.txt", b"new", 0o644),
                    Spec::File("shared", b"new", 0o644),
                ],
            )
            .unwrap();
        assert_eq!(fs::read_to_string(t.join("keep.txt")).unwrap(), "mine");
        assert_eq!(fs::read_to_string(t.join("a/old.txt")).unwrap(), "new");
        assert_eq!(fs::read_to_string(t.join("shared")).unwrap(), "new");
        scene.assert_nothing_outside();
    }
}

#[test]
fn unpack_stops_a_bomb_at_max_bytes() {
    let zeros = vec![0u8; 10 << 20];
    let limits = UnpackLimits {
        max_bytes: 1 << 20,
        ..UnpackLimits::default()
    };
    for format in FORMATS {
        let scene = Scene::new();
        let bytes = format.build(&[Spec::File("bomb", &zeros, 0o644)]);
        assert!(
            bytes.len() < 64 << 10,
            "{format:?} bomb is {} bytes",
            bytes.len()
        );
        let err = scene
            .unpack_bytes(format.archive(), &bytes, &limits)
            .unwrap_err();
        assert!(
            matches!(err, UnpackError::TooLarge { limit } if limit == 1 << 20),
            "{format:?}: {err}"
        );
        assert!(
            !exists(&scene.target),
            "{format:?}: the partial output stayed"
        );

        // Exactly at the cap is fine.
        let scene = Scene::new();
        let done = scene
            .unpack_with(
                format,
                &[Spec::File("full", &zeros[..1 << 20], 0o644)],
                &limits,
            )
            .unwrap();
        assert_eq!(done.bytes, 1 << 20);
    }
}

/// Bytes of the files under `dir`: what a small disk holding only `dir` has lost.
fn du(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                du(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

thread_local! {
    /// The free bytes [`Scene::unpack_in_space`]'s probe answers, less what is
    /// under the directory asked about, like a disk of that size.
    static FREE: Cell<u64> = const { Cell::new(0) };
}

const KEEP_FREE: u64 = 1 << 20;

#[test]
fn a_zip_declaring_more_than_the_disk_holds_is_refused_before_anything_is_written() {
    let zeros = vec![0u8; 4 << 20];
    let specs = [
        Spec::File("a", &zeros, 0o644),
        Spec::File("b", &zeros, 0o644),
    ];
    let scene = Scene::new();
    // 8 MiB declared, 1 MiB kept free: 9 MiB needed, 9 MiB - 1 free (the probe
    // measures the missing target's parent, where the scene keeps a sentinel).
    let used = du(&scene.root);
    let err = scene
        .unpack_in_space(Format::Zip, &specs, (9 << 20) - 1 + used)
        .unwrap_err();
    let UnpackError::NoSpace(SpaceError::Short(short)) = &err else {
        panic!("{err}");
    };
    assert_eq!(short.needed, 8 << 20, "{err}");
    assert_eq!(short.short(), 1, "{err}");
    assert!(!exists(&scene.target), "the target was created");
    scene.assert_nothing_outside();

    let scene = Scene::new();
    let used = du(&scene.root);
    let done = scene
        .unpack_in_space(Format::Zip, &specs, (9 << 20) + used)
        .unwrap();
    assert_eq!(done.bytes, 8 << 20);
}

#[test]
fn an_unpack_the_disk_cannot_hold_stops_before_keep_free_and_removes_its_output() {
    // A tar.gz declares nothing before it is read: the writes are charged.
    let zeros = vec![0u8; 4 << 20];
    let specs = [
        Spec::File("a", &zeros, 0o644),
        Spec::File("b", &zeros, 0o644),
    ];
    let scene = Scene::new();
    let err = scene
        .unpack_in_space(Format::TarGz, &specs, 6 << 20)
        .unwrap_err();
    let UnpackError::NoSpace(SpaceError::Short(short)) = &err else {
        panic!("{err}");
    };
    assert!(short.what.starts_with("the unpack (after "), "{err}");
    // Stopped at the last write that fit, with keep_free still free.
    assert!(
        short.free >= KEEP_FREE && short.free < KEEP_FREE + (64 << 10),
        "{err}"
    );
    assert!(!exists(&scene.target), "the partial output stayed");
    scene.assert_nothing_outside();
}

#[test]
fn unpack_stops_at_max_entries() {
    let specs: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    let specs: Vec<Spec> = specs.iter().map(|n| Spec::File(n, b"x", 0o644)).collect();
    for format in FORMATS {
        let limits = |max_entries| UnpackLimits {
            max_entries,
            ..UnpackLimits::default()
        };
        let err = Scene::new()
            .unpack_with(format, &specs, &limits(3))
            .unwrap_err();
        assert!(
            matches!(err, UnpackError::TooManyEntries { limit: 3 }),
            "{format:?}: {err}"
        );
        let done = Scene::new()
            .unpack_with(format, &specs, &limits(5))
            .unwrap();
        assert_eq!(done.files, 5);
    }
}

#[test]
fn unpack_reports_corrupt_archives_without_panicking() {
    let data = noise(200 << 10);
    for format in FORMATS {
        let good = format.build(&[
            Spec::File("a.txt", b"hello", 0o644),
            Spec::File("noise.bin", &data, 0o644),
        ]);
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x55;
        let cases: [(&str, Vec<u8>); 5] = [
            ("empty", Vec::new()),
            ("garbage", b"this is not an archive at all".repeat(10)),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("truncated at the end", good[..good.len() - 4].to_vec()),
            ("flipped", flipped),
        ];
        for (case, bytes) in cases {
            let scene = Scene::new();
            let err = scene
                .unpack_bytes(format.archive(), &bytes, &UnpackLimits::default())
                .unwrap_err();
            assert!(
                matches!(err, UnpackError::Corrupt { .. }),
                "{format:?} {case}: {err}"
            );
            scene.assert_nothing_outside();
        }
    }
}

#[test]
fn unpack_bounds_tar_metadata() {
    let big = vec![0u8; 2 * TAR_METADATA_BUDGET as usize];
    for spec in [
        Spec::Tar("././@LongLink", EntryType::GNULongName, &big),
        Spec::Tar("d/", EntryType::Directory, &big),
    ] {
        let scene = Scene::new();
        let err = scene
            .unpack(Format::TarGz, &[spec, Spec::File("f", b"x", 0o644)])
            .unwrap_err();
        assert!(
            matches!(&err, UnpackError::Corrupt { reason } if reason.contains("metadata")),
            "{err}"
        );
    }
}

#[test]
fn unpack_skips_pax_global_headers() {
    let scene = Scene::new();
    let done = scene
        .unpack(
            Format::TarGz,
            &[
                Spec::Tar(
                    "pax_global_header",
                    EntryType::XGlobalHeader,
                    b"15 comment=abc\n",
                ),
                Spec::File("f", b"x", 0o644),
            ],
        )
        .unwrap();
    assert_eq!((done.files, done.bytes), (1, 1));
    assert_eq!(names(&scene.target), ["f"]);
}

#[test]
fn unpack_plain_file_copies_under_the_given_name() {
    let scene = Scene::new();
    let data = noise(100 << 10);
    fs::write(&scene.package, &data).unwrap();
    let done = unpack(
        Archive::None,
        &scene.package,
        &scene.target,
        "setup.sh",
        &UnpackLimits::default(),
        None,
    )
    .unwrap();
    assert_eq!((done.files, done.bytes), (1, data.len() as u64));
    assert_eq!(fs::read(scene.target.join("setup.sh")).unwrap(), data);
    assert_eq!(mode_of(&scene.target.join("setup.sh")), 0o755);

    let small = UnpackLimits {
        max_bytes: 1000,
        ..UnpackLimits::default()
    };
    let err = unpack(
        Archive::None,
        &scene.package,
        &scene.target,
        "big",
        &small,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { limit: 1000 }),
        "{err}"
    );
}

#[test]
fn unpack_plain_file_refuses_names_that_are_not_one_component() {
    let scene = Scene::new();
    let absolute = scene.with_outside("{outside}/x");
    let cases: [(&str, Expect); 7] = [
        ("../x", |e| matches!(e, UnpackError::ParentDir { .. })),
        ("..", |e| matches!(e, UnpackError::ParentDir { .. })),
        (&absolute, |e| matches!(e, UnpackError::AbsolutePath { .. })),
        ("a/b", |e| matches!(e, UnpackError::BadName { .. })),
        ("x/", |e| matches!(e, UnpackError::BadName { .. })),
        (".", |e| matches!(e, UnpackError::BadName { .. })),
        ("", |e| matches!(e, UnpackError::BadName { .. })),
    ];
    fs::write(&scene.package, b"payload").unwrap();
    for (name, expected) in cases {
        let err = unpack(
            Archive::None,
            &scene.package,
            &scene.target,
            name,
            &UnpackLimits::default(),
            None,
        )
        .unwrap_err();
        assert!(expected(&err), "{name:?}: {err}");
    }
    assert!(
        !exists(&scene.target),
        "the target it made for the file stayed"
    );
    scene.assert_nothing_outside();
}

#[test]
fn unpack_reports_a_missing_package_file_as_io() {
    let scene = Scene::new();
    for archive in [Archive::None, Archive::Zip, Archive::TarGz] {
        let err = unpack(
            archive,
            &scene.package,
            &scene.target,
            "x",
            &UnpackLimits::default(),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&err, UnpackError::Io { path, .. } if path == &scene.package),
            "{err}"
        );
    }
}

/// Every name over a small alphabet: accepted exactly when relative and free of `..`,
/// and then reduced to its normal components.
#[test]
fn entry_path_accepts_exactly_relative_names_without_parent_dirs() {
    let alphabet = ["a", "b", "..", ".", ""];
    let mut names = vec![String::new()];
    let mut frontier = vec![Vec::<&str>::new()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for parts in &frontier {
            for part in alphabet {
                let mut longer = parts.clone();
                longer.push(part);
                let joined = longer.join("/");
                names.push(joined.clone());
                names.push(format!("/{joined}"));
                next.push(longer);
            }
        }
        frontier = next;
    }
    for name in &names {
        let result = entry_path(name, Path::new(name));
        let parts: Vec<&str> = name.split('/').collect();
        if name.is_empty() {
            assert!(
                matches!(result, Err(UnpackError::BadName { .. })),
                "{name:?}"
            );
        } else if name.starts_with('/') {
            assert!(
                matches!(result, Err(UnpackError::AbsolutePath { .. })),
                "{name:?}"
            );
        } else if parts.contains(&"..") {
            assert!(
                matches!(result, Err(UnpackError::ParentDir { .. })),
                "{name:?}"
            );
        } else {
            let normal: PathBuf = parts.iter().filter(|p| !matches!(**p, "" | ".")).collect();
            assert_eq!(result.unwrap(), normal, "{name:?}");
        }
    }
}

/// Every link target over a small alphabet, from several depths: refused exactly when
/// it climbs above the target, otherwise rewritten to `..`s then names that resolve to
/// the same place.
#[test]
fn link_target_matches_lexical_resolution() {
    fn resolve(dir: &[&str], link: &str) -> Option<Vec<String>> {
        if link.starts_with('/') {
            return None;
        }
        let mut at: Vec<String> = dir.iter().map(|s| (*s).to_owned()).collect();
        for part in link.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    at.pop()?;
                }
                name => at.push(name.to_owned()),
            }
        }
        Some(at)
    }
    let alphabet = ["a", "..", ".", "x"];
    let mut links = Vec::new();
    let mut frontier = vec![Vec::<&str>::new()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for parts in &frontier {
            for part in alphabet {
                let mut longer = parts.clone();
                longer.push(part);
                links.push(longer.join("/"));
                links.push(format!("/{}", longer.join("/")));
                next.push(longer);
            }
        }
        frontier = next;
    }
    for dir in [&[][..], &["x"][..], &["x", "y"][..]] {
        let rel: PathBuf = dir.iter().chain(&["link"]).collect();
        for link in &links {
            let result = link_target("link", &rel, Path::new(link), link);
            match resolve(dir, link) {
                None => assert!(
                    matches!(result, Err(UnpackError::SymlinkEscape { .. })),
                    "{dir:?} {link:?}"
                ),
                Some(expected) => {
                    let normal = result.unwrap();
                    let text = normal.to_str().unwrap();
                    assert_eq!(resolve(dir, text), Some(expected), "{dir:?} {link:?}");
                    let parts: Vec<&str> = text.split('/').collect();
                    let ups = parts.iter().take_while(|p| **p == "..").count();
                    assert!(
                        parts[ups..].iter().all(|p| *p != ".." && !p.is_empty()) || text == ".",
                        "{dir:?} {link:?} -> {text}"
                    );
                }
            }
        }
    }
}

/// A refused archive leaves nothing it created: not in a fresh target (which goes too),
/// not in a `store` path that held other files (which stay).
#[test]
fn a_refused_unpack_removes_what_it_created() {
    let bad = [
        Spec::Dir("app"),
        Spec::File("app/one", b"1", 0o644),
        Spec::File("app/two", b"2", 0o644),
        Spec::File("../escape", b"x", 0o644),
    ];
    for format in FORMATS {
        let scene = Scene::new();
        let err = scene.unpack(format, &bad).unwrap_err();
        assert!(
            matches!(err, UnpackError::ParentDir { .. }),
            "{format:?}: {err}"
        );
        assert!(!exists(&scene.target), "{format:?}");

        let scene = Scene::new();
        fs::create_dir(&scene.target).unwrap();
        fs::write(scene.target.join("admin.conf"), "kept").unwrap();
        scene.unpack(format, &bad).unwrap_err();
        assert_eq!(names(&scene.target), ["admin.conf"], "{format:?}");
        scene.assert_nothing_outside();
    }
}

/// Points the central directory entry of `victim` at the local header of `at`
/// (names of the same length), as a bomb that reads one stream many times would.
fn share_local_header(bytes: &mut [u8], victim: &str, at: &str) {
    let central = |bytes: &[u8], name: &str| {
        let mut from = 0;
        while let Some(pos) = bytes[from..].windows(4).position(|w| w == b"PK\x01\x02") {
            let here = from + pos;
            let len = usize::from(u16::from_le_bytes([bytes[here + 28], bytes[here + 29]]));
            if &bytes[here + 46..here + 46 + len] == name.as_bytes() {
                return here;
            }
            from = here + 4;
        }
        panic!("no central directory entry for {name}");
    };
    let source = central(bytes, at);
    let offset: [u8; 4] = bytes[source + 42..source + 46].try_into().unwrap();
    let target = central(bytes, victim);
    bytes[target + 42..target + 46].copy_from_slice(&offset);
}

#[test]
fn unpack_refuses_zip_entries_that_share_bytes_or_a_name() {
    let specs = [
        Spec::File("a.bin", &[0u8; 4096], 0o644),
        Spec::File("b.bin", &[0u8; 4096], 0o644),
    ];
    let mut overlapping = zip_bytes(&specs);
    share_local_header(&mut overlapping, "b.bin", "a.bin");
    let scene = Scene::new();
    let err = scene
        .unpack_bytes(Archive::Zip, &overlapping, &UnpackLimits::default())
        .unwrap_err();
    assert!(
        matches!(&err, UnpackError::Corrupt { reason } if reason.contains("share bytes")),
        "{err}"
    );
    assert!(
        !exists(&scene.target),
        "refused before anything was written"
    );

    // The same name twice: the central directory renames b.bin to a.bin.
    let mut twice = zip_bytes(&specs);
    let at = twice
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x01\x02")
        .map(|(i, _)| i)
        .nth(1)
        .unwrap();
    twice[at + 46..at + 46 + 5].copy_from_slice(b"a.bin");
    let err = Scene::new()
        .unpack_bytes(Archive::Zip, &twice, &UnpackLimits::default())
        .unwrap_err();
    assert!(
        matches!(&err, UnpackError::Corrupt { reason } if reason.contains("a name appears twice")),
        "{err}"
    );
}

#[test]
fn the_default_cap_follows_the_package_size_with_a_floor() {
    assert_eq!(
        UnpackLimits::for_package(3 << 20, None).max_bytes,
        UNPACK_FLOOR
    );
    assert_eq!(
        UnpackLimits::for_package(500 << 20, None).max_bytes,
        (500 << 20) * UNPACK_RATIO
    );
    assert_eq!(UnpackLimits::for_package(3 << 20, Some(5)).max_bytes, 5);
    assert_eq!(
        UnpackLimits::for_package(u64::MAX, None).max_bytes,
        u64::MAX
    );
}
