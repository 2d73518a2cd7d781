//! One package's deployment on this computer, cut into the steps the download
//! cycle ([`crate::cycle`]) drives: choose sources by the same-subnet rule
//! ([`sources`]); fetch and verify the signed info, then one missing fragment at a
//! time, each verified before it counts (a bad one is fetched again from the next
//! source) ([`fetch_step`]); rebuild, verify the whole digest, unpack, run the
//! action and clean up ([`install_step`], with [`crate::install`]); or give up with
//! `ERR_TIMEOUT` ([`timeout_report`]). Nothing is unpacked or run before the
//! signature, every fragment and the whole file have been verified.
//!
//! An uninstall job ([`JobKind::Uninstall`]) takes the same steps with no fragments:
//! its signed info is fetched and verified exactly as an install's (central is always
//! its last source, as for every info), and its "install" step is
//! [`crate::uninstall::uninstall_step`].
//!
//! Downloads live in `DIR/downloads/<package>/` (the info, one file per verified
//! fragment, and `sources.json`: the fragment bytes taken from each source, which
//! the final report gives central for its per-site statistics), so an interrupted
//! deployment resumes with the fragments it has and keeps counting.
//!
//! A source that fails a download (see [`crate::config::SourcePolicy`]) is
//! abandoned for that file and the next one tried; a relay that failed is also
//! skipped for a while ([`crate::backoff`]) and reported to central.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sitecast_common::deployment::CentralFallback;
use sitecast_common::fragment::sha256_hex;
use sitecast_common::ids::{PackageId, RelayId};
use sitecast_common::info::Info;
use sitecast_common::jobs::JobKind;
use sitecast_common::signing::{self, VerifyError};
use sitecast_common::status::StatusCode;
use sitecast_common::subnet::select_relays;
use sitecast_common::units;
use sitecast_common::wire::{PolledPackage, ProblemKind, ProblemReport, SourceBytes, StatusReport};

use crate::backoff::Backoff;
use crate::client::Source;
pub use crate::context::Context;
pub(crate) use crate::context::{report, report_with};
use crate::error::AgentError;
use crate::install::{self, Installed};
use sitecast_io::blocking;

mod disk;

/// How often `DOWNLOADING` progress goes to central.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The signed info's file in a package's download directory.
const INFO_FILE: &str = "info.dsse.json";

/// The fragment bytes per source in a package's download directory (a JSON list
/// of [`SourceBytes`]). Not a number, so never taken for a fragment.
const SOURCES_FILE: &str = "sources.json";

/// What became of one package this time round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Reported with this final code.
    Done(StatusCode),
    /// Not finished: no allowed source has it yet, or the sources failed; try again later.
    Waiting(String),
}

impl Context {
    fn backoff(&self) -> MutexGuard<'_, Backoff> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn skipped(&self, source: &Source) -> bool {
        match source {
            Source::Relay { id, .. } => self
                .backoff()
                .skipped_until(id, crate::clock::now())
                .is_some(),
            Source::Central => false,
        }
    }

    /// A source failed a download: skip it for a while and tell central, if it
    /// is a relay. Nothing here fails the deployment: the next source is tried.
    async fn source_failed(
        &self,
        package: &PackageId,
        source: &Source,
        kind: ProblemKind,
        detail: String,
    ) {
        let Source::Relay { id, .. } = source else {
            tracing::warn!(%package, %source, %kind, %detail, "central failed a download; trying the next source");
            return;
        };
        let until = self
            .backoff()
            .failed(id, kind, &detail, crate::clock::now());
        match until {
            Ok(until) => {
                tracing::warn!(%package, %source, %kind, %detail, %until, "relay abandoned; skipped until then")
            }
            Err(e) => {
                tracing::warn!(%package, %source, %kind, %detail, error = %e, "relay abandoned; its back-off could not be saved")
            }
        }
        let report = ProblemReport {
            package_id: Some(package.clone()),
            kind,
            detail,
        };
        if let Err(e) = self.client.report_problem(id, &report).await {
            tracing::warn!(relay = %id, error = %e, "could not report the relay's problem to central");
        }
    }

    fn source_succeeded(&self, source: &Source) {
        if let Source::Relay { id, .. } = source {
            if let Err(e) = self.backoff().succeeded(id) {
                tracing::warn!(relay = %id, error = %e, "could not save the relay's back-off");
            }
        }
    }

    /// Sends a `DOWNLOADING` report; a failure only delays the next one.
    async fn progress(&self, package: &mut Package) {
        package.last_progress = Some(Instant::now());
        let done = Some(package.held.len() as u32);
        let report = StatusReport {
            fragments_done: done,
            job: package.polled().job.clone(),
            ..report(StatusCode::Downloading)
        };
        if let Err(e) = self.client.report(package.id(), &report).await {
            tracing::warn!(package = %package.id(), error = %e, "could not report progress to central");
        }
    }
}

/// A package this agent was told to deploy, as far as it has got: the poll's
/// entry, when the agent first saw it, and, once fetched (or found in DIR), its
/// verified info and the verified fragments on disk.
pub struct Package {
    polled: PolledPackage,
    first_seen: Timestamp,
    dir: PathBuf,
    info: Option<Info>,
    /// Fragments verified and on disk.
    held: BTreeSet<u32>,
    /// Fragment bytes taken from each source (`None`: central), as in `sources.json`.
    sources: BTreeMap<Option<RelayId>, u64>,
    last_progress: Option<Instant>,
    bar: Option<indicatif::ProgressBar>,
}

impl Package {
    /// A package as a poll listed it. What an earlier run left in DIR (the signed
    /// info, verified again, and its fragments) is taken up at once.
    pub fn new(ctx: &Context, polled: PolledPackage, first_seen: Timestamp) -> Self {
        let dir = ctx.downloads.join(polled.id.as_str());
        let mut package = Package {
            polled,
            first_seen,
            dir,
            info: None,
            held: BTreeSet::new(),
            sources: BTreeMap::new(),
            last_progress: None,
            bar: None,
        };
        package.resume(ctx);
        package
    }

    pub fn id(&self) -> &PackageId {
        &self.polled.id
    }

    pub fn polled(&self) -> &PolledPackage {
        &self.polled
    }

    /// Install or uninstall.
    pub fn kind(&self) -> JobKind {
        self.polled.kind
    }

    /// The signed info, once fetched and verified.
    pub fn info(&self) -> Option<&Info> {
        self.info.as_ref()
    }

    /// When this agent first saw the package (it survives restarts).
    pub fn first_seen(&self) -> Timestamp {
        self.first_seen
    }

    /// A later poll listed the package again, for the same kind of job (a job of
    /// the other kind is a new [`Package`]).
    pub fn update(&mut self, ctx: &Context, polled: PolledPackage) {
        let changed = polled.info_sha256 != self.polled.info_sha256;
        self.polled = polled;
        if changed {
            self.info = None;
            self.held.clear();
            self.sources.clear();
            self.resume(ctx);
        }
    }

    /// Fragments still to fetch. Before the info is known, that is at least one
    /// (the info is fetched first, by the same kind of step). An uninstall job
    /// needs nothing but the info.
    pub fn missing(&self) -> u32 {
        match (&self.info, self.kind()) {
            (None, _) => 1,
            (Some(_), JobKind::Uninstall) => 0,
            (Some(info), JobKind::Install) => {
                info.plan().count().saturating_sub(self.held.len() as u32)
            }
        }
    }

    /// A typical fragment's size (0 while the info is unknown, and for uninstall
    /// jobs, which fetch no fragment).
    pub fn fragment_len(&self) -> u64 {
        match (&self.info, self.kind()) {
            (Some(info), JobKind::Install) => info.plan().fragment_size(),
            _ => 0,
        }
    }

    /// Takes up a signed info left in DIR, if it is the one central announced
    /// and its signature holds, and the fragments next to it.
    fn resume(&mut self, ctx: &Context) {
        let Ok(bytes) = std::fs::read(self.dir.join(INFO_FILE)) else {
            return;
        };
        if sha256_hex(&bytes) != self.polled.info_sha256 {
            return;
        }
        let Ok(keys) = ctx.trust.keys(crate::clock::now()) else {
            // The next step reports why nothing verifies.
            return;
        };
        match signing::verify_info(&bytes, keys) {
            Ok(info) if info.id() == self.id() => self.know(info),
            // Fetched again by the next step, which reports what is wrong.
            _ => {}
        }
    }

    fn know(&mut self, info: Info) {
        let count = info.plan().count();
        self.held = (1..=count)
            .filter(|n| self.dir.join(n.to_string()).exists())
            .collect();
        self.sources = load_sources(&self.dir.join(SOURCES_FILE));
        self.info = Some(info);
    }

    /// Counts a verified fragment's bytes for its source and writes the counts
    /// down, so a resumed download goes on counting. A failed write only makes
    /// the statistics short: the download goes on.
    async fn count(&mut self, relay: Option<RelayId>, bytes: u64) {
        *self.sources.entry(relay).or_insert(0) += bytes;
        let list = self.source_bytes();
        let path = self.dir.join(SOURCES_FILE);
        let written = blocking(move || {
            let json = serde_json::to_vec(&list).map_err(AgentError::encode("source counts"))?;
            sitecast_io::write_atomically(&path, &json).map_err(AgentError::from)
        })
        .await;
        if let Err(e) = written {
            tracing::warn!(package = %self.id(), error = %e, "could not save the bytes per source");
        }
    }

    /// The counts as the final report carries them (central first, then relays by id).
    /// None for an uninstall job: it moves no fragment, and counts an earlier install
    /// job left in the download directory are not its own.
    fn source_bytes(&self) -> Vec<SourceBytes> {
        if self.kind() == JobKind::Uninstall {
            return Vec::new();
        }
        self.sources
            .iter()
            .map(|(relay_id, bytes)| SourceBytes {
                relay_id: relay_id.clone(),
                bytes: *bytes,
            })
            .collect()
    }

    fn first_missing(&self) -> Option<u32> {
        let count = self.info.as_ref()?.plan().count();
        (1..=count).find(|n| !self.held.contains(n))
    }
}

/// Where a package's fragments may come from now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// In the order to try them (none: wait).
    pub sources: Vec<Source>,
    /// Relays of this computer's subnets skipped after recent failures, and until when.
    pub skipped: Vec<(RelayId, Timestamp)>,
    /// When the sources may change without a new poll: a skipped relay's
    /// back-off ends, or `central_fallback = after:…` opens central.
    pub changes_at: Option<Timestamp>,
}

impl Sources {
    /// Why there is no source, for logs and the `once` summary.
    pub fn why_none(&self) -> String {
        if self.skipped.is_empty() {
            return "the relay of this subnet does not hold the package yet".into();
        }
        let list = self
            .skipped
            .iter()
            .map(|(id, until)| format!("{id} until {until}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("every relay of this subnet failed recently and is skipped: {list}")
    }
}

/// The package's fragment sources at `now`: the relays of this computer's
/// subnets by the same-subnet rule, less those in back-off, then central if the
/// package's `central_fallback` allows it (`after:` counted from the first sighting).
/// An uninstall job needs only the info, which central may always serve: central
/// is always its last source, so it never waits for a relay.
pub fn sources(ctx: &Context, package: &Package, now: Timestamp) -> Sources {
    if package.kind() == JobKind::Uninstall {
        let backoff = ctx.backoff();
        return info_sources(&package.polled, &ctx.addresses, &|id| {
            backoff.skipped_until(id, now)
        });
    }
    let waited = now
        .duration_since(package.first_seen)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let mut found = {
        let backoff = ctx.backoff();
        fragment_sources(&package.polled, &ctx.addresses, waited, &|id| {
            backoff.skipped_until(id, now)
        })
    };
    let central_later = match package.polled.central_fallback {
        CentralFallback::After(d) if !found.sources.contains(&Source::Central) => {
            jiff::SignedDuration::try_from(Duration::from(d))
                .ok()
                .and_then(|d| package.first_seen.checked_add(d).ok())
        }
        _ => None,
    };
    found.changes_at = found
        .skipped
        .iter()
        .map(|(_, until)| *until)
        .chain(central_later)
        .filter(|at| *at > now)
        .min();
    found
}

/// The sources for fragments, in order: the relays of this computer's subnets
/// by the same-subnet rule (less those being skipped), then central if the
/// package's `central_fallback` allows it. `waited` counts from when this agent
/// first saw the package.
fn fragment_sources(
    polled: &PolledPackage,
    addresses: &[IpAddr],
    waited: Duration,
    skipped_until: &dyn Fn(&RelayId) -> Option<Timestamp>,
) -> Sources {
    let serving = select_relays(addresses, &polled.relays);
    // No relay serves this computer at all: central is its relay. (Relays being
    // skipped still serve it: they do not make central fair game.)
    let unserved = serving.is_empty() && !polled.relay_pending;
    let central = match polled.central_fallback {
        CentralFallback::Always => true,
        // After that long, central is the next source when the relays lack the
        // package or fail; before, only if no relay serves this computer.
        CentralFallback::After(d) => unserved || waited.as_secs() >= d.as_secs(),
        CentralFallback::Never => unserved,
    };
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    for relay in serving {
        match skipped_until(&relay.id) {
            Some(until) => skipped.push((relay.id.clone(), until)),
            None => sources.push(Source::Relay {
                id: relay.id.clone(),
                url: relay.url.clone(),
            }),
        }
    }
    if central {
        sources.push(Source::Central);
    }
    Sources {
        sources,
        skipped,
        changes_at: None,
    }
}

/// The sources of an uninstall job's info: the relays of this computer's subnets
/// (less those being skipped), then central, whatever `central_fallback` says.
fn info_sources(
    polled: &PolledPackage,
    addresses: &[IpAddr],
    skipped_until: &dyn Fn(&RelayId) -> Option<Timestamp>,
) -> Sources {
    let mut found = fragment_sources(polled, addresses, Duration::ZERO, skipped_until);
    if !found.sources.contains(&Source::Central) {
        found.sources.push(Source::Central);
    }
    found
}

/// How one fetch step ended.
#[derive(Debug)]
pub enum Step {
    /// The signed info or one fragment is in, verified: this many bytes moved.
    Fetched(u64),
    /// Nothing could be fetched now (why); the package waits for a later cycle.
    Wait(String),
    /// The package is over: this final report (already cleaned up) is to be sent.
    Final(StatusReport),
}

/// One step of a package's download: its signed info if it is not known yet,
/// otherwise its first missing fragment, from the sources in order.
pub async fn fetch_step(ctx: &Context, package: &mut Package) -> Step {
    let found = sources(ctx, package, crate::clock::now());
    if found.sources.is_empty() {
        return Step::Wait(found.why_none());
    }
    if let Err(e) = tokio::fs::create_dir_all(&package.dir).await {
        return Step::Wait(format!("{}: {e}", package.dir.display()));
    }
    let Some(info) = package.info.clone() else {
        // The signed info: central may always serve it (infos are small).
        let mut info_sources = found.sources;
        if !info_sources.contains(&Source::Central) {
            info_sources.push(Source::Central);
        }
        return match signed_info(ctx, &package.polled, &package.dir, &info_sources).await {
            Ok(Ok((info, bytes))) => {
                package.know(info);
                Step::Fetched(bytes)
            }
            Ok(Err(None)) => {
                Step::Wait("no source delivered the signed info central announced".into())
            }
            Ok(Err(Some(report))) => Step::Final(settle(package, report).await),
            Err(e) => Step::Wait(e.to_string()),
        };
    };
    if package.kind() == JobKind::Uninstall {
        // Nothing but the info: the cycle's next step for it is the uninstall.
        return Step::Fetched(0);
    }
    let Some(index) = package.first_missing() else {
        return Step::Fetched(0);
    };
    if let Some(report) = disk::short_of_space(ctx, package, &info) {
        return Step::Final(settle(package, report).await);
    }
    if package.last_progress.is_none() {
        // The first fetch of this package by this process: say it is downloading.
        ctx.progress(package).await;
    }
    let bar = package.bar.get_or_insert_with(|| {
        progress_bar(
            info.id().as_str(),
            info.plan().count(),
            package.held.len() as u32,
        )
    });
    match fetch_fragment(ctx, &info, index, &package.dir, &found.sources).await {
        Ok(Some((bytes, relay))) => {
            bar.inc(1);
            package.held.insert(index);
            // After the rename: a crash in between leaves a fragment uncounted
            // rather than one counted twice.
            package.count(relay, bytes).await;
            if package
                .last_progress
                .is_none_or(|at| at.elapsed() >= PROGRESS_EVERY)
            {
                ctx.progress(package).await;
            }
            Step::Fetched(bytes)
        }
        Ok(None) => Step::Wait(format!("no source could deliver fragment {index} intact")),
        Err(e) => Step::Wait(format!("fragment {index}: {e}")),
    }
}

/// Rebuilds, verifies, unpacks, runs and cleans up a package whose fragments are
/// all in; answers the final report to send and, for a successful `store` install,
/// what it put in place (for the history, so an uninstall can remove it), or that
/// the user delayed it (then the download stays as it is, for a later cycle).
pub async fn install_step(ctx: &Context, package: &mut Package) -> Installed {
    if let Some(bar) = &package.bar {
        bar.finish_and_clear();
    }
    let (report, manifest) = match package.info.clone() {
        Some(info) if package.kind() == JobKind::Install && package.first_missing().is_none() => {
            match install::install(ctx, &info, &package.dir).await {
                Installed::Report(report, manifest) => (report, manifest),
                Installed::Delayed => return Installed::Delayed,
            }
        }
        _ => (
            report_with(
                StatusCode::ErrBuild,
                "installing a package whose download is not complete".into(),
            ),
            None,
        ),
    };
    let report = settle(package, report).await;
    let manifest = manifest.filter(|_| report.code == StatusCode::Success);
    Installed::Report(report, manifest)
}

/// The package waited longer than the cycle's `timeout` (since `first_seen`):
/// the `ERR_TIMEOUT` report, download cleaned up. `why` is what it waited for.
pub async fn timeout_report(
    package: &mut Package,
    timeout: units::Duration,
    why: Option<&str>,
) -> StatusReport {
    let what = match package.kind() {
        JobKind::Install => "not downloaded",
        JobKind::Uninstall => "the signed info of this uninstall job not fetched",
    };
    let mut text = format!(
        "{what} within the download timeout (timeout = {timeout}) since this agent \
         first saw the package at {}",
        package
            .first_seen
            .round(jiff::Unit::Second)
            .unwrap_or(package.first_seen)
    );
    if let Some(info) = &package.info {
        let count = info.plan().count();
        text.push_str(&format!("; {} of {count} fragments in", package.held.len()));
    }
    if let Some(why) = why {
        text.push_str(&format!("; last: {why}"));
    }
    settle(package, report_with(StatusCode::ErrTimeout, text)).await
}

/// Removes the package's download; a success that cannot clean up is
/// `ERR_CLEAN`. The report carries the bytes taken from each source, and the
/// hand-out of the job it answers. An `ERR_OUT_OF_SPACE` keeps the verified
/// fragments (and the info, and the counts per source): once space is freed, a
/// retry of the job resumes where this one stopped rather than fetch it all again.
pub(crate) async fn settle(package: &mut Package, report: StatusReport) -> StatusReport {
    if let Some(bar) = package.bar.take() {
        bar.finish_and_clear();
    }
    let sources = package.source_bytes();
    if report.code == StatusCode::ErrOutOfSpace {
        return StatusReport {
            sources,
            job: package.polled.job.clone(),
            ..report
        };
    }
    let report = match tokio::fs::remove_dir_all(&package.dir).await {
        Err(e)
            if e.kind() != std::io::ErrorKind::NotFound && report.code == StatusCode::Success =>
        {
            report_with(
                StatusCode::ErrClean,
                format!("{}: {e}", package.dir.display()),
            )
        }
        _ => report,
    };
    StatusReport {
        sources,
        job: package.polled.job.clone(),
        ..report
    }
}

/// The counts a resumed download starts from: none if the file is missing or
/// unreadable (the statistics are short, nothing else suffers).
fn load_sources(path: &Path) -> BTreeMap<Option<RelayId>, u64> {
    let Ok(bytes) = std::fs::read(path) else {
        return BTreeMap::new();
    };
    let list: Vec<SourceBytes> = match serde_json::from_slice(&bytes) {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the bytes counted so far; counting from zero");
            Vec::new()
        }
    };
    let mut counts = BTreeMap::new();
    for s in list {
        *counts.entry(s.relay_id).or_insert(0u64) += s.bytes;
    }
    counts
}

/// Fetches, checks and stores the signed info, with the bytes fetched (0 when
/// the copy in DIR was the one). `Err` carries the final report or `None` to wait.
async fn signed_info(
    ctx: &Context,
    polled: &PolledPackage,
    dir: &Path,
    sources: &[Source],
) -> Result<Result<(Info, u64), Option<StatusReport>>, AgentError> {
    let keys = match ctx.trust.keys(crate::clock::now()) {
        Ok(keys) => keys,
        // A frozen key set: nothing is trusted, and the admin hears why.
        Err(e) => {
            return Ok(Err(Some(report_with(
                StatusCode::ErrBadSignature,
                e.to_string(),
            ))))
        }
    };
    let path = dir.join(INFO_FILE);
    let cached = tokio::fs::read(&path)
        .await
        .ok()
        .filter(|b| sha256_hex(b) == polled.info_sha256);
    let mut fetched = 0;
    let envelope = match cached {
        Some(bytes) => bytes,
        None => {
            let mut found = None;
            for source in sources {
                if ctx.skipped(source) {
                    continue;
                }
                match ctx.client.info(source, &polled.id).await {
                    Ok(bytes) if sha256_hex(&bytes) == polled.info_sha256 => {
                        ctx.source_succeeded(source);
                        found = Some(bytes);
                        break;
                    }
                    Ok(bytes) => {
                        let detail = format!(
                            "{source}: served an info whose SHA-256 is {}, central announced {}",
                            sha256_hex(&bytes),
                            polled.info_sha256
                        );
                        ctx.source_failed(&polled.id, source, ProblemKind::BadData, detail)
                            .await;
                    }
                    Err(AgentError::Source { kind, detail }) => {
                        ctx.source_failed(&polled.id, source, kind, detail).await;
                    }
                    Err(e) => {
                        tracing::warn!(package = %polled.id, %source, error = %e, "no info from this source")
                    }
                }
            }
            let Some(bytes) = found else {
                return Ok(Err(None));
            };
            let p = path.clone();
            let b = bytes.clone();
            blocking(move || sitecast_io::write_atomically(&p, &b).map_err(AgentError::from))
                .await?;
            fetched = bytes.len() as u64;
            bytes
        }
    };
    // The digest matched what central announced; the signature is what makes it trusted.
    match signing::verify_info(&envelope, keys) {
        Ok(info) if info.id() == &polled.id => Ok(Ok((info, fetched))),
        Ok(info) => Ok(Err(Some(report_with(
            StatusCode::ErrBadId,
            format!(
                "the signed info is for package '{}', not '{}'",
                info.id(),
                polled.id
            ),
        )))),
        Err(
            e @ (VerifyError::BadSignature { .. }
            | VerifyError::UnknownKey { .. }
            | VerifyError::NoSignature),
        ) => Ok(Err(Some(report_with(
            StatusCode::ErrBadSignature,
            e.to_string(),
        )))),
        Err(e) => Ok(Err(Some(report_with(
            StatusCode::ErrBadSignature,
            e.to_string(),
        )))),
    }
}

/// A progress bar on a terminal; hidden otherwise (services, tests).
fn progress_bar(package: &str, count: u32, done: u32) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(u64::from(count));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} {bar:40} {pos}/{len} fragments, eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(package.to_owned());
    bar.set_position(u64::from(done));
    bar
}

/// Fetches one fragment from the first source that delivers it intact; its
/// length and the relay it came from (`None`: central), or `None` when no
/// source delivered it.
async fn fetch_fragment(
    ctx: &Context,
    info: &Info,
    index: u32,
    dir: &Path,
    sources: &[Source],
) -> Result<Option<(u64, Option<RelayId>)>, AgentError> {
    let plan = info.plan();
    let (_, len) = plan.range(index)?;
    let expected = *plan.digest(index)?;
    let tmp = dir.join(format!(".{index}.part"));
    for source in sources {
        // A relay that failed an earlier fragment is skipped too.
        if ctx.skipped(source) {
            continue;
        }
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(AgentError::io(&tmp))?;
        match ctx
            .client
            .fragment(source, info.id(), index, len, &mut file, &tmp)
            .await
        {
            Ok(digest) if digest == expected => {
                file.sync_all().await.map_err(AgentError::io(&tmp))?;
                drop(file);
                let target = dir.join(index.to_string());
                tokio::fs::rename(&tmp, &target)
                    .await
                    .map_err(AgentError::io(&target))?;
                ctx.source_succeeded(source);
                let relay = match source {
                    Source::Relay { id, .. } => Some(id.clone()),
                    Source::Central => None,
                };
                return Ok(Some((len, relay)));
            }
            Ok(digest) => {
                let detail = format!(
                    "{source}: fragment {index} has SHA-256 {}, the signed info says {}; discarded",
                    hex::encode(digest),
                    hex::encode(expected)
                );
                ctx.source_failed(info.id(), source, ProblemKind::BadData, detail)
                    .await;
            }
            Err(AgentError::Source { kind, detail }) => {
                ctx.source_failed(info.id(), source, kind, detail).await;
            }
            // Not the source's fault (a local write failed, central refused):
            // no back-off, no report; the next source may still do.
            Err(e) => {
                tracing::warn!(package = %info.id(), fragment = index, %source, error = %e, "fragment not fetched")
            }
        }
        drop(file);
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
