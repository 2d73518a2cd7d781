//! HTTP to central (HTTPS, verified against central's CA, bearer token) and to
//! relays (plain HTTP on the LAN: everything fetched is verified anyway), always
//! from the agent's bind address when it has one.
//!
//! Every download (info or fragment, from a relay or from central) runs under
//! [`Deadlines`]: a connect timeout, a stall timeout (no byte for that long,
//! headers included) and a minimum rate over consecutive windows ([`Pace`]).
//! A source that misses one fails with [`AgentError::Source`], whose
//! [`ProblemKind`] is what the agent reports to central about a relay.

use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use sitecast_common::ids::{PackageId, RelayId};
use sitecast_common::power::MacAddr;
use sitecast_common::wire::{
    EnrollRequest, EnrollResponse, ErrorBody, PollRequest, PollResponse, ProblemKind,
    ProblemReport, StatusReport,
};
use tokio::io::AsyncWriteExt;

use crate::config::SourcePolicy;
use crate::error::AgentError;
use sitecast_common::errors::chain;

/// Largest signed info accepted from any source.
const MAX_INFO: usize = 4 << 20;

/// Where a package's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Relay { id: RelayId, url: String },
    Central,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Relay { id, .. } => write!(f, "relay {id}"),
            Source::Central => f.write_str("central"),
        }
    }
}

/// The deadlines of every download (`agent.toml`'s `[downloads]`, see
/// [`SourcePolicy`] for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub connect: Duration,
    pub stall: Duration,
    /// Bytes per second a transfer must average over each window; `None`: no floor.
    pub min_rate: Option<u64>,
    pub window: Duration,
    /// The longest one transfer (an info, a fragment) may take, whatever its pace.
    pub transfer: Duration,
}

impl From<&SourcePolicy> for Deadlines {
    fn from(p: &SourcePolicy) -> Self {
        Self {
            connect: p.connect_timeout.into(),
            stall: p.stall_timeout.into(),
            min_rate: p.min_rate.bytes_per_sec(),
            window: p.min_rate_window.into(),
            transfer: p.fragment_timeout.into(),
        }
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Self::from(&SourcePolicy::default())
    }
}

/// The trickle rule: from the answer's headers on, time is cut into consecutive
/// windows of `window`, and each full window must bring at least
/// `min_rate × window` bytes. (A transfer that finishes inside a window is never
/// judged on it, so short fragments are not penalised for being short.)
#[derive(Debug, Clone)]
pub struct Pace {
    need: u64,
    window: Duration,
    end: Instant,
    got: u64,
}

impl Pace {
    /// A pace starting at `start`; `None` when there is no minimum rate.
    pub fn new(start: Instant, window: Duration, min_rate: Option<u64>) -> Option<Self> {
        let rate = min_rate?;
        let window = window.max(Duration::from_secs(1));
        Some(Self {
            need: rate.saturating_mul(window.as_secs()),
            window,
            end: start + window,
            got: 0,
        })
    }

    /// When the current window ends.
    pub fn deadline(&self) -> Instant {
        self.end
    }

    /// Closes every window that ended by `now`. `Err` carries the bytes of the
    /// first one that fell short.
    pub fn close_windows(&mut self, now: Instant) -> Result<(), u64> {
        while now >= self.end {
            if self.got < self.need {
                return Err(self.got);
            }
            self.got = 0;
            self.end += self.window;
        }
        Ok(())
    }

    /// Counts bytes received in the current window.
    pub fn add(&mut self, bytes: u64) {
        self.got = self.got.saturating_add(bytes);
    }

    /// The minimum, in bytes per window.
    pub fn need(&self) -> u64 {
        self.need
    }

    pub fn window(&self) -> Duration {
        self.window
    }
}

impl Pace {
    /// Time the agent itself spent not reading (see [`Throttle`]): the source is
    /// not judged on it.
    pub fn pause(&mut self, by: Duration) {
        self.end += by;
    }
}

/// The cycle's `max_rate` within one transfer: the body is read no faster than
/// `rate` bytes per second on average since its headers arrived. The source just
/// waits (TCP flow control); the stall and trickle rules do not count our waits.
#[derive(Debug, Clone)]
pub struct Throttle {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    pub fn new(start: Instant, max_rate: Option<u64>) -> Option<Self> {
        let rate = max_rate.filter(|rate| *rate > 0)?;
        Some(Self {
            rate,
            start,
            bytes: 0,
        })
    }

    /// Counts `bytes` more read at `now`; how long to wait before reading on.
    pub fn delay(&mut self, bytes: u64, now: Instant) -> Duration {
        self.bytes = self.bytes.saturating_add(bytes);
        let secs = self.bytes / self.rate;
        let nanos = (self.bytes % self.rate).saturating_mul(1_000_000_000) / self.rate;
        let due = self.start + Duration::from_secs(secs) + Duration::from_nanos(nanos);
        due.saturating_duration_since(now)
    }
}

fn source_error(kind: ProblemKind, detail: String) -> AgentError {
    AgentError::Source { kind, detail }
}

/// Why a request to a source got no answer.
fn send_error(source: &Source, e: &reqwest::Error, d: &Deadlines) -> AgentError {
    let text = chain(e);
    if e.is_connect() && e.is_timeout() {
        source_error(
            ProblemKind::Timeout,
            format!(
                "{source}: could not connect within {} s: {text}",
                d.connect.as_secs()
            ),
        )
    } else if e.is_connect() {
        source_error(
            ProblemKind::Refused,
            format!("{source}: cannot connect: {text}"),
        )
    } else if e.is_timeout() {
        source_error(
            ProblemKind::Stalled,
            format!("{source}: no answer within {} s: {text}", d.stall.as_secs()),
        )
    } else {
        // It accepted the connection and hung up or reset it: refusing service.
        source_error(
            ProblemKind::Refused,
            format!("{source}: the connection closed before an answer: {text}"),
        )
    }
}

/// One answer's body, chunk by chunk, under the stall timeout, the pace and the
/// transfer's own deadline (a source just above the pace must not hold the agent's
/// cycle for hours: Uptane's slow-retrieval rule).
struct Transfer<'a> {
    source: &'a Source,
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    stall: Duration,
    pace: Option<Pace>,
    throttle: Option<Throttle>,
    /// When the whole body must be in, moved on by our own throttle's waits.
    done_by: Instant,
    limit: Duration,
}

impl Transfer<'_> {
    async fn next(&mut self) -> Result<Option<Bytes>, AgentError> {
        let source = self.source;
        let stall_at = Instant::now() + self.stall;
        loop {
            let deadline = match &self.pace {
                Some(p) => p.deadline().min(stall_at),
                None => stall_at,
            }
            .min(self.done_by);
            match tokio::time::timeout_at(deadline.into(), self.stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    if let Some(pace) = &mut self.pace {
                        // Bytes that arrive after a window ended belong to the next one.
                        pace.close_windows(Instant::now())
                            .map_err(|got| trickled(source, pace, got))?;
                        pace.add(chunk.len() as u64);
                    }
                    if let Some(throttle) = &mut self.throttle {
                        let wait = throttle.delay(chunk.len() as u64, Instant::now());
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                            self.done_by += wait;
                            if let Some(pace) = &mut self.pace {
                                pace.pause(wait);
                            }
                        }
                    }
                    return Ok(Some(chunk));
                }
                Ok(Some(Err(e))) => {
                    return Err(source_error(
                        ProblemKind::Stalled,
                        format!("{source}: the transfer broke off: {}", chain(&e)),
                    ))
                }
                Ok(None) => return Ok(None),
                Err(_) => {
                    let now = Instant::now();
                    if now >= self.done_by {
                        return Err(source_error(
                            ProblemKind::Stalled,
                            format!(
                                "{source}: not complete after {} s (fragment_timeout)",
                                self.limit.as_secs()
                            ),
                        ));
                    }
                    if now >= stall_at {
                        return Err(source_error(
                            ProblemKind::Stalled,
                            format!(
                                "{source}: no byte for {} s (stall_timeout)",
                                self.stall.as_secs()
                            ),
                        ));
                    }
                    if let Some(pace) = &mut self.pace {
                        pace.close_windows(now)
                            .map_err(|got| trickled(source, pace, got))?;
                    }
                }
            }
        }
    }
}

fn trickled(source: &Source, pace: &Pace, got: u64) -> AgentError {
    source_error(
        ProblemKind::Stalled,
        format!(
            "{source}: trickling: {got} bytes in {} s, below min_rate ({} bytes per {} s)",
            pace.window().as_secs(),
            pace.need(),
            pace.window().as_secs()
        ),
    )
}

/// Talks to central and relays.
pub struct Client {
    http: reqwest::Client,
    central: String,
    token: String,
    deadlines: Deadlines,
    /// The cycle's `max_rate`: no download is read faster (bytes per second).
    max_rate: Option<u64>,
}

fn http_client(
    ca: &Path,
    bind: Option<IpAddr>,
    deadlines: &Deadlines,
) -> Result<reqwest::Client, AgentError> {
    let pem = std::fs::read(ca).map_err(AgentError::io(ca))?;
    let cert = reqwest::Certificate::from_pem(&pem).map_err(|source| AgentError::Ca {
        path: ca.to_owned(),
        source,
    })?;
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .local_address(bind)
        .connect_timeout(deadlines.connect)
        // A relay names no other place to fetch from: a redirect to any host
        // (an internal service, a slow or hostile one) is an error answer.
        .redirect(reqwest::redirect::Policy::none())
        // A backstop for central's API calls; downloads have their own, tighter
        // stall timeout (see `Transfer`), which must fire first.
        .read_timeout(deadlines.stall.max(Duration::from_secs(30)))
        .build()
        .map_err(AgentError::Client)
}

fn unreachable(url: &str) -> impl FnOnce(reqwest::Error) -> AgentError + '_ {
    move |source| AgentError::Unreachable {
        url: url.to_owned(),
        source,
    }
}

fn answer(what: &'static str) -> impl FnOnce(reqwest::Error) -> AgentError {
    move |source| AgentError::Answer { what, source }
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response, AgentError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
    Err(AgentError::Api {
        status: status.as_u16(),
        message,
    })
}

/// Enrolls with central using the enroll token.
pub async fn enroll(
    central: &str,
    ca: &Path,
    bind: Option<IpAddr>,
    request: &EnrollRequest,
) -> Result<EnrollResponse, AgentError> {
    let http = http_client(ca, bind, &Deadlines::default())?;
    let url = format!("{}/api/v1/agent/enroll", central.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .json(request)
        .send()
        .await
        .map_err(unreachable(central))?;
    check(resp)
        .await?
        .json()
        .await
        .map_err(answer("enrolment answer"))
}

impl Client {
    pub fn new(
        central: &str,
        token: &str,
        ca: &Path,
        bind: Option<IpAddr>,
        deadlines: Deadlines,
    ) -> Result<Self, AgentError> {
        Ok(Self {
            http: http_client(ca, bind, &deadlines)?,
            central: central.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            deadlines,
            max_rate: None,
        })
    }

    /// Reads no download faster than `max_rate` bytes per second (`None`: no cap).
    pub fn with_max_rate(mut self, max_rate: Option<u64>) -> Self {
        self.max_rate = max_rate.filter(|rate| *rate > 0);
        self
    }

    /// Tells central a relay failed. Bounded by the download deadlines, so a
    /// slow central cannot hold up the deployment; the caller only logs failures.
    pub async fn report_problem(
        &self,
        relay: &RelayId,
        report: &ProblemReport,
    ) -> Result<(), AgentError> {
        let send = self
            .http
            .post(self.api(&format!("/relays/{relay}/problems")))
            .bearer_auth(&self.token)
            .json(report)
            .send();
        let limit = self.deadlines.connect + self.deadlines.stall;
        let resp = tokio::time::timeout(limit, send)
            .await
            .map_err(|_| AgentError::Slow {
                what: "problem report",
                seconds: limit.as_secs(),
            })?
            .map_err(unreachable(&self.central))?;
        check(resp).await.map(|_| ())
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1/agent{path}", self.central)
    }

    pub async fn poll(
        &self,
        addresses: &[IpAddr],
        macs: &[MacAddr],
        uptime_s: Option<u64>,
        keyset_version: Option<u64>,
    ) -> Result<PollResponse, AgentError> {
        let body = PollRequest {
            addresses: addresses.iter().map(ToString::to_string).collect(),
            macs: macs.iter().map(ToString::to_string).collect(),
            uptime_s,
            keyset_version,
        };
        let resp = self
            .http
            .post(self.api("/poll"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(unreachable(&self.central))?;
        check(resp)
            .await?
            .json()
            .await
            .map_err(answer("poll answer"))
    }

    pub async fn report(
        &self,
        package: &PackageId,
        report: &StatusReport,
    ) -> Result<(), AgentError> {
        let resp = self
            .http
            .post(self.api(&format!("/packages/{package}/status")))
            .bearer_auth(&self.token)
            .json(report)
            .send()
            .await
            .map_err(unreachable(&self.central))?;
        check(resp).await.map(|_| ())
    }

    fn request(&self, source: &Source, path: &str) -> reqwest::RequestBuilder {
        match source {
            Source::Relay { url, .. } => self
                .http
                .get(format!("{}/v1{path}", url.trim_end_matches('/'))),
            Source::Central => self.http.get(self.api(path)).bearer_auth(&self.token),
        }
    }

    /// Sends a download request and waits for the answer's headers, within the
    /// connect and stall timeouts; an error status is the source's failure.
    async fn open<'a>(
        &self,
        source: &'a Source,
        path: &str,
        what: &str,
    ) -> Result<Transfer<'a>, AgentError> {
        let d = &self.deadlines;
        let send = self.request(source, path).send();
        let resp = match tokio::time::timeout(d.connect + d.stall, send).await {
            Err(_) => {
                return Err(source_error(
                    ProblemKind::Stalled,
                    format!("{source}: no answer within {} s", d.stall.as_secs()),
                ))
            }
            Ok(Err(e)) => return Err(send_error(source, &e, d)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        if !status.is_success() {
            // The error body is only for the message: never wait long for it.
            let body = tokio::time::timeout(d.stall, resp.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(match source {
                Source::Central => AgentError::Api {
                    status: status.as_u16(),
                    message,
                },
                // Central listed this relay as holding the package whole.
                Source::Relay { .. } => source_error(
                    ProblemKind::BadData,
                    format!("{source} answered {status} instead of {what}: {message}"),
                ),
            });
        }
        Ok(Transfer {
            source,
            stream: Box::pin(resp.bytes_stream()),
            stall: d.stall,
            pace: Pace::new(Instant::now(), d.window, d.min_rate),
            throttle: Throttle::new(Instant::now(), self.max_rate),
            done_by: Instant::now() + d.transfer,
            limit: d.transfer,
        })
    }

    /// The signed info's bytes from a source (not yet verified).
    pub async fn info(&self, source: &Source, package: &PackageId) -> Result<Vec<u8>, AgentError> {
        let mut transfer = self
            .open(source, &format!("/packages/{package}/info"), "the info")
            .await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = transfer.next().await? {
            if bytes.len() + chunk.len() > MAX_INFO {
                return Err(source_error(
                    ProblemKind::BadData,
                    format!("{source}: the info is larger than {MAX_INFO} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Streams one fragment into `file`, exactly `expected_len` bytes, and
    /// returns its SHA-256 for the caller to check.
    pub async fn fragment(
        &self,
        source: &Source,
        package: &PackageId,
        index: u32,
        expected_len: u64,
        file: &mut tokio::fs::File,
        path: &Path,
    ) -> Result<[u8; 32], AgentError> {
        let mut transfer = self
            .open(
                source,
                &format!("/packages/{package}/fragments/{index}"),
                &format!("fragment {index}"),
            )
            .await?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = transfer.next().await? {
            got += chunk.len() as u64;
            if got > expected_len {
                return Err(source_error(
                    ProblemKind::BadData,
                    format!(
                        "{source}: fragment {index} is longer than the {expected_len} bytes the signed info says"
                    ),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(AgentError::io(path))?;
        }
        if got != expected_len {
            return Err(source_error(
                ProblemKind::BadData,
                format!(
                    "{source}: fragment {index} ended after {got} of the {expected_len} bytes the signed info says"
                ),
            ));
        }
        Ok(hasher.finalize().into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn each_full_window_must_bring_min_rate_times_window_bytes() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, 10 * S, Some(1024)).unwrap();
        assert_eq!(pace.need(), 10_240);
        assert_eq!(pace.deadline(), t0 + 10 * S);
        // Inside the first window nothing is judged.
        pace.add(100);
        assert_eq!(pace.close_windows(t0 + 9 * S), Ok(()));
        pace.add(10_140);
        // Exactly enough: the next window starts empty.
        assert_eq!(pace.close_windows(t0 + 10 * S), Ok(()));
        assert_eq!(pace.deadline(), t0 + 20 * S);
        pace.add(10_239);
        assert_eq!(pace.close_windows(t0 + 20 * S), Err(10_239));
    }

    #[test]
    fn a_silent_stretch_fails_at_the_first_window_it_empties() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, 2 * S, Some(1)).unwrap();
        pace.add(5);
        // Two windows passed at once: the first had bytes, the second none.
        assert_eq!(pace.close_windows(t0 + 4 * S), Err(0));
    }

    #[test]
    fn no_min_rate_no_pace() {
        assert!(Pace::new(Instant::now(), S, None).is_none());
        // A zero window would judge every instant: it is one second at least.
        let pace = Pace::new(Instant::now(), Duration::ZERO, Some(10));
        assert_eq!(pace.map(|p| p.need()), Some(10));
    }

    #[test]
    fn the_throttle_holds_reads_to_max_rate_on_average() {
        let t0 = Instant::now();
        assert!(Throttle::new(t0, None).is_none());
        assert!(Throttle::new(t0, Some(0)).is_none());
        let mut throttle = Throttle::new(t0, Some(1000)).unwrap();
        // 500 bytes at once: they are due at 0.5 s.
        assert_eq!(throttle.delay(500, t0), Duration::from_millis(500));
        // Read late enough: no wait.
        assert_eq!(throttle.delay(500, t0 + 2 * S), Duration::ZERO);
        // 3000 bytes in all are due at 3 s.
        assert_eq!(throttle.delay(2000, t0 + 2 * S), S);
    }

    #[test]
    fn waits_of_our_own_are_not_held_against_the_source() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0, 10 * S, Some(1024)).unwrap();
        pace.pause(5 * S);
        assert_eq!(pace.deadline(), t0 + 15 * S);
        assert_eq!(pace.close_windows(t0 + 12 * S), Ok(()));
    }

    #[test]
    fn deadlines_come_from_the_policy() {
        let d = Deadlines::default();
        assert_eq!(d.connect, 10 * S);
        assert_eq!(d.stall, 15 * S);
        assert_eq!(d.min_rate, Some(1024));
        assert_eq!(d.window, 10 * S);
        let off = SourcePolicy {
            min_rate: sitecast_common::units::Rate::Unlimited,
            ..SourcePolicy::default()
        };
        assert_eq!(Deadlines::from(&off).min_rate, None);
    }
}
