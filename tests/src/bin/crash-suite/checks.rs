//! What the suite reads back to check the promises: a relay's holdings verified
//! against central's signing key (on disk and as its HTTP server serves them),
//! an agent's journal and history, and the status central keeps for each job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use sitecast_common::signing::verify_info;

use crate::api::{Api, Failure};
use crate::world::Relay;

/// What a relay was found to hold, all of it verified.
#[derive(Debug, Default)]
pub struct Holdings {
    pub packages: u64,
    pub fragments: u64,
    /// Everything held or served that does not verify.
    pub bad: Vec<String>,
}

/// Every fragment file in the relay's cache must match its signed info (which
/// must verify against central's key), and so must every fragment its HTTP
/// server serves of what its health says it holds; it must serve at least as
/// many fragments of each package as it claims.
pub async fn verify_relay(relay: &Relay, key: &VerifyingKey) -> Holdings {
    let mut found = Holdings::default();
    verify_disk(relay, key, &mut found);
    verify_served(relay, key, &mut found).await;
    found
}

fn verify_disk(relay: &Relay, key: &VerifyingKey, found: &mut Holdings) {
    let cache = relay.dir.join("cache");
    let Ok(entries) = std::fs::read_dir(&cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "tmp" || !entry.path().is_dir() {
            continue;
        }
        let dir = entry.path();
        let fragments: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_str()?.parse::<u32>().ok()?;
                        Some((n, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let info = match std::fs::read(dir.join("info.dsse.json")) {
            Ok(envelope) => match verify_info(&envelope, std::slice::from_ref(key)) {
                Ok(info) => info,
                Err(e) => {
                    found.bad.push(format!(
                        "{}: {name}: its signed info does not verify: {e}",
                        relay.id
                    ));
                    continue;
                }
            },
            Err(_) if fragments.is_empty() => continue,
            Err(_) => {
                found.bad.push(format!(
                    "{}: {name}: {} fragment files and no signed info to verify them",
                    relay.id,
                    fragments.len()
                ));
                continue;
            }
        };
        if info.id().as_str() != name {
            found.bad.push(format!(
                "{}: {name}: holds the info of {}",
                relay.id,
                info.id()
            ));
            continue;
        }
        found.packages += 1;
        for (n, path) in fragments {
            let Ok(bytes) = std::fs::read(&path) else {
                // Dropped meanwhile.
                continue;
            };
            match info.plan().verify(n, &bytes) {
                Ok(()) => found.fragments += 1,
                Err(e) => found.bad.push(format!(
                    "{}: {name} fragment {n} on disk does not verify: {e}",
                    relay.id
                )),
            }
        }
    }
}

async fn verify_served(relay: &Relay, key: &VerifyingKey, found: &mut Holdings) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(h) => h,
        Err(e) => return found.bad.push(format!("no HTTP client: {e}")),
    };
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", relay.url);
        async move {
            let r = http.get(&url).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.bytes().await.ok()
        }
    };
    let Some(health) = get("/v1/health".into()).await else {
        return found
            .bad
            .push(format!("{}: its health route does not answer", relay.id));
    };
    let health: Value = serde_json::from_slice(&health).unwrap_or_default();
    let Some(holdings) = health["holdings"].as_object() else {
        return found
            .bad
            .push(format!("{}: health without holdings: {health}", relay.id));
    };
    for (id, claimed) in holdings {
        let claimed = claimed.as_u64().unwrap_or(0);
        let Some(envelope) = get(format!("/v1/packages/{id}/info")).await else {
            if claimed > 0 {
                found.bad.push(format!(
                    "{}: claims {claimed} fragments of {id} but serves no info",
                    relay.id
                ));
            }
            continue;
        };
        let info = match verify_info(&envelope, std::slice::from_ref(key)) {
            Ok(info) => info,
            Err(e) => {
                found.bad.push(format!(
                    "{}: serves an info of {id} that does not verify: {e}",
                    relay.id
                ));
                continue;
            }
        };
        let mut served = 0;
        for n in 1..=info.plan().count() {
            if let Some(bytes) = get(format!("/v1/packages/{id}/fragments/{n}")).await {
                match info.plan().verify(n, &bytes) {
                    Ok(()) => served += 1,
                    Err(e) => found.bad.push(format!(
                        "{}: serves fragment {n} of {id} that does not verify: {e}",
                        relay.id
                    )),
                }
            }
        }
        if served < claimed {
            found.bad.push(format!(
                "{}: claims {claimed} fragments of {id} and serves {served}",
                relay.id
            ));
        }
    }
}

/// An agent's journal: each package whose command started and whose report
/// central has not taken, and whether its report is written down.
pub fn journal(agent_dir: &Path) -> BTreeMap<String, bool> {
    let mut entries = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(agent_dir.join("running")) else {
        return entries;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        let reported = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| !v["report"].is_null());
        entries.insert(id.to_owned(), reported);
    }
    entries
}

/// The process groups of the commands an agent's journal says are running.
pub fn journal_groups(agent_dir: &Path) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir(agent_dir.join("running")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let v: Value = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            if !v["report"].is_null() {
                return None;
            }
            i32::try_from(v["pgid"].as_i64()?).ok()
        })
        .collect()
}

/// Packages whose success central acknowledged to the agent: in its history
/// (written before the report is sent), no longer in its journal (removed once
/// central took the report). The history is read first, so a package counted
/// here had its report taken before the journal was read.
pub fn acknowledged_successes(agent_dir: &Path) -> BTreeSet<String> {
    let history: BTreeSet<String> = std::fs::read(agent_dir.join("history.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    let running = journal(agent_dir);
    history
        .into_iter()
        .filter(|id| !running.contains_key(id))
        .collect()
}

/// The status of each package's latest job on a computer, as central keeps it.
pub async fn statuses(api: &Api, computer: &str) -> Result<BTreeMap<String, String>, Failure> {
    let page = api.get(&format!("/computers/{computer}")).await?;
    Ok(page["packages"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some((
                        p["package_id"].as_str()?.to_owned(),
                        p["status"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Lines of the runs log: how many times each (computer, package) command
/// started and ended.
pub fn runs(log: &Path) -> BTreeMap<(String, String), (u32, u32)> {
    let mut runs = BTreeMap::new();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(what), Some(computer), Some(package)) =
            (words.next(), words.next(), words.next())
        else {
            continue;
        };
        let entry: &mut (u32, u32) = runs
            .entry((computer.to_owned(), package.to_owned()))
            .or_default();
        match what {
            "START" => entry.0 += 1,
            "END" => entry.1 += 1,
            _ => {}
        }
    }
    runs
}
