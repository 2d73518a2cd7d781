//! The same-subnet rule: an agent downloads from a relay whose subnet contains one
//! of the agent's addresses, the most specific subnet first (seed 004: a
//! redistribution server serves the computers of its own subnet).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ids::RelayId;

/// What selection needs to know of a relay.
pub trait RelaySubnets {
    fn relay_id(&self) -> &RelayId;
    fn subnets(&self) -> &[IpNet];
}

/// The longest prefix among `subnets` that contains one of `addresses`.
pub fn best_prefix(addresses: &[IpAddr], subnets: &[IpNet]) -> Option<u8> {
    subnets
        .iter()
        .filter(|net| addresses.iter().any(|a| net.contains(a)))
        .map(|net| net.prefix_len())
        .max()
}

/// The relays whose subnets contain one of `addresses`, longest matching prefix
/// first; ties are broken by relay id so the order never depends on input order.
pub fn select_relays<'a, R: RelaySubnets>(addresses: &[IpAddr], relays: &'a [R]) -> Vec<&'a R> {
    let mut chosen: Vec<(u8, &R)> = relays
        .iter()
        .filter_map(|r| best_prefix(addresses, r.subnets()).map(|p| (p, r)))
        .collect();
    chosen.sort_by(|(pa, a), (pb, b)| pb.cmp(pa).then_with(|| a.relay_id().cmp(b.relay_id())));
    chosen.dedup_by(|(_, a), (_, b)| a.relay_id() == b.relay_id());
    chosen.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
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

    fn ids(v: Vec<&R>) -> Vec<String> {
        v.into_iter().map(|r| r.0.to_string()).collect()
    }

    #[test]
    fn longest_prefix_first() {
        let relays = vec![
            r("wide", &["127.0.0.0/8"]),
            r("site2", &["127.2.0.0/16"]),
            r("site1", &["127.1.0.0/16"]),
            r("floor", &["127.1.3.0/24", "10.0.0.0/8"]),
        ];
        let a: Vec<IpAddr> = vec!["127.1.3.7".parse().unwrap()];
        assert_eq!(ids(select_relays(&a, &relays)), ["floor", "site1", "wide"]);
        let b: Vec<IpAddr> = vec!["192.168.1.1".parse().unwrap()];
        assert!(select_relays(&b, &relays).is_empty());
        let v6: Vec<IpAddr> = vec!["fd00::1".parse().unwrap()];
        assert!(select_relays(&v6, &relays).is_empty());
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        (any::<[u8; 2]>(), 0u8..=24).prop_map(|(b, p)| {
            IpNet::new(IpAddr::from([10, b[0] % 4, b[1] % 4, 0]), p)
                .unwrap()
                .trunc()
        })
    }

    proptest! {
        #[test]
        fn selection_is_sound_ordered_and_order_independent(
            nets in proptest::collection::vec(proptest::collection::vec(arb_net(), 1..3), 0..8),
            addr in any::<[u8; 2]>(),
            seed in any::<u64>(),
        ) {
            let relays: Vec<R> = nets
                .into_iter()
                .enumerate()
                .map(|(i, n)| R(format!("r{i}").parse().unwrap(), n))
                .collect();
            let addrs = vec![IpAddr::from([10, addr[0] % 4, addr[1] % 4, 1])];
            let chosen = select_relays(&addrs, &relays);
            // Only relays whose subnet contains the address, all of them.
            for rel in &relays {
                let serves = rel.1.iter().any(|n| n.contains(&addrs[0]));
                prop_assert_eq!(serves, chosen.iter().any(|c| c.0 == rel.0));
            }
            // Longest prefix first.
            let prefixes: Vec<u8> = chosen.iter().map(|c| best_prefix(&addrs, &c.1).unwrap()).collect();
            prop_assert!(prefixes.windows(2).all(|w| w[0] >= w[1]));
            // Independent of input order.
            let mut shuffled = relays.clone();
            let len = shuffled.len();
            if len > 1 {
                shuffled.rotate_left((seed as usize) % len);
                shuffled.reverse();
            }
            prop_assert_eq!(ids(select_relays(&addrs, &shuffled)), ids(chosen));
        }
    }
}
