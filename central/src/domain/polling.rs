//! The agent protocol's domain: enrollment, the poll answer (which jobs a
//! computer gets now, in what order, from which relays, and whether to shut
//! down), the packages an agent may fetch from central, and status reports.

use std::net::IpAddr;

use sitecast_common::groups;
use sitecast_common::ids::{slug, ComputerId, PackageId};
use sitecast_common::jobs::Admission;
use sitecast_common::keyset;
use sitecast_common::power::{self, MacAddr, PowerAction};
use sitecast_common::subnet::best_prefix;
use sitecast_common::wire::{
    ComputerStat, EnrollRequest, EnrollResponse, PollRequest, PollResponse, PolledPackage,
    RelayRef, StatusReport,
};

use super::{convert, enroll_tokens, records, rules, stats};
use crate::config::EnrollApproval;
use crate::error::CentralError;
use crate::jitter;
use crate::state::Central;
use crate::store::{ComputerRecord, ContainerRecord, PackageRecord};
use crate::tokens;

/// Largest output tail kept per report (the last 4 KiB).
pub const OUTPUT_TAIL: usize = 4096;

/// How many random ids an enrollment draws before it gives up.
const ENROLL_ATTEMPTS: u32 = 5;

fn parse_addresses(list: &[String]) -> Result<Vec<IpAddr>, CentralError> {
    list.iter()
        .map(|a| {
            a.trim().parse().map_err(|_| {
                CentralError::invalid(format!("bad addresses: '{a}' is not an IP address"))
            })
        })
        .collect()
}

/// MAC addresses as agents report them; a bad one is named.
fn parse_macs(list: &[String]) -> Result<Vec<MacAddr>, CentralError> {
    power::parse_macs(list).map_err(|e| CentralError::invalid(format!("bad macs: {e}")))
}

fn short_text(field: &str, value: &str, max: usize) -> Result<String, CentralError> {
    let v = value.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(CentralError::invalid(format!(
            "bad {field}: must be 1 to {max} printable characters"
        )));
    }
    Ok(v.to_owned())
}

/// Enrolls a computer that gave the enroll token: a new id and token, and the
/// keys infos are signed with. Dynamic groups may take it in at once: their
/// rules make its jobs now.
pub fn enroll(c: &Central, req: EnrollRequest) -> Result<EnrollResponse, CentralError> {
    let hostname = short_text("hostname", &req.hostname, 253)?;
    let os = short_text("os", &req.os, 64)?;
    let addresses = parse_addresses(&req.addresses)?;
    let mut tags =
        groups::parse_tags(&req.tags).map_err(|e| CentralError::invalid(e.to_string()))?;
    let macs = parse_macs(&req.macs)?;
    // Checked last: a use of a limited token is taken only by a request that is
    // otherwise good.
    for tag in enroll_tokens::admit(c, req.enroll_token.trim())? {
        if !tags.iter().any(|t| t.same(&tag)) {
            tags.push(tag);
        }
    }
    let mut base = slug(&hostname, 40);
    if base.is_empty() {
        base = "computer".into();
    }
    let token = tokens::generate();
    let digest = tokens::digest(&token);
    let now = c.clock.now();
    let mut attempts = 0;
    let id = loop {
        let id: ComputerId = format!("{base}-{}", tokens::suffix())
            .parse()
            .map_err(|e| CentralError::invalid(format!("bad hostname: {e}")))?;
        let record = ComputerRecord {
            id: id.clone(),
            hostname: hostname.clone(),
            os: os.clone(),
            addresses: addresses.clone(),
            enrolled_at: now,
            last_seen: Some(now),
            tags: tags.clone(),
            macs: macs.clone(),
            pending: c.config.enroll_approval == EnrollApproval::Manual,
        };
        attempts += 1;
        match c.store.add_computer(&record, digest) {
            Ok(()) => break id,
            // Two computers drew the same random suffix: draw again.
            Err(CentralError::IdTaken { .. }) if attempts < ENROLL_ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    };
    if c.config.enroll_approval == EnrollApproval::Manual {
        tracing::info!(computer = %id, "computer enrolled; pending approval");
    } else {
        tracing::info!(computer = %id, "computer enrolled");
    }
    rules::after_computer_change(c, &id);
    let keys = c.keys();
    Ok(EnrollResponse {
        computer_id: id,
        token,
        signing_keys: keys.public_keys(),
        root_key: Some(keys.root_pem.clone()),
        keyset: Some(keys.envelope.clone()),
    })
}

/// Answers a poll: records what the computer says of itself, hands it the
/// next job of every container that admits it (ranges matched against `peer`,
/// the address on the connection, never what the agent says), each with the
/// relays that hold the package whole, and asks it to shut down if a wake is
/// over.
pub fn poll(
    c: &Central,
    me: &ComputerId,
    peer: Option<IpAddr>,
    req: PollRequest,
) -> Result<PollResponse, CentralError> {
    let addresses = parse_addresses(&req.addresses)?;
    let macs = parse_macs(&req.macs)?;
    let now = c.clock.now();
    let tz = c.config.tz();
    let keys = c.keys();
    // Only to agents that trust a root, and only when theirs is older.
    let keyset = req
        .keyset_version
        .filter(|v| *v < keys.set.version())
        .map(|_| keys.envelope.clone());
    if c.store.touch_computer(me, &addresses, &macs, now)? {
        // It moved: groups by subnet may have gained or lost it.
        rules::after_computer_change(c, me);
    }
    if c.store.computer(me)?.is_some_and(|pc| pc.pending) {
        // Not approved yet: in touch, listed, and handed nothing.
        return Ok(PollResponse {
            poll_interval_s: jitter::poll_interval(
                c.config.poll_interval.as_secs(),
                c.random.as_ref(),
            ),
            packages: Vec::new(),
            power: None,
            keyset,
        });
    }
    // A disabled rule hands out nothing.
    let admits = |container: &ContainerRecord| {
        container.rule.as_ref().is_none_or(|r| r.enabled)
            && container.conditions().admits(peer, now, &tz) == Admission::Admitted
    };
    let handed = c.store.poll_jobs(me, now, &admits)?;
    // Never while it is handed work: the agent would stop half-way.
    let shut_down = c.store.power_on_poll(
        me,
        now,
        req.uptime_s,
        c.config.wol_shutdown_expiry,
        !handed.is_empty(),
    )?;
    // A poll without addresses keeps the ones the computer reported last.
    let addresses = if addresses.is_empty() {
        c.store
            .computer(me)?
            .map(|r| r.addresses)
            .unwrap_or_default()
    } else {
        addresses
    };
    let relays = c.store.relays()?;
    let mut polled = Vec::new();
    // In the order the store handed them: the order the agent should run them in.
    for (container, job) in handed {
        let Some(p) = c.store.package(&job.package_id)? else {
            continue;
        };
        let serves = |r: &crate::store::RelayRecord| {
            convert::activated_for(&p, &r.site) && r.holds_whole(&p)
        };
        let holders = relays
            .iter()
            .filter(|r| serves(r))
            .map(|r| RelayRef {
                id: r.id.clone(),
                url: r.url.clone(),
                subnets: r.subnets.clone(),
            })
            .collect();
        // A relay serves this computer but lacks the package: the agent should wait
        // for it rather than pull the package across the WAN.
        let relay_pending = relays
            .iter()
            .any(|r| best_prefix(&addresses, &r.subnets).is_some() && !serves(r));
        polled.push(PolledPackage {
            id: p.id.clone(),
            priority: p.priority,
            info_sha256: p.info_sha256.clone(),
            relays: holders,
            relay_pending,
            central_fallback: p.activation.central_fallback,
            kind: job.kind,
            restart_timeout_s: container.power.restart_timeout.as_secs(),
            job: job.handout(),
            downgrade: (container.downgrade && job.kind == sitecast_common::jobs::JobKind::Install)
                .then(|| keyset::sign_downgrade(&keys.signing, me, &p.id)),
        });
    }
    Ok(PollResponse {
        // Jittered, so agents started together drift apart instead of polling in bursts.
        poll_interval_s: jitter::poll_interval(c.config.poll_interval.as_secs(), c.random.as_ref()),
        packages: polled,
        power: shut_down.then_some(PowerAction::Shutdown),
        keyset,
    })
}

/// The package, if this computer has a job for it: central serves packages
/// only to the computers they are meant for.
pub fn assigned_package(
    c: &Central,
    me: &ComputerId,
    id: &str,
) -> Result<PackageRecord, CentralError> {
    let package = records::package(c, id)?;
    if !c.store.has_job(&package.id, me)? {
        return Err(CentralError::not_found("package", id));
    }
    Ok(package)
}

/// Where fragment `n` (1-based, as the agent names it) of a package this
/// computer may fetch lies in its data file: the file, offset and length.
pub fn fragment(
    c: &Central,
    me: &ComputerId,
    id: &str,
    n: &str,
) -> Result<(std::path::PathBuf, u64, u64), CentralError> {
    let package = assigned_package(c, me, id)?;
    let (offset, len) = n
        .parse::<u32>()
        .ok()
        .and_then(|i| fragment_range(package.size, package.fragment_size, i))
        .ok_or_else(|| CentralError::not_found("fragment", n))?;
    Ok((c.files.data_path(&package.id), offset, len))
}

/// Offset and length of fragment `index` (1-based) of a file, if it exists.
fn fragment_range(size: u64, fragment_size: u64, index: u32) -> Option<(u64, u64)> {
    let offset = u64::from(index.checked_sub(1)?).checked_mul(fragment_size)?;
    (offset < size).then(|| (offset, fragment_size.min(size - offset)))
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Records an agent's status report on its job of the package; a success
/// that settles the job re-evaluates its rules (installed packages changed).
pub fn report(
    c: &Central,
    me: &ComputerId,
    id: &str,
    mut report: StatusReport,
) -> Result<ComputerStat, CentralError> {
    if !report.code.is_reportable() {
        return Err(CentralError::invalid(format!(
            "bad code: {} is set by central, not reported by agents",
            report.code
        )));
    }
    let pid: PackageId = assigned_package(c, me, id)?.id;
    if let Some(out) = report.output.take() {
        report.output = Some(tail(&out, OUTPUT_TAIL).to_owned());
    }
    let now = c.clock.now();
    let answers = report.job.take();
    let job = c
        .store
        .report_job(me, &pid, answers.as_deref(), &report.into(), now)?;
    if job.status.is_success() && job.finished_at == Some(now) {
        rules::after_computer_change(c, me);
    }
    stats::computer_stat(c, job)
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_cuts_at_char_boundaries() {
        assert_eq!(tail("hello", 10), "hello");
        assert_eq!(tail("hello", 3), "llo");
        assert_eq!(tail("héllo", 4), "llo");
    }
}
