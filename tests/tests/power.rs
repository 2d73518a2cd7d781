//! End to end: Wake-on-LAN, shutdown after the jobs and restarts (OCO) — a
//! relay of site 127.1.0.0/16 puts central's wake on its LAN as magic packets
//! to the subnet's broadcast address, only the computer that was off before the
//! wake (it booted after it, says its uptime) runs its power command with
//! `shutdown` — not one that was quiet but on all along —, and a package that
//! needs a restart runs it with `restart` after its container's restart timeout.
#![allow(clippy::unwrap_used)]
// Tests compare what was recorded against the real wall clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sitecast_common::power::{magic_packet, MacAddr};
use sitecast_tests::{Central, DEADLINE};

/// A command-only package running `true` (`extra`: more upload parameters).
async fn command_package(c: &Central, name: &str, extra: &str) -> String {
    let p = c
        .upload(
            &format!("name={name}&version=1&action=execute&command=true{extra}"),
            vec![],
        )
        .await;
    p["id"].as_str().unwrap().to_owned()
}

/// The datagrams arriving on `socket` until every one of `macs` had its magic
/// packet; each datagram must be exactly a magic packet of one of them.
async fn magic_packets_for(socket: &tokio::net::UdpSocket, macs: &[MacAddr]) -> usize {
    let mut seen = BTreeSet::new();
    let mut count = 0;
    let deadline = Instant::now() + DEADLINE;
    while seen.len() < macs.len() {
        let mut buf = [0u8; 1500];
        let left = deadline.saturating_duration_since(Instant::now());
        let (n, _) = tokio::time::timeout(left, socket.recv_from(&mut buf))
            .await
            .expect("no magic packet arrived")
            .unwrap();
        let packet = &buf[..n];
        assert_eq!(n, 102, "{packet:02x?}");
        assert_eq!(&packet[..6], &[0xFF; 6]);
        let mac = macs
            .iter()
            .find(|m| packet[6..].chunks(6).all(|chunk| chunk == m.octets()))
            .unwrap_or_else(|| panic!("a packet for no known MAC: {packet:02x?}"));
        assert_eq!(packet, &magic_packet(*mac)[..]);
        seen.insert(*mac);
        count += 1;
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_wakes_the_site_and_only_the_woken_computer_shuts_down() {
    let c = Central::start().await;
    // On Linux all of 127/8 is local: the site's broadcast address can be bound.
    let lan = tokio::net::UdpSocket::bind("127.1.255.255:0")
        .await
        .unwrap();
    let wol_port = lan.local_addr().unwrap().port();
    c.add_site("paris", &["127.1.0.0/16"]).await;
    let relay = c
        .relay_with(
            "paris",
            &["127.1.0.0/16"],
            "127.1.0.1",
            |config| config.wol_port = Some(wol_port),
            None,
        )
        .await;
    c.wait_linked(&relay.id).await;
    let mac_on: MacAddr = "02:00:00:00:01:01".parse().unwrap();
    let mac_off: MacAddr = "02:00:00:00:01:02".parse().unwrap();
    let on = c
        .agent_with_macs("on", "127.1.0.10", &[&mac_on.to_string()])
        .await;
    let off = c
        .agent_with_macs("off", "127.1.0.11", &[&mac_off.to_string()])
        .await;
    let mac_busy: MacAddr = "02:00:00:00:01:03".parse().unwrap();
    let busy = c
        .agent_with_macs("busy", "127.1.0.12", &[&mac_busy.to_string()])
        .await;
    on.harmless_power_command();
    off.harmless_power_command();
    busy.harmless_power_command();
    // `busy` has been on for a day (a long install kept it from polling);
    // `off` will have booted a minute before its first poll.
    busy.set_uptime(86_400);
    off.set_uptime(60);
    // `enroll --mac` writes agent.toml's mac_addresses, which every poll reports.
    let layout = sitecast_agent::Layout::new(&off.dir);
    let config = sitecast_agent::AgentConfig::load(&layout).unwrap();
    assert_eq!(config.mac_addresses, vec![mac_off]);
    let p = command_package(&c, "patch", "").await;
    c.post(
        &format!("/packages/{p}/activations"),
        json!({"sites": ["paris"]}),
    )
    .await;
    c.wait_held(&relay.id, &p).await;

    // Ten minutes on (central's clock), only `on` has been in touch: `off`
    // and `busy` last spoke at their enrollment and look switched off.
    c.clock
        .set(Timestamp::now() + SignedDuration::from_secs(600));
    assert!(on.once_codes().await.is_empty());
    let created = c
        .post(
            "/containers",
            json!({"name": "night", "packages": [p], "all": true,
                   "wol": true, "shutdown_after": true}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();

    // The relay sent each computer's magic packet to 127.1.255.255 on its wol_port.
    assert!(magic_packets_for(&lan, &[mac_on, mac_off, mac_busy]).await >= 3);
    let lines = created["wake"]["computers"].as_array().unwrap().clone();
    let line = |agent: &str| {
        lines
            .iter()
            .find(|l| l["computer_id"] == agent)
            .unwrap()
            .clone()
    };
    assert_eq!(line(&on.id)["was_off"], false);
    assert_eq!(line(&off.id)["was_off"], true);
    assert_eq!(line(&off.id)["relay"], relay.id.as_str());
    assert_eq!(line(&busy.id)["was_off"], true);
    assert_eq!(line(&busy.id)["shutdown"], "pending");

    // Two minutes after the wake (central's clock), `off` comes up — its
    // uptime says it booted after the wake —, installs, and is told to shut
    // down once its job is done.
    c.clock
        .set(Timestamp::now() + SignedDuration::from_secs(720));
    assert_eq!(
        off.once_codes().await,
        vec![(p.clone(), "SUCCESS".to_owned())]
    );
    assert_eq!(off.power_log(), ["shutdown"]);
    // `on` was already on: it installs and is never shut down.
    assert_eq!(
        on.once_codes().await,
        vec![(p.clone(), "SUCCESS".to_owned())]
    );
    assert!(on.power_log().is_empty(), "{:?}", on.power_log());
    // `busy` polls at last: on since long before the wake, it is never shut down.
    assert_eq!(
        busy.once_codes().await,
        vec![(p.clone(), "SUCCESS".to_owned())]
    );
    assert!(busy.once_codes().await.is_empty());
    assert!(busy.power_log().is_empty(), "{:?}", busy.power_log());
    // Said once: a later poll does not say it again.
    assert!(off.once_codes().await.is_empty());
    assert_eq!(off.power_log(), ["shutdown"]);
    let shown = c.get(&format!("/containers/{id}")).await;
    let shutdown = |agent: &str| {
        shown["wake"]["computers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["computer_id"] == agent)
            .unwrap()["shutdown"]
            .clone()
    };
    assert_eq!(shutdown(&off.id), "sent");
    assert_eq!(shutdown(&on.id), "never");
    assert_eq!(shutdown(&busy.id), "never");
    let shown_line = |agent: &str| {
        shown["wake"]["computers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["computer_id"] == agent)
            .unwrap()
            .clone()
    };
    assert_eq!(shown_line(&busy.id)["was_off"], false);
    // Booted a day before central's clock at its poll: long before the wake.
    let wake_at: Timestamp = shown["wake"]["at"].as_str().unwrap().parse().unwrap();
    let booted: Timestamp = shown_line(&busy.id)["booted_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        booted < wake_at - SignedDuration::from_hours(23),
        "{booted}"
    );
    let booted: Timestamp = shown_line(&off.id)["booted_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        booted > wake_at,
        "{booted} is not after the wake at {wake_at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_that_needs_a_restart_restarts_after_the_timeout() {
    let c = Central::start().await;
    let a = c.agent("pc-a", "127.3.0.10").await;
    a.harmless_power_command();
    let driver = command_package(&c, "driver", "&restart=true").await;
    let tool = command_package(&c, "tool", "").await;
    c.post(
        "/containers",
        json!({"name": "drivers", "packages": [driver, tool], "computers": [a.id],
               "restart_timeout": "1s"}),
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        a.once_codes().await,
        vec![
            (driver.clone(), "SUCCESS".to_owned()),
            (tool.clone(), "SUCCESS".to_owned())
        ]
    );
    // One restart, after the timeout (the tool needs none).
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(a.power_log(), ["restart"]);
    let stats = c.stats(&driver).await;
    assert_eq!(stats["counts"]["SUCCESS"], 1);
}
