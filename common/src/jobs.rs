//! Job containers (SPEC "Jobs", OCO seeds `000`/`001`), decided purely: whether a
//! container admits a computer's jobs now, which of a computer's jobs runs next,
//! what a failure does to the ones after it, when a failed job is tried again,
//! the container's runtimes, when a finished container may be purged, and
//! (in [`plan`]) which jobs a container gets, who is busy, where a container
//! stands and which jobs a poll hands out.
//!
//! Central stores the records and feeds these functions the agent's address as it
//! sees it on the connection and its own clock; the rules live here so they are
//! tested without a server.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::constraint::{IpRanges, TimeFrames};
use crate::grammar::GrammarError;
use crate::status::StatusCode;
use crate::units::Duration;

mod plan;

pub use plan::{
    busy, container_state, plan, poll_order, Candidate, ContainerTimes, JobEnd, PendingJob,
    PlannedPackage,
};

/// OCO's sequence mode: what a failed job does to the computer's later jobs of
/// the same container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sequence {
    /// The later jobs run anyway.
    #[default]
    IgnoreFailed,
    /// The later jobs become `ERR_PREVIOUS_FAILED` (OCO's `-8888`).
    AbortAfterFailed,
}

impl FromStr for Sequence {
    type Err = GrammarError;
    fn from_str(s: &str) -> Result<Self, GrammarError> {
        match s {
            "ignore_failed" => Ok(Self::IgnoreFailed),
            "abort_after_failed" => Ok(Self::AbortAfterFailed),
            _ => Err(GrammarError {
                grammar: "sequence",
                token: s.to_owned(),
                reason: "expected ignore_failed or abort_after_failed".into(),
            }),
        }
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IgnoreFailed => "ignore_failed",
            Self::AbortAfterFailed => "abort_after_failed",
        })
    }
}

/// When and to whom a container's jobs may be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    pub start_at: Timestamp,
    pub end_at: Option<Timestamp>,
    pub ip_ranges: Option<IpRanges>,
    pub time_frames: Option<TimeFrames>,
}

/// Whether a container's jobs may run now, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    NotStarted,
    Ended,
    /// The agent's address is outside the ranges (or unknown while there are ranges).
    AddressRefused,
    /// Central's wall time is outside the time frames.
    OutsideTimeFrames,
}

impl Conditions {
    /// Checks start and end, then the address `peer` (the one central sees on the
    /// connection: an unknown address is refused whenever there are ranges), then
    /// the frames against `now` read in `tz`.
    pub fn admits(&self, peer: Option<IpAddr>, now: Timestamp, tz: &TimeZone) -> Admission {
        if now < self.start_at {
            return Admission::NotStarted;
        }
        if self.end_at.is_some_and(|end| now >= end) {
            return Admission::Ended;
        }
        if let Some(ranges) = self.ip_ranges.as_ref().filter(|r| !r.is_empty()) {
            if !peer.is_some_and(|ip| ranges.admits(canonical(ip))) {
                return Admission::AddressRefused;
            }
        }
        if let Some(frames) = self.time_frames.as_ref().filter(|f| !f.is_empty()) {
            if !frames.admits(tz.to_datetime(now)) {
                return Admission::OutsideTimeFrames;
            }
        }
        Admission::Admitted
    }
}

/// An IPv4 peer seen on a dual-stack socket (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Where a job stands, as far as ordering goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobState {
    pub status: StatusCode,
    /// A failed job waiting to be tried again: not before this instant.
    pub retry_at: Option<Timestamp>,
}

/// What to do with one computer's jobs of one container now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Hand out the job at this index (it may already be under way).
    Hand(usize),
    /// The next job waits for its retry.
    WaitUntil(Timestamp),
    /// Every job is over.
    Done,
}

/// A computer runs its jobs of a container in order, one at a time: the first
/// job that is not over is the one to hand out, unless it waits for a retry.
pub fn next_job(jobs: &[JobState], now: Timestamp) -> Next {
    match jobs.iter().position(|j| !j.status.is_final()) {
        None => Next::Done,
        Some(i) => match jobs[i].retry_at {
            Some(at) if at > now => Next::WaitUntil(at),
            _ => Next::Hand(i),
        },
    }
}

/// What becomes of a job whose agent reported a final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It succeeded: the computer's next job may go.
    Succeeded,
    /// It failed, with tries left: it waits until then and is handed out again.
    Retry { at: Timestamp },
    /// It failed for good; with [`Sequence::AbortAfterFailed`] the later jobs
    /// become `ERR_PREVIOUS_FAILED` ([`abort_rest`]).
    Failed,
}

/// Settles a final report `code` of a job handed out `attempts` times (this try
/// included), in a container allowing `retries` automatic retries spaced by
/// `backoff`, doubled after each try ([`backoff`]).
pub fn settle(
    code: StatusCode,
    attempts: u32,
    retries: u32,
    base: Duration,
    now: Timestamp,
) -> Settled {
    if code.is_success() {
        return Settled::Succeeded;
    }
    // The command may have done part of its work: only an admin may run it
    // again. A refused downgrade would be refused again.
    if matches!(code, StatusCode::ErrInterrupted | StatusCode::ErrDowngrade) {
        return Settled::Failed;
    }
    if attempts <= retries {
        let wait = backoff(base, attempts);
        let at = now
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            ))
            .unwrap_or(Timestamp::MAX);
        return Settled::Retry { at };
    }
    Settled::Failed
}

/// The wait before try `attempts + 1`: `base`, then twice as long after each
/// failed try, at most 64 × `base` (so a flapping job is not hammered, and a
/// long series does not wait for months).
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(6);
    Duration::from_secs(base.as_secs().saturating_mul(1 << doublings))
}

/// With [`Sequence::AbortAfterFailed`], the indices of the jobs after `failed`
/// that are not over: they become `ERR_PREVIOUS_FAILED`.
pub fn abort_rest(jobs: &[JobState], failed: usize, sequence: Sequence) -> Vec<usize> {
    if sequence != Sequence::AbortAfterFailed {
        return Vec::new();
    }
    (failed + 1..jobs.len())
        .filter(|&i| !jobs[i].status.is_final())
        .collect()
}

/// One job's times, for [`runtimes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTimes {
    /// First handed out to the agent.
    pub started_at: Option<Timestamp>,
    /// Its final status arrived.
    pub finished_at: Option<Timestamp>,
    pub is_final: bool,
}

/// A container's runtimes as OCO defines them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtimes {
    /// From the container's start to the end of the last job that ended.
    pub total_s: Option<u64>,
    /// From the start of the first job to the end of the last job that ended
    /// (shorter than `total_s` when computers came online after the start).
    pub effective_s: Option<u64>,
    /// Every job is over; otherwise both are shown with a leading `~`.
    pub finished: bool,
}

/// Computes [`Runtimes`] from the container's start and its jobs' times.
pub fn runtimes(start_at: Timestamp, jobs: impl IntoIterator<Item = JobTimes>) -> Runtimes {
    let mut first_start: Option<Timestamp> = None;
    let mut last_end: Option<Timestamp> = None;
    let mut finished = true;
    for j in jobs {
        finished &= j.is_final;
        if let Some(s) = j.started_at {
            first_start = Some(first_start.map_or(s, |f| f.min(s)));
        }
        if let Some(e) = j.finished_at {
            last_end = Some(last_end.map_or(e, |l| l.max(e)));
        }
    }
    let span = |from: Timestamp, to: Timestamp| {
        u64::try_from(to.as_second().saturating_sub(from.as_second())).unwrap_or(0)
    };
    Runtimes {
        total_s: last_end.map(|e| span(start_at, e)),
        effective_s: match (first_start, last_end) {
            (Some(s), Some(e)) => Some(span(s, e)),
            _ => None,
        },
        finished,
    }
}

/// Formats a runtime for people: `45s`, `12m 05s`, `3h 07m`, `2d 04h`, with
/// `~` in front while jobs are unfinished, `~` alone when none has ended yet.
pub fn format_runtime(seconds: Option<u64>, finished: bool) -> String {
    let approx = if finished { "" } else { "~" };
    let Some(s) = seconds else {
        return if finished { "-".into() } else { "~".into() };
    };
    let text = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    };
    format!("{approx}{text}")
}

/// Whether a container whose last job ended at `finished_at` may be purged now:
/// succeeded ones after `succeeded_after`, failed ones after `failed_after`
/// (`None`: kept for ever).
pub fn purgeable(
    finished_at: Timestamp,
    succeeded: bool,
    now: Timestamp,
    succeeded_after: Option<Duration>,
    failed_after: Option<Duration>,
) -> bool {
    let age = if succeeded {
        succeeded_after
    } else {
        failed_after
    };
    age.is_some_and(|age| {
        now.as_second().saturating_sub(finished_at.as_second())
            >= i64::try_from(age.as_secs()).unwrap_or(i64::MAX)
    })
}

/// Parses an admin's date: RFC 3339 (`2026-11-21T18:00:00Z`, with an offset), or
/// a wall time in central's time zone `tz` (`2026-11-21 18:00`,
/// `2026-11-21T18:00:30`, or a day `2026-11-21`, meaning its midnight).
pub fn parse_time(
    field: &'static str,
    text: &str,
    tz: &TimeZone,
) -> Result<Timestamp, GrammarError> {
    let t = text.trim();
    let bad = |reason: &str| GrammarError {
        grammar: field,
        token: t.to_owned(),
        reason: reason.to_owned(),
    };
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    let civil: DateTime = t
        .replacen(' ', "T", 1)
        .parse::<DateTime>()
        .or_else(|_| t.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight())))
        .map_err(|_| bad("expected an RFC 3339 time (2026-11-21T18:00:00Z) or a local time (2026-11-21 18:00)"))?;
    tz.to_ambiguous_timestamp(civil)
        .compatible()
        .map_err(|e| bad(&format!("not a time in central's time zone: {e}")))
}

/// What a job does with its package on the computer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Download, verify, unpack and run the package's action.
    #[default]
    Install,
    /// Fetch and verify the signed info, then run its `uninstall` procedure (and,
    /// for a `store` package, remove what it put in place).
    Uninstall,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobKind::Install => "install",
            JobKind::Uninstall => "uninstall",
        })
    }
}

/// Where a container stands as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Waiting,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Waiting => "waiting",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn conditions(ranges: Option<&str>, frames: Option<&str>) -> Conditions {
        Conditions {
            start_at: ts("2026-11-20T00:00:00Z"),
            end_at: Some(ts("2026-11-30T00:00:00Z")),
            ip_ranges: ranges.map(|r| r.parse().unwrap()),
            time_frames: frames.map(|f| f.parse().unwrap()),
        }
    }

    #[test]
    fn start_end_ranges_and_frames() {
        let utc = TimeZone::UTC;
        let site1: IpAddr = "127.1.0.5".parse().unwrap();
        let site2: IpAddr = "127.2.0.5".parse().unwrap();
        // A Saturday, 12:00 UTC.
        let sat = ts("2026-11-21T12:00:00Z");
        let c = conditions(Some("!127.2.0.0/16,127.0.0.0/8"), None);
        assert_eq!(c.admits(Some(site1), sat, &utc), Admission::Admitted);
        assert_eq!(c.admits(Some(site2), sat, &utc), Admission::AddressRefused);
        assert_eq!(c.admits(None, sat, &utc), Admission::AddressRefused);
        let mapped: IpAddr = "::ffff:127.1.0.5".parse().unwrap();
        assert_eq!(c.admits(Some(mapped), sat, &utc), Admission::Admitted);
        assert_eq!(
            c.admits(Some(site1), ts("2026-11-19T23:59:59Z"), &utc),
            Admission::NotStarted
        );
        assert_eq!(
            c.admits(Some(site1), ts("2026-11-30T00:00:00Z"), &utc),
            Admission::Ended
        );
        let f = conditions(None, Some("MON-FRI 18:00-23:59"));
        assert_eq!(f.admits(None, sat, &utc), Admission::OutsideTimeFrames);
        assert_eq!(
            f.admits(None, ts("2026-11-23T19:00:00Z"), &utc),
            Admission::Admitted
        );
        // The same instant is 20:00 on a Monday in UTC+1: inside, read in that zone.
        let plus1 = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(
            f.admits(None, ts("2026-11-23T17:30:00Z"), &utc),
            Admission::OutsideTimeFrames
        );
        assert_eq!(
            f.admits(None, ts("2026-11-23T17:30:00Z"), &plus1),
            Admission::Admitted
        );
    }

    fn st(status: StatusCode) -> JobState {
        JobState {
            status,
            retry_at: None,
        }
    }

    #[test]
    fn jobs_run_in_order_and_retries_wait() {
        use StatusCode::*;
        let now = ts("2026-11-21T12:00:00Z");
        assert_eq!(next_job(&[], now), Next::Done);
        assert_eq!(
            next_job(&[st(Success), st(WaitingNotification)], now),
            Next::Hand(1)
        );
        assert_eq!(
            next_job(&[st(ErrExitCode), st(Notified)], now),
            Next::Hand(1)
        );
        assert_eq!(next_job(&[st(Success), st(ErrExitCode)], now), Next::Done);
        let later = ts("2026-11-21T12:05:00Z");
        let waiting = JobState {
            status: WaitingNotification,
            retry_at: Some(later),
        };
        assert_eq!(
            next_job(&[waiting, st(WaitingNotification)], now),
            Next::WaitUntil(later)
        );
        assert_eq!(
            next_job(&[waiting, st(WaitingNotification)], later),
            Next::Hand(0)
        );
    }

    #[test]
    fn abort_after_failed_takes_only_unfinished_later_jobs() {
        use StatusCode::*;
        let jobs = [
            st(Success),
            st(ErrExitCode),
            st(WaitingNotification),
            st(Success),
            st(Notified),
        ];
        assert_eq!(abort_rest(&jobs, 1, Sequence::AbortAfterFailed), vec![2, 4]);
        assert!(abort_rest(&jobs, 1, Sequence::IgnoreFailed).is_empty());
    }

    #[test]
    fn settling_retries_with_doubling_backoff() {
        let now = ts("2026-11-21T12:00:00Z");
        let base = Duration::from_secs(60);
        assert_eq!(
            settle(StatusCode::Success, 1, 2, base, now),
            Settled::Succeeded
        );
        assert_eq!(
            settle(StatusCode::ErrAlreadySetup, 3, 0, base, now),
            Settled::Succeeded
        );
        assert_eq!(
            settle(StatusCode::ErrExitCode, 1, 2, base, now),
            Settled::Retry {
                at: ts("2026-11-21T12:01:00Z")
            }
        );
        assert_eq!(
            settle(StatusCode::ErrExitCode, 2, 2, base, now),
            Settled::Retry {
                at: ts("2026-11-21T12:02:00Z")
            }
        );
        assert_eq!(
            settle(StatusCode::ErrExitCode, 3, 2, base, now),
            Settled::Failed
        );
        assert_eq!(
            settle(StatusCode::ErrTimeout, 1, 0, base, now),
            Settled::Failed
        );
        // A command cut off half way is never run again by itself, retries or not.
        assert_eq!(
            settle(StatusCode::ErrInterrupted, 1, 5, base, now),
            Settled::Failed
        );
        assert_eq!(backoff(base, 40).as_secs(), 64 * 60);
        assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    }

    #[test]
    fn runtimes_as_oco_defines_them() {
        let start = ts("2026-11-21T10:00:00Z");
        let job = |s: Option<&str>, e: Option<&str>, fin: bool| JobTimes {
            started_at: s.map(ts),
            finished_at: e.map(ts),
            is_final: fin,
        };
        let r = runtimes(
            start,
            [
                job(
                    Some("2026-11-21T10:30:00Z"),
                    Some("2026-11-21T10:40:00Z"),
                    true,
                ),
                job(
                    Some("2026-11-21T10:35:00Z"),
                    Some("2026-11-21T11:00:00Z"),
                    true,
                ),
            ],
        );
        assert_eq!(
            r,
            Runtimes {
                total_s: Some(3600),
                effective_s: Some(1800),
                finished: true
            }
        );
        assert_eq!(format_runtime(r.total_s, r.finished), "1h 00m");
        let r = runtimes(
            start,
            [
                job(
                    Some("2026-11-21T10:30:00Z"),
                    Some("2026-11-21T10:40:00Z"),
                    true,
                ),
                job(None, None, false),
            ],
        );
        assert!(!r.finished);
        assert_eq!(format_runtime(r.total_s, r.finished), "~40m 00s");
        assert_eq!(format_runtime(r.effective_s, r.finished), "~10m 00s");
        let none = runtimes(start, [job(None, None, false)]);
        assert_eq!(format_runtime(none.total_s, none.finished), "~");
        assert_eq!(format_runtime(Some(45), true), "45s");
        assert_eq!(format_runtime(Some(2 * 86400 + 4 * 3600), true), "2d 04h");
    }

    #[test]
    fn purge_ages_apart_for_success_and_failure() {
        let end = ts("2026-11-01T00:00:00Z");
        let now = ts("2026-11-21T00:00:00Z");
        let d = |days: u64| Some(Duration::from_secs(days * 86400));
        assert!(purgeable(end, true, now, d(20), d(90)));
        assert!(!purgeable(end, true, now, d(21), d(1)));
        assert!(!purgeable(end, false, now, d(1), d(21)));
        assert!(purgeable(end, false, now, None, d(20)));
        assert!(!purgeable(end, true, now, None, d(1)));
    }

    #[test]
    fn times_parse_in_central_zone_and_bad_ones_name_the_token() {
        let utc = TimeZone::UTC;
        let plus2 = TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(
            parse_time("start", "2026-11-21T18:00:00Z", &plus2).unwrap(),
            ts("2026-11-21T18:00:00Z")
        );
        assert_eq!(
            parse_time("start", "2026-11-21 18:00", &plus2).unwrap(),
            ts("2026-11-21T16:00:00Z")
        );
        assert_eq!(
            parse_time("start", "2026-11-21", &utc).unwrap(),
            ts("2026-11-21T00:00:00Z")
        );
        assert_eq!(
            parse_time("end", "2026-11-21T18:00:30+01:00", &utc).unwrap(),
            ts("2026-11-21T17:00:30Z")
        );
        let e = parse_time("start", "tomorrow", &utc).unwrap_err();
        assert_eq!(e.token, "tomorrow");
        assert_eq!(e.grammar, "start");
        assert!(parse_time("end", "2026-13-01", &utc).is_err());
    }

    #[test]
    fn sequences_parse() {
        assert_eq!(
            "abort_after_failed".parse::<Sequence>().unwrap(),
            Sequence::AbortAfterFailed
        );
        assert_eq!(
            "ignore_failed".parse::<Sequence>().unwrap().to_string(),
            "ignore_failed"
        );
        assert_eq!("abort".parse::<Sequence>().unwrap_err().token, "abort");
    }
}
