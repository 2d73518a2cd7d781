//! Black-box tests of the real `sitecast` admin CLI binary (SPEC "Admin CLI")
//! against a real central serving HTTPS on loopback.
//!
//! Each test starts its own central in a temporary DIR (in-process: `init`,
//! `load`, `Central::open`, `sitecast_central::run` on a listener bound to port 0) and
//! runs the binary as a child process. As in ripgrep's `tests/regression.rs`,
//! each case is one function telling one story; the helpers below keep the
//! stories short: `run` (connection flags from the test's central), `ok` and
//! `fail` (exit status, stdout, stderr), `json` (`--json` output parsed), and
//! `get` (the same route read directly with reqwest, to compare against).
#![allow(clippy::unwrap_used)]
// Tests compare what was recorded against the real wall clock.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sitecast_central::clock::SystemClock;
use sitecast_central::init::{self, InitOptions, Layout};
use sitecast_central::Listeners;
use sitecast_common::jobs::Sequence;
use sitecast_common::jobs::{ContainerState, JobKind};
use sitecast_common::status::StatusCode;
use sitecast_common::wire::{Assigned, ComputerDetail, Container, ContainerChanged};
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_sitecast");

/// The environment variables the CLI reads; cleared for every child so the
/// ambient environment of whoever runs the tests cannot leak in.
const ENV_VARS: [&str; 3] = ["SITECAST_URL", "SITECAST_TOKEN", "SITECAST_CA"];

/// How long one CLI invocation may take before the test fails.
const CLI_DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A central serving HTTPS on 127.0.0.1 from a temporary DIR whose
/// `central.toml` names the real port (so `--central-dir` works).
struct Central {
    dir: PathBuf,
    url: String,
    token: String,
    enroll_token: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    rt: Option<tokio::runtime::Runtime>,
    /// Central's state, for what only a relay over QUIC would say (reports).
    state: Arc<sitecast_central::Central>,
    _tmp: tempfile::TempDir,
}

/// What one run of the CLI did.
#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Central {
    fn start() -> Central {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("central");
        // Bind first, then init with the bound address: central.toml names the
        // real port and there is no window for another process to take it.
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let opts = InitOptions {
            api_listen: addr,
            quic_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..InitOptions::default()
        };
        let layout: Layout = init::init(&dir, &opts).unwrap();
        let loaded = init::load(&dir).unwrap();
        let admin = loaded.admin_token.clone();
        let enroll_token = loaded.enroll_token.clone();
        let central =
            Arc::new(sitecast_central::Central::open(loaded, Arc::new(SystemClock)).unwrap());
        let listeners = {
            let _guard = rt.enter();
            Listeners::with_api(&layout, listener, opts.quic_listen).unwrap()
        };
        let (stop, stopped) = oneshot::channel::<()>();
        // The same `run` as the binary's.
        rt.spawn(sitecast_central::run(
            Arc::clone(&central),
            listeners,
            async move {
                let _ = stopped.await;
            },
        ));
        let ca = std::fs::read(layout.ca_cert()).unwrap();
        let http = {
            let _guard = rt.enter();
            reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .build()
                .unwrap()
        };
        Central {
            dir,
            url: format!("https://{addr}"),
            token: admin,
            enroll_token,
            http,
            stop: Some(stop),
            rt: Some(rt),
            state: central,
            _tmp: tmp,
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().unwrap()
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// The CLI with this central's connection flags (before the command, where
    /// they belong).
    fn cli(&self) -> Command {
        let mut cmd = sitecast();
        cmd.arg("--url")
            .arg(&self.url)
            .arg("--token")
            .arg(&self.token)
            .arg("--ca")
            .arg(self.ca());
        cmd
    }

    /// Runs `sitecast --url … --token … --ca … ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.cli();
        cmd.args(args);
        output(cmd)
    }

    /// Runs `sitecast --url … --json ARGS`, asserts success and parses stdout.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut cmd = self.cli();
        cmd.arg("--json").args(args);
        let out = ok(output(cmd));
        parse(&out.stdout)
    }

    /// Runs `sitecast --url … ARGS` (human output), asserts success, returns stdout.
    #[track_caller]
    fn human(&self, args: &[&str]) -> String {
        ok(self.run(args)).stdout
    }

    /// A direct admin GET of an API route: status and raw body.
    fn get_raw(&self, path: &str) -> (u16, String) {
        self.rt().block_on(async {
            let resp = self
                .http
                .get(format!("{}/api/v1{path}", self.url))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        })
    }

    /// A direct admin GET that must succeed, parsed.
    #[track_caller]
    fn get(&self, path: &str) -> Value {
        let (status, body) = self.get_raw(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        parse(&body)
    }

    /// Asserts that `sitecast --json ARGS` prints exactly the body of `GET path`
    /// (byte for byte, plus the final newline), and returns it parsed.
    #[track_caller]
    fn json_is_get(&self, args: &[&str], path: &str) -> Value {
        let mut cmd = self.cli();
        cmd.arg("--json").args(args);
        let out = ok(output(cmd));
        let (status, body) = self.get_raw(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        assert_eq!(
            out.stdout,
            format!("{body}\n"),
            "`sitecast --json {}` is not the body of GET {path}",
            args.join(" ")
        );
        parse(&body)
    }

    /// Enrolls a computer through the agent API; returns its id.
    fn enroll(&self, hostname: &str, os: &str, addresses: &[&str]) -> String {
        self.rt().block_on(async {
            let resp = self
                .http
                .post(format!("{}/api/v1/agent/enroll", self.url))
                .json(&json!({
                    "enroll_token": self.enroll_token,
                    "hostname": hostname,
                    "os": os,
                    "addresses": addresses,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            v["computer_id"].as_str().unwrap().to_owned()
        })
    }

    /// Adds a site through the CLI.
    fn site(&self, name: &str, subnet: &str) {
        ok(self.run(&["site", "add", name, "--subnet", subnet]));
    }

    /// Creates a command-only package through the CLI; returns its id.
    fn command_package(&self, name: &str) -> String {
        let p = self.json(&[
            "package",
            "create",
            "--name",
            name,
            "--version",
            "1",
            "--action",
            "execute",
            "--command",
            "echo hello",
        ]);
        p["id"].as_str().unwrap().to_owned()
    }

    /// The job containers central knows (`GET /containers`, without jobs).
    fn containers(&self) -> Vec<Container> {
        serde_json::from_value(self.get("/containers")).unwrap()
    }

    /// One job container with its jobs (`GET /containers/{id}`).
    fn container(&self, id: &str) -> Container {
        serde_json::from_value(self.get(&format!("/containers/{id}"))).unwrap()
    }

    /// The package ids central knows.
    fn package_ids(&self) -> Vec<String> {
        self.get("/packages")
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The CLI with none of the `SITECAST_*` variables set.
fn sitecast() -> Command {
    let mut cmd = Command::new(BIN);
    for v in ENV_VARS {
        cmd.env_remove(v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs a command to completion, failing the test if it outlives the deadline.
fn output(mut cmd: Command) -> Output {
    let mut child: Child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    for (is_out, pipe) in [
        (
            true,
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        ),
        (false, Box::new(child.stderr.take().unwrap())),
    ] {
        let tx = tx.clone();
        let mut pipe = pipe;
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send((is_out, text));
        });
    }
    drop(tx);
    let deadline = Instant::now() + CLI_DEADLINE;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, text)) => stdout = text,
            Ok((false, text)) => stderr = text,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish within {CLI_DEADLINE:?}");
            }
        }
    }
    let status = child.wait().unwrap();
    Output {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Asserts the CLI succeeded quietly: exit 0, nothing on stderr.
#[track_caller]
fn ok(out: Output) -> Output {
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stderr, "", "{out:#?}");
    out
}

/// Asserts the CLI failed: non-zero exit, nothing on stdout, a message on
/// stderr naming every one of `words`. Returns stderr.
#[track_caller]
fn fail(out: Output, words: &[&str]) -> String {
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(out.code.is_some(), "killed by a signal: {out:#?}");
    assert_eq!(out.stdout, "", "{out:#?}");
    assert!(!out.stderr.trim().is_empty(), "{out:#?}");
    for w in words {
        assert!(
            out.stderr.contains(w),
            "stderr {:?} does not name {w:?}",
            out.stderr
        );
    }
    out.stderr
}

#[track_caller]
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Asserts a human-readable output contains every one of `words`.
#[track_caller]
fn shows(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "output does not show {w:?}:\n{text}");
    }
}

/// The table row (line) that mentions `key`.
#[track_caller]
fn row<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("no row with {key:?}:\n{text}"))
}

/// Deterministic, incompressible-looking bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A real `.tar.gz` made with the `tar` CLI from a directory holding an
/// install script and `len` bytes of noise.
fn make_tar_gz(dir: &Path, len: usize) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("install.sh"), "#!/bin/sh\necho installed\n").unwrap();
    std::fs::write(src.join("payload.bin"), noise(len, 7)).unwrap();
    let archive = dir.join("app.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .args(["install.sh", "payload.bin"])
        .status()
        .unwrap();
    assert!(status.success());
    archive
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------
// Sites
// ---------------------------------------------------------------------------

#[test]
fn site_add_and_list() {
    let c = Central::start();

    let added = c.human(&["site", "add", "paris", "--subnet", "127.1.0.0/16"]);
    shows(&added, &["SITE", "SUBNETS", "paris", "127.1.0.0/16"]);

    let lyon = c.json(&[
        "site",
        "add",
        "lyon",
        "--subnet",
        "127.2.0.0/16",
        "--subnet",
        "10.2.0.0/24",
    ]);
    assert_eq!(lyon["name"], "lyon");
    assert_eq!(lyon["subnets"], json!(["127.2.0.0/16", "10.2.0.0/24"]));

    // A site without subnets is allowed.
    ok(c.run(&["site", "add", "remote"]));

    // A second site of the same name is a conflict that names it.
    fail(
        c.run(&["site", "add", "paris", "--subnet", "127.3.0.0/16"]),
        &["409", "paris", "already exists"],
    );

    let list = c.human(&["site", "list"]);
    shows(&list, &["SITE", "SUBNETS", "CREATED"]);
    shows(row(&list, "paris"), &["127.1.0.0/16"]);
    shows(row(&list, "lyon"), &["127.2.0.0/16, 10.2.0.0/24"]);
    row(&list, "remote");

    let sites = c.json_is_get(&["site", "list"], "/sites");
    assert_eq!(sites.as_array().unwrap().len(), 3);
    let stored = sites
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "lyon")
        .unwrap();
    // What `site add --json` printed is the record central keeps.
    assert_eq!(stored, &lyon);

    // `--json` is global: it may also follow the command.
    let mut cmd = c.cli();
    cmd.args(["site", "list", "--json"]);
    let out = ok(output(cmd));
    assert_eq!(parse(&out.stdout), sites);
}

#[test]
fn site_add_with_a_bad_cidr_fails_naming_it() {
    let c = Central::start();
    fail(
        c.run(&["site", "add", "paris", "--subnet", "10.0.0.0/33"]),
        &["10.0.0.0/33"],
    );
    let mut cmd = c.cli();
    cmd.args(["--json", "site", "add", "paris", "--subnet", "10.0.0.0/33"]);
    fail(output(cmd), &["10.0.0.0/33"]);
    assert_eq!(c.get("/sites"), json!([]));
}

// ---------------------------------------------------------------------------
// Relays
// ---------------------------------------------------------------------------

#[test]
fn relay_add_prints_id_and_token_and_relay_list_shows_it() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");

    let human = c.human(&[
        "relay",
        "add",
        "--site",
        "paris",
        "--subnet",
        "127.1.0.0/16",
        "--url",
        "http://127.1.0.1:8080",
    ]);
    let id_line = row(&human, "id:");
    let id = id_line.split_whitespace().last().unwrap().to_owned();
    assert!(id.starts_with("relay-paris-"), "{human}");
    let token_line = row(&human, "token:");
    let token = token_line.split_whitespace().last().unwrap().to_owned();
    assert!(token.len() >= 32, "{human}");

    let created = c.json(&[
        "relay",
        "add",
        "--site",
        "paris",
        "--subnet",
        "127.1.2.0/24",
        "--subnet",
        "127.1.3.0/24",
        "--url",
        "https://relay2.example:8443",
    ]);
    let obj = created.as_object().unwrap();
    assert_eq!(
        obj.keys().map(String::as_str).collect::<Vec<_>>(),
        ["id", "token"],
        "{created}"
    );
    let id2 = created["id"].as_str().unwrap();
    assert!(id2.starts_with("relay-paris-"), "{created}");
    assert_ne!(id2, id);
    assert_ne!(created["token"].as_str().unwrap(), token);

    let list = c.human(&["relay", "list"]);
    shows(
        &list,
        &["RELAY", "SITE", "SUBNETS", "URL", "LAST SEEN", "PROBLEMS"],
    );
    shows(
        row(&list, &id),
        &["paris", "127.1.0.0/16", "http://127.1.0.1:8080", "never"],
    );
    shows(
        row(&list, id2),
        &[
            "127.1.2.0/24, 127.1.3.0/24",
            "https://relay2.example:8443",
            "never",
        ],
    );

    let relays = c.json_is_get(&["relay", "list"], "/relays");
    let relays = relays.as_array().unwrap();
    assert_eq!(relays.len(), 2);
    let first = relays.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(first["site"], "paris");
    assert_eq!(first["subnets"], json!(["127.1.0.0/16"]));
    assert_eq!(first["url"], "http://127.1.0.1:8080");
    assert_eq!(first["last_seen"], Value::Null);
    assert_eq!(first["holdings"], json!([]));
}

#[test]
fn relay_add_errors_name_the_problem() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    fail(
        c.run(&[
            "relay",
            "add",
            "--site",
            "paris",
            "--subnet",
            "10.0.0.0/33",
            "--url",
            "http://127.1.0.1:8080",
        ]),
        &["10.0.0.0/33"],
    );
    fail(
        c.run(&[
            "relay",
            "add",
            "--site",
            "mars",
            "--subnet",
            "10.0.0.0/8",
            "--url",
            "http://127.1.0.1:8080",
        ]),
        &["mars"],
    );
    fail(
        c.run(&[
            "relay",
            "add",
            "--site",
            "paris",
            "--subnet",
            "10.0.0.0/8",
            "--url",
            "ftp://relay",
        ]),
        &["ftp://relay"],
    );
    // --subnet is required (clap's usage error).
    fail(
        c.run(&["relay", "add", "--site", "paris", "--url", "http://r:1"]),
        &["--subnet"],
    );
    assert_eq!(c.get("/relays"), json!([]));
}

// ---------------------------------------------------------------------------
// Packages
// ---------------------------------------------------------------------------

#[test]
fn package_create_uploads_a_file_and_infers_tar_gz() {
    let c = Central::start();
    let work = tempfile::tempdir().unwrap();
    let file = make_tar_gz(work.path(), 150_000);
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.len() > 128 << 10,
        "the archive should span 3 fragments"
    );

    let p = c.json(&[
        "package",
        "create",
        "--name",
        "app",
        "--version",
        "1.0",
        "--file",
        path_str(&file),
        "--action",
        "launch",
        "--command",
        "install.sh --quiet",
        "--priority",
        "2",
        "--fragment-size",
        "64KiB",
        "--os",
        "linux",
        "--success-codes",
        "0,3010",
    ]);
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["name"], "app");
    assert_eq!(p["version"], "1.0");
    assert_eq!(p["os"], "linux");
    assert_eq!(p["priority"], 2);
    assert_eq!(
        p["action"],
        json!({"kind": "launch", "command": "install.sh --quiet"})
    );
    assert_eq!(p["archive"], "tar.gz", "inferred from the gzip magic bytes");
    assert_eq!(p["size"], bytes.len() as u64);
    assert_eq!(p["sha256"], sha256_hex(&bytes));
    assert_eq!(p["fragment_size"], 65_536);
    assert_eq!(p["fragments"], bytes.len().div_ceil(65_536) as u64);
    assert_eq!(p["success_exit_codes"], json!([0, 3010]));
    assert_eq!(p["info_sha256"].as_str().unwrap().len(), 64);
    // What `package create --json` printed is what central keeps.
    assert_eq!(c.get(&format!("/packages/{id}")), p);

    // The signed info describes the same file.
    let (status, envelope) = c.get_raw(&format!("/packages/{id}/info"));
    assert_eq!(status, 200);
    assert_eq!(p["info_sha256"], sha256_hex(envelope.as_bytes()));
}

#[test]
fn package_create_human_output_shows_the_package() {
    let c = Central::start();
    let work = tempfile::tempdir().unwrap();
    let file = make_tar_gz(work.path(), 1000);
    let bytes = std::fs::read(&file).unwrap();
    let text = c.human(&[
        "package",
        "create",
        "--name",
        "tool",
        "--version",
        "2.1",
        "--file",
        path_str(&file),
        "--action",
        "store",
        "--path",
        "/opt/tool",
    ]);
    let ids = c.package_ids();
    assert_eq!(ids.len(), 1);
    let p = c.get(&format!("/packages/{}", ids[0]));
    shows(
        &text,
        &[
            &ids[0],
            "tool",
            "2.1",
            "store: /opt/tool",
            "tar.gz",
            &format!("({} bytes)", bytes.len()),
            &sha256_hex(&bytes),
            p["info_sha256"].as_str().unwrap(),
            "4.0 MiB",
        ],
    );
    shows(row(&text, "priority"), &["5"]);
    shows(row(&text, "os"), &["any"]);
    shows(row(&text, "success codes"), &["0"]);
    shows(row(&text, "activated"), &["-"]);
    shows(row(&text, "central fallback"), &["never"]);
}

#[test]
fn package_create_infers_zip_and_none_and_honours_archive() {
    let c = Central::start();
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("setup.zip");
    let mut zip_bytes = b"PK\x03\x04".to_vec();
    zip_bytes.extend(noise(100, 1));
    std::fs::write(&zip, &zip_bytes).unwrap();
    let gz = work.path().join("raw.gz");
    let mut gz_bytes = vec![0x1f, 0x8b, 0x08, 0x00];
    gz_bytes.extend(noise(100, 2));
    std::fs::write(&gz, &gz_bytes).unwrap();
    let plain = work.path().join("setup.sh");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();

    let create = |name: &str, file: &Path, extra: &[&str]| {
        let mut args = vec![
            "package",
            "create",
            "--name",
            name,
            "--version",
            "1",
            "--file",
            path_str(file),
            "--action",
            "launch",
            "--command",
            "setup",
        ];
        args.extend_from_slice(extra);
        c.json(&args)
    };
    let p = create("zipped", &zip, &[]);
    assert_eq!(p["archive"], "zip");
    assert_eq!(p["sha256"], sha256_hex(&zip_bytes));
    assert_eq!(create("gzipped", &gz, &[])["archive"], "tar.gz");
    assert_eq!(create("plain", &plain, &[])["archive"], "none");
    // An explicit --archive wins over the magic bytes.
    assert_eq!(
        create("forced", &gz, &["--archive", "none"])["archive"],
        "none"
    );
}

#[test]
fn package_create_without_file_is_command_only() {
    let c = Central::start();
    let p = c.json(&[
        "package",
        "create",
        "--name",
        "reboot-notice",
        "--version",
        "3",
        "--action",
        "execute",
        "--command",
        "logger deployed",
        "--priority",
        "0",
        "--os",
        "windows",
        "--success-codes",
        "0,3010",
    ]);
    assert_eq!(p["size"], 0);
    assert_eq!(p["archive"], "none");
    assert_eq!(p["priority"], 0);
    assert_eq!(p["os"], "windows");
    assert_eq!(p["success_exit_codes"], json!([0, 3010]));
    assert_eq!(
        p["action"],
        json!({"kind": "execute", "command": "logger deployed"})
    );
    assert_eq!(p["sha256"], sha256_hex(b""));
    assert_eq!(
        c.get(&format!("/packages/{}", p["id"].as_str().unwrap())),
        p
    );

    let text = c.human(&[
        "package",
        "create",
        "--name",
        "hello",
        "--version",
        "1",
        "--action",
        "execute",
        "--command",
        "echo hello",
    ]);
    shows(&text, &["hello", "execute: echo hello", "0 B (0 bytes)"]);
}

#[test]
fn package_list_show_and_delete() {
    let c = Central::start();
    let work = tempfile::tempdir().unwrap();
    let file = make_tar_gz(work.path(), 5000);
    let a = c.json(&[
        "package",
        "create",
        "--name",
        "alpha",
        "--version",
        "1.0",
        "--file",
        path_str(&file),
        "--action",
        "launch",
        "--command",
        "install.sh",
        "--priority",
        "3",
        "--success-codes",
        "0,3010",
    ]);
    let a_id = a["id"].as_str().unwrap();
    let b_id = c.command_package("beta");

    let list = c.human(&["package", "list"]);
    shows(
        &list,
        &[
            "PACKAGE", "NAME", "VERSION", "PRIO", "ACTION", "SIZE", "FRAGS",
        ],
    );
    shows(
        row(&list, a_id),
        &["alpha", "1.0", "3", "launch: install.sh", " KiB"],
    );
    shows(row(&list, &b_id), &["beta", "execute: echo hello", "0 B"]);
    let packages = c.json_is_get(&["package", "list"], "/packages");
    assert_eq!(packages.as_array().unwrap().len(), 2);

    let shown = c.human(&["package", "show", a_id]);
    shows(
        &shown,
        &[
            a_id,
            "alpha",
            a["sha256"].as_str().unwrap(),
            a["info_sha256"].as_str().unwrap(),
            "0, 3010",
        ],
    );
    shows(row(&shown, "archive"), &["tar.gz"]);
    let show_json = c.json_is_get(&["package", "show", a_id], &format!("/packages/{a_id}"));
    assert_eq!(show_json, a);

    let deleted = c.human(&["package", "delete", a_id]);
    shows(&deleted, &[&format!("deleted package {a_id}")]);
    assert_eq!(c.get_raw(&format!("/packages/{a_id}")).0, 404);
    assert_eq!(c.package_ids(), vec![b_id.clone()]);

    // `--json` prints the API's body, and DELETE answers none.
    let mut cmd = c.cli();
    cmd.args(["--json", "package", "delete", &b_id]);
    let out = ok(output(cmd));
    assert_eq!(out.stdout, "");
    assert_eq!(c.get("/packages"), json!([]));

    // Deleting or showing it again names the id.
    fail(c.run(&["package", "delete", a_id]), &[a_id, "not found"]);
    fail(c.run(&["package", "show", &b_id]), &[&b_id, "not found"]);
}

#[test]
fn package_activate_for_sites_and_for_all_sites_with_fallback() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    c.site("lyon", "127.2.0.0/16");
    let id = c.command_package("agent-update");

    let text = c.human(&[
        "package", "activate", &id, "--site", "paris", "--site", "lyon",
    ]);
    shows(&text, &[&id]);
    shows(row(&text, "activated"), &["lyon, paris"]);
    shows(row(&text, "central fallback"), &["never"]);
    let shown = c.get(&format!("/packages/{id}"));
    assert_eq!(shown["activation"]["sites"], json!(["lyon", "paris"]));
    assert_eq!(shown["activation"]["all_sites"], false);

    let p = c.json(&[
        "package",
        "activate",
        &id,
        "--all-sites",
        "--fallback",
        "after:2h",
    ]);
    assert_eq!(p["activation"]["all_sites"], true);
    assert_eq!(p["activation"]["central_fallback"], "after:2h");
    assert_eq!(c.get(&format!("/packages/{id}")), p);

    let shown = c.human(&["package", "show", &id]);
    shows(row(&shown, "activated"), &["all sites"]);
    shows(row(&shown, "central fallback"), &["after:2h"]);
    shows(row(&c.human(&["package", "list"]), &id), &["all sites"]);

    // The relays of an activated site show the package in their holdings.
    let relay = c.json(&[
        "relay",
        "add",
        "--site",
        "paris",
        "--subnet",
        "127.1.0.0/16",
        "--url",
        "http://127.1.0.1:8080",
    ]);
    let relays = c.json_is_get(&["relay", "list"], "/relays");
    assert_eq!(relays[0]["id"], relay["id"]);
    assert_eq!(
        relays[0]["holdings"],
        json!([{"package_id": id, "held": 0, "total": 0, "complete": false, "eta_s": null}])
    );
    shows(
        row(&c.human(&["relay", "list"]), relay["id"].as_str().unwrap()),
        &[&format!("{id} 0/0")],
    );
}

#[test]
fn relay_list_shows_each_relays_health() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    let relay = c.json(&[
        "relay",
        "add",
        "--site",
        "paris",
        "--subnet",
        "127.1.0.0/16",
        "--url",
        "http://127.1.0.1:8080",
    ]);
    let id = relay["id"].as_str().unwrap();
    let list = c.human(&["relay", "list"]);
    shows(&list, &["HEALTH"]);
    shows(row(&list, id), &["never"]);
    // What the relay says in its report over QUIC.
    let health = json!({
        "version": "sitecast-relay 9.9.9",
        "disk_used": 3_145_728,
        "disk_free": 42_949_672_960u64,
        "max_disk": 2_097_152,
        "over_quota": true,
        "kept": ["app-1"],
        "evicted": 2,
        "last_scrub": "2026-03-01T09:00:00Z",
        "scrub_bad": 1,
        "scrub_bad_total": 4,
        "scrub_interval_s": 3600
    });
    let report: sitecast_common::protocol::RelayReport = serde_json::from_value(json!({
        "holdings": [],
        "bytes_from_central": 0,
        "bytes_to_agents": 0,
        "health": health,
    }))
    .unwrap();
    let report = sitecast_central::store::RelayReportRecord::from(&report);
    c.state
        .store
        .record_relay_report(&id.parse().unwrap(), Some(&report), jiff::Timestamp::now())
        .unwrap();
    let relays = c.json_is_get(&["relay", "list"], "/relays");
    assert_eq!(relays[0]["health"], health);
    let list = c.human(&["relay", "list"]);
    shows(row(&list, id), &["sitecast-relay 9.9.9"]);
    shows(
        &list,
        &[
            "disk 3.0 MiB used, 40.0 GiB free",
            "quota 2.0 MiB EXCEEDED by activated content",
            "scrub 2026-03-01 09:00:00 (1 bad, 4 in all)",
            "kept bases: app-1",
            "evicted 2",
        ],
    );
}

#[test]
fn package_activate_errors_name_the_problem() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    let id = c.command_package("tool");
    fail(
        c.run(&["package", "activate", &id, "--site", "mars"]),
        &["mars"],
    );
    fail(
        c.run(&[
            "package",
            "activate",
            &id,
            "--all-sites",
            "--fallback",
            "sometimes",
        ]),
        &["sometimes"],
    );
    fail(
        c.run(&[
            "package",
            "activate",
            &id,
            "--site",
            "paris",
            "--fallback",
            "after:2x",
        ]),
        &["2x"],
    );
    // Neither --site nor --all-sites: a usage error.
    fail(c.run(&["package", "activate", &id]), &["--site"]);
    let p = c.get(&format!("/packages/{id}"));
    assert_eq!(
        p["activation"],
        json!({"all_sites": false, "sites": [], "central_fallback": "never"})
    );
}

// ---------------------------------------------------------------------------
// Assignments, stats, computers
// ---------------------------------------------------------------------------

#[test]
fn package_assign_to_computers_subnet_and_all_then_stats() {
    let c = Central::start();
    let ws1 = c.enroll("ws-paris-1", "linux", &["127.1.0.5"]);
    let ws2 = c.enroll("ws-paris-2", "linux", &["127.1.0.6"]);
    let ws3 = c.enroll("ws-lyon-1", "windows", &["127.2.0.5"]);
    let id = c.command_package("patch");

    // Each assignment is a job container with defaults; the human output names it.
    let text = c.human(&["package", "assign", &id, "--computer", &ws1]);
    let first = c.containers().pop().unwrap();
    assert_eq!(
        text,
        format!(
            "package {id} assigned to 1 computer(s) in job container {}\n",
            first.id
        )
    );
    assert_eq!(first.name, "patch 1");
    assert_eq!(first.state, ContainerState::Running);

    let by_subnet: Assigned =
        serde_json::from_value(c.json(&["package", "assign", &id, "--subnet", "127.1.0.0/16"]))
            .unwrap();
    assert_eq!(by_subnet.package_id.as_str(), id);
    assert_eq!(by_subnet.assigned, vec![ws2.parse().unwrap()]);
    assert_eq!(by_subnet.unchanged, vec![ws1.parse().unwrap()]);
    let second = by_subnet.container_id.expect("a container for ws2");
    assert_ne!(second, first.id);
    let jobs = c.container(second.as_str()).jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].computer_id.as_str(), ws2);

    // Nobody left without a deployment under way: no container, and it says so.
    let text = c.human(&["package", "assign", &id, "--subnet", "127.1.0.0/16"]);
    assert_eq!(
        text,
        format!(
            "package {id}: no job container created, every computer already had a deployment under way: {ws1}, {ws2}\n"
        )
    );
    let text = c.human(&["package", "assign", &id, "--subnet", "10.9.0.0/16"]);
    assert_eq!(
        text,
        format!("package {id}: no computer matched, no job container created\n")
    );
    assert_eq!(c.containers().len(), 2);

    let text = c.human(&["package", "assign", &id, "--all"]);
    shows(
        &text,
        &[
            &format!("package {id} assigned to 1 computer(s) in job container "),
            "2 already had a deployment under way",
            &ws1,
            &ws2,
        ],
    );

    let stats = c.human(&["package", "stats", &id]);
    shows(&stats, &[&format!("package {id}"), "STATUS", "COMPUTERS"]);
    shows(row(&stats, "WAITING_NOTIFICATION"), &["3"]);
    for (ws, host) in [
        (&ws1, "ws-paris-1"),
        (&ws2, "ws-paris-2"),
        (&ws3, "ws-lyon-1"),
    ] {
        shows(row(&stats, ws), &[host, "WAITING_NOTIFICATION"]);
    }
    let s = c.json_is_get(&["package", "stats", &id], &format!("/packages/{id}/stats"));
    assert_eq!(s["counts"], json!({"WAITING_NOTIFICATION": 3}));
    assert_eq!(s["computers"].as_array().unwrap().len(), 3);
    // No relay serves them: one site line, "-", nothing downloaded yet.
    shows(&stats, &["SITE", "FROM RELAYS", "FROM CENTRAL"]);
    assert_eq!(
        s["sites"],
        json!([{"site": null, "computers": 3, "bytes_from_relays": 0,
                "bytes_from_central": 0, "relays": {}}])
    );

    // Several --computer flags, to a second package.
    let other = c.command_package("other");
    let a = c.json(&[
        "package",
        "assign",
        &other,
        "--computer",
        &ws1,
        "--computer",
        &ws3,
    ]);
    assert_eq!(a["assigned"], json!([ws1, ws3]));
    let s = c.json_is_get(
        &["package", "stats", &other],
        &format!("/packages/{other}/stats"),
    );
    assert_eq!(s["counts"], json!({"WAITING_NOTIFICATION": 2}));
}

#[test]
fn package_assign_errors_name_the_problem() {
    let c = Central::start();
    let ws = c.enroll("ws-1", "linux", &["127.1.0.5"]);
    let id = c.command_package("patch");
    fail(
        c.run(&["package", "assign", &id, "--computer", "ghost-1234"]),
        &["ghost-1234"],
    );
    fail(
        c.run(&["package", "assign", &id, "--subnet", "10.0.0.0/33"]),
        &["10.0.0.0/33"],
    );
    // No target at all.
    fail(c.run(&["package", "assign", &id]), &["--computer"]);
    // Two targets: a usage error.
    fail(
        c.run(&["package", "assign", &id, "--all", "--computer", &ws]),
        &["--all"],
    );
    let s = c.get(&format!("/packages/{id}/stats"));
    assert_eq!(s["counts"], json!({}));
}

#[test]
fn computer_list_shows_enrolled_computers() {
    let c = Central::start();
    assert_eq!(
        c.json_is_get(&["computer", "list"], "/computers"),
        json!([])
    );
    let ws1 = c.enroll("ws-paris-1", "linux", &["127.1.0.5", "::1"]);
    let ws2 = c.enroll("kiosk", "windows", &["127.2.0.9"]);

    let text = c.human(&["computer", "list"]);
    shows(
        &text,
        &["COMPUTER", "HOSTNAME", "OS", "ADDRESSES", "LAST SEEN"],
    );
    shows(row(&text, &ws1), &["ws-paris-1", "linux", "127.1.0.5, ::1"]);
    shows(row(&text, &ws2), &["kiosk", "windows", "127.2.0.9"]);

    let list = c.json_is_get(&["computer", "list"], "/computers");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let one = list.iter().find(|x| x["id"] == ws1.as_str()).unwrap();
    assert_eq!(one["hostname"], "ws-paris-1");
    assert_eq!(one["os"], "linux");
    assert_eq!(one["addresses"], json!(["127.1.0.5", "::1"]));
    assert!(one["last_seen"].is_string(), "{one}");
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn priority_11_is_refused() {
    let c = Central::start();
    let out = c.run(&[
        "package",
        "create",
        "--name",
        "late",
        "--version",
        "1",
        "--action",
        "execute",
        "--command",
        "true",
        "--priority",
        "11",
    ]);
    fail(out, &["priority", "11"]);
    fail(
        c.run(&[
            "package",
            "create",
            "--name",
            "late",
            "--version",
            "1",
            "--action",
            "execute",
            "--command",
            "true",
            "--priority",
            "soon",
        ]),
        &["priority", "soon"],
    );
    fail(
        c.run(&[
            "package",
            "create",
            "--name",
            "late",
            "--version",
            "1",
            "--action",
            "execute",
            "--command",
            "true",
            "--fragment-size",
            "64KB/s",
        ]),
        &["fragment_size", "64KB/s"],
    );
    fail(
        c.run(&[
            "package",
            "create",
            "--name",
            "late",
            "--version",
            "1",
            "--action",
            "execute",
            "--command",
            "true",
            "--success-codes",
            "0,ok",
        ]),
        &["ok"],
    );
    assert!(c.package_ids().is_empty());
}

/// The notify options go into the package (and its signed info), and `package
/// show` displays them.
#[test]
fn package_create_with_notify_options_and_show() {
    let c = Central::start();
    let p = c.json(&[
        "package",
        "create",
        "--name",
        "firefox",
        "--version",
        "128",
        "--action",
        "execute",
        "--command",
        "install-firefox",
        "--notify-text",
        "Firefox is updated. Save your work.",
        "--notify-countdown",
        "5m",
        "--notify-can-abort",
        "--notify-can-delay",
        "--done-action-text",
        "Firefox 128 is installed.",
    ]);
    assert_eq!(
        p["notify"],
        json!({"text": "Firefox is updated. Save your work.", "countdown_s": 300,
               "can_abort": true, "can_delay": true})
    );
    assert_eq!(p["done_action_text"], "Firefox 128 is installed.");
    let id = p["id"].as_str().unwrap();
    assert_eq!(c.get(&format!("/packages/{id}")), p);
    let shown = c.human(&["package", "show", id]);
    shows(
        row(&shown, "notify "),
        &["Firefox is updated. Save your work."],
    );
    shows(row(&shown, "notify countdown"), &["5m"]);
    shows(row(&shown, "user may"), &["continue, abort, delay"]);
    shows(row(&shown, "done text"), &["Firefox 128 is installed."]);

    // A text alone: no countdown, and the user may only go on.
    let p = c.json(&[
        "package",
        "create",
        "--name",
        "tool",
        "--version",
        "1",
        "--action",
        "execute",
        "--command",
        "x",
        "--notify-text",
        "Installing tool",
    ]);
    assert_eq!(
        p["notify"],
        json!({"text": "Installing tool", "countdown_s": 0, "can_abort": false, "can_delay": false})
    );
    let shown = c.human(&["package", "show", p["id"].as_str().unwrap()]);
    shows(row(&shown, "notify countdown"), &["none"]);
    shows(row(&shown, "user may"), &["continue"]);
    assert!(!row(&shown, "user may").contains("abort"), "{shown}");
    shows(row(&shown, "done text"), &["-"]);

    // Without notify options.
    let quiet = c.command_package("quiet");
    let shown = c.human(&["package", "show", &quiet]);
    let words: Vec<&str> = row(&shown, "notify")
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect();
    assert_eq!(words, ["notify", "-"], "{shown}");
    assert!(!shown.contains("user may"), "{shown}");
}

#[test]
fn package_create_notify_errors_name_the_problem() {
    let c = Central::start();
    let create = |extra: &[&str]| {
        let mut args = vec![
            "package",
            "create",
            "--name",
            "tool",
            "--version",
            "1",
            "--action",
            "execute",
            "--command",
            "x",
        ];
        args.extend_from_slice(extra);
        c.run(&args)
    };
    // What the user may answer means nothing without a text (refused by the CLI).
    for flag in [
        &["--notify-countdown", "5m"][..],
        &["--notify-can-abort"],
        &["--notify-can-delay"],
    ] {
        fail(create(flag), &[flag[0], "--notify-text"]);
    }
    // Central names the field and the token.
    fail(
        create(&["--notify-text", "hi", "--notify-countdown", "5 parsecs"]),
        &["notify_countdown", "5 parsecs"],
    );
    fail(
        create(&["--notify-text", "hi", "--notify-countdown", "3d"]),
        &["notify_countdown", "3d", "longer than a day"],
    );
    fail(create(&["--notify-text", " "]), &["notify_text", "empty"]);
    fail(
        create(&["--done-action-text", "bell\u{7}"]),
        &["done_action_text", "control"],
    );
    assert!(c.package_ids().is_empty());
}

#[test]
fn package_create_twice_conflicts() {
    let c = Central::start();
    c.command_package("dup");
    let out = c.run(&[
        "package",
        "create",
        "--name",
        "dup",
        "--version",
        "1",
        "--action",
        "execute",
        "--command",
        "true",
    ]);
    fail(out, &["409", "dup"]);
    assert_eq!(c.package_ids().len(), 1);
}

#[test]
fn unknown_package_id_is_named_by_every_command() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    let id = "no-such-package-42";
    for args in [
        vec!["package", "show", id],
        vec!["package", "delete", id],
        vec!["package", "stats", id],
        vec!["package", "activate", id, "--site", "paris"],
        vec!["package", "assign", id, "--all"],
    ] {
        fail(c.run(&args), &[id, "404"]);
        let mut json_args = vec!["--json"];
        json_args.extend(&args);
        fail(c.run(&json_args), &[id]);
    }
}

#[test]
fn ids_that_are_not_package_ids_are_named_and_never_reroute() {
    // Ids go into the URL path; whatever they hold, the request must stay on
    // the package's route, fail, and the error must name the id the admin typed
    // (SPEC: errors name the bad field or token).
    let c = Central::start();
    let keep = c.command_package("keep");
    let mut misnamed = Vec::new();
    for id in ["a/b", "../packages", "x y", "%2e%2e", ".", ".."] {
        for args in [
            vec!["package", "show", id],
            vec!["package", "stats", id],
            vec!["package", "delete", id],
            vec!["package", "activate", id, "--all-sites"],
            vec!["package", "assign", id, "--all"],
        ] {
            let err = fail(c.run(&args), &[]);
            if !err.contains(&format!("'{id}'")) {
                misnamed.push(format!("`sitecast {}`: {}", args.join(" "), err.trim()));
            }
        }
    }
    assert_eq!(c.package_ids(), vec![keep]);
    assert!(
        misnamed.is_empty(),
        "errors that do not name the id:\n{}",
        misnamed.join("\n")
    );
}

#[test]
fn wrong_token_is_refused_with_401() {
    let c = Central::start();
    let out = output({
        let mut cmd = sitecast();
        cmd.args(["--url", &c.url, "--token", "not-the-admin-token", "--ca"])
            .arg(c.ca())
            .args(["site", "list"]);
        cmd
    });
    fail(out, &["401", "token"]);

    // The enroll token is not the admin token either.
    let out = output({
        let mut cmd = sitecast();
        cmd.args(["--url", &c.url, "--token", &c.enroll_token, "--ca"])
            .arg(c.ca())
            .args(["--json", "site", "add", "paris"]);
        cmd
    });
    fail(out, &["403", "admin token"]);
    assert_eq!(c.get("/sites"), json!([]));
}

#[test]
fn missing_connection_options_are_named() {
    let c = Central::start();
    let ca = c.ca();
    let ca = path_str(&ca);
    fail(output(with(&["site", "list"])), &["--url", "SITECAST_URL"]);
    fail(
        output(with(&["--url", &c.url, "--ca", ca, "site", "list"])),
        &["--token", "SITECAST_TOKEN"],
    );
    fail(
        output(with(&[
            "--url", &c.url, "--token", &c.token, "site", "list",
        ])),
        &["--ca", "SITECAST_CA"],
    );
    // Connection options belong before the command.
    fail(
        output(with(&[
            "site", "list", "--url", &c.url, "--token", &c.token, "--ca", ca,
        ])),
        &["--url"],
    );
}

fn with(args: &[&str]) -> Command {
    let mut cmd = sitecast();
    cmd.args(args);
    cmd
}

#[test]
fn unreachable_url_says_cannot_reach() {
    let c = Central::start();
    // A port that was just free: bind, note, release.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("https://{free}");
    let ca = c.ca();
    let err = fail(
        output(with(&[
            "--url",
            &url,
            "--token",
            &c.token,
            "--ca",
            path_str(&ca),
            "site",
            "list",
        ])),
        &["cannot reach", &url],
    );
    assert!(!err.contains(&c.token), "the token leaked: {err}");
}

#[test]
fn a_ca_that_did_not_issue_the_certificate_is_refused() {
    let c = Central::start();
    let other = Central::start();
    fail(
        output(with(&[
            "--url",
            &c.url,
            "--token",
            &c.token,
            "--ca",
            path_str(&other.ca()),
            "site",
            "list",
        ])),
        &["cannot reach", "certificate"],
    );
    let missing = c.dir.join("tls/nope.pem");
    fail(
        output(with(&[
            "--url",
            &c.url,
            "--token",
            &c.token,
            "--ca",
            path_str(&missing),
            "site",
            "list",
        ])),
        &[path_str(&missing)],
    );
}

#[test]
fn a_missing_file_is_named_and_nothing_is_created() {
    let c = Central::start();
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("does-not-exist.tar.gz");
    fail(
        c.run(&[
            "package",
            "create",
            "--name",
            "ghost",
            "--version",
            "1",
            "--file",
            path_str(&missing),
            "--action",
            "launch",
            "--command",
            "setup",
        ]),
        &[path_str(&missing)],
    );
    assert!(c.package_ids().is_empty());
}

// ---------------------------------------------------------------------------
// Where central is: --central-dir and the environment
// ---------------------------------------------------------------------------

#[test]
fn central_dir_reads_url_token_and_ca() {
    let c = Central::start();
    let dir = path_str(&c.dir);
    let out = ok(output(with(&[
        "--central-dir",
        dir,
        "site",
        "add",
        "paris",
        "--subnet",
        "127.1.0.0/16",
    ])));
    shows(&out.stdout, &["paris", "127.1.0.0/16"]);

    // `relay add --url` is the relay's URL, not central's.
    let out = ok(output(with(&[
        "--central-dir",
        dir,
        "--json",
        "relay",
        "add",
        "--site",
        "paris",
        "--subnet",
        "127.1.0.0/16",
        "--url",
        "http://127.1.0.1:8080",
    ])));
    let created = parse(&out.stdout);
    let relays = c.get("/relays");
    assert_eq!(relays[0]["id"], created["id"]);
    assert_eq!(relays[0]["url"], "http://127.1.0.1:8080");

    let out = ok(output(with(&[
        "--central-dir",
        dir,
        "--json",
        "site",
        "list",
    ])));
    let (_, body) = c.get_raw("/sites");
    assert_eq!(out.stdout, format!("{body}\n"));

    // A central listening on every address is reached on loopback.
    let config = c.dir.join("central.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let port = c.url.rsplit(':').next().unwrap();
    let listen = format!("api_listen = \"127.0.0.1:{port}\"");
    assert!(text.contains(&listen), "{text}");
    std::fs::write(
        &config,
        text.replace(&listen, &format!("api_listen = \"0.0.0.0:{port}\"")),
    )
    .unwrap();
    let out = ok(output(with(&["--central-dir", dir, "site", "list"])));
    shows(&out.stdout, &["paris"]);

    // --central-dir and explicit connection flags are exclusive.
    fail(
        output(with(&[
            "--central-dir",
            dir,
            "--url",
            &c.url,
            "site",
            "list",
        ])),
        &["--central-dir", "--url"],
    );
}

#[test]
fn central_dir_that_is_not_a_central_is_named() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("nowhere");
    fail(
        output(with(&["--central-dir", path_str(&dir), "site", "list"])),
        &[path_str(&dir.join("central.toml"))],
    );
}

#[test]
fn central_dir_wins_over_the_environment() {
    // An admin with SITECAST_* exported for one central addresses another
    // with --central-dir: the explicit flag is what counts.
    let c = Central::start();
    let other = Central::start();
    other.site("elsewhere", "127.9.0.0/16");
    let mut cmd = with(&["--central-dir", path_str(&c.dir), "--json", "site", "list"]);
    cmd.env("SITECAST_URL", &other.url)
        .env("SITECAST_TOKEN", &other.token)
        .env("SITECAST_CA", other.ca());
    let out = ok(output(cmd));
    assert_eq!(parse(&out.stdout), json!([]));
}

#[test]
fn environment_variables_locate_central() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    let env = |cmd: &mut Command| {
        cmd.env("SITECAST_URL", &c.url)
            .env("SITECAST_TOKEN", &c.token)
            .env("SITECAST_CA", c.ca());
    };

    let mut cmd = with(&["site", "list"]);
    env(&mut cmd);
    shows(&ok(output(cmd)).stdout, &["paris", "127.1.0.0/16"]);

    let mut cmd = with(&["--json", "site", "list"]);
    env(&mut cmd);
    let (_, body) = c.get_raw("/sites");
    assert_eq!(ok(output(cmd)).stdout, format!("{body}\n"));

    // Flags win over the environment.
    let mut cmd = with(&["--token", &c.token, "site", "list"]);
    env(&mut cmd);
    cmd.env("SITECAST_TOKEN", "wrong-token");
    ok(output(cmd));
    let mut cmd = with(&["site", "list"]);
    env(&mut cmd);
    cmd.env("SITECAST_TOKEN", "wrong-token");
    fail(output(cmd), &["401"]);

    // A token read from a file keeps its newline; that is fine.
    let mut cmd = with(&["site", "list"]);
    env(&mut cmd);
    cmd.env("SITECAST_TOKEN", format!("{}\n", c.token));
    shows(&ok(output(cmd)).stdout, &["paris"]);

    // The environment fills in what the flags leave out.
    let mut cmd = with(&["--url", &c.url, "site", "list"]);
    cmd.env("SITECAST_TOKEN", &c.token)
        .env("SITECAST_CA", c.ca());
    shows(&ok(output(cmd)).stdout, &["paris"]);

    // A trailing slash on the URL is fine.
    let mut cmd = with(&["site", "list"]);
    env(&mut cmd);
    cmd.env("SITECAST_URL", format!("{}/", c.url));
    shows(&ok(output(cmd)).stdout, &["paris"]);

    // The admin token never appears in --help, even when it comes from the environment.
    let mut cmd = with(&["--help"]);
    env(&mut cmd);
    let help = ok(output(cmd)).stdout;
    shows(
        &help,
        &["--central-dir", "--url", "--token", "--ca", "--json"],
    );
    assert!(!help.contains(&c.token), "{help}");
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

impl Central {
    /// Enrolls a computer through the agent API; returns its id and token.
    fn enroll_agent(&self, hostname: &str, address: &str) -> (String, String) {
        self.rt().block_on(async {
            let resp = self
                .http
                .post(format!("{}/api/v1/agent/enroll", self.url))
                .json(&json!({
                    "enroll_token": self.enroll_token,
                    "hostname": hostname,
                    "os": "linux",
                    "addresses": [address],
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            (
                v["computer_id"].as_str().unwrap().to_owned(),
                v["token"].as_str().unwrap().to_owned(),
            )
        })
    }

    /// An agent's POST to an agent route, which must succeed.
    fn agent_post(&self, token: &str, path: &str, body: Value) {
        self.rt().block_on(async {
            let resp = self
                .http
                .post(format!("{}/api/v1{path}", self.url))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            assert!(status.is_success(), "POST {path}: {status}");
        })
    }
}

#[test]
fn package_validate_clears_success_and_unassigns_the_not_notified() {
    let c = Central::start();
    let id = c.command_package("patch");
    let (done, done_token) = c.enroll_agent("ws-done", "127.1.0.5");
    let (waiting, _) = c.enroll_agent("ws-waiting", "127.1.0.6");
    let (notified, notified_token) = c.enroll_agent("ws-notified", "127.1.0.7");
    ok(c.run(&["package", "assign", &id, "--all"]));
    for token in [&done_token, &notified_token] {
        c.agent_post(token, "/agent/poll", json!({"addresses": []}));
    }
    c.agent_post(
        &done_token,
        &format!("/agent/packages/{id}/status"),
        json!({"code": "SUCCESS", "exit_code": 0}),
    );
    let s = c.json_is_get(&["package", "stats", &id], &format!("/packages/{id}/stats"));
    assert_eq!(
        s["by_status"],
        json!({"WAITING_NOTIFICATION": [waiting], "NOTIFIED": [notified], "SUCCESS": [done]})
    );

    // Exactly one of --success, --not-notified, --all.
    fail(c.run(&["package", "validate", &id]), &["--success"]);
    fail(
        c.run(&["package", "validate", &id, "--success", "--all"]),
        &["--success", "--all"],
    );
    fail(
        c.run(&["package", "validate", &id, "--not-notified", "--success"]),
        &["--not-notified"],
    );
    assert_eq!(
        c.get(&format!("/packages/{id}/stats"))["by_status"],
        s["by_status"]
    );

    let text = c.human(&["package", "validate", &id, "--success"]);
    assert_eq!(
        text,
        format!("validated package {id}: removed 1 SUCCESS; 2 remaining\n")
    );

    let v = c.json(&["package", "validate", &id, "--not-notified"]);
    assert_eq!(
        v,
        json!({"package_id": id, "removed": {"WAITING_NOTIFICATION": 1}, "remaining": 1})
    );

    let text = c.human(&["package", "validate", &id, "--all"]);
    assert_eq!(
        text,
        format!("validated package {id}: removed nothing; 1 remaining\n")
    );
    let s = c.get(&format!("/packages/{id}/stats"));
    assert_eq!(s["counts"], json!({"NOTIFIED": 1}));
    assert_eq!(s["by_status"], json!({"NOTIFIED": [notified]}));

    // An unknown package is named.
    fail(
        c.run(&["package", "validate", "no-such-package", "--all"]),
        &["no-such-package"],
    );
}

// ---------------------------------------------------------------------------
// A computer's packages (OCO's computer page, "Remove assignment")
// ---------------------------------------------------------------------------

#[test]
fn computer_show_lists_packages_and_remove_assignment_forgets_one() {
    let c = Central::start();
    let zlib = c.command_package("zlib");
    let app = c.command_package("app");
    let (ws1, ws1_token) = c.enroll_agent("ws-1", "127.1.0.5");
    let (ws2, _) = c.enroll_agent("ws-2", "127.1.0.6");
    ok(c.run(&["package", "assign", &zlib, "--all"]));
    ok(c.run(&["package", "assign", &app, "--computer", &ws1]));
    c.agent_post(&ws1_token, "/agent/poll", json!({"addresses": []}));
    for (id, body) in [
        (&zlib, json!({"code": "SUCCESS", "exit_code": 0})),
        (&app, json!({"code": "ERR_EXIT_CODE", "exit_code": 2})),
    ] {
        c.agent_post(&ws1_token, &format!("/agent/packages/{id}/status"), body);
    }

    let shown = c.json_is_get(&["computer", "show", &ws1], &format!("/computers/{ws1}"));
    assert_eq!(shown["hostname"], "ws-1");
    let packages: Vec<(&str, bool)> = shown["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["package_id"].as_str().unwrap(),
                p["installed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(packages, vec![(app.as_str(), false), (zlib.as_str(), true)]);
    let detail: ComputerDetail = serde_json::from_value(shown).unwrap();
    let installed_at = detail.packages[1]
        .installed_at
        .expect("zlib's install time");
    assert_eq!(detail.packages[0].installed_at, None);
    // One job per assignment, each in its own container.
    let jobs: Vec<(&str, &str, StatusCode, Option<i32>)> = detail
        .jobs
        .iter()
        .map(|j| {
            (
                j.package_id.as_str(),
                j.package_name.as_str(),
                j.status,
                j.exit_code,
            )
        })
        .collect();
    assert_eq!(jobs.len(), 2);
    assert!(jobs.contains(&(zlib.as_str(), "zlib", StatusCode::Success, Some(0))));
    assert!(jobs.contains(&(app.as_str(), "app", StatusCode::ErrExitCode, Some(2))));

    let text = c.human(&["computer", "show", &ws1]);
    shows(row(&text, "hostname"), &["ws-1"]);
    shows(row(&text, "addresses"), &["127.1.0.5"]);
    shows(
        &text,
        &[
            "PACKAGE",
            "NAME",
            "VERSION",
            "STATUS",
            "INSTALLED",
            "INSTALLED AT",
            "UPDATED",
        ],
    );
    let installed_at = installed_at.strftime("%Y-%m-%d %H:%M:%S").to_string();
    shows(
        row(&text, &zlib),
        &["zlib", "1", "SUCCESS", "yes", &installed_at],
    );
    shows(row(&text, &app), &["ERR_EXIT_CODE", "no", " - "]);
    // Then its jobs: container, order, package by name and version, kind, status, exit.
    shows(&text, &["CONTAINER", "#", "KIND", "EXIT"]);
    for (job, status, exit) in [("zlib 1", "SUCCESS", "0"), ("app 1", "ERR_EXIT_CODE", "2")] {
        let j = detail
            .jobs
            .iter()
            .find(|j| format!("{} {}", j.package_name, j.package_version) == job)
            .unwrap();
        let line = row(&text, j.container_id.as_str());
        shows(line, &[job, "install", status, exit]);
        assert!(line.contains(&format!(" {} ", j.order)), "{line}");
    }

    let text = c.human(&["computer", "remove-assignment", &ws1, "--package", &zlib]);
    assert_eq!(
        text,
        format!("removed the assignment of {zlib} from {ws1}\n")
    );
    // --json prints the body of the 204: nothing.
    let mut cmd = c.cli();
    cmd.args([
        "--json",
        "computer",
        "remove-assignment",
        &ws1,
        "--package",
        &app,
    ]);
    assert_eq!(ok(output(cmd)).stdout, "");

    assert_eq!(c.get(&format!("/computers/{ws1}"))["packages"], json!([]));
    // Its jobs went with the assignments: no jobs table.
    let text = c.human(&["computer", "show", &ws1]);
    assert!(!text.contains("CONTAINER"), "{text}");
    let other = c.get(&format!("/computers/{ws2}"));
    assert_eq!(other["packages"][0]["package_id"], zlib.as_str());
    assert_eq!(
        c.get(&format!("/packages/{zlib}/stats"))["by_status"],
        json!({"WAITING_NOTIFICATION": [ws2]})
    );

    // What is missing is named; ids that are not ids never reach another route.
    fail(
        c.run(&["computer", "remove-assignment", &ws1, "--package", &zlib]),
        &["assignment", &zlib, &ws1],
    );
    fail(
        c.run(&["computer", "show", "pc-gone"]),
        &["computer", "pc-gone"],
    );
    fail(
        c.run(&[
            "computer",
            "remove-assignment",
            &ws1,
            "--package",
            "no-such-package",
        ]),
        &["package", "no-such-package"],
    );
    fail(c.run(&["computer", "show", ".."]), &["'..'"]);
    fail(
        c.run(&["computer", "remove-assignment", &ws1, "--package", "../x"]),
        &["'../x'"],
    );

    // Deleting a computer: named in the answer, gone from the list, then missing.
    let text = c.human(&["computer", "delete", &ws1]);
    assert_eq!(
        text,
        format!("deleted computer {ws1}; its token no longer works\n")
    );
    let listed = c.human(&["computer", "list"]);
    assert!(!listed.contains(&ws1) && listed.contains(&ws2), "{listed}");
    fail(c.run(&["computer", "delete", &ws1]), &["computer", &ws1]);

    // Approving an approved computer changes nothing; rejecting one deletes it.
    let text = c.human(&["computer", "approve", &ws2]);
    assert!(text.contains(&ws2), "{text}");
    assert_eq!(c.get(&format!("/computers/{ws2}"))["approval"], "approved");
    let text = c.human(&["computer", "reject", &ws2]);
    assert_eq!(
        text,
        format!("rejected computer {ws2}: deleted, its token no longer works\n")
    );
    fail(c.run(&["computer", "approve", &ws2]), &["computer", &ws2]);
}

#[test]
fn enroll_tokens_are_created_listed_and_deleted() {
    let c = Central::start();
    let text = c.human(&[
        "enroll-token",
        "create",
        "--uses",
        "50",
        "--expires",
        "7d",
        "--tag",
        "kiosk",
    ]);
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token in {text}"))
        .to_owned();
    assert_eq!(token.len(), 64, "{text}");
    let listed = c.human(&["enroll-token", "list"]);
    let id = listed
        .split_whitespace()
        .find(|w| w.starts_with("et-"))
        .unwrap_or_else(|| panic!("{listed}"))
        .to_owned();
    shows(row(&listed, &id), &["0", "50", "kiosk"]);
    assert!(!listed.contains(&token), "the secret is listed: {listed}");
    assert_eq!(
        c.human(&["enroll-token", "delete", &id]),
        format!("deleted enroll token {id}; it enrolls nobody from now on\n")
    );
    fail(
        c.run(&["enroll-token", "delete", &id]),
        &["enroll token", &id],
    );
    fail(c.run(&["enroll-token", "delete", "../x"]), &["'../x'"]);
    fail(
        c.run(&["enroll-token", "create", "--expires", "soon"]),
        &["expires", "soon"],
    );
}

// ---------------------------------------------------------------------------
// Job containers (SPEC "Jobs", OCO)
// ---------------------------------------------------------------------------

/// The line of a table that mentions every one of `keys`.
#[track_caller]
fn row_with<'a>(text: &'a str, keys: &[&str]) -> &'a str {
    text.lines()
        .find(|l| keys.iter().all(|k| l.contains(k)))
        .unwrap_or_else(|| panic!("no row with {keys:?}:\n{text}"))
}

/// The value of `key` in a key-value table (`│ key   value │`).
#[track_caller]
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| {
            l.trim_start_matches(['│', ' '])
                .strip_prefix(key)
                .filter(|rest| rest.starts_with("  "))
                .map(|rest| rest.trim_end_matches(['│', ' ']).trim())
        })
        .unwrap_or_else(|| panic!("no field {key:?}:\n{text}"))
}

/// Whether a runtime cell holds an approximate runtime with a value (`~12s`), as
/// OCO shows runtimes while jobs are unfinished.
fn approximate(cell: &str) -> bool {
    cell.split_whitespace().any(|w| {
        w.strip_prefix('~')
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

#[test]
fn container_create_list_show_retry_cancel_delete() {
    let c = Central::start();
    let (ws1, ws1_token) = c.enroll_agent("ws-paris-1", "127.1.0.5");
    let (ws2, _) = c.enroll_agent("ws-paris-2", "127.1.0.6");
    let zlib = c.command_package("zlib");
    let app = c.command_package("app");

    // Created with every option; the human output is the container as `show` has it.
    let text = c.human(&[
        "container",
        "create",
        "--name",
        "Evening patch",
        "--description",
        "zlib, then the app",
        "--package",
        &format!("{zlib},{app}"),
        "--computer",
        &ws1,
        "--computer",
        &ws2,
        "--priority",
        "-5",
        "--end",
        "2099-01-01T00:00:00Z",
        "--ip-ranges",
        "127.0.0.0/8",
        "--time-frames",
        "0:00-23:59",
        "--sequence",
        "abort_after_failed",
        "--no-auto-uninstall",
        "--retry-backoff",
        "10m",
    ]);
    let [listed] = c.containers().try_into().unwrap();
    let id = listed.id.to_string();
    shows(field(&text, "id"), &[&id]);
    shows(field(&text, "name"), &["Evening patch"]);
    shows(field(&text, "description"), &["zlib, then the app"]);
    assert_eq!(field(&text, "state"), "running");
    assert_eq!(field(&text, "priority"), "-5");
    shows(field(&text, "end"), &["2099-01-01 00:00:00"]);
    shows(field(&text, "ip ranges"), &["127.0.0.0/8"]);
    shows(field(&text, "time frames"), &["0:00-23:59"]);
    assert_eq!(field(&text, "sequence"), "abort_after_failed");
    assert_eq!(field(&text, "retries"), "0, backoff 10m (doubling)");
    assert_eq!(field(&text, "auto uninstall"), "no");
    assert_eq!(field(&text, "cancelled"), "no");
    // No job has ended: the runtimes are "~" alone.
    for key in ["total runtime", "effective runtime"] {
        assert_eq!(field(&text, key), "~", "{text}");
    }
    shows(
        field(&text, "jobs"),
        &["0/4 done", "WAITING_NOTIFICATION 4"],
    );
    shows(
        row_with(&text, &[&ws1, "zlib 1"]),
        &[
            "ws-paris-1",
            " 1 ",
            "install",
            "WAITING_NOTIFICATION",
            " 0 ",
        ],
    );
    shows(row_with(&text, &[&ws2, "app 1"]), &[" 2 ", "install"]);

    // --json show is the API's body; it parses back into the wire type.
    let shown: Container = serde_json::from_value(
        c.json_is_get(&["container", "show", &id], &format!("/containers/{id}")),
    )
    .unwrap();
    assert_eq!(shown.name, "Evening patch");
    assert_eq!(shown.priority, -5);
    assert_eq!(shown.state, ContainerState::Running);
    assert_eq!(shown.sequence, Sequence::AbortAfterFailed);
    assert!(!shown.auto_uninstall);
    assert_eq!(shown.retries, 0);
    assert_eq!(shown.retry_backoff.to_string(), "10m");
    assert_eq!(shown.end_at, Some("2099-01-01T00:00:00Z".parse().unwrap()));
    assert_eq!(
        shown.ip_ranges.as_ref().map(ToString::to_string).as_deref(),
        Some("127.0.0.0/8")
    );
    assert!(!shown.runtimes.finished);
    let plan: Vec<(&str, u32, &str, JobKind)> = shown
        .jobs
        .iter()
        .map(|j| {
            (
                j.computer_id.as_str(),
                j.order,
                j.package_id.as_str(),
                j.kind,
            )
        })
        .collect();
    for job in [
        (ws1.as_str(), 1, zlib.as_str(), JobKind::Install),
        (ws1.as_str(), 2, app.as_str(), JobKind::Install),
        (ws2.as_str(), 1, zlib.as_str(), JobKind::Install),
        (ws2.as_str(), 2, app.as_str(), JobKind::Install),
    ] {
        assert!(plan.contains(&job), "{job:?} not in {plan:?}");
    }
    assert_eq!(plan.len(), 4);

    // The list: one line per container; --json is the API's body, without jobs.
    let list = c.human(&["container", "list"]);
    shows(
        &list,
        &[
            "CONTAINER",
            "NAME",
            "STATE",
            "PRIORITY",
            "START",
            "END",
            "JOBS",
            "TOTAL RUNTIME",
            "EFFECTIVE RUNTIME",
        ],
    );
    shows(
        row(&list, &id),
        &[
            "Evening patch",
            "running",
            "-5",
            "2099-01-01 00:00:00",
            "0/4 done",
            " ~ ",
        ],
    );
    let listed: Vec<Container> =
        serde_json::from_value(c.json_is_get(&["container", "list"], "/containers")).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].jobs.is_empty());

    // ws1 runs its first job and fails: with abort_after_failed its second job
    // fails too, and the runtimes get a value, still approximate.
    c.agent_post(&ws1_token, "/agent/poll", json!({"addresses": []}));
    c.agent_post(
        &ws1_token,
        &format!("/agent/packages/{zlib}/status"),
        json!({"code": "ERR_EXIT_CODE", "exit_code": 3}),
    );
    let text = c.human(&["container", "show", &id]);
    shows(
        row_with(&text, &[&ws1, "zlib 1"]),
        &["ERR_EXIT_CODE", " 3 ", " 1 "],
    );
    shows(row_with(&text, &[&ws1, "app 1"]), &["ERR_PREVIOUS_FAILED"]);
    shows(
        row_with(&text, &[&ws2, "zlib 1"]),
        &["WAITING_NOTIFICATION"],
    );
    shows(field(&text, "jobs"), &["2/4 done, 2 failed"]);
    for key in ["total runtime", "effective runtime"] {
        assert!(approximate(field(&text, key)), "{text}");
    }
    assert!(approximate(row(&c.human(&["container", "list"]), &id)));

    // Retry renews the failed jobs.
    let text = c.human(&["container", "retry", &id]);
    assert_eq!(text, format!("container {id}: 2 failed job(s) renewed\n"));
    let after = c.container(&id);
    assert_eq!(
        after.counts.get(&StatusCode::WaitingNotification),
        Some(&4),
        "{:?}",
        after.counts
    );

    // ws1 starts its first job again; cancelling leaves it running and cancels the 3 others.
    c.agent_post(&ws1_token, "/agent/poll", json!({"addresses": []}));
    c.agent_post(
        &ws1_token,
        &format!("/agent/packages/{zlib}/status"),
        json!({"code": "DOWNLOADING"}),
    );
    let mut cmd = c.cli();
    cmd.args(["--json", "container", "cancel", &id]);
    let out = ok(output(cmd));
    let cancelled: ContainerChanged = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(cancelled.container_id.as_str(), id);
    assert_eq!(cancelled.jobs, 3);
    let text = c.human(&["container", "show", &id]);
    assert_eq!(field(&text, "state"), "cancelled");
    assert_ne!(field(&text, "cancelled"), "no", "{text}");
    shows(row_with(&text, &[&ws1, "zlib 1"]), &["DOWNLOADING"]);
    shows(row_with(&text, &[&ws2, "app 1"]), &["ERR_ABORTED"]);
    shows(field(&text, "jobs"), &["3/4 done, 3 failed"]);
    // Cancelling again finds nothing left to cancel, and says so.
    assert_eq!(
        c.human(&["container", "cancel", &id]),
        format!(
            "container {id} cancelled: 0 job(s) not yet started cancelled (jobs under way run to their end)\n"
        )
    );
    // Retrying a cancelled container renews its cancelled jobs and reopens it.
    let mut cmd = c.cli();
    cmd.args(["--json", "container", "retry", &id]);
    let renewed: ContainerChanged = serde_json::from_str(&ok(output(cmd)).stdout).unwrap();
    assert_eq!(renewed.jobs, 3);
    assert_eq!(c.container(&id).state, ContainerState::Running);

    // Delete: gone from the API; --json prints the 204's empty body.
    let other = c.json(&[
        "container",
        "create",
        "--name",
        "other",
        "--package",
        &app,
        "--all",
    ]);
    let other = other["id"].as_str().unwrap().to_owned();
    assert_eq!(
        c.human(&["container", "delete", &id]),
        format!("deleted container {id}\n")
    );
    assert_eq!(c.get_raw(&format!("/containers/{id}")).0, 404);
    let mut cmd = c.cli();
    cmd.args(["--json", "container", "delete", &other]);
    assert_eq!(ok(output(cmd)).stdout, "");
    assert!(c.containers().is_empty());
    fail(c.run(&["container", "show", &id]), &["container", &id]);
    fail(c.run(&["container", "delete", &id]), &["container", &id]);
    fail(c.run(&["container", "retry", &id]), &["container", &id]);
    fail(c.run(&["container", "cancel", &id]), &["container", &id]);
}

#[test]
fn container_create_targets_a_subnet_and_starts_later() {
    let c = Central::start();
    let (ws1, _) = c.enroll_agent("ws-paris-1", "127.1.0.5");
    let (_, _) = c.enroll_agent("ws-lyon-1", "127.2.0.5");
    let zlib = c.command_package("zlib");
    // A start in central's time zone (`YYYY-MM-DD HH:MM`), far ahead: waiting.
    let created: Container = serde_json::from_value(c.json(&[
        "container",
        "create",
        "--name",
        "later",
        "--package",
        &zlib,
        "--subnet",
        "127.1.0.0/16",
        "--start",
        "2099-06-01 18:00",
        "--priority",
        "7",
        "--retries",
        "2",
    ]))
    .unwrap();
    assert_eq!(created.state, ContainerState::Waiting);
    assert_eq!(created.start_at.strftime("%Y-%m").to_string(), "2099-06");
    assert_eq!(created.priority, 7);
    assert_eq!(created.retries, 2);
    assert!(created.auto_uninstall);
    let computers: Vec<&str> = created
        .jobs
        .iter()
        .map(|j| j.computer_id.as_str())
        .collect();
    assert_eq!(computers, vec![ws1.as_str()]);
    let list = c.human(&["container", "list"]);
    shows(
        row(&list, created.id.as_str()),
        &["later", "waiting", " 7 ", "0/1 done"],
    );
    shows(
        field(
            &c.human(&["container", "show", created.id.as_str()]),
            "retries",
        ),
        &["2, backoff 5m"],
    );
}

#[test]
fn container_create_errors_name_the_bad_token() {
    let c = Central::start();
    let ws = c.enroll("ws-1", "linux", &["127.1.0.5"]);
    let zlib = c.command_package("zlib");
    let create = |extra: &[&str]| {
        let mut args = vec![
            "container",
            "create",
            "--name",
            "n",
            "--package",
            zlib.as_str(),
            "--computer",
            ws.as_str(),
        ];
        args.extend_from_slice(extra);
        c.run(&args)
    };
    // Central refuses, naming the field and the token.
    fail(
        create(&["--ip-ranges", "10.0.0.0/33"]),
        &["ip_ranges", "10.0.0.0/33"],
    );
    fail(
        create(&["--time-frames", "MON 25:00-26:00"]),
        &["time_frames", "25:00"],
    );
    fail(create(&["--start", "tomorrow"]), &["start", "'tomorrow'"]);
    fail(create(&["--end", "2026-13-01"]), &["end", "'2026-13-01'"]);
    fail(
        create(&[
            "--start",
            "2099-01-02T00:00:00Z",
            "--end",
            "2099-01-01T00:00:00Z",
        ]),
        &["end_at", "after"],
    );
    fail(
        create(&["--retry-backoff", "soon"]),
        &["retry_backoff", "soon"],
    );
    fail(create(&["--retries", "1000"]), &["retries", "1000"]);
    // zlib has no uninstall procedure.
    fail(create(&["--uninstall"]), &["uninstall", &zlib]);
    fail(
        c.run(&[
            "container",
            "create",
            "--name",
            "n",
            "--package",
            "ghost-1",
            "--all",
        ]),
        &["package", "ghost-1"],
    );
    fail(
        c.run(&[
            "container",
            "create",
            "--name",
            "n",
            "--package",
            &zlib,
            "--computer",
            "pc-ghost",
        ]),
        &["computer", "pc-ghost"],
    );
    fail(
        c.run(&[
            "container",
            "create",
            "--name",
            "n",
            "--package",
            &zlib,
            "--subnet",
            "10.0.0.0/33",
        ]),
        &["10.0.0.0/33"],
    );

    // clap refuses before anything is sent: usage errors, exit code 2.
    let usage = |out: Output, words: &[&str]| {
        assert_eq!(out.code, Some(2), "{out:#?}");
        fail(out, words);
    };
    usage(create(&["--sequence", "abort"]), &["'abort'", "--sequence"]);
    usage(create(&["--priority", "high"]), &["'high'", "--priority"]);
    usage(
        c.run(&["container", "create", "--package", &zlib, "--all"]),
        &["--name"],
    );
    usage(
        c.run(&["container", "create", "--name", "n", "--all"]),
        &["--package"],
    );
    usage(
        c.run(&["container", "create", "--name", "n", "--package", &zlib]),
        &["--computer", "--all", "--subnet"],
    );
    usage(create(&["--all"]), &["--all", "--computer"]);
    usage(
        c.run(&[
            "container",
            "create",
            "--name",
            "n",
            "--package",
            &zlib,
            "--tag",
            "alpha",
            "--computer",
            "pc-1",
        ]),
        &["--computer", "--tag"],
    );
    usage(
        create(&["--uninstall", "--no-auto-uninstall"]),
        &["--uninstall", "--no-auto-uninstall"],
    );
    assert!(c.containers().is_empty());

    // Ids that are not container ids never reach another route.
    fail(c.run(&["container", "show", ".."]), &["'..'"]);
    fail(c.run(&["container", "retry", "../x"]), &["'../x'"]);
    fail(
        c.run(&["container", "show", "ghost-1"]),
        &["container", "ghost-1"],
    );
}

// ---------------------------------------------------------------------------
// Versions (supersedes) and deactivation (OCS's red cross)
// ---------------------------------------------------------------------------

impl Central {
    /// Creates version `version` of the command package `name` through the CLI,
    /// with `extra` flags; returns the package as `--json` printed it.
    fn version(&self, name: &str, version: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "package",
            "create",
            "--name",
            name,
            "--version",
            version,
            "--action",
            "execute",
            "--command",
            "echo hi",
        ];
        args.extend_from_slice(extra);
        self.json(&args)
    }
}

#[test]
fn package_create_supersedes_and_show_prints_the_chain() {
    let c = Central::start();
    let v1 = c.version("app", "1", &[]);
    let v1 = v1["id"].as_str().unwrap().to_owned();
    assert_eq!(c.get(&format!("/packages/{v1}"))["supersedes"], Value::Null);
    shows(
        row(&c.human(&["package", "show", &v1]), "supersedes"),
        &["none"],
    );

    // By default the newest version of the name; --supersedes names one.
    let v2 = c.version("app", "2", &[]);
    assert_eq!(v2["supersedes"], v1.as_str());
    let v2 = v2["id"].as_str().unwrap().to_owned();
    let v3 = c.version("app", "3", &["--supersedes", &v2]);
    assert_eq!(v3["supersedes"], v2.as_str());
    let v3 = v3["id"].as_str().unwrap().to_owned();

    // `show` follows the chain, newest first.
    let shown = c.human(&["package", "show", &v3]);
    shows(row(&shown, "supersedes"), &[&format!("{v3} → {v2} → {v1}")]);
    // `--json` is still exactly the API's answer.
    let body = c.json_is_get(&["package", "show", &v3], &format!("/packages/{v3}"));
    assert_eq!(body["supersedes"], v2.as_str());

    // `none` starts a new line; the human output of create says so too.
    let text = c.human(&[
        "package",
        "create",
        "--name",
        "app",
        "--version",
        "4",
        "--action",
        "execute",
        "--command",
        "echo hi",
        "--supersedes",
        "none",
    ]);
    shows(row(&text, "supersedes"), &["none"]);

    // A deleted package ends the chain, and says so.
    ok(c.run(&["package", "delete", &v1]));
    shows(
        row(&c.human(&["package", "show", &v3]), "supersedes"),
        &[&format!("{v3} → {v2} → {v1} (deleted)")],
    );

    // Another name, or an unknown id: refused, naming the field and the names.
    let tool = c.command_package("tool");
    fail(
        c.run(&[
            "package",
            "create",
            "--name",
            "app",
            "--version",
            "5",
            "--action",
            "execute",
            "--command",
            "echo hi",
            "--supersedes",
            &tool,
        ]),
        &["supersedes", &tool, "'tool'", "'app'"],
    );
    fail(
        c.run(&[
            "package",
            "create",
            "--name",
            "app",
            "--version",
            "5",
            "--action",
            "execute",
            "--command",
            "echo hi",
            "--supersedes",
            &v1,
        ]),
        &["supersedes", &v1, "not found"],
    );
    assert_eq!(c.package_ids().len(), 4);
}

#[test]
fn package_deactivate_for_sites_and_all_sites_cancels_waiting_jobs() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    c.site("lyon", "127.2.0.0/16");
    for (site, subnet, url) in [
        ("paris", "127.1.0.0/16", "http://127.1.0.1:8080"),
        ("lyon", "127.2.0.0/16", "http://127.2.0.1:8080"),
    ] {
        ok(c.run(&[
            "relay", "add", "--site", site, "--subnet", subnet, "--url", url,
        ]));
    }
    let id = c.command_package("patch");
    let (in_paris, paris_token) = c.enroll_agent("ws-paris", "127.1.0.5");
    let (waiting_paris, _) = c.enroll_agent("ws-paris-2", "127.1.0.6");
    let (in_lyon, _) = c.enroll_agent("ws-lyon", "127.2.0.5");
    ok(c.run(&["package", "activate", &id, "--all-sites"]));
    ok(c.run(&["package", "assign", &id, "--all"]));
    // One paris computer has been notified: its job stays.
    c.agent_post(&paris_token, "/agent/poll", json!({"addresses": []}));

    let text = c.human(&["package", "deactivate", &id, "--site", "paris"]);
    assert_eq!(
        text,
        format!(
            "deactivated package {id}: still activated for lyon; cancelled 1 job(s) waiting for notification, on {waiting_paris}\n"
        )
    );
    let shown = c.get(&format!("/packages/{id}"));
    assert_eq!(
        shown["activation"],
        json!({"all_sites": false, "sites": ["lyon"], "central_fallback": "never"})
    );
    let s = c.get(&format!("/packages/{id}/stats"));
    assert_eq!(
        s["by_status"],
        json!({"NOTIFIED": [in_paris], "WAITING_NOTIFICATION": [in_lyon]})
    );

    // `--json` prints the API's answer.
    let d = c.json(&["package", "deactivate", &id, "--all-sites"]);
    assert_eq!(d["cancelled"], 1);
    assert_eq!(d["computers"], json!([in_lyon]));
    assert_eq!(d["package"], c.get(&format!("/packages/{id}")));
    assert_eq!(
        d["package"]["activation"],
        json!({"all_sites": false, "sites": [], "central_fallback": "never"})
    );
    let text = c.human(&["package", "deactivate", &id, "--all-sites"]);
    assert_eq!(
        text,
        format!(
            "deactivated package {id}: activated for no site now; no job waiting for notification to cancel\n"
        )
    );

    // Errors name the problem and change nothing.
    fail(
        c.run(&["package", "deactivate", &id, "--site", "mars"]),
        &["mars", "not found"],
    );
    fail(c.run(&["package", "deactivate", &id]), &["--site"]);
    fail(
        c.run(&[
            "package",
            "deactivate",
            &id,
            "--site",
            "paris",
            "--all-sites",
        ]),
        &["--all-sites"],
    );
    fail(
        c.run(&["package", "deactivate", "no-such-package", "--all-sites"]),
        &["no-such-package"],
    );
    assert_eq!(
        c.get(&format!("/packages/{id}/stats"))["by_status"],
        json!({"NOTIFIED": [in_paris]})
    );
}

// ---------------------------------------------------------------------------
// Wake-on-LAN, shutdown after and restart timeout
// ---------------------------------------------------------------------------

impl Central {
    /// Enrolls a computer that reports MAC addresses; returns its id.
    fn enroll_with_macs(&self, hostname: &str, address: &str, macs: &[&str]) -> String {
        self.rt().block_on(async {
            let resp = self
                .http
                .post(format!("{}/api/v1/agent/enroll", self.url))
                .json(&json!({
                    "enroll_token": self.enroll_token,
                    "hostname": hostname,
                    "os": "linux",
                    "addresses": [address],
                    "macs": macs,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            v["computer_id"].as_str().unwrap().to_owned()
        })
    }
}

#[test]
fn computer_list_and_show_print_the_mac_addresses() {
    let c = Central::start();
    let ws = c.enroll_with_macs("ws-1", "127.1.0.5", &["52-54-00-AB-CD-EF"]);
    c.json_is_get(&["computer", "list"], "/computers");
    shows(
        row(&c.human(&["computer", "list"]), &ws),
        &["ws-1", "52:54:00:ab:cd:ef"],
    );
    shows(
        field(&c.human(&["computer", "show", &ws]), "macs"),
        &["52:54:00:ab:cd:ef"],
    );
}

#[test]
fn container_create_with_wol_shutdown_after_and_restart_timeout() {
    let c = Central::start();
    let ws = c.enroll_with_macs("ws-1", "127.1.0.5", &["52:54:00:ab:cd:ef"]);
    let zlib = c.command_package("zlib");
    let created: Container = serde_json::from_value(c.json(&[
        "container",
        "create",
        "--name",
        "night",
        "--package",
        &zlib,
        "--all",
        "--wol",
        "--shutdown-after",
        "--restart-timeout",
        "2m",
    ]))
    .unwrap();
    assert!(created.wol && created.shutdown_after);
    assert_eq!(created.restart_timeout.as_secs(), 120);
    // Started now: woken at once (no relay serves 127.1.0.5 here, so nobody was asked).
    let wake = created.wake.clone().unwrap();
    assert_eq!(wake.computers.len(), 1);
    assert_eq!(wake.computers[0].relay, None);
    let shown = c.human(&["container", "show", created.id.as_str()]);
    shows(
        field(&shown, "wake-on-lan"),
        &["yes, woken", "0 of 1 computer(s) asked"],
    );
    shows(field(&shown, "shutdown after"), &["yes"]);
    shows(field(&shown, "restart timeout"), &["2m"]);
    shows(&shown, &["WOKEN COMPUTER", "WAS OFF", "SHUTDOWN"]);
    // Enrolled a moment ago: on, so never shut down; no relay asked.
    shows(
        row_with(&shown, &[&ws, "52:54:00:ab:cd:ef"]),
        &["never", " - "],
    );
    c.json_is_get(
        &["container", "show", created.id.as_str()],
        &format!("/containers/{}", created.id),
    );

    // Defaults: no wake, OCO's five minutes.
    let plain = c.human(&[
        "container",
        "create",
        "--name",
        "day",
        "--package",
        &zlib,
        "--all",
    ]);
    shows(field(&plain, "wake-on-lan"), &["no"]);
    shows(field(&plain, "shutdown after"), &["no"]);
    shows(field(&plain, "restart timeout"), &["5m"]);
    assert!(!plain.contains("WOKEN COMPUTER"), "{plain}");

    let before = c.containers().len();
    for (extra, named) in [
        (&["--shutdown-after"][..], &["--wol"][..]),
        (&["--restart-timeout", "5x"], &["restart_timeout", "5x"]),
        // At most a day, like a notify countdown.
        (
            &["--restart-timeout", "25h"],
            &["restart_timeout", "25h", "longer than a day"],
        ),
    ] {
        let mut args = vec![
            "container",
            "create",
            "--name",
            "n",
            "--package",
            &zlib,
            "--all",
        ];
        args.extend_from_slice(extra);
        fail(c.run(&args), named);
    }
    assert_eq!(c.containers().len(), before);
}

#[test]
fn package_create_restart_is_signed_and_shown() {
    let c = Central::start();
    let p = c.json(&[
        "package",
        "create",
        "--name",
        "driver",
        "--version",
        "1",
        "--action",
        "execute",
        "--command",
        "install-driver",
        "--restart",
    ]);
    assert_eq!(p["restart"], true);
    let id = p["id"].as_str().unwrap();
    shows(
        field(&c.human(&["package", "show", id]), "restart"),
        &["yes"],
    );
    let plain = c.command_package("plain");
    assert_eq!(c.get(&format!("/packages/{plain}"))["restart"], false);
    shows(
        field(&c.human(&["package", "show", &plain]), "restart"),
        &["no"],
    );
}

// ---------------------------------------------------------------------------
// Coverage
// ---------------------------------------------------------------------------

#[test]
fn coverage_lists_unserved_computers_sites_stale_relays_and_overlaps() {
    let c = Central::start();
    c.site("paris", "127.1.0.0/16");
    c.site("lyon", "127.2.0.0/16");
    let relay = c.json(&[
        "relay",
        "add",
        "--site",
        "paris",
        "--subnet",
        "127.1.0.0/16",
        "--url",
        "http://127.1.0.1:8080",
    ]);
    let paris = relay["id"].as_str().unwrap().to_owned();
    let relay = c.json(&[
        "relay",
        "add",
        "--site",
        "lyon",
        "--subnet",
        "127.1.9.0/24",
        "--url",
        "http://127.1.9.1:8080",
    ]);
    let lyon = relay["id"].as_str().unwrap().to_owned();
    let package = c.command_package("tool");
    ok(c.run(&["package", "activate", &package, "--site", "paris"]));
    let inside = c.enroll("ws-inside", "linux", &["127.1.0.5"]);
    let outside = c.enroll("ws-outside", "linux", &["127.9.0.1"]);
    // In Lyon's declared subnet, which Lyon's relay does not cover.
    let in_lyon = c.enroll("ws-lyon", "linux", &["127.2.0.7"]);
    // An agent that found no address of its own: no relay can serve it.
    let nowhere = c.enroll("ws-nowhere", "linux", &[]);

    let text = c.human(&["coverage"]);
    shows(
        &text,
        &[
            "4 computer(s), 3 served by no relay",
            "relays stale after 15m",
            "UNSERVED COMPUTER",
            "SERVED (RECENT)",
            "UNSERVED (RECENT)",
            "STALE RELAY",
            "no relay's subnet contains their addresses, so they download from central",
            "computers whose relay is stale are not listed here: see the stale relays",
        ],
    );
    // Named for no site: no site declares its address.
    shows(row(&text, &outside), &["ws-outside", "127.9.0.1", " - "]);
    shows(row(&text, &in_lyon), &["ws-lyon", "127.2.0.7", " lyon "]);
    shows(row(&text, &nowhere), &["ws-nowhere", "(none known)", " - "]);
    assert!(!text.contains(&inside), "{text}");
    shows(
        row(&text, "│ paris"),
        &["127.1.0.0/16", "0/1", "1 (1)", "0 (0)"],
    );
    shows(
        row(&text, "│ lyon"),
        &["127.2.0.0/16", "127.1.9.0/24", "0/1", "0 (0)", "1 (1)"],
    );
    shows(row(&text, &paris), &["paris", "never", "never connected"]);
    // The command-only package has no fragments: what it lacks is the info.
    shows(
        &text,
        &[&format!("{package}: signed info not held (activated 20")],
    );
    shows(
        &text,
        &[&format!(
            "warning: 127.1.9.0/24 is served by lyon ({lyon} 127.1.9.0/24) and paris ({paris} 127.1.0.0/16); agents there try lyon first"
        )],
    );

    // --json prints the API's body; only the time it was drawn differs.
    let mut cmd = c.cli();
    cmd.args([
        "--json",
        "coverage",
        "--relay-stale-after",
        "1h",
        "--computer-recent-within",
        "2d",
    ]);
    let out = ok(output(cmd));
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let mut printed = parse(&out.stdout);
    let mut body = c.get("/coverage?relay_stale_after=1h&computer_recent_within=2d");
    assert!(printed["generated_at"].is_string(), "{printed}");
    printed["generated_at"] = Value::Null;
    body["generated_at"] = Value::Null;
    assert_eq!(printed, body);
    assert_eq!(printed["relay_stale_after"], "1h");
    assert_eq!(printed["computer_recent_within"], "2d");
    // By computer id.
    let ids: Vec<&str> = printed["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    let mut expected = vec![nowhere.as_str(), outside.as_str(), in_lyon.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let entry = |id: &str| {
        printed["unserved"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(entry(&nowhere)["addresses"], json!([]));
    assert_eq!(entry(&nowhere)["site"], Value::Null);
    assert_eq!(entry(&in_lyon)["site"], "lyon");
    assert_eq!(printed["sites"][0]["site"], "lyon");
    assert_eq!(printed["sites"][0]["unserved"], 1);

    fail(
        c.run(&["coverage", "--relay-stale-after", "soon"]),
        &["400", "relay_stale_after", "soon"],
    );
}

#[path = "cli/groups.rs"]
mod groups;
