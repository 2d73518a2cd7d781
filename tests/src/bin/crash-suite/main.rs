//! `crash-suite N`: the real `sitecast-central`, `sitecast-relay` and
//! `sitecast-agent` binaries of a deployment on loopback (see `world`), each
//! killed with SIGKILL at N random points of a deployment and started again.
//!
//! A round deploys a fresh small package to both agents (upload, activation for
//! every site, a job container) while a victim — central, a relay or an agent,
//! N rounds each, in a seeded random order — is killed after a random delay drawn
//! within a deployment's measured duration, so kills land in upload, replication,
//! download, the command and the report. Then it checks, after every restart and
//! at the end of every round:
//!
//! - nothing acknowledged is lost: packages and containers central created, and
//!   every success the agents had reported and seen taken (their history and
//!   journal say which), are still there after central restarts; a job central
//!   showed final keeps its status in every later round;
//! - no command runs twice by itself: each package's command appends `START` and
//!   `END` lines to one log, and starts at most once per hand-out an admin
//!   allowed (`ERR_INTERRUPTED` is reported exactly when the killed agent's
//!   journal held a started command without its end, and only then is the job
//!   retried, once);
//! - a restarted relay holds and serves nothing that does not verify against
//!   central's signed info;
//! - every deployment completes (`SUCCESS` on both computers) within a deadline.
//!
//! It prints the counts and exits non-zero if any check failed. `SEED=` replays a
//! run; `SITECAST_BIN_DIR` names the binaries (default `target/release`);
//! `SITECAST_CRASH_KEEP=1` keeps the work directory (it is always kept on failure).

mod api;
mod checks;
mod rng;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::api::{enc, Api, Failure};
use crate::rng::Rng;
use crate::world::{Victim, World};

/// How long a deployment may take to end, kill and restarts included (an agent
/// whose poll failed waits 30 s before the next one).
const DEPLOY_DEADLINE: Duration = Duration::from_secs(120);

const FRAGMENT_SIZE: usize = 8 << 10;

const NOT_FINAL: [&str; 3] = ["WAITING_NOTIFICATION", "NOTIFIED", "DOWNLOADING"];

#[derive(Default)]
struct Tally {
    kills: BTreeMap<&'static str, u64>,
    power_cuts: u64,
    restarts: u64,
    deployments: u64,
    completed: u64,
    passed: u64,
    failures: Vec<String>,
    ran_once: u64,
    ran_twice: u64,
    ran_again_after_retry: u64,
    interrupted: u64,
    acked_reports_checked: u64,
    acked_reports_lost: u64,
    acked_calls_checked: u64,
    acked_calls_lost: u64,
    relay_checks: u64,
    relay_fragments_verified: u64,
    relay_bad: u64,
}

impl Tally {
    fn check(&mut self, round: usize, ok: bool, what: impl FnOnce() -> String) -> bool {
        if ok {
            self.passed += 1;
        } else {
            let what = format!("round {round}: {}", what());
            eprintln!("crash-suite: FAILED: {what}");
            self.failures.push(what);
        }
        ok
    }
}

/// What central acknowledged, and the final statuses it showed.
#[derive(Default)]
struct Model {
    packages: BTreeSet<String>,
    containers: BTreeSet<String>,
    finals: BTreeMap<(String, String), String>,
}

/// One round's package.
#[derive(Clone)]
struct Spec {
    name: String,
    body: Vec<u8>,
    command: String,
}

struct Deployed {
    package: String,
    container: String,
    /// Whether central answered the creations (else they were found afterwards).
    acked: (bool, bool),
    jobs: BTreeMap<String, String>,
}

fn is_final(status: &str) -> bool {
    !NOT_FINAL.contains(&status)
}

/// Creates something once: on no answer, looks for it by name before trying
/// again, so that a creation central committed before it died is not repeated.
async fn create_once<C, CF, L, LF>(
    api: &Api,
    what: &str,
    deadline: Instant,
    mut create: C,
    mut lookup: L,
) -> anyhow::Result<(String, bool)>
where
    C: FnMut(Api) -> CF,
    CF: std::future::Future<Output = Result<Value, Failure>>,
    L: FnMut(Api) -> LF,
    LF: std::future::Future<Output = Result<Option<String>, Failure>>,
{
    loop {
        match create(api.clone()).await {
            Ok(v) => {
                let id = v["id"].as_str().context("an id in the answer")?;
                return Ok((id.to_owned(), true));
            }
            Err(Failure::Refused(s, b)) => bail!("{what}: central refused: {s}: {b}"),
            Err(Failure::NoAnswer(_)) => loop {
                if Instant::now() > deadline {
                    bail!("{what}: central did not answer before the deadline");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                match lookup(api.clone()).await {
                    Ok(Some(id)) => return Ok((id, false)),
                    Ok(None) => break,
                    Err(Failure::NoAnswer(_)) => continue,
                    Err(Failure::Refused(s, b)) => bail!("{what}: central refused: {s}: {b}"),
                }
            },
        }
    }
}

async fn find_by_name(api: &Api, path: &str, name: &str) -> Result<Option<String>, Failure> {
    let list = api.get(path).await?;
    Ok(list.as_array().and_then(|items| {
        items
            .iter()
            .find(|i| i["name"] == name)
            .and_then(|i| i["id"].as_str().map(str::to_owned))
    }))
}

/// Waits until every job of the container is final: its status per computer.
async fn wait_final(
    api: &Api,
    container: &str,
    deadline: Instant,
) -> anyhow::Result<BTreeMap<String, String>> {
    loop {
        let c = api
            .answered("read the container", deadline, |a| {
                let path = format!("/containers/{container}");
                async move { a.get(&path).await }
            })
            .await?;
        let jobs: BTreeMap<String, String> = c["jobs"]
            .as_array()
            .context("jobs")?
            .iter()
            .filter_map(|j| {
                Some((
                    j["computer_id"].as_str()?.to_owned(),
                    j["status"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if !jobs.is_empty() && jobs.values().all(|s| is_final(s)) {
            return Ok(jobs);
        }
        if Instant::now() > deadline {
            bail!("the jobs are not final before the deadline: {jobs:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One deployment, as an admin drives it, central possibly dying underneath.
async fn deploy(api: Api, spec: Spec, computers: Vec<String>) -> anyhow::Result<Deployed> {
    let deadline = Instant::now() + DEPLOY_DEADLINE;
    let query = format!(
        "name={}&version=1&action=execute&archive=none&priority=0&fragment_size={FRAGMENT_SIZE}&command_timeout_s=60&command={}",
        spec.name,
        enc(&spec.command)
    );
    let (package, acked_package) = create_once(
        &api,
        "create the package",
        deadline,
        |a| {
            let (q, b) = (query.clone(), spec.body.clone());
            async move { a.upload(&q, b).await }
        },
        |a| {
            let name = spec.name.clone();
            async move { find_by_name(&a, "/packages", &name).await }
        },
    )
    .await?;
    api.answered("activate the package", deadline, |a| {
        let path = format!("/packages/{package}/activations");
        async move { a.post(&path, &json!({"all_sites": true})).await }
    })
    .await?;
    let body = json!({"name": spec.name, "packages": [package], "computers": computers});
    let (container, acked_container) = create_once(
        &api,
        "create the container",
        deadline,
        |a| {
            let body = body.clone();
            async move { a.post("/containers", &body).await }
        },
        |a| {
            let name = spec.name.clone();
            async move { find_by_name(&a, "/containers", &name).await }
        },
    )
    .await?;
    let jobs = wait_final(&api, &container, deadline).await?;
    Ok(Deployed {
        package,
        container,
        acked: (acked_package, acked_container),
        jobs,
    })
}

/// What the victim's state was right after the kill.
#[derive(Default)]
struct Struck {
    /// The killed agent's journal: package → its report is written down.
    journal: BTreeMap<String, bool>,
}

/// One kill: whom, how long into the deployment, how long it stays dead, and
/// whether its commands die with it (a power cut).
struct Blow {
    victim: Victim,
    delay: Duration,
    downtime: Duration,
    power_cut: bool,
}

/// Kills the victim after `delay`, starts it again, and checks what a restart
/// of it must keep.
async fn strike(
    world: &mut World,
    model: &Model,
    tally: &mut Tally,
    round: usize,
    blow: Blow,
) -> anyhow::Result<Struck> {
    let Blow {
        victim,
        delay,
        downtime,
        power_cut,
    } = blow;
    tokio::time::sleep(delay).await;
    world.kill(victim).await?;
    let mut struck = Struck::default();
    let kind = match victim {
        Victim::Central => "central",
        Victim::Relay(_) => "relay",
        Victim::Agent(_) => "agent",
    };
    *tally.kills.entry(kind).or_default() += 1;
    let mut acked: Vec<(String, BTreeSet<String>)> = Vec::new();
    match victim {
        Victim::Central => {
            // Read with central dead: every success counted here was taken before.
            for a in &world.agents {
                acked.push((a.id.clone(), checks::acknowledged_successes(&a.dir)));
            }
        }
        Victim::Agent(i) => {
            let dir = world.agents[i].dir.clone();
            struck.journal = checks::journal(&dir);
            if power_cut {
                // The computer lost power: its commands died with the agent.
                tally.power_cuts += 1;
                for pgid in checks::journal_groups(&dir) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pgid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        Victim::Relay(_) => {}
    }
    tokio::time::sleep(downtime).await;
    world.start(victim).await?;
    tally.restarts += 1;
    match victim {
        Victim::Central => check_central(world, model, tally, round, &acked).await?,
        Victim::Relay(i) => {
            let found = checks::verify_relay(&world.relays[i], &world.signing_key).await;
            record_holdings(tally, round, found);
        }
        Victim::Agent(_) => {}
    }
    Ok(struck)
}

fn record_holdings(tally: &mut Tally, round: usize, found: checks::Holdings) {
    tally.relay_checks += 1;
    tally.relay_fragments_verified += found.fragments;
    tally.relay_bad += found.bad.len() as u64;
    let bad = found.bad.join("; ");
    tally.check(round, found.bad.is_empty(), || {
        format!("a relay holds what does not verify: {bad}")
    });
}

/// After central restarted: what it acknowledged is all there.
async fn check_central(
    world: &World,
    model: &Model,
    tally: &mut Tally,
    round: usize,
    acked: &[(String, BTreeSet<String>)],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEPLOY_DEADLINE;
    let api = &world.api;
    for (computer, successes) in acked {
        let statuses = api
            .answered("read a computer", deadline, |a| {
                let c = computer.clone();
                async move { checks::statuses(&a, &c).await }
            })
            .await?;
        for id in successes {
            tally.acked_reports_checked += 1;
            let now = statuses.get(id).map_or("(none)", String::as_str);
            if !tally.check(round, now == "SUCCESS", || {
                format!("central took the SUCCESS of {id} on {computer} and shows {now} after its restart")
            }) {
                tally.acked_reports_lost += 1;
            }
        }
    }
    let packages = api
        .answered("list packages", deadline, |a| async move {
            a.get("/packages").await
        })
        .await?;
    let containers = api
        .answered("list containers", deadline, |a| async move {
            a.get("/containers").await
        })
        .await?;
    let ids = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (have_packages, have_containers) = (ids(&packages), ids(&containers));
    for (kind, wanted, have) in [
        ("package", &model.packages, &have_packages),
        ("container", &model.containers, &have_containers),
    ] {
        for id in wanted {
            tally.acked_calls_checked += 1;
            if !tally.check(round, have.contains(id), || {
                format!("the {kind} {id} central created is gone after its restart")
            }) {
                tally.acked_calls_lost += 1;
            }
        }
    }
    Ok(())
}

/// Every final status central showed is still what it shows.
async fn check_finals(
    world: &World,
    model: &Model,
    tally: &mut Tally,
    round: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEPLOY_DEADLINE;
    for a in &world.agents {
        let statuses = world
            .api
            .answered("read a computer", deadline, |api| {
                let c = a.id.clone();
                async move { checks::statuses(&api, &c).await }
            })
            .await?;
        for ((computer, package), was) in &model.finals {
            if computer != &a.id {
                continue;
            }
            let now = statuses.get(package).map_or("(none)", String::as_str);
            tally.check(round, now == was, || {
                format!("the job of {package} on {computer} was {was} and is now {now}")
            });
        }
    }
    Ok(())
}

struct Suite {
    world: World,
    model: Model,
    tally: Tally,
    rng: Rng,
}

impl Suite {
    fn spec(&mut self, round: usize) -> Spec {
        let name = format!("crash-{round:04}");
        let size = 16 * 1024 + self.rng.below(48 * 1024) as usize;
        let log = self.world.runs_log.display().to_string();
        Spec {
            command: format!(
                "echo \"START $SITECAST_COMPUTER_ID $SITECAST_PACKAGE_ID\" >> '{log}'; sleep 0.5; \
                 echo \"END $SITECAST_COMPUTER_ID $SITECAST_PACKAGE_ID\" >> '{log}'"
            ),
            body: self.rng.bytes(size),
            name,
        }
    }

    fn computers(&self) -> Vec<String> {
        self.world.agents.iter().map(|a| a.id.clone()).collect()
    }

    /// A round without a kill: how long a deployment takes.
    async fn warm_up(&mut self) -> anyhow::Result<Duration> {
        let spec = self.spec(0);
        let started = Instant::now();
        let d = deploy(self.world.api.clone(), spec, self.computers()).await?;
        let took = started.elapsed();
        if d.jobs.values().any(|s| s != "SUCCESS") {
            bail!("the warm-up deployment did not succeed: {:?}", d.jobs);
        }
        self.model.packages.insert(d.package.clone());
        self.model.containers.insert(d.container.clone());
        for (c, s) in d.jobs {
            self.model.finals.insert((c, d.package.clone()), s);
        }
        Ok(took)
    }

    async fn round(
        &mut self,
        round: usize,
        total: usize,
        victim: Victim,
        span: Duration,
    ) -> anyhow::Result<()> {
        let spec = self.spec(round);
        let delay = span.mul_f64(self.rng.unit());
        let downtime = Duration::from_millis(self.rng.below(300));
        let power_cut = matches!(victim, Victim::Agent(_)) && self.rng.below(2) == 0;
        let started = Instant::now();
        self.tally.deployments += 1;
        let api = self.world.api.clone();
        let computers = self.computers();
        let (deployed, struck) = tokio::join!(
            deploy(api, spec, computers),
            strike(
                &mut self.world,
                &self.model,
                &mut self.tally,
                round,
                Blow {
                    victim,
                    delay,
                    downtime,
                    power_cut,
                },
            )
        );
        let struck = struck?;
        let name = self.world.name(victim);
        let deployed = match deployed {
            Ok(d) => d,
            Err(e) => {
                self.tally.check(round, false, || {
                    format!("the deployment did not complete: {e:#}")
                });
                return Ok(());
            }
        };
        if deployed.acked.0 {
            self.model.packages.insert(deployed.package.clone());
        }
        if deployed.acked.1 {
            self.model.containers.insert(deployed.container.clone());
        }
        let mut jobs = deployed.jobs.clone();
        let mut allowed: BTreeMap<String, u32> = jobs.keys().map(|c| (c.clone(), 1)).collect();
        let mut retried = false;
        for (i, agent) in self.world.agents.iter().enumerate() {
            let Some(status) = jobs.get(&agent.id) else {
                self.tally
                    .check(round, false, || format!("no job for {}", agent.id));
                continue;
            };
            let started_unended =
                victim == Victim::Agent(i) && struck.journal.get(&deployed.package) == Some(&false);
            if status == "ERR_INTERRUPTED" {
                self.tally.interrupted += 1;
                self.tally.check(round, started_unended, || {
                    format!(
                        "{} reported ERR_INTERRUPTED though no command of it was cut short",
                        agent.id
                    )
                });
                *allowed.entry(agent.id.clone()).or_default() += 1;
                retried = true;
            } else {
                self.tally.check(round, !started_unended, || {
                    format!(
                        "{} was killed while the command of {} ran, and reported {status}, not ERR_INTERRUPTED",
                        agent.id, deployed.package
                    )
                });
            }
        }
        if retried {
            // What an admin does once they looked: the command runs again, once.
            let deadline = Instant::now() + DEPLOY_DEADLINE;
            self.world
                .api
                .answered("retry the container", deadline, |a| {
                    let path = format!("/containers/{}/retry", deployed.container);
                    async move { a.post(&path, &json!({})).await }
                })
                .await?;
            match wait_final(&self.world.api, &deployed.container, deadline).await {
                Ok(j) => jobs = j,
                Err(e) => {
                    self.tally.check(round, false, || {
                        format!("the retried jobs did not end: {e:#}")
                    });
                    return Ok(());
                }
            }
        }
        let runs = checks::runs(&self.world.runs_log);
        let mut complete = true;
        for (computer, status) in &jobs {
            complete &= self.tally.check(round, status == "SUCCESS", || {
                format!(
                    "the deployment of {} to {computer} ended {status}",
                    deployed.package
                )
            });
            let (starts, ends) = runs
                .get(&(computer.clone(), deployed.package.clone()))
                .copied()
                .unwrap_or((0, 0));
            let may = allowed.get(computer).copied().unwrap_or(1);
            if !self.tally.check(round, starts <= may, || {
                format!(
                    "the command of {} ran {starts} times on {computer}, {may} allowed",
                    deployed.package
                )
            }) {
                self.tally.ran_twice += 1;
            } else if starts == 1 {
                self.tally.ran_once += 1;
            } else if starts > 1 {
                self.tally.ran_again_after_retry += 1;
            }
            if status == "SUCCESS" {
                self.tally.check(round, ends >= 1, || {
                    format!(
                        "{} is SUCCESS on {computer} but its command never ended",
                        deployed.package
                    )
                });
            }
            self.model
                .finals
                .insert((computer.clone(), deployed.package.clone()), status.clone());
        }
        if complete {
            self.tally.completed += 1;
        }
        check_finals(&self.world, &self.model, &mut self.tally, round).await?;
        for gone in self.world.exited() {
            self.tally.check(round, false, || gone);
        }
        let statuses: Vec<&str> = jobs.values().map(String::as_str).collect();
        println!(
            "round {round}/{total}: killed {name} after {:.2}s{}{} -> {} in {:.1}s",
            delay.as_secs_f64(),
            if power_cut {
                " with its commands (power cut)"
            } else {
                ""
            },
            if retried {
                ", retried ERR_INTERRUPTED"
            } else {
                ""
            },
            statuses.join(", "),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn report(t: &Tally, seed: u64, rounds: usize, took: Duration) {
    let kills = |k| t.kills.get(k).copied().unwrap_or(0);
    println!(
        "== crash suite: seed {seed}, {rounds} rounds in {:.0}s",
        took.as_secs_f64()
    );
    println!(
        "kills: central {}, relay {}, agent {} ({} with its commands: power cuts); restarts {}",
        kills("central"),
        kills("relay"),
        kills("agent"),
        t.power_cuts,
        t.restarts
    );
    println!("deployments completed: {}/{}", t.completed, t.deployments);
    println!("checks: passed {}, failed {}", t.passed, t.failures.len());
    println!(
        "actions: run once {}, run twice by themselves {}, run again after an admin retry {} ({} ERR_INTERRUPTED)",
        t.ran_once, t.ran_twice, t.ran_again_after_retry, t.interrupted
    );
    println!(
        "acknowledged reports lost: {} of {} checked after central restarts; acknowledged creations lost: {} of {}",
        t.acked_reports_lost, t.acked_reports_checked, t.acked_calls_lost, t.acked_calls_checked
    );
    println!(
        "relay holdings verified: {} checks, {} fragments verified, {} that do not verify",
        t.relay_checks, t.relay_fragments_verified, t.relay_bad
    );
}

async fn suite(n: usize, seed: u64, root: PathBuf, bin: PathBuf) -> anyhow::Result<Tally> {
    let mut rng = Rng::new(seed);
    let world = World::build(&root, &bin).await?;
    let mut suite = Suite {
        world,
        model: Model::default(),
        tally: Tally::default(),
        rng: Rng::new(rng.next_u64()),
    };
    let result = run_rounds(&mut suite, n, &mut rng).await;
    suite.world.stop_all().await;
    result?;
    Ok(suite.tally)
}

async fn run_rounds(suite: &mut Suite, n: usize, rng: &mut Rng) -> anyhow::Result<()> {
    let took = suite.warm_up().await?;
    // Kills are drawn over a little more than a deployment, so some land after it.
    let span = took.mul_f64(1.2);
    println!(
        "a deployment takes {:.2}s; kills are drawn within {:.2}s",
        took.as_secs_f64(),
        span.as_secs_f64()
    );
    let mut victims = Vec::with_capacity(3 * n);
    for _ in 0..n {
        victims.push(Victim::Central);
        victims.push(Victim::Relay(rng.below(2) as usize));
        victims.push(Victim::Agent(rng.below(2) as usize));
    }
    rng.shuffle(&mut victims);
    let total = victims.len();
    for (i, victim) in victims.into_iter().enumerate() {
        suite.round(i + 1, total, victim, span).await?;
    }
    for i in 0..suite.world.relays.len() {
        let found = checks::verify_relay(&suite.world.relays[i], &suite.world.signing_key).await;
        record_holdings(&mut suite.tally, total, found);
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let n = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: crash-suite [N]   (N kills per component, default 100)");
            return ExitCode::from(2);
        }
    };
    let seed = match std::env::var("SEED") {
        Ok(s) => match s.parse::<u64>() {
            Ok(seed) => seed,
            Err(_) => {
                eprintln!("crash-suite: SEED={s:?} is not a number");
                return ExitCode::from(2);
            }
        },
        // A fresh seed without reading the clock: std's per-process hash keys are random.
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        }
    };
    let bin = PathBuf::from(
        std::env::var("SITECAST_BIN_DIR").unwrap_or_else(|_| "target/release".into()),
    );
    let keep = std::env::var("SITECAST_CRASH_KEEP").is_ok_and(|v| v == "1");
    let root = match tempfile::Builder::new().prefix("sitecast-crash-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("crash-suite: cannot make a work directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "== crash suite: {n} kills per component, seed {seed} (SEED={seed} replays it), binaries in {}, work in {}",
        bin.display(),
        root.path().display()
    );
    let started = Instant::now();
    let outcome = suite(n, seed, root.path().to_owned(), bin).await;
    let failed = match &outcome {
        Ok(t) => {
            report(t, seed, 3 * n, started.elapsed());
            !t.failures.is_empty()
        }
        Err(e) => {
            eprintln!("crash-suite: the suite itself failed: {e:#}");
            true
        }
    };
    if let Ok(t) = &outcome {
        for f in &t.failures {
            eprintln!("crash-suite: FAILED: {f}");
        }
    }
    if failed || keep {
        let kept = root.keep();
        eprintln!(
            "crash-suite: work directory (logs/, runs.log) kept in {}",
            kept.display()
        );
    }
    if failed {
        eprintln!("crash-suite: FAILED (SEED={seed} replays it)");
        ExitCode::FAILURE
    } else {
        println!("crash-suite: OK");
        ExitCode::SUCCESS
    }
}
