//! Tests of the coverage report: unserved computers and the sites declaring
//! them, longest-prefix site attribution (IPv4 and IPv6), overlaps decided by
//! the agents' rule over all relays, and relays stale by last contact, by
//! missing holdings and by an old info.

use super::*;
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000;

fn at(secs_ago: i64) -> Option<Timestamp> {
    Some(Timestamp::from_second(NOW - secs_ago).unwrap())
}

fn computer(id: &str, addresses: &[&str], seen_ago: i64) -> ComputerSeen {
    ComputerSeen {
        id: id.parse().unwrap(),
        hostname: format!("host-{id}"),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        last_seen: at(seen_ago),
    }
}

fn relay(id: &str, site: &str, subnets: &[&str], seen_ago: Option<i64>) -> RelaySeen {
    RelaySeen {
        id: id.parse().unwrap(),
        site: site.parse().unwrap(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        last_seen: seen_ago.and_then(at),
        holdings: BTreeMap::new(),
    }
}

fn holding(r: &mut RelaySeen, package: &str, info: &str, fragments: u32) {
    r.holdings.insert(
        package.parse().unwrap(),
        Held {
            info_sha256: info.into(),
            fragments,
        },
    );
}

fn site(name: &str, subnets: &[&str]) -> SiteDeclared {
    SiteDeclared {
        name: name.parse().unwrap(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

/// A package activated for a site: `(package, info_sha256, fragments)`.
type Package<'a> = (&'a str, &'a str, u32);

/// Activations per site, each activated an hour ago.
fn activated(list: &[(&str, &[Package])]) -> BTreeMap<SiteName, Vec<Activated>> {
    list.iter()
        .map(|(site, packages)| {
            (
                site.parse().unwrap(),
                packages
                    .iter()
                    .map(|(id, info, fragments)| Activated {
                        package_id: id.parse().unwrap(),
                        info_sha256: (*info).into(),
                        fragments: *fragments,
                        activated_at: at(3600),
                    })
                    .collect(),
            )
        })
        .collect()
}

const THRESHOLDS: Thresholds = Thresholds {
    relay_stale_after: Duration::from_secs(900),
    computer_recent_within: Duration::from_secs(86_400),
};

fn draw(
    computers: &[ComputerSeen],
    relays: &[RelaySeen],
    sites: &[SiteDeclared],
    activations: &BTreeMap<SiteName, Vec<Activated>>,
) -> serde_json::Value {
    let report = report(&Inputs {
        computers,
        relays,
        sites,
        activated: activations,
        now: at(0).unwrap(),
        thresholds: THRESHOLDS,
    });
    serde_json::to_value(report).unwrap()
}

#[test]
fn computers_no_relay_serves_are_unserved_whatever_their_other_addresses() {
    let relays = [relay("r-paris", "paris", &["10.1.0.0/16"], Some(5))];
    let computers = [
        computer("served", &["10.1.2.3"], 10),
        // One served address is enough.
        computer("dual", &["192.168.0.9", "10.1.0.4"], 10),
        computer("wan", &["192.168.0.7", "fd00::7"], 10),
        // It never said where it is: nothing serves it.
        computer("silent", &[], 100_000),
    ];
    let r = draw(&computers, &relays, &[site("paris", &[])], &BTreeMap::new());
    assert_eq!(r["computers"], 4);
    assert_eq!(
        r["unserved"],
        json!([
            {"id": "silent", "hostname": "host-silent", "addresses": [],
             "last_seen": "2027-01-14T04:13:20Z", "site": null},
            {"id": "wan", "hostname": "host-wan", "addresses": ["192.168.0.7", "fd00::7"],
             "last_seen": "2027-01-15T07:59:50Z", "site": null},
        ])
    );
    assert_eq!(r["sites"][0]["computers"], 2);
    // Paris declares no subnet: its unserved are none of its own.
    assert_eq!(r["sites"][0]["unserved"], 0);
    assert_eq!(r["stale_relays"], json!([]));
    assert_eq!(r["overlaps"], json!([]));
    assert_eq!(r["relay_stale_after"], "15m");
    assert_eq!(r["computer_recent_within"], "1d");
    assert_eq!(r["generated_at"], "2027-01-15T08:00:00Z");
}

#[test]
fn a_computer_counts_for_the_site_of_its_longest_prefix_relay() {
    let relays = [
        relay("r-wide", "hq", &["10.0.0.0/8"], Some(5)),
        relay("r-lyon", "lyon", &["10.2.0.0/16"], Some(5)),
        relay("r-lyon-floor", "lyon", &["10.2.7.0/24"], None),
        // More specific than lyon's /16: its addresses are nice's.
        relay("r-nice", "nice", &["10.2.9.0/24"], Some(5_000)),
    ];
    let computers = [
        computer("a", &["10.2.9.1"], 10),
        computer("b", &["10.2.7.1"], 10),
        computer("c", &["10.2.0.1"], 200_000),
        computer("d", &["10.9.0.1"], 10),
        computer("e", &["10.2.9.2"], 200_000),
    ];
    let sites = [
        site("hq", &["10.0.0.0/8"]),
        site("lyon", &["10.2.0.0/16"]),
        site("nice", &[]),
        // Declared, no relay yet.
        site("brest", &["10.3.0.0/16"]),
    ];
    let r = draw(&computers, &relays, &sites, &BTreeMap::new());
    assert_eq!(r["unserved"], json!([]));
    assert_eq!(
        r["sites"],
        json!([
            {"site": "brest", "subnets": ["10.3.0.0/16"], "relay_subnets": [],
             "relays": 0, "relays_up": 0, "computers": 0, "computers_recent": 0,
             "unserved": 0, "unserved_recent": 0},
            {"site": "hq", "subnets": ["10.0.0.0/8"], "relay_subnets": ["10.0.0.0/8"],
             "relays": 1, "relays_up": 1, "computers": 1, "computers_recent": 1,
             "unserved": 0, "unserved_recent": 0},
            {"site": "lyon", "subnets": ["10.2.0.0/16"],
             "relay_subnets": ["10.2.0.0/16", "10.2.7.0/24"],
             "relays": 2, "relays_up": 1, "computers": 2, "computers_recent": 1,
             "unserved": 0, "unserved_recent": 0},
            {"site": "nice", "subnets": [], "relay_subnets": ["10.2.9.0/24"],
             "relays": 1, "relays_up": 0, "computers": 2, "computers_recent": 1,
             "unserved": 0, "unserved_recent": 0},
        ])
    );
}

#[test]
fn relays_of_different_sites_on_the_same_addresses_are_warned_about() {
    let relays = [
        relay("r-paris-b", "paris", &["10.1.0.0/16"], Some(1)),
        relay(
            "r-paris-a",
            "paris",
            &["10.1.0.0/16", "172.16.0.0/12"],
            Some(1),
        ),
        relay("r-lyon", "lyon", &["10.1.5.0/24", "10.2.0.0/16"], Some(1)),
        relay("r-nice", "nice", &["172.16.0.0/12"], Some(1)),
        relay("r-v6", "brest", &["fd00::/8"], Some(1)),
    ];
    let r = draw(&[], &relays, &[], &BTreeMap::new());
    // Paris's two relays share a subnet: redundancy, not a warning. Lyon's
    // block inside it is one warning naming all three relays, not one per pair.
    assert_eq!(
        r["overlaps"],
        json!([
            {"subnet": "10.1.5.0/24", "served_by": "lyon", "relays": [
                {"relay_id": "r-lyon", "site": "lyon", "subnet": "10.1.5.0/24"},
                {"relay_id": "r-paris-a", "site": "paris", "subnet": "10.1.0.0/16"},
                {"relay_id": "r-paris-b", "site": "paris", "subnet": "10.1.0.0/16"}]},
            // Equal prefixes: agents try the lower relay id first.
            {"subnet": "172.16.0.0/12", "served_by": "nice", "relays": [
                {"relay_id": "r-nice", "site": "nice", "subnet": "172.16.0.0/12"},
                {"relay_id": "r-paris-a", "site": "paris", "subnet": "172.16.0.0/12"}]},
        ])
    );
    // The warning's winner is the relay the agents pick.
    let picked = select_relays(&["172.16.1.1".parse().unwrap()], &relays);
    assert_eq!(picked[0].id.as_str(), "r-nice");
    let picked = select_relays(&["10.1.5.1".parse().unwrap()], &relays);
    assert_eq!(picked[0].id.as_str(), "r-lyon");
}

#[test]
fn an_ipv6_relay_serves_the_computers_of_its_subnet() {
    let relays = [relay("r-v6", "paris", &["fd00::/64"], Some(5))];
    let computers = [
        computer("v6", &["fd00::7"], 10),
        // Outside the /64, inside the site's declared /48.
        computer("next-door", &["fd00:0:0:1::7"], 10),
    ];
    let r = draw(
        &computers,
        &relays,
        &[site("paris", &["fd00::/48"])],
        &BTreeMap::new(),
    );
    assert_eq!(
        r["unserved"],
        json!([{"id": "next-door", "hostname": "host-next-door",
                "addresses": ["fd00:0:0:1::7"], "last_seen": "2027-01-15T07:59:50Z",
                "site": "paris"}])
    );
    assert_eq!(
        r["sites"],
        json!([{"site": "paris", "subnets": ["fd00::/48"], "relay_subnets": ["fd00::/64"],
                "relays": 1, "relays_up": 1, "computers": 1, "computers_recent": 1,
                "unserved": 1, "unserved_recent": 1}])
    );
}

#[test]
fn an_unserved_computer_is_named_for_the_site_declaring_its_addresses() {
    // Lyon's relay covers its office only; Brest has none yet.
    let relays = [relay("r-lyon", "lyon", &["10.2.1.0/24"], Some(5))];
    let computers = [
        computer("lyon-office", &["10.2.1.5"], 10),
        computer("lyon-lab", &["10.2.8.5"], 10),
        computer("lyon-old", &["10.2.9.5"], 200_000),
        computer("brest-1", &["10.3.0.1"], 10),
        // Both declare 10.4.0.0/16: the lower name, whatever the order.
        computer("shared", &["10.4.0.1"], 10),
        // Brest's /24 is more specific than HQ's /8.
        computer("brest-dual", &["192.168.0.1", "10.9.9.9"], 10),
        computer("hq-pc", &["10.9.0.1"], 10),
        computer("home", &["192.168.1.4"], 10),
    ];
    let sites = [
        site("lyon", &["10.2.0.0/16"]),
        site("brest", &["10.3.0.0/16", "10.4.0.0/16", "10.9.9.0/24"]),
        site("hq", &["10.0.0.0/8", "10.4.0.0/16"]),
        site("nice", &[]),
    ];
    let r = draw(&computers, &relays, &sites, &BTreeMap::new());
    let named: Vec<(String, Value)> = r["unserved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["id"].as_str().unwrap().to_owned(), u["site"].clone()))
        .collect();
    assert_eq!(
        named,
        [
            ("brest-1".to_owned(), json!("brest")),
            ("brest-dual".to_owned(), json!("brest")),
            ("home".to_owned(), Value::Null),
            ("hq-pc".to_owned(), json!("hq")),
            ("lyon-lab".to_owned(), json!("lyon")),
            ("lyon-old".to_owned(), json!("lyon")),
            ("shared".to_owned(), json!("brest")),
        ]
    );
    let counts: Vec<Value> = r["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            json!([
                s["site"],
                s["computers"],
                s["computers_recent"],
                s["unserved"],
                s["unserved_recent"]
            ])
        })
        .collect();
    assert_eq!(
        counts,
        [
            json!(["brest", 0, 0, 3, 3]),
            json!(["hq", 0, 0, 1, 1]),
            json!(["lyon", 1, 1, 2, 1]),
            json!(["nice", 0, 0, 0, 0]),
        ]
    );
    // The order sites are listed in does not matter.
    let mut reversed = sites.to_vec();
    reversed.reverse();
    assert_eq!(draw(&computers, &relays, &reversed, &BTreeMap::new()), r);
}

#[test]
fn an_overlap_is_served_by_the_relay_agents_pick_among_all_relays() {
    let relays = [
        relay("r-paris", "paris", &["10.1.0.0/16"], Some(1)),
        relay("r-hq", "hq", &["10.0.0.0/8"], Some(1)),
        // Same prefix as Paris's, lower id: agents in 10.1.0.0/16 pick it.
        relay("r-nice", "nice", &["10.1.0.0/16"], Some(1)),
        // Nested in all three: a block of its own, warned about once.
        relay("r-lyon", "lyon", &["10.1.5.0/24"], Some(1)),
        relay("r-c-lyon", "lyon", &["172.16.0.0/12"], Some(1)),
        relay("r-b-nice", "nice", &["172.16.0.0/12"], Some(1)),
        // Lyon's other relay on the same block has the lowest id of the three.
        relay("r-a-lyon", "lyon", &["172.16.0.0/12"], Some(1)),
    ];
    let r = draw(&[], &relays, &[], &BTreeMap::new());
    // Pair by pair, HQ's /8 against Paris's /16 would name Paris, and r-b-nice
    // against r-c-lyon would name Nice; each block is one warning, its relays
    // in the agents' order.
    assert_eq!(
        r["overlaps"],
        json!([
            {"subnet": "10.1.0.0/16", "served_by": "nice", "relays": [
                {"relay_id": "r-nice", "site": "nice", "subnet": "10.1.0.0/16"},
                {"relay_id": "r-paris", "site": "paris", "subnet": "10.1.0.0/16"},
                {"relay_id": "r-hq", "site": "hq", "subnet": "10.0.0.0/8"}]},
            {"subnet": "10.1.5.0/24", "served_by": "lyon", "relays": [
                {"relay_id": "r-lyon", "site": "lyon", "subnet": "10.1.5.0/24"},
                {"relay_id": "r-nice", "site": "nice", "subnet": "10.1.0.0/16"},
                {"relay_id": "r-paris", "site": "paris", "subnet": "10.1.0.0/16"},
                {"relay_id": "r-hq", "site": "hq", "subnet": "10.0.0.0/8"}]},
            {"subnet": "172.16.0.0/12", "served_by": "lyon", "relays": [
                {"relay_id": "r-a-lyon", "site": "lyon", "subnet": "172.16.0.0/12"},
                {"relay_id": "r-b-nice", "site": "nice", "subnet": "172.16.0.0/12"},
                {"relay_id": "r-c-lyon", "site": "lyon", "subnet": "172.16.0.0/12"}]},
        ])
    );
    for (address, first) in [
        ("10.1.7.7", "r-nice"),
        ("10.1.5.9", "r-lyon"),
        ("172.16.1.1", "r-a-lyon"),
    ] {
        let picked = select_relays(&[address.parse().unwrap()], &relays);
        assert_eq!(picked[0].id.as_str(), first);
    }
}

#[test]
fn a_relay_out_of_touch_or_never_seen_is_stale_and_not_up() {
    let relays = [
        relay("r-fresh", "paris", &["10.1.0.0/16"], Some(900)),
        relay("r-quiet", "paris", &["10.1.0.0/16"], Some(901)),
        relay("r-new", "lyon", &["10.2.0.0/16"], None),
        // A clock ahead of central's is not a silence.
        relay("r-ahead", "lyon", &["10.2.0.0/16"], Some(-60)),
    ];
    let r = draw(&[], &relays, &[], &BTreeMap::new());
    assert_eq!(
        r["stale_relays"],
        json!([
            {"id": "r-new", "site": "lyon", "last_seen": null,
             "reasons": [{"kind": "never_seen"}]},
            {"id": "r-quiet", "site": "paris", "last_seen": "2027-01-15T07:44:59Z",
             "reasons": [{"kind": "out_of_touch", "silent_s": 901}]},
        ])
    );
    assert_eq!(r["sites"][0]["relays_up"], 1);
    assert_eq!(r["sites"][1]["relays_up"], 1);
}

#[test]
fn a_relay_lacking_part_of_an_activated_package_is_stale() {
    let mut whole = relay("r-whole", "paris", &["10.1.0.0/16"], Some(1));
    holding(&mut whole, "app-1", "aaa", 4);
    holding(&mut whole, "tool-1", "ttt", 2);
    let mut partial = relay("r-partial", "paris", &["10.1.0.0/16"], Some(1));
    holding(&mut partial, "app-1", "aaa", 3);
    // Held but no longer activated for its site (a kept delta base): not stale.
    holding(&mut partial, "old-1", "ooo", 1);
    let lyon = relay("r-lyon", "lyon", &["10.2.0.0/16"], Some(1));
    let activations = activated(&[
        ("paris", &[("tool-1", "ttt", 2), ("app-1", "aaa", 4)]),
        ("lyon", &[]),
    ]);
    let r = draw(&[], &[whole, partial, lyon], &[], &activations);
    assert_eq!(
        r["stale_relays"],
        json!([
            {"id": "r-partial", "site": "paris", "last_seen": "2027-01-15T07:59:59Z",
             "reasons": [
                {"kind": "incomplete", "package_id": "app-1", "held": 3, "total": 4,
                 "activated_at": "2027-01-15T07:00:00Z"},
                {"kind": "incomplete", "package_id": "tool-1", "held": 0, "total": 2,
                 "activated_at": "2027-01-15T07:00:00Z"},
             ]},
        ])
    );
}

#[test]
fn a_relay_holding_an_info_other_than_the_current_one_is_stale() {
    let mut r1 = relay("r1", "paris", &["10.1.0.0/16"], None);
    holding(&mut r1, "app-1", "old-digest", 4);
    let activations = activated(&[("paris", &[("app-1", "new-digest", 4)])]);
    let r = draw(&[], &[r1], &[], &activations);
    assert_eq!(
        r["stale_relays"][0]["reasons"],
        json!([
            {"kind": "never_seen"},
            {"kind": "old_info", "package_id": "app-1", "held": 4, "total": 4,
             "held_info_sha256": "old-digest", "info_sha256": "new-digest",
             "activated_at": "2027-01-15T07:00:00Z"},
        ])
    );
}

#[test]
fn the_report_reads_back_from_its_json() {
    let mut r1 = relay("r1", "paris", &["10.1.0.0/16"], Some(10_000));
    holding(&mut r1, "app-1", "old", 1);
    let relays = [r1, relay("r2", "lyon", &["10.1.0.0/24"], None)];
    let computers = [computer("a", &["10.1.0.1"], 1), computer("b", &[], 1)];
    let mut activations = activated(&[("paris", &[("app-1", "new", 4), ("b-2", "b", 1)])]);
    // Activated before central recorded activation times.
    activations
        .get_mut(&"paris".parse::<SiteName>().unwrap())
        .unwrap()[1]
        .activated_at = None;
    let report = report(&Inputs {
        computers: &computers,
        relays: &relays,
        sites: &[],
        activated: &activations,
        now: at(0).unwrap(),
        thresholds: THRESHOLDS,
    });
    let text = serde_json::to_string(&report).unwrap();
    assert_eq!(serde_json::from_str::<Coverage>(&text).unwrap(), report);
    assert_eq!(report.stale_relays.len(), 2);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["stale_relays"][1]["reasons"][2],
        json!({"kind": "incomplete", "package_id": "b-2", "held": 0, "total": 1,
               "activated_at": null})
    );
    assert_eq!(report.overlaps.len(), 1);
}
