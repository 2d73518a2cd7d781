//! Writes the committed seed corpora under `fuzz/corpus/<target>/`: valid examples of
//! every grammar, real info documents and envelopes signed by the code with the fuzz
//! targets' fixed key, protocol frames, `Range` headers, and small zip, tar and tar.gz
//! archives, well-formed and hostile (names that climb out, symlinks and hard links
//! that escape, devices, bombs, overlapping zip entries). Run from `fuzz/` with
//! `cargo +nightly run --example make_seeds` (an argument names another directory);
//! the output is deterministic, so a rerun changes nothing. A crash input found by
//! fuzzing is copied into the corpus by hand, under a name that says what it was.
//!
//! This is a developer's tool, not library code: it panics on any error.

use std::fs;
use std::io::{Cursor, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use ed25519_dalek::SigningKey;
use sitecast_common::fragment::plan_reader;
use sitecast_common::info::{ActionDoc, Info, InfoDoc, NotifyDoc, UninstallDoc};
use sitecast_common::keyset::{self, KeyEntry, KeySetDoc};
use sitecast_common::protocol::{
    encode, ActivatedPackage, CentralMessage, HeldPackage, RelayMessage, RelayReport, Request,
    Response, WakeTarget,
};
use sitecast_common::signing::{key_id, sign, sign_info, verifying_key_to_pem};
use sitecast_common::wire::PublicKey;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn infos() -> Vec<(&'static str, Info)> {
    let file = b"0123456789abcdef-tail";
    let plan = plan_reader(&file[..], 8).unwrap();
    let doc = InfoDoc {
        schema: 1,
        id: "hello-1.0-abc123".into(),
        name: "hello".into(),
        version: "1.0".into(),
        os: "linux".into(),
        priority: 5,
        action: ActionDoc::Execute {
            command: "echo hello".into(),
        },
        archive: "none".into(),
        size: plan.size(),
        sha256: hex(plan.sha256()),
        fragment_size: 8,
        fragments: plan.fragments().iter().map(hex).collect(),
        success_exit_codes: vec![0, 3010],
        command_timeout_s: 600,
        notify: None,
        done_action_text: None,
        supersedes: None,
        uninstall: None,
        issued_at: "2026-11-21T08:00:00Z".into(),
        restart: false,
    };
    let store = InfoDoc {
        id: "tools-2.0-def456".into(),
        name: "tools".into(),
        version: "2.0".into(),
        os: "any".into(),
        priority: 0,
        action: ActionDoc::Store {
            path: "/opt/tools".into(),
        },
        archive: "tar.gz".into(),
        notify: Some(NotifyDoc {
            text: "Tools are being updated.".into(),
            countdown_s: 60,
            can_abort: true,
            can_delay: false,
        }),
        done_action_text: Some("Done.".into()),
        supersedes: Some("tools-1.0-abc123".into()),
        uninstall: Some(UninstallDoc {
            command: "rm -rf /opt/tools/cache".into(),
            success_exit_codes: vec![0],
        }),
        restart: true,
        ..doc.clone()
    };
    let launch = InfoDoc {
        id: "setup-3.1-0a1b2c".into(),
        name: "setup".into(),
        version: "3.1".into(),
        os: "windows".into(),
        priority: 10,
        action: ActionDoc::Launch {
            command: "setup.exe /quiet".into(),
        },
        archive: "zip".into(),
        success_exit_codes: vec![0, 1641, 3010],
        command_timeout_s: 1,
        ..doc.clone()
    };
    let empty = InfoDoc {
        id: "script-1-ffffff".into(),
        name: "script".into(),
        size: 0,
        sha256: hex(plan_reader(&b""[..], 8).unwrap().sha256()),
        fragments: Vec::new(),
        ..doc.clone()
    };
    [
        ("execute", doc),
        ("store", store),
        ("launch", launch),
        ("empty", empty),
    ]
    .into_iter()
    .map(|(name, doc)| (name, Info::try_from(doc).unwrap()))
    .collect()
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key set listing the fuzz targets' key, signed by that same key as the root.
fn keyset_envelope() -> Vec<u8> {
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    keyset::sign(
        &SigningKey::from_bytes(&[7; 32]),
        &KeySetDoc {
            version: 3,
            expires: "2027-01-01T00:00:00Z".parse().unwrap(),
            keys: vec![KeyEntry {
                keyid: key_id(&key),
                pem: verifying_key_to_pem(&key).unwrap(),
            }],
        },
    )
}

fn signed(dir: &Path) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let other = SigningKey::from_bytes(&[9; 32]);
    for (name, info) in infos() {
        write(dir, "info", &format!("{name}.json"), &info.to_json());
        write(dir, "signed_info", &format!("{name}.json"), &info.to_json());
        write(
            dir,
            "envelope",
            &format!("{name}.json"),
            &sign_info(&key, &info),
        );
    }
    let (_, info) = &infos()[0];
    write(
        dir,
        "envelope",
        "untrusted-key.json",
        &sign_info(&other, info),
    );
    write(
        dir,
        "envelope",
        "other-type.json",
        &sign(&key, "text/plain", b"hello"),
    );
    write(dir, "envelope", "not-json.json", b"{\"payloadType\":");
    write(dir, "signed_info", "payload-type.txt", b"text/plain\nhello");
    write(dir, "envelope", "keyset.json", &keyset_envelope());
    let ticket = keyset::sign_downgrade(
        &key,
        &"pc-001".parse().unwrap(),
        &"hello-1.0-abc123".parse().unwrap(),
    );
    write(dir, "envelope", "downgrade-ticket.json", ticket.as_bytes());
    let keyset_payload = sitecast_common::signing::verify(
        &keyset_envelope(),
        keyset::KEYSET_PAYLOAD_TYPE,
        &[key.verifying_key()],
    )
    .unwrap();
    write(dir, "signed_info", "keyset.json", &keyset_payload);
}

fn grammars(dir: &Path) {
    let examples: &[(&str, &str)] = &[
        ("size", "s64KiB"),
        ("size-bare", "s1024"),
        ("size-decimal", "s20 MB"),
        ("size-zero", "s0"),
        ("size-max", "s18446744073709551615B"),
        ("size-fraction", "s1.5GiB"),
        ("rate-decimal", "r10KB/s"),
        ("rate-gbit", "r1Gbit"),
        ("rate", "r512KiB/s"),
        ("rate-bits", "r100Mbit"),
        ("rate-unlimited", "runlimited"),
        ("duration", "d15m"),
        ("duration-days", "d3d"),
        ("duration-zero", "d0s"),
        ("duration-hours", "d2h"),
        ("ip-v6", "i::1/128"),
        ("ip-host", "i10.2.3.4"),
        ("ip-bad-prefix", "i10.0.0.0/33"),
        ("ip-range", "i!192.168.2.3/32"),
        (
            "ip-ranges",
            "I10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE::/64",
        ),
        ("time-frame", "tFRI 22:00-6:00"),
        (
            "time-frames",
            "T6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59",
        ),
        ("schedule", "TMON-FRI 18:00-23:59"),
        ("schedule-wrap", "TSAT-MON 0:00-24:00,!SUN 12:00-13:00"),
        ("time-frame-negated", "t!WED 9:30-10:15"),
        ("weekday", "wsun"),
        ("mac", "maa:bb:cc:dd:ee:ff"),
        ("macs", "mAA-BB-CC-DD-EE-01,aa:bb:cc:dd:ee:02"),
        ("tags", "gweb,Lab-1,os:linux"),
        ("hostname-glob", "hpc-[0-9]?*\npc-001\nPC-1x\nlaptop"),
        (
            "criteria",
            "c10.0.0.0/8,fd00::/64\nweb,lab\nlinux,Windows\npc-*,*.example",
        ),
        ("ids", "nhello-1.0-abc123"),
        ("site", "nParis-Nord"),
        ("status", "xERR_UNPACK"),
        ("status-success", "xSUCCESS"),
        ("status-downgrade", "xERR_DOWNGRADE"),
        ("sequence", "qabort_after_failed"),
        ("fallback", "fafter:2h"),
        ("fallback-always", "falways"),
        ("time-rfc3339", "p2026-11-21T18:00:00+01:00"),
        ("time-local", "p2026-11-21 18:00"),
        ("time-day", "p2026-11-21"),
        ("time-utc", "p2026-03-29T02:30:00Z"),
        ("versions", "v1.10\n1.9\n1.10-rc1"),
        (
            "versions-long",
            "v2.0.99999999999999999999999999999999999999999\n2.0.rc\n2.0.0",
        ),
        ("os", "owindows"),
        ("archive", "otar.gz"),
    ];
    for (name, text) in examples {
        write(dir, "grammars", name, text.as_bytes());
    }
}

fn protocol(dir: &Path) {
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let hello = encode(&RelayMessage::Hello {
        version: 1,
        relay_id: "paris".parse().unwrap(),
        token: "secret".into(),
        software: "sitecast-relay 0.1.0".into(),
    });
    let report = encode(&RelayMessage::Report(RelayReport {
        holdings: vec![HeldPackage {
            package_id: "hello-1.0-abc123".parse().unwrap(),
            info_sha256: "ab".repeat(32),
            held: 3,
        }],
        bytes_from_central: 1 << 20,
        quic_bytes_from_central: 1 << 21,
        bytes_to_agents: 4096,
        window_open: false,
        max_rate: Some(512 << 10),
        rate: 1000,
        health: Default::default(),
    }));
    let keyset = String::from_utf8(keyset_envelope()).unwrap();
    let welcome = encode(&CentralMessage::Welcome {
        site: "Paris".parse().unwrap(),
        signing_keys: vec![PublicKey {
            keyid: sitecast_common::signing::key_id(&key),
            pem: verifying_key_to_pem(&key).unwrap(),
        }],
        root_key: Some(verifying_key_to_pem(&key).unwrap()),
        keyset: Some(keyset.clone()),
    });
    let rotated = encode(&CentralMessage::KeySet { keyset });
    let activated = encode(&CentralMessage::Activated {
        packages: vec![ActivatedPackage {
            id: "tools-2.0-def456".parse().unwrap(),
            priority: 0,
            info_sha256: "cd".repeat(32),
            size: 21,
            fragments: 3,
            supersedes: Some("tools-1.0-abc123".parse().unwrap()),
        }],
    });
    let wake = encode(&CentralMessage::Wake {
        targets: vec![WakeTarget {
            computer_id: "pc-001".parse().unwrap(),
            mac: "aa:bb:cc:dd:ee:ff".parse().unwrap(),
            broadcast: Ipv4Addr::new(10, 2, 255, 255),
        }],
    });
    let refused = encode(&CentralMessage::Refused {
        reason: "bad token".into(),
    });
    let requests = [
        encode(&Request::Info {
            package_id: "hello-1.0-abc123".parse().unwrap(),
        }),
        encode(&Request::Fragment {
            package_id: "hello-1.0-abc123".parse().unwrap(),
            index: 2,
        }),
        encode(&Request::Delta {
            package_id: "tools-2.0-def456".parse().unwrap(),
            base_id: "tools-1.0-abc123".parse().unwrap(),
            lacking: 1 << 30,
        }),
    ]
    .concat();
    let responses = [
        encode(&Response::Data { len: 21 }),
        encode(&Response::NotFound {
            reason: "no such package".into(),
        }),
        encode(&Response::Declined {
            reason: "not smaller".into(),
        }),
    ]
    .concat();
    write(dir, "protocol", "relay-control", &[hello, report].concat());
    write(dir, "protocol", "welcome", &[welcome, rotated].concat());
    write(
        dir,
        "protocol",
        "central-control",
        &[activated, wake, refused].concat(),
    );
    write(dir, "protocol", "requests", &requests);
    write(dir, "protocol", "responses", &responses);
}

fn ranges(dir: &Path) {
    for (name, len, header) in [
        ("first-bytes", 10u64, "bytes=0-4"),
        ("open-end", 10, "bytes=5-"),
        ("suffix", 10, "bytes=-3"),
        ("past-end", 10, "bytes=8-100"),
        ("several", 10, "bytes=0-1,4-5"),
        ("fragment", 4 << 20, " bytes=1048576-2097151 "),
    ] {
        write(
            dir,
            "http_range",
            name,
            &[&len.to_be_bytes()[..], header.as_bytes()].concat(),
        );
    }
}

/// One tar entry, written byte by byte so that names `tar::Header::set_path` refuses
/// (`../x`, `/x`) go in unchanged: hostile archives are the point.
struct Entry<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: Option<&'a str>,
    mode: u32,
    data: &'a [u8],
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        kind: tar::EntryType::Regular,
        link: None,
        mode: 0o644,
        data,
    }
}

fn dir(name: &str) -> Entry<'_> {
    Entry {
        name,
        kind: tar::EntryType::Directory,
        link: None,
        mode: 0o755,
        data: b"",
    }
}

fn link<'a>(kind: tar::EntryType, name: &'a str, to: &'a str) -> Entry<'a> {
    Entry {
        name,
        kind,
        link: Some(to),
        mode: 0o777,
        data: b"",
    }
}

fn special(kind: tar::EntryType, name: &str) -> Entry<'_> {
    Entry {
        name,
        kind,
        link: None,
        mode: 0o644,
        data: b"",
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

fn raw_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        raw_field(&mut header.as_old_mut().name, entry.name);
        if let Some(to) = entry.link {
            raw_field(&mut header.as_old_mut().linkname, to);
        }
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        header.set_mode(entry.mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append(&header, entry.data).unwrap();
    }
    tar.into_inner().unwrap()
}

/// A well-formed package: a directory, an executable, a symlink and a hard link to it.
fn tar_bytes() -> Vec<u8> {
    use tar::EntryType::{Link, Symlink};
    raw_tar(&[
        dir("bin/"),
        Entry {
            mode: 0o755,
            ..file("bin/hello.sh", b"#!/bin/sh\necho hello\n")
        },
        link(Symlink, "hello", "bin/hello.sh"),
        link(Link, "bin/again.sh", "bin/hello.sh"),
        link(Symlink, "bin/up", "../hello"),
    ])
}

/// What the `tar` crate's builder writes for long names and pax records.
fn tar_long_names() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let long = format!("{}/file.txt", "d".repeat(120));
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    tar.append_data(&mut header, &long, &b"abc"[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    tar.append_link(&mut link, "short", &long).unwrap();
    tar.append_pax_extensions([("path", &b"pax/named.txt"[..]), ("mtime", b"1.5")])
        .unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_size(2);
    header.set_mode(0o600);
    tar.append_data(&mut header, "ustar-name", &b"hi"[..])
        .unwrap();
    tar.into_inner().unwrap()
}

/// Hostile and odd tars, each of which the unpacker must refuse or contain.
fn hostile_tars() -> Vec<(&'static str, Vec<u8>)> {
    use tar::EntryType::{Block, Char, Fifo, GNULongName, Link, Symlink, XGlobalHeader};
    vec![
        ("tar-parent", raw_tar(&[file("../escaped", b"x")])),
        (
            "tar-deep-parent",
            raw_tar(&[file("a/../../../../escaped", b"x")]),
        ),
        (
            "tar-inner-parent",
            raw_tar(&[dir("a/"), file("a/../b", b"x")]),
        ),
        ("tar-absolute", raw_tar(&[file("/tmp/escaped", b"x")])),
        ("tar-dot", raw_tar(&[dir("./"), file("./a/./b", b"x")])),
        ("tar-empty-name", raw_tar(&[file("", b"x")])),
        (
            "tar-symlink-escape",
            raw_tar(&[link(Symlink, "out", "../../../../../etc")]),
        ),
        (
            "tar-symlink-absolute",
            raw_tar(&[link(Symlink, "passwd", "/etc/passwd")]),
        ),
        (
            "tar-write-through-symlink",
            raw_tar(&[link(Symlink, "l", "."), file("l/x", b"x")]),
        ),
        (
            "tar-symlink-then-dir",
            raw_tar(&[
                dir("d/"),
                link(Symlink, "d/up", ".."),
                file("d/up/up/x", b"x"),
            ]),
        ),
        (
            "tar-replace-symlink",
            raw_tar(&[link(Symlink, "x", "y"), file("x", b"x"), file("y", b"y")]),
        ),
        (
            "tar-hardlink-outside",
            raw_tar(&[link(Link, "passwd", "/etc/passwd")]),
        ),
        (
            "tar-hardlink-parent",
            raw_tar(&[link(Link, "p", "../package")]),
        ),
        (
            "tar-hardlink-to-symlink",
            raw_tar(&[
                link(Symlink, "s", "f"),
                file("f", b"f"),
                link(Link, "h", "s"),
            ]),
        ),
        (
            "tar-hardlink-self",
            raw_tar(&[file("f", b"f"), link(Link, "f", "f")]),
        ),
        ("tar-char-device", raw_tar(&[special(Char, "null")])),
        ("tar-block-device", raw_tar(&[special(Block, "sda")])),
        ("tar-fifo", raw_tar(&[special(Fifo, "pipe")])),
        (
            "tar-file-then-dir",
            raw_tar(&[file("x", b"x"), file("x/y", b"y")]),
        ),
        ("tar-dir-then-file", raw_tar(&[dir("x/"), file("x", b"x")])),
        (
            "tar-duplicate",
            raw_tar(&[file("a", b"first"), file("a", b"second")]),
        ),
        (
            "tar-pax-global",
            raw_tar(&[
                Entry {
                    kind: XGlobalHeader,
                    data: b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
                    ..file("pax_global_header", b"")
                },
                file("a", b"a"),
            ]),
        ),
        (
            "tar-gnu-long-name",
            raw_tar(&[
                Entry {
                    kind: GNULongName,
                    ..file("././@LongLink", b"../../escaped-by-long-name\0")
                },
                file("short", b"x"),
            ]),
        ),
        (
            "tar-many-entries",
            raw_tar(&(0..300).map(|_| dir("d/")).collect::<Vec<_>>()),
        ),
        ("tar-bomb", raw_tar(&[file("zeros", &[0; 2 << 20])])),
    ]
}

fn zip_bytes() -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().unix_permissions(0o644);
    zip.add_directory("docs/", options).unwrap();
    zip.start_file("docs/readme.txt", options).unwrap();
    zip.write_all(b"read me\n").unwrap();
    zip.start_file(
        "setup.sh",
        options
            .unix_permissions(0o755)
            .compression_method(zip::CompressionMethod::Stored),
    )
    .unwrap();
    zip.write_all(b"#!/bin/sh\n").unwrap();
    zip.add_symlink("readme", "docs/readme.txt", options)
        .unwrap();
    zip.finish().unwrap().into_inner()
}

/// A zip of `(name, data)` files, each stored or deflated, and symlinks where the data
/// starts with `->`: the names go in unchanged.
fn raw_zip(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .unix_permissions(0o644)
        .compression_method(method);
    for (name, data) in entries {
        match data.strip_prefix(b"->") {
            Some(to) => zip
                .add_symlink(*name, std::str::from_utf8(to).unwrap(), options)
                .unwrap(),
            None => {
                zip.start_file(*name, options).unwrap();
                zip.write_all(data).unwrap();
            }
        }
    }
    zip.finish().unwrap().into_inner()
}

/// Sets a file type into a zip's central directory (the writer only takes permission
/// bits), the way a device or FIFO would appear.
fn set_zip_mode(bytes: &mut [u8], mode: u32) {
    let at = bytes
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("a central directory entry");
    bytes[at + 5] = 3; // made by Unix
    bytes[at + 38..at + 42].copy_from_slice(&(mode << 16).to_le_bytes());
}

fn hostile_zips() -> Vec<(&'static str, Vec<u8>)> {
    use zip::CompressionMethod::{Deflated, Stored};
    let mut fifo = raw_zip(&[("pipe", b"")], Stored);
    set_zip_mode(&mut fifo, 0o010_644);
    let mut device = raw_zip(&[("null", b"")], Stored);
    set_zip_mode(&mut device, 0o020_644);
    // The second entry's local header moved onto the first's: one stream, two names.
    let mut shared = raw_zip(&[("a", b"aaaa"), ("b", b"aaaa")], Stored);
    let central: Vec<usize> = shared
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x01\x02")
        .map(|(at, _)| at)
        .collect();
    if let Some(&second) = central.get(1) {
        shared[second + 42..second + 46].copy_from_slice(&0u32.to_le_bytes());
    }
    vec![
        ("zip-parent", raw_zip(&[("../escaped", b"x")], Stored)),
        (
            "zip-backslash-parent",
            raw_zip(&[("a\\..\\..\\escaped", b"x")], Stored),
        ),
        ("zip-absolute", raw_zip(&[("/tmp/escaped", b"x")], Stored)),
        ("zip-drive", raw_zip(&[("C:\\escaped", b"x")], Stored)),
        (
            "zip-symlink-escape",
            raw_zip(&[("out", b"->../../../etc")], Stored),
        ),
        (
            "zip-write-through-symlink",
            raw_zip(&[("l", b"->."), ("l/x", b"x")], Stored),
        ),
        ("zip-fifo", fifo),
        ("zip-device", device),
        ("zip-shared-bytes", shared),
        (
            "zip-dir-and-file",
            raw_zip(&[("x/", b""), ("x", b"x")], Stored),
        ),
        ("zip-bomb", raw_zip(&[("zeros", &[0; 2 << 20])], Deflated)),
        ("zip-empty", raw_zip(&[], Stored)),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn archives(dir: &Path) {
    let tar = tar_bytes();
    // The first byte is the target's mode: 0 zip, 1 tar.gz, 2 tar (gzipped by the
    // target), 3 a plain file named by the first line.
    write(dir, "unpack", "zip", &[b"0", &zip_bytes()[..]].concat());
    write(dir, "unpack", "tar-gz", &[b"1", &gzip(&tar)[..]].concat());
    write(dir, "unpack", "tar", &[b"2", &tar[..]].concat());
    write(
        dir,
        "unpack",
        "tar-long-names",
        &[b"2", &tar_long_names()[..]].concat(),
    );
    // The bomb inflates to 2 MiB of zeros, the many entries to 150 KiB: as tar.gz
    // files they are a few KiB.
    for (name, bytes) in hostile_tars() {
        if matches!(name, "tar-bomb" | "tar-many-entries") {
            let name = format!("tar-gz-{}", &name["tar-".len()..]);
            write(dir, "unpack", &name, &[b"1", &gzip(&bytes)[..]].concat());
        } else {
            write(dir, "unpack", name, &[b"2", &bytes[..]].concat());
        }
    }
    for (name, bytes) in hostile_zips() {
        write(dir, "unpack", name, &[b"0", &bytes[..]].concat());
    }
    let mut truncated = gzip(&tar);
    truncated.truncate(truncated.len() - 6);
    write(
        dir,
        "unpack",
        "tar-gz-truncated",
        &[b"1", &truncated[..]].concat(),
    );
    write(
        dir,
        "unpack",
        "plain",
        b"3setup.sh\n#!/bin/sh\necho hello\n",
    );
    write(
        dir,
        "unpack",
        "plain-bad-name",
        b"3../setup.sh\n#!/bin/sh\n",
    );
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus".to_owned());
    let dir = Path::new(&dir);
    signed(dir);
    grammars(dir);
    protocol(dir);
    ranges(dir);
    archives(dir);
}
