//! Wake-on-LAN, shutdown after and restart timeout (OCO).

use crate::harness::power::{wake_due_containers, wake_due_containers_through, RelayMessenger};
use crate::harness::*;

impl Central {
    fn state(&self) -> &Arc<api::Central> {
        self.state.as_ref().unwrap()
    }

    /// An agent enrolled with these MAC addresses.
    /// A container for every computer that wakes them and shuts them down after.
    async fn given_night_wake(&self, package: &str) -> Value {
        self.given_container(json!({
            "name": "night", "packages": [package], "all": true,
            "wol": true, "shutdown_after": true,
        }))
        .await
    }

    async fn given_agent_with_macs(&self, hostname: &str, address: &str, macs: &[&str]) -> Agent {
        let v = self
            .enroll(json!({
                "enroll_token": self.enroll_token,
                "hostname": hostname,
                "os": "linux",
                "addresses": [address],
                "macs": macs,
            }))
            .await
            .ok(StatusCode::CREATED);
        Agent {
            id: v["computer_id"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A poll reporting these MAC addresses.
    async fn poll_macs(&self, agent: &Agent, macs: &[&str]) -> Reply {
        self.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(agent.token.as_str()),
            &json!({"addresses": [], "macs": macs}),
        )
        .await
    }

    /// The relay's QUIC connection, as central's endpoint attaches it: what
    /// central would send the relay arrives here.
    fn connect_relay(
        &self,
        relay: &str,
    ) -> tokio::sync::mpsc::UnboundedReceiver<sitecast_common::protocol::CentralMessage> {
        self.state()
            .relay_links
            .attach(&relay.parse().unwrap())
            .messages
    }

    fn wake_due(&self) -> Vec<String> {
        wake_due_containers(self.state())
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// [`Central::wake_due`], reaching relays through `links`.
    fn wake_due_through(&self, links: &dyn RelayMessenger) -> Vec<String> {
        wake_due_containers_through(self.state(), links)
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// A poll whose agent reports it has been on for `uptime_s` seconds.
    async fn poll_uptime(&self, agent: &Agent, uptime_s: u64) -> Reply {
        self.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(agent.token.as_str()),
            &json!({"addresses": [], "uptime_s": uptime_s}),
        )
        .await
    }
}

/// A relay whose connection drops just as central hands it a wake: it looks
/// connected, and takes nothing.
struct Dropping(String);

impl RelayMessenger for Dropping {
    fn connected(&self, relay: &sitecast_common::ids::RelayId) -> bool {
        relay.as_str() == self.0
    }
    fn send(
        &self,
        _: &sitecast_common::ids::RelayId,
        _: sitecast_common::protocol::CentralMessage,
    ) -> bool {
        false
    }
}

/// The magic packets of a wake message: `(computer, mac, broadcast)`, sorted.
fn wake_targets(
    message: sitecast_common::protocol::CentralMessage,
) -> Vec<(String, String, String)> {
    let sitecast_common::protocol::CentralMessage::Wake { targets } = message else {
        panic!("not a wake: {message:?}");
    };
    let mut out: Vec<(String, String, String)> = targets
        .into_iter()
        .map(|t| {
            (
                t.computer_id.to_string(),
                t.mac.to_string(),
                t.broadcast.to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// A wake line of a container: `(was_off, relay, shutdown)`.
fn wake_line(container: &Value, computer: &str) -> (bool, Value, String) {
    let line = container["wake"]["computers"]
        .as_array()
        .unwrap_or_else(|| panic!("no wake: {container}"))
        .iter()
        .find(|l| l["computer_id"] == computer)
        .unwrap_or_else(|| panic!("{computer} not in the wake: {container}"));
    (
        line["was_off"].as_bool().unwrap(),
        line["relay"].clone(),
        line["shutdown"].as_str().unwrap().to_owned(),
    )
}

/// One field of a computer's wake line.
fn line_field(container: &Value, computer: &str, field: &str) -> Value {
    container["wake"]["computers"]
        .as_array()
        .unwrap_or_else(|| panic!("no wake: {container}"))
        .iter()
        .find(|l| l["computer_id"] == computer)
        .unwrap_or_else(|| panic!("{computer} not in the wake: {container}"))[field]
        .clone()
}

#[tokio::test]
async fn agents_report_mac_addresses_at_enrollment_and_in_every_poll() {
    let c = Central::start().await;
    let a = c
        .given_agent_with_macs(
            "pc-a",
            "10.1.0.5",
            &["AA-BB-CC-DD-EE-01", "aa:bb:cc:dd:ee:01"],
        )
        .await;
    let listed = c.list_computers().await.ok(StatusCode::OK);
    assert_eq!(listed[0]["macs"], json!(["aa:bb:cc:dd:ee:01"]));
    // A poll replaces them; a poll without any keeps the last ones.
    c.poll_macs(&a, &["aa:bb:cc:dd:ee:02", "AA:BB:CC:DD:EE:03"])
        .await
        .ok(StatusCode::OK);
    c.poll_macs(&a, &[]).await.ok(StatusCode::OK);
    let shown = c.show_computer(&a.id).await.ok(StatusCode::OK);
    assert_eq!(
        shown["macs"],
        json!(["aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:03"])
    );
    // An agent that says nothing of MACs (an older one) enrolls as before.
    let old = c.given_agent("pc-old", &["10.1.0.6"]).await;
    assert_eq!(
        c.show_computer(&old.id).await.ok(StatusCode::OK)["macs"],
        json!([])
    );

    // Bad MACs are refused, naming the field and the token; nothing changes.
    for bad in ["aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:zz", "aabbccddeeff"] {
        c.enroll(json!({
            "enroll_token": c.enroll_token, "hostname": "pc-bad", "os": "linux",
            "addresses": ["10.1.0.7"], "macs": ["aa:bb:cc:dd:ee:04", bad],
        }))
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["macs", bad]);
        c.poll_macs(&a, &[bad])
            .await
            .err_naming(StatusCode::BAD_REQUEST, &["macs", bad]);
    }
    c.send_json(
        Method::POST,
        "/api/v1/agent/poll",
        Some(a.token.as_str()),
        &json!({"addresses": [], "macs": "aa:bb:cc:dd:ee:01"}),
    )
    .await
    .err_naming(StatusCode::BAD_REQUEST, &["macs"]);
    assert_eq!(
        c.list_computers()
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        c.show_computer(&a.id).await.ok(StatusCode::OK)["macs"],
        json!(["aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:03"])
    );
}

#[tokio::test]
async fn containers_carry_wol_shutdown_after_and_a_restart_timeout() {
    let c = Central::start().await;
    let a = c.given_agent("pc-a", &["10.1.0.5"]).await;
    let p = c.package_id("app").await;
    let plain = c
        .given_container(json!({"name": "plain", "packages": [p], "computers": [a.id]}))
        .await;
    assert_eq!(plain["wol"], false);
    assert_eq!(plain["shutdown_after"], false);
    assert_eq!(plain["restart_timeout"], "5m");
    assert!(plain.get("wake").is_none(), "{plain}");
    let poll = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["restart_timeout_s"], 300);
    assert!(poll.get("power").is_none(), "{poll}");
    c.admin_delete(&format!(
        "/api/v1/containers/{}",
        plain["id"].as_str().unwrap()
    ))
    .await;

    let set = c
        .given_container(json!({
            "name": "night", "packages": [p], "computers": [a.id],
            "wol": true, "shutdown_after": true, "restart_timeout": "90s",
        }))
        .await;
    assert_eq!(set["wol"], true);
    assert_eq!(set["shutdown_after"], true);
    assert_eq!(set["restart_timeout"], "90s");
    let poll = c.poll(&a, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["packages"][0]["restart_timeout_s"], 90);
    // A day is the most, and zero (restart at once) is allowed.
    for (timeout, seconds) in [("24h", 86_400), ("0s", 0)] {
        let edge = c
            .given_container(json!({
                "name": "edge", "packages": [p], "computers": [a.id],
                "restart_timeout": timeout,
            }))
            .await;
        assert_eq!(
            sitecast_common::units::Duration::from_secs(seconds).to_string(),
            edge["restart_timeout"].as_str().unwrap()
        );
        c.admin_delete(&format!(
            "/api/v1/containers/{}",
            edge["id"].as_str().unwrap()
        ))
        .await;
    }
    // Listed without the wake's lines; shown with them.
    let list = c.admin_get("/api/v1/containers").await.ok(StatusCode::OK);
    assert_eq!(list[0]["wol"], true);
    assert!(list[0].get("wake").is_none(), "{list}");
    let shown = c.show_container(set["id"].as_str().unwrap()).await;
    assert_eq!(shown["wake"]["at"], T0);

    let base = json!({"name": "n", "packages": [p], "computers": [a.id]});
    let with = |pairs: &[(&str, Value)]| {
        let mut body = base.clone();
        for (k, v) in pairs {
            body[*k] = v.clone();
        }
        body
    };
    for (body, words) in [
        (
            with(&[("restart_timeout", json!("5x"))]),
            vec!["restart_timeout", "5x"],
        ),
        (
            with(&[("restart_timeout", json!("soon"))]),
            vec!["restart_timeout", "soon"],
        ),
        // At most a day, like a notify countdown.
        (
            with(&[("restart_timeout", json!("86401s"))]),
            vec!["restart_timeout", "86401s", "longer than a day"],
        ),
        (
            with(&[("restart_timeout", json!("2d"))]),
            vec!["restart_timeout", "2d"],
        ),
        (
            with(&[("shutdown_after", json!(true))]),
            vec!["shutdown_after", "wol"],
        ),
        (
            with(&[("wol", json!(false)), ("shutdown_after", json!(true))]),
            vec!["shutdown_after", "wol"],
        ),
        (with(&[("wol", json!("yes"))]), vec!["wol"]),
        (
            with(&[("wol", json!(true)), ("shutdown_after", json!("yes"))]),
            vec!["shutdown_after"],
        ),
        (
            with(&[("wol", json!(true)), ("shutdown_after", json!(1))]),
            vec!["shutdown_after"],
        ),
    ] {
        c.create_container(body)
            .await
            .err_naming(StatusCode::BAD_REQUEST, &words);
    }
    assert_eq!(
        c.admin_get("/api/v1/containers")
            .await
            .ok(StatusCode::OK)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_wol_container_asks_each_computers_relay_and_shuts_down_only_the_woken() {
    let mut c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    // A more specific relay that is not connected: the wake falls back to the next.
    c.given_relay("paris", &["10.1.3.0/24"], "http://10.1.3.2:8080")
        .await;
    let mut link = c.connect_relay(&relay);
    // All enrolled at T0 (enrolling is a contact).
    let on = c
        .given_agent_with_macs("on", "10.1.3.5", &["02:00:00:00:00:01"])
        .await;
    let off = c
        .given_agent_with_macs("off", "10.1.3.6", &["02:00:00:00:00:02"])
        .await;
    let late = c
        .given_agent_with_macs("late", "10.1.0.7", &["02:00:00:00:00:03"])
        .await;
    let v6 = c
        .given_agent_with_macs("v6", "fd00::8", &["02:00:00:00:00:04"])
        .await;
    let no_mac = c.given_agent("nomac", &["10.1.0.9"]).await;
    let p = c.package_id("app").await;
    // Ten minutes later only `on` has been in touch.
    c.set_time("2025-03-01T09:10:00Z");
    c.poll(&on, &[]).await.ok(StatusCode::OK);
    c.set_time("2025-03-01T09:10:30Z");
    let created = c.given_night_wake(&p).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["wake"]["at"], "2025-03-01T09:10:30Z");
    // One message to the connected relay, with the broadcast of its subnet.
    let message = link.try_recv().unwrap();
    let mut expected: Vec<(String, String, String)> = vec![
        (
            on.id.clone(),
            "02:00:00:00:00:01".into(),
            "10.1.255.255".into(),
        ),
        (
            off.id.clone(),
            "02:00:00:00:00:02".into(),
            "10.1.255.255".into(),
        ),
        (
            late.id.clone(),
            "02:00:00:00:00:03".into(),
            "10.1.255.255".into(),
        ),
    ];
    expected.sort();
    assert_eq!(wake_targets(message), expected);
    assert!(link.try_recv().is_err(), "one wake, one message");
    // Only computers that were off may be shut down; those no relay could
    // wake (IPv6 only, no MAC) never are.
    assert_eq!(
        wake_line(&created, &on.id),
        (false, json!(relay), "never".into())
    );
    assert_eq!(
        wake_line(&created, &off.id),
        (true, json!(relay), "pending".into())
    );
    assert_eq!(
        wake_line(&created, &late.id),
        (true, json!(relay), "pending".into())
    );
    assert_eq!(
        wake_line(&created, &v6.id),
        (true, Value::Null, "never".into())
    );
    assert_eq!(
        wake_line(&created, &no_mac.id),
        (true, Value::Null, "never".into())
    );
    // Each line says why no relay was asked (none: one was), and when one was.
    assert_eq!(line_field(&created, &v6.id, "not_asked"), "ipv6_only");
    assert_eq!(line_field(&created, &no_mac.id, "not_asked"), "no_mac");
    assert_eq!(line_field(&created, &off.id, "not_asked"), Value::Null);
    assert_eq!(
        line_field(&created, &off.id, "asked_at"),
        "2025-03-01T09:10:30Z"
    );
    assert_eq!(line_field(&created, &no_mac.id, "asked_at"), Value::Null);

    // The wake is recorded once, and survives a restart.
    assert!(c.wake_due().is_empty());
    c.restart_with_db(|_| {});
    let mut link = c.connect_relay(&relay);
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());
    assert_eq!(
        c.show_container(&id).await["wake"],
        created["wake"],
        "the wake's record was lost"
    );

    // `off` comes up, runs its job and is told to shut down, once.
    c.set_time("2025-03-01T09:14:00Z");
    assert_eq!(c.handed(&off).await, vec![install(&p)]);
    assert_eq!(
        c.report(&off, &p, json!({"code": "SUCCESS", "exit_code": 0}))
            .await
            .status,
        StatusCode::OK
    );
    let poll = c.poll(&off, &[]).await.ok(StatusCode::OK);
    assert_eq!(poll["power"], "shutdown");
    assert!(c
        .poll(&off, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());
    // `on` runs its job too and is never shut down.
    assert_eq!(c.handed(&on).await, vec![install(&p)]);
    c.report(&on, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert!(c
        .poll(&on, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());
    // `late` comes up after wol_shutdown_expiry (10m): switched on by someone.
    c.set_time("2025-03-01T09:20:31Z");
    assert_eq!(c.handed(&late).await, vec![install(&p)]);
    c.report(&late, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert!(c
        .poll(&late, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());

    let shown = c.show_container(&id).await;
    assert_eq!(wake_line(&shown, &off.id).2, "sent");
    let off_line = shown["wake"]["computers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["computer_id"] == off.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(off_line["came_up_at"], "2025-03-01T09:14:00Z");
    assert_eq!(off_line["shutdown_at"], "2025-03-01T09:14:00Z");
    assert_eq!(wake_line(&shown, &on.id).2, "never");
    assert_eq!(wake_line(&shown, &late.id).2, "expired");
    // Deleting the container forgets its wake.
    c.admin_delete(&format!("/api/v1/containers/{id}")).await;
    assert!(c
        .state()
        .store
        .wakes_of(&id.parse().unwrap())
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_wol_container_that_starts_later_is_woken_when_central_reaches_its_start() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let mut link = c.connect_relay(&relay);
    let a = c
        .given_agent_with_macs("pc-a", "10.1.0.5", &["02:00:00:00:00:0a"])
        .await;
    let p = c.package_id("app").await;
    let later = c
        .given_container(json!({
            "name": "later", "packages": [p], "computers": [a.id],
            "start_at": T1, "wol": true,
        }))
        .await;
    // Over before central's clock reached it: never woken.
    let ended = c
        .given_container(json!({
            "name": "never", "packages": [p], "computers": [a.id],
            "start_at": "2025-03-01T09:30:00Z", "end_at": "2025-03-01T10:00:00Z", "wol": true,
        }))
        .await;
    assert!(later.get("wake").is_none(), "{later}");
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());
    c.set_time(T1);
    assert_eq!(c.wake_due(), vec![later["id"].as_str().unwrap().to_owned()]);
    assert_eq!(
        wake_targets(link.try_recv().unwrap()),
        vec![(
            a.id.clone(),
            "02:00:00:00:00:0a".into(),
            "10.1.255.255".into()
        )]
    );
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());
    assert!(c
        .show_container(ended["id"].as_str().unwrap())
        .await
        .get("wake")
        .is_none());
    // Without shutdown_after nobody is shut down.
    let shown = c.show_container(later["id"].as_str().unwrap()).await;
    assert_eq!(
        wake_line(&shown, &a.id),
        (true, json!(relay), "never".into())
    );
}

#[tokio::test]
async fn an_uptime_tells_a_computer_that_was_on_from_one_that_was_woken() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    let (relay, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let _link = c.connect_relay(&relay);
    // All enrolled at T0 and quiet since: to their contacts, all look off.
    let busy = c
        .given_agent_with_macs("busy", "10.1.0.5", &["02:00:00:00:00:01"])
        .await;
    let woken = c
        .given_agent_with_macs("woken", "10.1.0.6", &["02:00:00:00:00:02"])
        .await;
    let old = c
        .given_agent_with_macs("old", "10.1.0.7", &["02:00:00:00:00:03"])
        .await;
    let p = c.package_id("app").await;
    c.set_time("2025-03-01T09:10:00Z");
    let created = c.given_night_wake(&p).await;
    let id = created["id"].as_str().unwrap().to_owned();
    for agent in [&busy, &woken, &old] {
        assert_eq!(
            wake_line(&created, &agent.id),
            (true, json!(relay), "pending".into())
        );
    }
    c.set_time("2025-03-01T09:12:00Z");
    // `busy` was on all along (a long install kept it from polling): on for a
    // day, it booted long before the wake and is never shut down.
    let poll = c.poll_uptime(&busy, 86_400).await.ok(StatusCode::OK);
    assert_eq!(handed(&poll), vec![install(&p)]);
    c.report(&busy, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    let poll = c.poll_uptime(&busy, 86_401).await.ok(StatusCode::OK);
    assert!(poll.get("power").is_none(), "{poll}");
    // `woken` booted a minute after the wake: it was off, and came up.
    let poll = c.poll_uptime(&woken, 60).await.ok(StatusCode::OK);
    assert_eq!(handed(&poll), vec![install(&p)]);
    c.report(&woken, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    let poll = c.poll_uptime(&woken, 61).await.ok(StatusCode::OK);
    assert_eq!(poll["power"], "shutdown");
    // An agent that reports no uptime is judged by its contacts, as before.
    assert_eq!(c.handed(&old).await, vec![install(&p)]);
    c.report(&old, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert_eq!(
        c.poll(&old, &[]).await.ok(StatusCode::OK)["power"],
        "shutdown"
    );

    let shown = c.show_container(&id).await;
    assert_eq!(
        wake_line(&shown, &busy.id),
        (false, json!(relay), "never".into())
    );
    assert_eq!(
        line_field(&shown, &busy.id, "booted_at"),
        "2025-02-28T09:12:00Z"
    );
    assert_eq!(line_field(&shown, &busy.id, "came_up_at"), Value::Null);
    assert_eq!(
        wake_line(&shown, &woken.id),
        (true, json!(relay), "sent".into())
    );
    assert_eq!(
        line_field(&shown, &woken.id, "booted_at"),
        "2025-03-01T09:11:00Z"
    );
    assert_eq!(wake_line(&shown, &old.id).2, "sent");
    assert_eq!(line_field(&shown, &old.id, "booted_at"), Value::Null);

    // An uptime must be a number of seconds.
    for bad in [json!(-5), json!("1h"), json!(1.5)] {
        c.send_json(
            Method::POST,
            "/api/v1/agent/poll",
            Some(busy.token.as_str()),
            &json!({"addresses": [], "uptime_s": bad}),
        )
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["uptime_s"]);
    }
}

#[tokio::test]
async fn a_wake_that_reaches_no_relay_is_retried_until_the_expiry() {
    let c = Central::start().await;
    c.given_site("paris", &["10.1.0.0/16"]).await;
    c.given_site("lyon", &["10.2.0.0/16"]).await;
    let (paris, _) = c
        .given_relay("paris", &["10.1.0.0/16"], "http://10.1.0.2:8080")
        .await;
    let (lyon, _) = c
        .given_relay("lyon", &["10.2.0.0/16"], "http://10.2.0.2:8080")
        .await;
    let a = c
        .given_agent_with_macs("pc-a", "10.1.0.5", &["02:00:00:00:00:0a"])
        .await;
    let b = c
        .given_agent_with_macs("pc-b", "10.2.0.5", &["02:00:00:00:00:0b"])
        .await;
    let p = c.package_id("app").await;
    // Central just started: no relay has connected yet.
    c.set_time("2025-03-01T09:10:00Z");
    let created = c.given_night_wake(&p).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["wake"]["at"], "2025-03-01T09:10:00Z");
    for agent in [&a, &b] {
        assert_eq!(
            wake_line(&created, &agent.id),
            (true, Value::Null, "never".into())
        );
        assert_eq!(
            line_field(&created, &agent.id, "not_asked"),
            "relay_not_connected"
        );
        assert_eq!(line_field(&created, &agent.id, "asked_at"), Value::Null);
    }
    // Still nobody connected: nothing to record.
    assert!(c.wake_due().is_empty());
    // Paris's connection drops as the wake is handed to it: the line goes back
    // to waiting, and a later tick asks again.
    c.set_time("2025-03-01T09:11:00Z");
    assert_eq!(
        c.wake_due_through(&Dropping(paris.clone())),
        vec![id.clone()]
    );
    let shown = c.show_container(&id).await;
    assert_eq!(
        wake_line(&shown, &a.id),
        (true, Value::Null, "never".into())
    );
    assert_eq!(
        line_field(&shown, &a.id, "not_asked"),
        "relay_not_connected"
    );

    // Paris connects: its computer is asked, and may now be shut down.
    c.set_time("2025-03-01T09:12:00Z");
    let mut link = c.connect_relay(&paris);
    assert_eq!(c.wake_due(), vec![id.clone()]);
    assert_eq!(
        wake_targets(link.try_recv().unwrap()),
        vec![(
            a.id.clone(),
            "02:00:00:00:00:0a".into(),
            "10.1.255.255".into()
        )]
    );
    let shown = c.show_container(&id).await;
    assert_eq!(
        wake_line(&shown, &a.id),
        (true, json!(paris), "pending".into())
    );
    assert_eq!(line_field(&shown, &a.id, "not_asked"), Value::Null);
    assert_eq!(
        line_field(&shown, &a.id, "asked_at"),
        "2025-03-01T09:12:00Z"
    );
    // Asked once: the next tick has nothing to do for it.
    assert!(c.wake_due().is_empty());
    assert!(link.try_recv().is_err());

    // Retries stop wol_shutdown_expiry (10m) after the container's first wake:
    // Lyon connecting at 09:20:00 is too late for `b`.
    c.set_time("2025-03-01T09:20:00Z");
    let mut lyon_link = c.connect_relay(&lyon);
    assert!(c.wake_due().is_empty());
    assert!(lyon_link.try_recv().is_err());
    let shown = c.show_container(&id).await;
    assert_eq!(
        line_field(&shown, &b.id, "not_asked"),
        "relay_not_connected"
    );

    // `a` comes up within the expiry of its own wake (09:12), though past the
    // container's first (09:10): shut down once its job is done.
    c.set_time("2025-03-01T09:21:00Z");
    assert_eq!(c.handed(&a).await, vec![install(&p)]);
    c.report(&a, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert_eq!(
        c.poll(&a, &[]).await.ok(StatusCode::OK)["power"],
        "shutdown"
    );
    // `b`, switched on by someone, is never shut down.
    assert_eq!(c.handed(&b).await, vec![install(&p)]);
    c.report(&b, &p, json!({"code": "SUCCESS", "exit_code": 0}))
        .await;
    assert!(c
        .poll(&b, &[])
        .await
        .ok(StatusCode::OK)
        .get("power")
        .is_none());
}

#[tokio::test]
async fn a_package_can_ask_for_a_restart() {
    let c = Central::start().await;
    let plain = c.given_command_package("plain", "5").await;
    assert_eq!(plain["restart"], false);
    let info = c.package_info(plain["id"].as_str().unwrap()).await;
    let payload = signing::verify_info(&info.body, &[c.trusted_key()]).unwrap();
    assert!(!payload.restart());
    let raw = signing::verify(&info.body, signing::INFO_PAYLOAD_TYPE, &[c.trusted_key()]).unwrap();
    let json = String::from_utf8(raw).unwrap();
    assert!(!json.contains("restart"), "{json}");

    let params = [
        ("name", "driver"),
        ("version", "1"),
        ("action", "execute"),
        ("command", "install-driver"),
        ("restart", "true"),
    ];
    let p = c.given_package(&params, None).await;
    assert_eq!(p["restart"], true);
    let id = p["id"].as_str().unwrap();
    assert_eq!(c.show_package(id).await.ok(StatusCode::OK)["restart"], true);
    let info = c.package_info(id).await;
    assert!(signing::verify_info(&info.body, &[c.trusted_key()])
        .unwrap()
        .restart());

    let mut bad = params;
    bad[0] = ("name", "other");
    bad[4] = ("restart", "maybe");
    c.upload(&bad, None)
        .await
        .err_naming(StatusCode::BAD_REQUEST, &["restart", "maybe"]);
}
