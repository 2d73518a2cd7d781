//! Writes the committed seed corpora under `fuzz/seeds/<target>/`: valid examples of
//! every grammar, real info documents and envelopes signed by the code with the fuzz
//! targets' fixed key, protocol frames, `Range` headers, and small zip, tar and tar.gz
//! archives. Run once from `fuzz/` with `cargo run --example make_seeds` (see
//! `seeds/README.md`); the output is deterministic, so a rerun changes nothing.

use std::fs;
use std::io::{Cursor, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use ed25519_dalek::SigningKey;
use sitecast_common::fragment::plan_reader;
use sitecast_common::info::{ActionDoc, Info, InfoDoc, NotifyDoc, UninstallDoc};
use sitecast_common::protocol::{
    encode, ActivatedPackage, CentralMessage, HeldPackage, RelayMessage, RelayReport, Request,
    Response, WakeTarget,
};
use sitecast_common::signing::{sign, sign_info, verifying_key_to_pem};
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

fn signed(dir: &Path) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let other = SigningKey::from_bytes(&[9; 32]);
    for (name, info) in infos() {
        write(dir, "info", &format!("{name}.json"), &info.to_json());
        write(dir, "signed_info", &format!("{name}.json"), &info.to_json());
        write(dir, "envelope", &format!("{name}.json"), &sign_info(&key, &info));
    }
    let (_, info) = &infos()[0];
    write(dir, "envelope", "untrusted-key.json", &sign_info(&other, info));
    write(
        dir,
        "envelope",
        "other-type.json",
        &sign(&key, "text/plain", b"hello"),
    );
    write(dir, "envelope", "not-json.json", b"{\"payloadType\":");
    write(dir, "signed_info", "payload-type.txt", b"text/plain\nhello");
}

fn grammars(dir: &Path) {
    let examples: &[(&str, &str)] = &[
        ("size", "s64KiB"),
        ("size-bare", "s1024"),
        ("rate", "r512KiB/s"),
        ("rate-bits", "r100Mbit"),
        ("rate-unlimited", "runlimited"),
        ("duration", "d15m"),
        ("duration-days", "d3d"),
        ("ip-range", "i!192.168.2.3/32"),
        ("ip-ranges", "I10.2.0.0/16,!192.168.2.3/32,192.168.2.0/24,CAFF:EECA:FFEE::/64"),
        ("time-frame", "tFRI 22:00-6:00"),
        (
            "time-frames",
            "T6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59",
        ),
        ("schedule", "TMON-FRI 18:00-23:59"),
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
        ("sequence", "qabort_after_failed"),
        ("fallback", "fafter:2h"),
        ("fallback-always", "falways"),
        ("time-rfc3339", "p2026-11-21T18:00:00+01:00"),
        ("time-local", "p2026-11-21 18:00"),
        ("time-day", "p2026-11-21"),
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
    let welcome = encode(&CentralMessage::Welcome {
        site: "Paris".parse().unwrap(),
        signing_keys: vec![PublicKey {
            keyid: sitecast_common::signing::key_id(&key),
            pem: verifying_key_to_pem(&key).unwrap(),
        }],
    });
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
    write(dir, "protocol", "welcome", &welcome);
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

fn tar_bytes() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "bin/", &b""[..]).unwrap();
    let body = b"#!/bin/sh\necho hello\n";
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o755);
    file.set_size(body.len() as u64);
    tar.append_data(&mut file, "bin/hello.sh", &body[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    tar.append_link(&mut link, "hello", "bin/hello.sh").unwrap();
    let mut hard = tar::Header::new_gnu();
    hard.set_entry_type(tar::EntryType::Link);
    hard.set_size(0);
    tar.append_link(&mut hard, "bin/again.sh", "bin/hello.sh")
        .unwrap();
    tar.into_inner().unwrap()
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
    zip.add_symlink("readme", "docs/readme.txt", options).unwrap();
    zip.finish().unwrap().into_inner()
}

fn archives(dir: &Path) {
    let tar = tar_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    // The first byte is the target's mode: 0 zip, 1 tar.gz, 2 tar (gzipped by the
    // target), 3 a plain file named by the first line.
    write(dir, "unpack", "zip", &[b"0", &zip_bytes()[..]].concat());
    write(dir, "unpack", "tar-gz", &[b"1", &gz[..]].concat());
    write(dir, "unpack", "tar", &[b"2", &tar[..]].concat());
    write(dir, "unpack", "plain", b"3setup.sh\n#!/bin/sh\necho hello\n");
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "seeds".to_owned());
    let dir = Path::new(&dir);
    signed(dir);
    grammars(dir);
    protocol(dir);
    ranges(dir);
    archives(dir);
}
