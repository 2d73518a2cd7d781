//! Agent routes: enrollment, polling, central as the source of last resort, and
//! status reports.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sitecast_common::ids::{slug, ComputerId, PackageId, RelayId};
use sitecast_common::power::{self, MacAddr, PowerAction};
use sitecast_common::subnet::best_prefix;
use sitecast_common::wire::{
    ComputerStat, EnrollRequest, EnrollResponse, PollRequest, PollResponse, PolledPackage,
    ProblemReport, RelayProblem, RelayRef, StatusReport,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::admin::{computer_stat, envelope_response, find_package};
use super::error::ApiError;
use super::extract::{Agent, ApiJson, ApiPath, Peer};
use super::Central;
use crate::error::CentralError;
use crate::jitter;
use crate::store::{ComputerRecord, ContainerRecord};
use crate::tokens;
use sitecast_common::jobs::Admission;

type Shared = State<Arc<Central>>;

/// Largest output tail kept per report (SPEC: the last 4 KiB).
pub const OUTPUT_TAIL: usize = 4096;

fn parse_addresses(list: &[String]) -> Result<Vec<IpAddr>, ApiError> {
    list.iter()
        .map(|a| {
            a.trim().parse().map_err(|_| {
                ApiError::bad_request(format!("bad addresses: '{a}' is not an IP address"))
            })
        })
        .collect()
}

/// MAC addresses as agents report them; a bad one is named.
fn parse_macs(list: &[String]) -> Result<Vec<MacAddr>, ApiError> {
    power::parse_macs(list).map_err(|e| ApiError::bad_request(format!("bad macs: {e}")))
}

fn short_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "bad {field}: must be 1 to {max} printable characters"
        )));
    }
    Ok(v.to_owned())
}

pub async fn enroll(
    State(c): Shared,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Response, ApiError> {
    if tokens::digest(req.enroll_token.trim()) != c.enroll_token {
        return Err(ApiError::unauthorized("bad enroll_token"));
    }
    let hostname = short_text("hostname", &req.hostname, 253)?;
    let os = short_text("os", &req.os, 64)?;
    let addresses = parse_addresses(&req.addresses)?;
    let tags = sitecast_common::groups::parse_tags(&req.tags)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let macs = parse_macs(&req.macs)?;
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
            .map_err(|e| ApiError::bad_request(format!("bad hostname: {e}")))?;
        let record = ComputerRecord {
            id: id.clone(),
            hostname: hostname.clone(),
            os: os.clone(),
            addresses: addresses.clone(),
            enrolled_at: now,
            last_seen: Some(now),
            tags: tags.clone(),
            macs: macs.clone(),
        };
        attempts += 1;
        match c
            .blocking(move |c| c.store.add_computer(&record, digest))
            .await
        {
            Ok(()) => break id,
            // Two computers drew the same random suffix: draw again.
            Err(e) if e.status == StatusCode::CONFLICT && attempts < 5 => continue,
            Err(e) => return Err(e),
        }
    };
    tracing::info!(computer = %id, "computer enrolled");
    // Dynamic groups may take it in at once: their rules make its jobs now.
    let who = id.clone();
    c.blocking(move |c| {
        super::rules::after_computer_change(c, &who);
        Ok(())
    })
    .await?;
    let reply = EnrollResponse {
        computer_id: id,
        token,
        signing_keys: c.public_keys.clone(),
    };
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

pub async fn poll(
    Agent(me): Agent,
    State(c): Shared,
    Peer(peer): Peer,
    ApiJson(req): ApiJson<PollRequest>,
) -> Result<Json<PollResponse>, ApiError> {
    let addresses = parse_addresses(&req.addresses)?;
    let macs = parse_macs(&req.macs)?;
    let now = c.clock.now();
    let who = me.clone();
    let reported = addresses.clone();
    let tz = c.config.tz();
    let expiry = c.config.wol_shutdown_expiry;
    let uptime_s = req.uptime_s;
    let (handed, shut_down) = c
        .blocking(move |c| {
            if c.store.touch_computer(&who, &reported, &macs, now)? {
                // It moved: groups by subnet may have gained or lost it.
                super::rules::after_computer_change(c, &who);
            }
            // Ranges are matched against the address on the connection, never
            // against what the agent says about itself. A disabled rule hands out nothing.
            let admits = |container: &ContainerRecord| {
                container.rule.as_ref().is_none_or(|r| r.enabled)
                    && container.conditions().admits(peer, now, &tz) == Admission::Admitted
            };
            let handed = c.store.poll_jobs(&who, now, &admits)?;
            // Never while it is handed work: the agent would stop half-way.
            let shut_down =
                c.store
                    .power_on_poll(&who, now, uptime_s, expiry, !handed.is_empty())?;
            Ok((handed, shut_down))
        })
        .await?;
    // A poll without addresses keeps the ones the computer reported last.
    let addresses = if addresses.is_empty() {
        c.store
            .computer(&me)?
            .map(|r| r.addresses)
            .unwrap_or_default()
    } else {
        addresses
    };
    let relays = c.store.relays()?;
    let mut packages = Vec::new();
    // In the order the store handed them: the order the agent should run them in.
    for (container, job) in handed {
        let Some(p) = c.store.package(&job.package_id)? else {
            continue;
        };
        let activated = |site| p.activation.all_sites || p.activation.sites.contains(site);
        let holders = relays
            .iter()
            .filter(|r| activated(&r.site) && r.holds_whole(&p))
            .map(|r| RelayRef {
                id: r.id.clone(),
                url: r.url.clone(),
                subnets: r.subnets.clone(),
            })
            .collect();
        // A relay serves this computer but lacks the package: the agent should wait
        // for it rather than pull the package across the WAN.
        let relay_pending = relays.iter().any(|r| {
            best_prefix(&addresses, &r.subnets).is_some()
                && !(activated(&r.site) && r.holds_whole(&p))
        });
        packages.push(PolledPackage {
            id: p.id.clone(),
            priority: p.priority,
            info_sha256: p.info_sha256.clone(),
            relays: holders,
            relay_pending,
            central_fallback: p.activation.central_fallback,
            kind: job.kind,
            restart_timeout_s: container.power.restart_timeout.as_secs(),
        });
    }
    Ok(Json(PollResponse {
        // Jittered, so agents started together drift apart instead of polling in bursts.
        poll_interval_s: jitter::poll_interval(c.config.poll_interval.as_secs(), c.random.as_ref()),
        packages,
        power: shut_down.then_some(PowerAction::Shutdown),
    }))
}

/// The package, if this computer has a job for it: central serves packages
/// only to the computers they are meant for.
fn assigned_package(c: &Central, me: &ComputerId, id: &str) -> Result<PackageId, ApiError> {
    let package = find_package(c, id)?;
    if !c.store.has_job(&package.id, me)? {
        return Err(ApiError::not_found("package", id));
    }
    Ok(package.id)
}

pub async fn info(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let pid = assigned_package(&c, &me, &id)?;
    envelope_response(&c, &pid).await
}

pub async fn fragment(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath((id, n)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let package = find_package(&c, &id)?;
    let pid = assigned_package(&c, &me, &id)?;
    let (offset, len) = n
        .parse::<u32>()
        .ok()
        .and_then(|i| fragment_range(package.size, package.fragment_size, i))
        .ok_or_else(|| ApiError::not_found("fragment", &n))?;
    let path = c.files.data_path(&pid);
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::from(CentralError::io(&path)(e)))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| ApiError::from(CentralError::io(&path)(e)))?;
    c.fragment_bytes_to_agents
        .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(len), 64 << 10));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
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

pub async fn status(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut report): ApiJson<StatusReport>,
) -> Result<Json<ComputerStat>, ApiError> {
    if !report.code.is_reportable() {
        return Err(ApiError::bad_request(format!(
            "bad code: {} is set by central, not reported by agents",
            report.code
        )));
    }
    let pid = assigned_package(&c, &me, &id)?;
    if let Some(out) = report.output.take() {
        report.output = Some(tail(&out, OUTPUT_TAIL).to_owned());
    }
    let now = c.clock.now();
    let who = me.clone();
    let a = c
        .blocking(move |c| {
            let job = c.store.report_job(&who, &pid, &report, now)?;
            if job.status.is_success() && job.finished_at == Some(now) {
                // Installed packages changed: rules may want an uninstall, or a job again.
                super::rules::after_computer_change(c, &who);
            }
            Ok(job)
        })
        .await?;
    Ok(Json(computer_stat(&c, a)?))
}

/// Longest problem detail kept (the start says what happened; the rest is noise).
pub const PROBLEM_DETAIL: usize = 1024;

/// The first `max` bytes of `text`, cut at a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// An agent gave up on a relay (refused, timed out, stalled, bad data): central
/// counts it on the relay's record so admins see failing relays in `relay list`.
pub async fn relay_problem(
    Agent(me): Agent,
    State(c): Shared,
    ApiPath(id): ApiPath<String>,
    ApiJson(report): ApiJson<ProblemReport>,
) -> Result<StatusCode, ApiError> {
    let relay: RelayId = id.parse().map_err(|_| ApiError::not_found("relay", &id))?;
    // Control characters would garble the admin's table; the detail is free text.
    let detail: String = head(report.detail.trim(), PROBLEM_DETAIL)
        .chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect();
    let problem = RelayProblem {
        kind: report.kind,
        detail,
        computer_id: me.clone(),
        package_id: report.package_id,
        at: c.clock.now(),
    };
    let shown = relay.clone();
    let kind = problem.kind;
    if !c
        .blocking(move |c| c.store.record_relay_problem(&relay, &problem))
        .await?
    {
        return Err(ApiError::not_found("relay", shown));
    }
    tracing::info!(relay = %shown, computer = %me, %kind, "an agent reported a relay problem");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::{head, tail};

    #[test]
    fn head_cuts_at_char_boundaries() {
        assert_eq!(head("hello", 10), "hello");
        assert_eq!(head("hello", 3), "hel");
        assert_eq!(head("héllo", 2), "h");
    }

    #[test]
    fn tail_cuts_at_char_boundaries() {
        assert_eq!(tail("hello", 10), "hello");
        assert_eq!(tail("hello", 3), "llo");
        assert_eq!(tail("héllo", 4), "llo");
    }
}
