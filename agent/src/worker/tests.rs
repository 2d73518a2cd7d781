//! The worker: first sightings, its clock, and whole jobs against a fake central
//! (a tiny HTTP server answering polls, infos, fragments and status reports): install
//! and uninstall jobs of one package in sequence within one `once` call, the history
//! (`ERR_ALREADY_SETUP` for install jobs only), `store` packages removed, forged infos
//! never run, a package whose job changes kind, and the user's answers to a
//! package's notify (abort, delay) and its done text (shown only once the history
//! has the success).

// Tests compare what was recorded against the real wall clock.
#![allow(clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use sitecast_common::deployment::CentralFallback;
use sitecast_common::fragment::{plan_reader, sha256_hex};
use sitecast_common::info::{ActionDoc, Info, InfoDoc, NotifyDoc, UninstallDoc};
use sitecast_common::signing;
use sitecast_common::wire::{PollResponse, PolledPackage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::history::History;

/// The timeout and `central_fallback = after:…` count from the first poll
/// that listed the package, and that moment survives a restart (it is in DIR).
#[test]
fn the_first_sighting_is_kept_in_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let id: PackageId = "app-1".parse().unwrap();
    let first = first_seen(&layout, &id, JobKind::Install).unwrap();
    let path = first_seen_path(&layout, &id, JobKind::Install);
    let text = std::fs::read_to_string(&path).unwrap();
    // A later poll (or a restarted agent) does not move the first sighting.
    assert_eq!(first_seen(&layout, &id, JobKind::Install).unwrap(), first);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let two_hours_ago = Timestamp::now() - jiff::SignedDuration::from_hours(2);
    std::fs::write(&path, two_hours_ago.to_string()).unwrap();
    assert_eq!(
        first_seen(&layout, &id, JobKind::Install).unwrap(),
        two_hours_ago
    );
    // Another package has its own; a garbled file starts afresh.
    let other: PackageId = "app-2".parse().unwrap();
    assert!(first_seen(&layout, &other, JobKind::Install).unwrap() >= first);
    std::fs::write(
        first_seen_path(&layout, &other, JobKind::Install),
        "yesterday",
    )
    .unwrap();
    let again = first_seen(&layout, &other, JobKind::Install).unwrap();
    assert!(again >= first, "{again}");
    // An uninstall job of the package is another job, with its own sighting.
    let uninstall = first_seen_path(&layout, &id, JobKind::Uninstall);
    assert_ne!(uninstall, path);
    assert!(!uninstall.exists());
    assert!(first_seen(&layout, &id, JobKind::Uninstall).unwrap() >= first);
    assert!(uninstall.exists());
}

/// Wall-clock sightings map onto the cycle's monotonic clock, and one older
/// than the timeout is already past its deadline.
#[test]
fn wall_clock_sightings_map_onto_the_cycle_clock() {
    let week = Duration::from_secs(7 * 86_400);
    let clock = Clock {
        started: Instant::now(),
        epoch: week,
    };
    let now = clock.now();
    assert!(now >= week);
    let hour_ago = clock.at(Timestamp::now() - jiff::SignedDuration::from_hours(1));
    let expected = now - Duration::from_secs(3600);
    assert!(
        hour_ago.abs_diff(expected) < Duration::from_secs(5),
        "{hour_ago:?} vs {expected:?}"
    );
    let in_a_minute = clock.at(Timestamp::now() + jiff::SignedDuration::from_mins(1));
    assert!(in_a_minute > now + Duration::from_secs(55));
    let long_ago = clock.at(Timestamp::now() - jiff::SignedDuration::from_hours(24 * 30));
    assert_eq!(long_ago, Duration::ZERO);
    assert!(long_ago + week <= clock.now());
}

/// A certificate for the agent's `ca.pem`: the fake central speaks plain HTTP, but
/// the agent's client insists on a CA to pin.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIUVKaX+jS9Hxh3W2FT8aohtj5A5MwwCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUc2l0ZWNhc3QtYWdlbnQtdGVzdHMwIBcNMjYxMTIxMTA0MDQz
WhgPMjEyNjEwMjgxMDQwNDNaMB8xHTAbBgNVBAMMFHNpdGVjYXN0LWFnZW50LXRl
c3RzMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyTeQnDuDWo77nRuUzCNy+j5C
AX3Ptn+TSYE5cEOfmJtycnHJvCP0rz9BTskZs+mRlrSWhZ9jlTcibvJbIDy5b6NT
MFEwHQYDVR0OBBYEFCaCwAER0H6FFLXP6H1L6gyGnHCAMB8GA1UdIwQYMBaAFCaC
wAER0H6FFLXP6H1L6gyGnHCAMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID
SAAwRQIgOegGdFq6OdZaXEy5K1V5BxUKZTGRIkrNUkCi7BR20EkCIQDkhJYHq6CI
pF3pEimUPS4fFyppSBhRcsB+0o1hkLRQRQ==
-----END CERTIFICATE-----
";

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A package as central publishes it: its signed info and fragments.
struct Published {
    id: PackageId,
    envelope: Vec<u8>,
    fragments: Vec<Vec<u8>>,
}

/// Signs an info for `payload` (archive `none`) with `key`.
fn publish(
    id: &str,
    action: ActionDoc,
    uninstall: Option<&str>,
    payload: &[u8],
    key: &SigningKey,
) -> Published {
    publish_with(id, action, uninstall, payload, key, |_| {})
}

/// [`publish`] with the info document changed by `edit` before it is signed.
fn publish_with(
    id: &str,
    action: ActionDoc,
    uninstall: Option<&str>,
    payload: &[u8],
    key: &SigningKey,
    edit: impl FnOnce(&mut InfoDoc),
) -> Published {
    let fragment_size = 4;
    let plan = plan_reader(payload, fragment_size).unwrap();
    let mut doc = InfoDoc {
        schema: 1,
        id: id.into(),
        name: "tool.sh".into(),
        version: "1.0".into(),
        os: "any".into(),
        priority: 5,
        action,
        archive: "none".into(),
        size: plan.size(),
        sha256: hex::encode(plan.sha256()),
        fragment_size,
        fragments: plan.fragments().iter().map(hex::encode).collect(),
        success_exit_codes: vec![0],
        command_timeout_s: 60,
        notify: None,
        done_action_text: None,
        supersedes: None,
        uninstall: uninstall.map(|command| UninstallDoc {
            command: command.into(),
            success_exit_codes: vec![0],
        }),
        issued_at: "2026-11-21T08:00:00Z".into(),
        restart: false,
    };
    edit(&mut doc);
    let info = Info::try_from(doc).unwrap();
    Published {
        id: id.parse().unwrap(),
        envelope: signing::sign_info(key, &info),
        fragments: payload
            .chunks(usize::try_from(fragment_size).unwrap())
            .map(<[u8]>::to_vec)
            .collect(),
    }
}

#[derive(Default)]
struct CentralState {
    /// What each poll answers: the next answer once a final report came in since the
    /// previous poll (as central hands out a container's next job), the last one
    /// over and over.
    answers: VecDeque<Vec<PolledPackage>>,
    reported_since_poll: bool,
    infos: BTreeMap<PackageId, Vec<u8>>,
    fragments: BTreeMap<(PackageId, u32), Vec<u8>>,
    /// Final reports, in order (progress reports left out).
    reports: Vec<(PackageId, StatusReport)>,
    polls: u32,
    fragment_requests: u32,
    /// Answer final reports with this status instead of taking them.
    refuse_reports: Option<&'static str>,
    /// Final reports refused.
    refused: u32,
}

/// Central's agent API, just enough of it, over plain HTTP on a loopback port.
struct FakeCentral {
    url: String,
    state: Arc<std::sync::Mutex<CentralState>>,
}

impl FakeCentral {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(std::sync::Mutex::new(CentralState::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        FakeCentral { url, state }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CentralState> {
        self.state.lock().unwrap()
    }

    fn publish(&self, package: &Published) {
        let mut state = self.state();
        state
            .infos
            .insert(package.id.clone(), package.envelope.clone());
        for (n, bytes) in package.fragments.iter().enumerate() {
            let n = u32::try_from(n).unwrap() + 1;
            state
                .fragments
                .insert((package.id.clone(), n), bytes.clone());
        }
    }

    /// The poll answers from now on, each a list of jobs.
    fn answer(&self, polls: Vec<Vec<PolledPackage>>) {
        let mut state = self.state();
        state.answers = polls.into();
        state.reported_since_poll = false;
    }

    /// `(package, status)` of every final report so far.
    fn reports(&self) -> Vec<(String, String)> {
        self.state()
            .reports
            .iter()
            .map(|(id, r)| (id.to_string(), r.code.to_string()))
            .collect()
    }
}

fn job(package: &Published, kind: JobKind) -> PolledPackage {
    PolledPackage {
        id: package.id.clone(),
        priority: 5,
        info_sha256: sha256_hex(&package.envelope),
        relays: Vec::new(),
        relay_pending: false,
        central_fallback: CentralFallback::Never,
        kind,
        restart_timeout_s: 300,
        job: None,
        downgrade: None,
    }
}

async fn serve(mut stream: TcpStream, state: Arc<std::sync::Mutex<CentralState>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (
        request.next().unwrap_or_default().to_owned(),
        request.next().unwrap_or_default().to_owned(),
    );
    let length: usize = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[head_end..head_end + length];
    let (status, answer) = route(&state, &method, &path, body);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

fn route(
    state: &std::sync::Mutex<CentralState>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (&'static str, Vec<u8>) {
    let mut state = state.lock().unwrap();
    let not_found = ("404 Not Found", br#"{"error":"not here"}"#.to_vec());
    let Some(rest) = path.strip_prefix("/api/v1/agent/") else {
        return not_found;
    };
    if method == "POST" && rest == "poll" {
        state.polls += 1;
        if state.reported_since_poll && state.answers.len() > 1 {
            state.answers.pop_front();
        }
        state.reported_since_poll = false;
        let response = PollResponse {
            poll_interval_s: 60,
            packages: state.answers.front().cloned().unwrap_or_default(),
            power: None,
            keyset: None,
        };
        return ("200 OK", serde_json::to_vec(&response).unwrap());
    }
    let Some(rest) = rest.strip_prefix("packages/") else {
        return not_found;
    };
    let (id, what) = rest.split_once('/').unwrap();
    let id: PackageId = id.parse().unwrap();
    match (method, what) {
        ("POST", "status") => {
            let report: StatusReport = serde_json::from_slice(body).unwrap();
            if let Some(status) = state.refuse_reports.filter(|_| report.code.is_final()) {
                state.refused += 1;
                // The job is gone (or, for a 5xx, taken care of by the agent's retries).
                state.reported_since_poll = true;
                return (status, br#"{"error":"no job"}"#.to_vec());
            }
            if report.code != StatusCode::Downloading {
                state.reports.push((id, report));
                state.reported_since_poll = true;
            }
            ("200 OK", b"{}".to_vec())
        }
        ("GET", "info") => match state.infos.get(&id) {
            Some(envelope) => ("200 OK", envelope.clone()),
            None => not_found,
        },
        ("GET", fragment) => {
            state.fragment_requests += 1;
            let n: u32 = fragment
                .strip_prefix("fragments/")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            match state.fragments.get(&(id, n)) {
                Some(bytes) => ("200 OK", bytes.clone()),
                None => not_found,
            }
        }
        _ => not_found,
    }
}

/// An enrolled agent's DIR, pointed at the fake central.
fn agent_dir(central: &FakeCentral) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    std::fs::write(layout.ca(), TEST_CA).unwrap();
    let pem = signing::verifying_key_to_pem(&signing_key().verifying_key()).unwrap();
    AgentConfig {
        central: central.url.clone(),
        computer_id: "pc-1".parse().unwrap(),
        token: "token".into(),
        bind: Some("127.0.0.1".parse().unwrap()),
        tags: Vec::new(),
        signing_keys: vec![pem],
        root_key: None,
        max_unpack: Some(sitecast_common::units::Size::from_bytes(1 << 20)),
        keep_free: None,
        mac_addresses: Vec::new(),
        power_command: None,
        uptime_file: None,
        downloads: crate::config::SourcePolicy::default(),
        cycle: CycleConfig::default(),
        notifier: None,
    }
    .save(&layout)
    .unwrap();
    dir
}

fn history(dir: &tempfile::TempDir) -> History {
    History::load(&Layout::new(dir.path()).history()).unwrap()
}

/// What `once` says of each job: "id kind: code" (or "waiting").
fn outcomes(round: &crate::Round) -> Vec<String> {
    round
        .outcomes
        .iter()
        .zip(&round.kinds)
        .map(|((id, outcome), kind)| match outcome {
            Outcome::Done(code) => format!("{id} {kind}: {code}"),
            Outcome::Waiting(_) => format!("{id} {kind}: waiting"),
        })
        .collect()
}

/// A job container's sequence (install, uninstall, install again) in one `once`
/// call: each job comes at the poll after the previous one reported, the uninstall
/// is not answered `ERR_ALREADY_SETUP` though the package is in the history, takes
/// it out of the history before reporting, and so the second install runs again.
#[tokio::test]
async fn one_once_call_installs_uninstalls_and_installs_again() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let log = dir.path().join("log");
    let package = publish(
        "tool-1.0-a1",
        ActionDoc::Execute {
            command: format!("echo install >> {}", log.display()),
        },
        Some(&format!("echo uninstall >> {}", log.display())),
        b"#!/bin/sh\necho hi\n",
        &signing_key(),
    );
    central.publish(&package);
    central.answer(vec![
        vec![job(&package, JobKind::Install)],
        vec![job(&package, JobKind::Uninstall)],
        vec![job(&package, JobKind::Install)],
        vec![],
    ]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "install\nuninstall\ninstall\n"
    );
    assert_eq!(
        central.reports(),
        [
            ("tool-1.0-a1".into(), "SUCCESS".into()),
            ("tool-1.0-a1".into(), "SUCCESS".into()),
            ("tool-1.0-a1".into(), "SUCCESS".into()),
        ]
    );
    assert_eq!(
        outcomes(&round),
        [
            "tool-1.0-a1 install: SUCCESS",
            "tool-1.0-a1 uninstall: SUCCESS"
        ]
    );
    let state = central.state();
    // One poll per job, and the one that found nothing new.
    assert_eq!(state.polls, 4);
    // An uninstall moves no fragment bytes: its report counts none.
    assert!(!state.reports[0].1.sources.is_empty());
    assert!(state.reports[1].1.sources.is_empty());
    drop(state);
    assert!(history(&dir).contains(&package.id));
    // Nothing is left behind: downloads, sightings, working directories.
    let layout = Layout::new(dir.path());
    let left: Vec<_> = std::fs::read_dir(layout.downloads())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(std::fs::read_dir(layout.work()).unwrap().count(), 0);
}

/// The history answers install jobs only: an install job of an installed package is
/// `ERR_ALREADY_SETUP` at once, an uninstall job runs (without a fragment), and once
/// it succeeded the package is out of the history.
#[tokio::test]
async fn err_already_setup_is_for_install_jobs_only() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let log = dir.path().join("log");
    let package = publish(
        "tool-1.0-a1",
        ActionDoc::Execute {
            command: format!("echo install >> {}", log.display()),
        },
        Some(&format!("echo uninstall >> {}", log.display())),
        b"payload",
        &signing_key(),
    );
    central.publish(&package);
    // Installed before, as far as this agent knows.
    let layout = Layout::new(dir.path());
    History::load(&layout.history())
        .unwrap()
        .record(
            &package.id,
            Installed {
                at: Timestamp::now(),
                store: None,
            },
        )
        .unwrap();
    central.answer(vec![
        vec![job(&package, JobKind::Install)],
        vec![job(&package, JobKind::Uninstall)],
        vec![],
    ]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(
        outcomes(&round),
        [
            "tool-1.0-a1 install: ERR_ALREADY_SETUP",
            "tool-1.0-a1 uninstall: SUCCESS"
        ]
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "uninstall\n");
    assert_eq!(central.state().fragment_requests, 0);
    assert!(!history(&dir).contains(&package.id));

    // An uninstall job of a package the history never had still runs.
    central.answer(vec![vec![job(&package, JobKind::Uninstall)], vec![]]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(outcomes(&round), ["tool-1.0-a1 uninstall: SUCCESS"]);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "uninstall\nuninstall\n"
    );
}

/// A `store` install records what it put in place; its uninstall removes exactly
/// that, and the store path the install created.
#[tokio::test]
async fn a_store_package_is_installed_then_removed() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let store = dir.path().join("opt").join("tool");
    std::fs::create_dir_all(dir.path().join("opt")).unwrap();
    std::fs::write(dir.path().join("opt").join("neighbour"), "stays").unwrap();
    let package = publish(
        "tool-1.0-a1",
        ActionDoc::Store {
            path: store.display().to_string(),
        },
        None,
        b"#!/bin/sh\necho stored\n",
        &signing_key(),
    );
    central.publish(&package);
    central.answer(vec![vec![job(&package, JobKind::Install)], vec![]]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(outcomes(&round), ["tool-1.0-a1 install: SUCCESS"]);
    assert!(store.join("tool.sh").is_file());
    let installed = history(&dir).get(&package.id).cloned().unwrap();
    let manifest = installed.store.unwrap();
    assert_eq!(manifest.root, store);
    assert!(manifest.root_created.is_some());
    assert_eq!(manifest.entries.len(), 1);

    central.answer(vec![vec![job(&package, JobKind::Uninstall)], vec![]]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(outcomes(&round), ["tool-1.0-a1 uninstall: SUCCESS"]);
    assert!(!store.exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("opt").join("neighbour")).unwrap(),
        "stays"
    );
    assert!(!history(&dir).contains(&package.id));
    let output = central.state().reports[1].1.output.clone().unwrap();
    assert!(
        output.contains("removed 1 files or symlinks and 1 directories"),
        "{output}"
    );
}

/// An uninstall job's info is verified like an install's: signed by a key that is
/// not pinned, it is `ERR_BAD_SIGNATURE` and nothing runs.
#[tokio::test]
async fn an_uninstall_job_with_a_forged_info_runs_nothing() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let marker = dir.path().join("ran");
    let forged = publish(
        "tool-1.0-a1",
        ActionDoc::Execute {
            command: "true".into(),
        },
        Some(&format!("touch {}", marker.display())),
        b"payload",
        &SigningKey::from_bytes(&[9; 32]),
    );
    central.publish(&forged);
    central.answer(vec![vec![job(&forged, JobKind::Uninstall)], vec![]]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(
        outcomes(&round),
        ["tool-1.0-a1 uninstall: ERR_BAD_SIGNATURE"]
    );
    assert!(!marker.exists());
}

/// A package tracked for one kind of job and then listed for the other starts the
/// new job cleanly: the install whose fragments central cannot serve waits (set
/// aside), another job ends, the next poll lists the package's uninstall, and that
/// runs at once, in the same `once` call.
#[tokio::test]
async fn a_job_of_the_other_kind_replaces_the_tracked_one() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let log = dir.path().join("log");
    let stuck = publish(
        "stuck-1.0-a1",
        ActionDoc::Execute {
            command: format!("echo install stuck >> {}", log.display()),
        },
        Some(&format!("echo uninstall stuck >> {}", log.display())),
        b"payload",
        &signing_key(),
    );
    let other = publish(
        "other-1.0-a1",
        ActionDoc::Execute {
            command: format!("echo install other >> {}", log.display()),
        },
        None,
        b"payload",
        &signing_key(),
    );
    // Central has the stuck package's info but none of its fragments.
    central
        .state()
        .infos
        .insert(stuck.id.clone(), stuck.envelope.clone());
    central.publish(&other);
    central.answer(vec![
        vec![job(&stuck, JobKind::Install), job(&other, JobKind::Install)],
        vec![job(&stuck, JobKind::Uninstall)],
        vec![],
    ]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(
        outcomes(&round),
        [
            "stuck-1.0-a1 install: waiting",
            "other-1.0-a1 install: SUCCESS",
            "stuck-1.0-a1 uninstall: SUCCESS",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "install other\nuninstall stuck\n"
    );
    // The install job's sighting went with it; the uninstall's with its end.
    let layout = Layout::new(dir.path());
    assert!(!first_seen_path(&layout, &stuck.id, JobKind::Install).exists());
    assert!(!first_seen_path(&layout, &stuck.id, JobKind::Uninstall).exists());
    assert!(!layout.downloads().join(stuck.id.as_str()).exists());
}

/// A final report central refuses for good (4xx: the job is gone) is dropped, so
/// the round ends well and later rounds do not send it again; one central could
/// not take (5xx) is kept for later and the round says so.
#[tokio::test]
async fn final_reports_refused_for_good_are_dropped_and_others_kept() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let package = publish(
        "tool-1.0-a1",
        ActionDoc::Execute {
            command: "true".into(),
        },
        None,
        b"#!/bin/sh\n",
        &signing_key(),
    );
    central.publish(&package);
    central.answer(vec![vec![job(&package, JobKind::Install)], vec![]]);
    central.state().refuse_reports = Some("404 Not Found");
    crate::once(dir.path()).await.unwrap();
    assert_eq!(central.state().refused, 1);
    // Nothing left to send: the next round sends nothing.
    crate::once(dir.path()).await.unwrap();
    assert_eq!(central.state().refused, 1);

    let other = publish(
        "tool-2.0-b2",
        ActionDoc::Execute {
            command: "true".into(),
        },
        None,
        b"#!/bin/sh\n",
        &signing_key(),
    );
    central.publish(&other);
    central.answer(vec![vec![job(&other, JobKind::Install)], vec![]]);
    central.state().refuse_reports = Some("503 Service Unavailable");
    let e = crate::once(dir.path()).await.unwrap_err().to_string();
    assert!(e.contains("503"), "{e}");
}

/// Writes `text` as an executable script and makes it the agent's `notifier`.
fn use_notifier(dir: &Path, text: &str) {
    let script = dir.join("notifier.sh");
    std::fs::write(&script, text).unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let layout = Layout::new(dir);
    let mut config = AgentConfig::load(&layout).unwrap();
    config.notifier = Some(format!("'{}'", script.display()));
    config.save(&layout).unwrap();
}

/// Points the agent's `notifier` at a script that appends what it was told to
/// `DIR/told` and answers the first line of `DIR/answer` (continue if absent).
fn notifier(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let told = dir.path().join("told");
    let answer = dir.path().join("answer");
    use_notifier(
        dir.path(),
        &format!(
            "#!/bin/sh\necho \"$SITECAST_NOTIFY_KIND $SITECAST_PACKAGE_ID $SITECAST_NOTIFY_TEXT\" >> '{}'\n\
             [ -f '{}' ] && head -n 1 '{}'\nexit 0\n",
            told.display(),
            answer.display(),
            answer.display()
        ),
    );
    (told, answer)
}

/// A package that tells the user `text` first (abort and delay allowed) and
/// `done` after; its command appends "ran" to `marker`.
fn notifying(id: &str, marker: &Path, done: Option<&str>) -> Published {
    let done = done.map(str::to_owned);
    publish_with(
        id,
        ActionDoc::Execute {
            command: format!("echo ran >> {}", marker.display()),
        },
        None,
        b"#!/bin/sh\necho hi\n",
        &signing_key(),
        |doc| {
            doc.notify = Some(NotifyDoc {
                text: "Updating tool".into(),
                countdown_s: 30,
                can_abort: true,
                can_delay: true,
            });
            doc.done_action_text = done;
        },
    )
}

/// The user aborts: `ERR_ABORTED` saying so, the command never ran, nothing is in
/// the history and the download is gone; the user was told once, after the
/// package was downloaded (every fragment fetched) and before anything ran.
#[tokio::test]
async fn a_user_abort_is_err_aborted_and_nothing_runs() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let (told, answer) = notifier(&dir);
    std::fs::write(&answer, "abort\n").unwrap();
    let marker = dir.path().join("ran");
    let package = notifying("tool-1.0-a1", &marker, Some("never shown"));
    central.publish(&package);
    central.answer(vec![vec![job(&package, JobKind::Install)], vec![]]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(outcomes(&round), ["tool-1.0-a1 install: ERR_ABORTED"]);
    assert!(!marker.exists());
    let state = central.state();
    assert_eq!(state.fragment_requests, 5);
    let output = state.reports[0].1.output.clone().unwrap();
    assert!(output.contains("the user aborted"), "{output}");
    assert!(output.contains("Updating tool"), "{output}");
    drop(state);
    assert_eq!(
        std::fs::read_to_string(&told).unwrap(),
        "before tool-1.0-a1 Updating tool\n"
    );
    assert!(!history(&dir).contains(&package.id));
    let layout = Layout::new(dir.path());
    assert!(!layout.downloads().join(package.id.as_str()).exists());
}

/// The user delays: nothing runs and nothing final is reported; the rest of the
/// `once` call leaves the package alone though it polls again (another job ended)
/// and central still lists it. The next call asks again, without fetching a
/// fragment again, runs it, and shows the done text.
#[tokio::test]
async fn a_delayed_package_waits_for_the_next_call() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let (told, answer) = notifier(&dir);
    std::fs::write(&answer, "delay\n").unwrap();
    let marker = dir.path().join("ran");
    let package = notifying("tool-1.0-a1", &marker, Some("Tool is up to date"));
    let other = publish(
        "other-1.0-b2",
        ActionDoc::Execute {
            command: "true".into(),
        },
        None,
        b"payload",
        &signing_key(),
    );
    central.publish(&package);
    central.publish(&other);
    central.answer(vec![
        vec![
            job(&package, JobKind::Install),
            job(&other, JobKind::Install),
        ],
        vec![job(&package, JobKind::Install)],
        vec![],
    ]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(
        outcomes(&round),
        [
            "tool-1.0-a1 install: waiting",
            "other-1.0-b2 install: SUCCESS"
        ]
    );
    match &round.outcomes[0].1 {
        Outcome::Waiting(why) => assert!(why.contains("delayed"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(!marker.exists());
    assert_eq!(
        central.reports(),
        [("other-1.0-b2".into(), "SUCCESS".into())]
    );
    // Polled again after the other job ended, and did not ask again.
    assert_eq!(central.state().polls, 2);
    assert_eq!(
        std::fs::read_to_string(&told).unwrap(),
        "before tool-1.0-a1 Updating tool\n"
    );
    let layout = Layout::new(dir.path());
    assert!(layout
        .downloads()
        .join(package.id.as_str())
        .join("1")
        .exists());
    let fetched = central.state().fragment_requests;

    std::fs::write(&answer, "continue\n").unwrap();
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(outcomes(&round), ["tool-1.0-a1 install: SUCCESS"]);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
    assert_eq!(central.state().fragment_requests, fetched);
    assert_eq!(
        std::fs::read_to_string(&told).unwrap(),
        "before tool-1.0-a1 Updating tool\nbefore tool-1.0-a1 Updating tool\n\
         done tool-1.0-a1 Tool is up to date\n"
    );
}

/// Uninstall jobs tell the user nothing (notify is about the installation).
#[tokio::test]
async fn an_uninstall_job_does_not_ask_the_user() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let (told, answer) = notifier(&dir);
    std::fs::write(&answer, "abort\n").unwrap();
    let marker = dir.path().join("removed");
    let package = publish_with(
        "tool-1.0-a1",
        ActionDoc::Execute {
            command: "true".into(),
        },
        Some(&format!("touch {}", marker.display())),
        b"payload",
        &signing_key(),
        |doc| {
            doc.notify = Some(NotifyDoc {
                text: "Updating tool".into(),
                countdown_s: 30,
                can_abort: true,
                can_delay: true,
            });
            doc.done_action_text = Some("done".into());
        },
    );
    central.publish(&package);
    central.answer(vec![vec![job(&package, JobKind::Uninstall)], vec![]]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(outcomes(&round), ["tool-1.0-a1 uninstall: SUCCESS"]);
    assert!(marker.exists());
    assert!(!told.exists());
}

/// The done text is shown only once the success is in the history: an agent
/// that dies while the user reads it does not run the package again. The
/// notifier checks `history.json` when it is called for the done text, for a
/// command package and a `store` package.
#[tokio::test]
async fn the_done_text_comes_after_the_history_records_the_success() {
    let central = FakeCentral::start().await;
    let dir = agent_dir(&central);
    let told = dir.path().join("told");
    let history_file = Layout::new(dir.path()).history();
    use_notifier(
        dir.path(),
        &format!(
            "#!/bin/sh\n[ \"$SITECAST_NOTIFY_KIND\" = done ] || exit 0\n\
             if grep -q \"\\\"$SITECAST_PACKAGE_ID\\\"\" '{}' 2>/dev/null; then seen=recorded; else seen=missing; fi\n\
             echo \"$SITECAST_PACKAGE_ID $seen\" >> '{}'\n",
            history_file.display(),
            told.display()
        ),
    );

    let marker = dir.path().join("ran");
    let command = notifying("tool-1.0-a1", &marker, Some("Tool is installed"));
    let store = dir.path().join("opt-tool");
    let stored = publish_with(
        "data-1.0-b2",
        ActionDoc::Store {
            path: store.display().to_string(),
        },
        None,
        b"data",
        &signing_key(),
        |doc| doc.done_action_text = Some("Data is in place".into()),
    );
    central.publish(&command);
    central.publish(&stored);
    central.answer(vec![
        vec![
            job(&command, JobKind::Install),
            job(&stored, JobKind::Install),
        ],
        vec![],
    ]);
    let round = crate::once(dir.path()).await.unwrap();
    assert_eq!(
        outcomes(&round),
        [
            "tool-1.0-a1 install: SUCCESS",
            "data-1.0-b2 install: SUCCESS"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&told).unwrap(),
        "tool-1.0-a1 recorded\ndata-1.0-b2 recorded\n"
    );
}
