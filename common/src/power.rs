//! Wake-on-LAN, shutdown after the jobs and restarts (OCO seeds `000`/`001`),
//! decided purely: MAC addresses, the magic packet, which relay subnet a wake
//! goes out on, whether a computer was off before a wake, and what a woken
//! computer's poll does to its pending shutdown.
//!
//! Central records and sends; relays put the packets on their LAN (broadcasts
//! do not cross routers); agents run the power command. The rules live here so
//! they are tested without sockets or clocks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::grammar::GrammarError;
use crate::ids::{ComputerId, RelayId};
use crate::subnet::RelaySubnets;
use crate::units::Duration;

const MAC: &str = "MAC address";

/// A 48-bit hardware address, parsed from `aa:bb:cc:dd:ee:ff` or
/// `aa-bb-cc-dd-ee-ff` (either case), printed lowercase with colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    pub const fn new(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }

    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// `00:00:00:00:00:00`: what interfaces without hardware report.
    pub fn is_zero(self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = GrammarError;

    fn from_str(input: &str) -> Result<Self, GrammarError> {
        let token = input.trim();
        let bad = |reason: String| GrammarError::new(MAC, token, reason);
        let separator = if token.contains(':') { ':' } else { '-' };
        let groups: Vec<&str> = token.split(separator).collect();
        if groups.len() != 6 {
            return Err(bad(
                "expected six hex pairs separated by ':' or '-', e.g. aa:bb:cc:dd:ee:ff".into(),
            ));
        }
        let mut octets = [0u8; 6];
        for (octet, group) in octets.iter_mut().zip(&groups) {
            let hex_pair = group.len() == 2 && group.chars().all(|c| c.is_ascii_hexdigit());
            if !hex_pair {
                return Err(bad(format!("'{group}' is not a pair of hex digits")));
            }
            *octet = u8::from_str_radix(group, 16)
                .map_err(|_| bad(format!("'{group}' is not a pair of hex digits")))?;
        }
        Ok(MacAddr(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl TryFrom<String> for MacAddr {
    type Error = GrammarError;
    fn try_from(s: String) -> Result<Self, GrammarError> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

/// Parses a list of MAC addresses; the error names the first bad one.
pub fn parse_macs(list: &[String]) -> Result<Vec<MacAddr>, GrammarError> {
    let mut out: Vec<MacAddr> = Vec::new();
    for text in list {
        let mac: MacAddr = text.parse()?;
        if !out.contains(&mac) {
            out.push(mac);
        }
    }
    Ok(out)
}

/// Length of a Wake-on-LAN magic packet.
pub const MAGIC_PACKET_LEN: usize = 102;

/// The Wake-on-LAN magic packet: six `0xFF` bytes, then the MAC sixteen times.
pub fn magic_packet(mac: MacAddr) -> [u8; MAGIC_PACKET_LEN] {
    let mut packet = [0xFF; MAGIC_PACKET_LEN];
    for chunk in packet[6..].chunks_exact_mut(6) {
        chunk.copy_from_slice(&mac.0);
    }
    packet
}

/// What an agent's power command is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    Shutdown,
    Restart,
}

impl PowerAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            PowerAction::Shutdown => "shutdown",
            PowerAction::Restart => "restart",
        }
    }
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a computer was off when central woke it, as far as its contacts
/// tell: it had not been in touch for two poll intervals, or never. Only such
/// computers may be shut down afterwards (OCO: a computer already on is never
/// shut down). A busy agent (a long install, a user's dialog, a restart's wait)
/// or a WAN outage also looks quiet, so an agent that reports its uptime is
/// judged again at its first poll after the wake ([`was_on`]).
pub fn was_off(last_seen: Option<Timestamp>, wake_at: Timestamp, poll_interval: Duration) -> bool {
    let quiet = poll_interval.as_secs().saturating_mul(2);
    match last_seen {
        None => true,
        Some(seen) => {
            let since = wake_at.as_second().saturating_sub(seen.as_second());
            u64::try_from(since).is_ok_and(|s| s >= quiet)
        }
    }
}

/// How much later than the wake a computer's reckoned boot may be and still
/// count as before it ([`was_on`]). Central reckons the boot from the poll's
/// arrival (`now - uptime_s`), and the uptime was read before the request
/// crossed the network (connection and TLS set-up over a WAN, a busy central)
/// and is whole seconds: both make a boot look later than it was, never
/// earlier, so a computer that booted just before the wake could look woken
/// and be shut down. A woken computer cannot boot this soon after the wake is
/// recorded (the order still travels to the relay, and firmware runs its
/// self-test before the kernel counts uptime); should one, it is only not shut
/// down, the safe mistake.
pub const BOOT_SLACK: Duration = Duration::from_secs(5);

/// When a computer booted, on central's clock: a poll's arrival `now` less the
/// uptime it reported (`None`: before any time jiff can hold).
pub fn boot_time(now: Timestamp, uptime_s: u64) -> Option<Timestamp> {
    let uptime = i64::try_from(uptime_s).ok()?;
    Timestamp::from_second(now.as_second().checked_sub(uptime)?).ok()
}

/// Whether a computer that polled at `now`, on for `uptime_s` seconds, was
/// already on at `wake_at`: it booted before the wake (less [`BOOT_SLACK`]).
/// Central's clock alone is used, so the agent's clock may be off by hours.
pub fn was_on(now: Timestamp, uptime_s: u64, wake_at: Timestamp) -> bool {
    let booted = i128::from(now.as_second()) - i128::from(uptime_s);
    booted < i128::from(wake_at.as_second()) + i128::from(BOOT_SLACK.as_secs())
}

/// Where a wake for a computer goes out: a relay and the IPv4 subnet of that
/// relay which contains one of the computer's addresses. IPv6 has no broadcast
/// (and WOL over it needs multicast to the solicited-node group), so only IPv4
/// addresses and subnets count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeRoute<'a, R> {
    pub relay: &'a R,
    pub subnet: Ipv4Net,
}

impl<R> WakeRoute<'_, R> {
    /// The subnet's broadcast address, where the magic packet is sent.
    pub fn broadcast(&self) -> Ipv4Addr {
        self.subnet.broadcast()
    }
}

/// The relays that can wake a computer, as agents choose relays: those with an
/// IPv4 subnet containing one of `addresses`, longest prefix first, ties by
/// relay id; each with its longest such subnet.
pub fn wake_routes<'a, R: RelaySubnets>(
    addresses: &[IpAddr],
    relays: &'a [R],
) -> Vec<WakeRoute<'a, R>> {
    let v4: Vec<Ipv4Addr> = addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        })
        .collect();
    let mut routes: Vec<WakeRoute<'a, R>> = relays
        .iter()
        .filter_map(|relay| {
            relay
                .subnets()
                .iter()
                .filter_map(|net| match net {
                    IpNet::V4(net) if v4.iter().any(|a| net.contains(a)) => Some(*net),
                    _ => None,
                })
                .max_by_key(Ipv4Net::prefix_len)
                .map(|subnet| WakeRoute { relay, subnet })
        })
        .collect();
    routes.sort_by(|a, b| {
        b.subnet
            .prefix_len()
            .cmp(&a.subnet.prefix_len())
            .then_with(|| a.relay.relay_id().cmp(b.relay.relay_id()))
    });
    routes
}

/// Why no relay can be asked to wake a computer with `macs` and `addresses`,
/// `routes` being how many [`wake_routes`] it has; `None`: one can (if one of
/// them is connected).
pub fn unroutable(macs: &[MacAddr], addresses: &[IpAddr], routes: usize) -> Option<NotAsked> {
    let ipv4 = |a: &IpAddr| match a {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
    };
    if macs.is_empty() {
        Some(NotAsked::NoMac)
    } else if !addresses.is_empty() && !addresses.iter().any(ipv4) {
        Some(NotAsked::Ipv6Only)
    } else if routes == 0 {
        Some(NotAsked::NoRelay)
    } else {
        None
    }
}

/// A woken computer polled (`uptime_s`: what its agent reported, if anything).
/// At its first poll since the wake, an agent's uptime settles whether it was
/// off: one that was on ([`was_on`]) is never shut down. Otherwise its first
/// poll within `expiry` of the wake counts as coming up (later: its shutdown
/// is dropped, OCO: the user may have switched it on); once it came up, its
/// jobs in the container are all final (`jobs_done`) and the poll hands it no
/// other work (`busy`), it is told to shut down, once. Returns whether to tell
/// it now; `w` records what changed.
pub fn on_poll(
    w: &mut WokenComputer,
    wake_at: Timestamp,
    now: Timestamp,
    uptime_s: Option<u64>,
    expiry: Duration,
    jobs_done: bool,
    busy: bool,
) -> bool {
    if w.shutdown != ShutdownState::Pending {
        return false;
    }
    if w.came_up_at.is_none() {
        if let Some(uptime) = uptime_s {
            w.booted_at = boot_time(now, uptime);
            if was_on(now, uptime, wake_at) {
                w.was_off = false;
                w.shutdown = ShutdownState::Never;
                return false;
            }
        }
        let late = now
            .as_second()
            .saturating_sub(wake_at.as_second())
            .max(0)
            .unsigned_abs()
            > expiry.as_secs();
        if late {
            w.shutdown = ShutdownState::Expired;
            return false;
        }
        w.came_up_at = Some(now);
    }
    if jobs_done && !busy {
        w.shutdown = ShutdownState::Sent;
        w.shutdown_at = Some(now);
        return true;
    }
    false
}

/// OCO's default restart timeout: time for a user to save their work.
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest restart timeout a container may set: a day, like a package's
/// notify countdown. An agent waits no longer whatever it is handed.
pub const MAX_RESTART_TIMEOUT: Duration = Duration::from_secs(86_400);

pub fn default_restart_timeout() -> Duration {
    DEFAULT_RESTART_TIMEOUT
}

/// What central did when a container with `wol` started: which computers it
/// asked relays to wake, and where each one's shutdown stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// When the wake was recorded (then sent).
    pub at: Timestamp,
    /// The computers with unfinished jobs then, by id.
    pub computers: Vec<WokenComputer>,
}

/// One computer of a wake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WokenComputer {
    pub computer_id: ComputerId,
    /// Whether it was off before the wake: only such computers may be shut
    /// down. When its magic packets were handed to a relay: it had not been in
    /// touch with central for two poll intervals. At its first poll after that,
    /// if its agent reports an uptime: it booted after the wake (see
    /// `booted_at`).
    pub was_off: bool,
    /// The MAC addresses the magic packets named.
    pub macs: Vec<MacAddr>,
    /// The relay asked to send them (`None`: not asked, see `not_asked`).
    pub relay: Option<RelayId>,
    /// Why no relay was asked (`None`: one was). `relay_not_connected` is
    /// retried while the container runs, up to `wol_shutdown_expiry` after its
    /// first wake.
    #[serde(default)]
    pub not_asked: Option<NotAsked>,
    /// When the relay was asked (its wake); `None` on lines recorded before
    /// retries existed: the container's wake `at`.
    #[serde(default)]
    pub asked_at: Option<Timestamp>,
    /// When it booted, on central's clock (its first poll after the wake, less
    /// the uptime the poll reported); `None`: not polled since, or its agent
    /// reports no uptime.
    #[serde(default)]
    pub booted_at: Option<Timestamp>,
    /// Its first poll within `wol_shutdown_expiry` of the wake, if it had been off.
    pub came_up_at: Option<Timestamp>,
    pub shutdown: ShutdownState,
    /// When it was told to shut down.
    pub shutdown_at: Option<Timestamp>,
}

/// Why central asked no relay to wake a computer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotAsked {
    /// Its agent never reported a MAC address.
    NoMac,
    /// It is known only by IPv6 addresses (IPv6 has no broadcast).
    Ipv6Only,
    /// No relay's IPv4 subnet contains its addresses.
    NoRelay,
    /// Relays serve it, but none was connected (or the connection dropped as
    /// the wake was handed to it): retried.
    RelayNotConnected,
}

impl NotAsked {
    /// Whether the periodic waker tries again (the others need an admin).
    pub const fn retried(self) -> bool {
        matches!(self, NotAsked::RelayNotConnected)
    }
}

impl fmt::Display for NotAsked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoMac => "no MAC address known",
            Self::Ipv6Only => "IPv6 addresses only (no broadcast)",
            Self::NoRelay => "no relay serves its addresses",
            Self::RelayNotConnected => "its relays were not connected (retried)",
        })
    }
}

/// Where a computer's shutdown after the jobs stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownState {
    /// Never shut down: no `shutdown_after`, it was on before the wake, or no
    /// magic packet went out for it.
    Never,
    /// Woken: shut down once it came up in time and its jobs are done.
    Pending,
    /// It did not come up within `wol_shutdown_expiry`: dropped (OCO).
    Expired,
    /// A poll told it to shut down.
    Sent,
}

impl fmt::Display for ShutdownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Pending => "pending",
            Self::Expired => "expired",
            Self::Sent => "sent",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ids::RelayId;

    #[test]
    fn macs_parse_with_colons_or_dashes_and_print_lowercase_with_colons() {
        for text in [
            "aa:bb:cc:dd:ee:0f",
            "AA-BB-CC-DD-EE-0F",
            " aa:BB:cc:dd:ee:0f ",
        ] {
            let mac: MacAddr = text.parse().unwrap();
            assert_eq!(mac.octets(), [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f]);
            assert_eq!(mac.to_string(), "aa:bb:cc:dd:ee:0f");
        }
        let json = serde_json::to_string(&MacAddr::new([1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(json, "\"01:02:03:04:05:06\"");
        assert_eq!(
            serde_json::from_str::<MacAddr>(&json).unwrap(),
            MacAddr::new([1, 2, 3, 4, 5, 6])
        );
        assert!("00:00:00:00:00:00".parse::<MacAddr>().unwrap().is_zero());
    }

    #[test]
    fn bad_macs_name_the_token() {
        for (text, names) in [
            ("aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee"),
            ("aa:bb:cc:dd:ee:ff:00", "aa:bb:cc:dd:ee:ff:00"),
            ("aa:bb:cc:dd:ee:gg", "'gg'"),
            ("aa:bb:cc:dd:ee:f", "'f'"),
            ("aa:bb-cc:dd:ee:ff", "six hex pairs"),
            ("aa-bb-cc-dd-ee-ff-", "six hex pairs"),
            ("aa-bb-cc-dd-ee-f:f", "six hex pairs"),
            ("aabbccddeeff", "aabbccddeeff"),
            ("", "six hex pairs"),
            ("aa:bb:cc:dd:ee:+f", "'+f'"),
        ] {
            let e = text.parse::<MacAddr>().unwrap_err();
            assert_eq!(e.grammar, "MAC address");
            assert_eq!(e.token, text.trim());
            assert!(e.to_string().contains(names), "{text}: {e}");
        }
        assert!(serde_json::from_str::<MacAddr>("\"zz:bb:cc:dd:ee:ff\"")
            .unwrap_err()
            .to_string()
            .contains("zz"));
        let e = parse_macs(&["aa:bb:cc:dd:ee:ff".into(), "nope".into()]).unwrap_err();
        assert_eq!(e.token, "nope");
        assert_eq!(
            parse_macs(&["aa:bb:cc:dd:ee:ff".into(), "AA-BB-CC-DD-EE-FF".into()]).unwrap(),
            vec!["aa:bb:cc:dd:ee:ff".parse().unwrap()]
        );
    }

    #[test]
    fn the_magic_packet_is_six_ff_then_sixteen_macs() {
        let mac: MacAddr = "01:23:45:67:89:ab".parse().unwrap();
        let packet = magic_packet(mac);
        assert_eq!(packet.len(), 102);
        assert_eq!(&packet[..6], &[0xFF; 6]);
        for i in 0..16 {
            let at = 6 + i * 6;
            assert_eq!(&packet[at..at + 6], &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab]);
        }
    }

    #[test]
    fn power_actions_travel_in_lowercase() {
        assert_eq!(
            serde_json::to_string(&PowerAction::Shutdown).unwrap(),
            "\"shutdown\""
        );
        assert_eq!(
            serde_json::from_str::<PowerAction>("\"restart\"").unwrap(),
            PowerAction::Restart
        );
        assert_eq!(PowerAction::Restart.to_string(), "restart");
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_computer_was_off_when_quiet_for_two_poll_intervals() {
        let wake = t("2026-11-21T18:00:00Z");
        let minute = Duration::from_secs(60);
        assert!(was_off(None, wake, minute));
        assert!(was_off(Some(t("2026-11-21T17:58:00Z")), wake, minute));
        assert!(!was_off(Some(t("2026-11-21T17:58:01Z")), wake, minute));
        assert!(!was_off(Some(wake), wake, minute));
        // Seen after the wake (a clock moved back): on.
        assert!(!was_off(Some(t("2026-11-21T18:05:00Z")), wake, minute));
    }

    #[test]
    fn a_computer_was_on_when_it_booted_before_the_wake() {
        let wake = t("2026-11-21T18:00:00Z");
        // Polled two minutes after the wake: on for a day, or booted a minute
        // before the wake; both were on.
        let now = t("2026-11-21T18:02:00Z");
        assert!(was_on(now, 86_400, wake));
        assert!(was_on(now, 180, wake));
        // Booted within the slack after the wake: still counted as on (the
        // poll's transit makes boots look later).
        assert!(was_on(now, 116, wake));
        assert!(!was_on(now, 115, wake));
        // Booted a minute after the wake: woken.
        assert!(!was_on(now, 60, wake));
        assert!(!was_on(now, 0, wake));
        // Uptimes jiff cannot place are long before any wake.
        assert!(was_on(now, u64::MAX, wake));
        assert_eq!(boot_time(now, 60), Some(t("2026-11-21T18:01:00Z")));
        assert_eq!(boot_time(now, u64::MAX), None);
        assert_eq!(boot_time(now, i64::MAX.unsigned_abs()), None);
        assert_eq!(BOOT_SLACK.as_secs(), 5);
    }

    #[test]
    fn an_uptime_settles_whether_a_quiet_computer_was_on() {
        let wake = t("2026-11-21T18:00:00Z");
        let expiry = Duration::from_secs(600);
        // Quiet before the wake (a long install), but on for a day: never shut
        // down, and its line says it was on.
        let mut busy = pending();
        let now = t("2026-11-21T18:05:00Z");
        assert!(!on_poll(
            &mut busy,
            wake,
            now,
            Some(86_400),
            expiry,
            true,
            false
        ));
        assert_eq!(busy.shutdown, ShutdownState::Never);
        assert!(!busy.was_off);
        assert_eq!(busy.came_up_at, None);
        assert_eq!(busy.booted_at, Some(t("2026-11-20T18:05:00Z")));
        assert!(!on_poll(&mut busy, wake, now, Some(0), expiry, true, false));
        // Booted two minutes after the wake: woken, came up, shut down once done.
        let mut woken = pending();
        assert!(on_poll(
            &mut woken,
            wake,
            now,
            Some(180),
            expiry,
            true,
            false
        ));
        assert_eq!(woken.booted_at, Some(t("2026-11-21T18:02:00Z")));
        assert!(woken.was_off);
        assert_eq!(woken.came_up_at, Some(now));
        assert_eq!(woken.shutdown, ShutdownState::Sent);
        // Only the first poll judges: a later one (after a restart, say) does
        // not move it.
        let mut later = pending();
        assert!(!on_poll(
            &mut later,
            wake,
            now,
            Some(180),
            expiry,
            false,
            false
        ));
        let after = t("2026-11-21T18:20:00Z");
        assert!(on_poll(
            &mut later,
            wake,
            after,
            Some(10),
            expiry,
            true,
            false
        ));
        assert_eq!(later.booted_at, Some(t("2026-11-21T18:02:00Z")));
        // Booted after the wake but polling past the expiry: expired.
        let mut late = pending();
        let late_poll = t("2026-11-21T18:10:01Z");
        assert!(!on_poll(
            &mut late,
            wake,
            late_poll,
            Some(60),
            expiry,
            true,
            false
        ));
        assert_eq!(late.shutdown, ShutdownState::Expired);
    }

    #[test]
    fn a_computer_no_relay_can_wake_says_why() {
        let mac = [MacAddr::new([2, 0, 0, 0, 0, 1])];
        let v4: Vec<IpAddr> = vec!["10.1.0.5".parse().unwrap()];
        let v6: Vec<IpAddr> = vec!["fd00::5".parse().unwrap()];
        let mapped: Vec<IpAddr> = vec!["::ffff:10.1.0.5".parse().unwrap()];
        assert_eq!(unroutable(&[], &v4, 1), Some(NotAsked::NoMac));
        assert_eq!(unroutable(&mac, &v6, 0), Some(NotAsked::Ipv6Only));
        assert_eq!(unroutable(&mac, &mapped, 0), Some(NotAsked::NoRelay));
        assert_eq!(unroutable(&mac, &v4, 0), Some(NotAsked::NoRelay));
        assert_eq!(unroutable(&mac, &[], 0), Some(NotAsked::NoRelay));
        assert_eq!(unroutable(&mac, &v4, 2), None);
        assert!(NotAsked::RelayNotConnected.retried());
        for other in [NotAsked::NoMac, NotAsked::Ipv6Only, NotAsked::NoRelay] {
            assert!(!other.retried());
        }
        assert_eq!(
            serde_json::to_value(NotAsked::RelayNotConnected).unwrap(),
            "relay_not_connected"
        );
    }

    struct R(RelayId, Vec<IpNet>);

    impl RelaySubnets for R {
        fn relay_id(&self) -> &RelayId {
            &self.0
        }
        fn subnets(&self) -> &[IpNet] {
            &self.1
        }
    }

    fn r(id: &str, nets: &[&str]) -> R {
        R(
            id.parse().unwrap(),
            nets.iter().map(|n| n.parse().unwrap()).collect(),
        )
    }

    #[test]
    fn wakes_go_out_on_the_longest_ipv4_subnet_first() {
        let relays = vec![
            r("wide", &["10.0.0.0/8"]),
            r("floor", &["10.1.3.0/24", "fd00::/64"]),
            r("site", &["10.1.0.0/16", "10.1.3.0/25"]),
            r("other", &["10.2.0.0/16"]),
            r("v6", &["fd00::/64"]),
        ];
        let addresses: Vec<IpAddr> = vec!["10.1.3.7".parse().unwrap(), "fd00::7".parse().unwrap()];
        let routes = wake_routes(&addresses, &relays);
        let got: Vec<(String, String, String)> = routes
            .iter()
            .map(|w| {
                (
                    w.relay.0.to_string(),
                    w.subnet.to_string(),
                    w.broadcast().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("site".into(), "10.1.3.0/25".into(), "10.1.3.127".into()),
                ("floor".into(), "10.1.3.0/24".into(), "10.1.3.255".into()),
                ("wide".into(), "10.0.0.0/8".into(), "10.255.255.255".into()),
            ]
        );
        let only_v6: Vec<IpAddr> = vec!["fd00::7".parse().unwrap()];
        assert!(wake_routes(&only_v6, &relays).is_empty());
        let mapped: Vec<IpAddr> = vec!["::ffff:10.2.0.9".parse().unwrap()];
        assert_eq!(wake_routes(&mapped, &relays)[0].relay.0.as_str(), "other");
    }

    fn pending() -> WokenComputer {
        WokenComputer {
            computer_id: "pc-1".parse().unwrap(),
            was_off: true,
            macs: vec![],
            relay: Some("relay-1".parse().unwrap()),
            not_asked: None,
            asked_at: Some(t("2026-11-21T18:00:00Z")),
            booted_at: None,
            came_up_at: None,
            shutdown: ShutdownState::Pending,
            shutdown_at: None,
        }
    }

    #[test]
    fn a_woken_computer_is_shut_down_once_when_its_jobs_are_done() {
        let wake = t("2026-11-21T18:00:00Z");
        let expiry = Duration::from_secs(600);
        let mut w = pending();
        // Comes up within the expiry, jobs still running: recorded, no shutdown.
        assert!(!on_poll(
            &mut w,
            wake,
            t("2026-11-21T18:04:00Z"),
            None,
            expiry,
            false,
            false
        ));
        assert_eq!(w.came_up_at, Some(t("2026-11-21T18:04:00Z")));
        assert_eq!(w.shutdown, ShutdownState::Pending);
        // Jobs done but other work handed out in this poll: later.
        assert!(!on_poll(
            &mut w,
            wake,
            t("2026-11-21T18:30:00Z"),
            None,
            expiry,
            true,
            true
        ));
        // Done and idle, even past the expiry (it came up in time): once.
        let at = t("2026-11-21T18:40:00Z");
        assert!(on_poll(&mut w, wake, at, None, expiry, true, false));
        assert_eq!((w.shutdown, w.shutdown_at), (ShutdownState::Sent, Some(at)));
        assert!(!on_poll(&mut w, wake, at, None, expiry, true, false));
    }

    #[test]
    fn a_computer_that_comes_up_late_or_was_on_is_never_shut_down() {
        let wake = t("2026-11-21T18:00:00Z");
        let expiry = Duration::from_secs(600);
        let mut late = pending();
        assert!(!on_poll(
            &mut late,
            wake,
            t("2026-11-21T18:10:01Z"),
            None,
            expiry,
            true,
            false
        ));
        assert_eq!(late.shutdown, ShutdownState::Expired);
        assert_eq!(late.came_up_at, None);
        assert!(!on_poll(
            &mut late,
            wake,
            t("2026-11-21T18:11:00Z"),
            None,
            expiry,
            true,
            false
        ));
        let mut on = WokenComputer {
            was_off: false,
            shutdown: ShutdownState::Never,
            ..pending()
        };
        assert!(!on_poll(&mut on, wake, wake, None, expiry, true, false));
        assert_eq!(on.shutdown, ShutdownState::Never);
    }
}
