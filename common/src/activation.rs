//! Which sites' relays are to hold a package, and whether agents may fall back
//! to central: the domain value behind the admin API's activation and
//! central's stored one, with the one "activated for this site" rule.

use crate::deployment::CentralFallback;
use crate::ids::SiteName;

/// A package's activation: for every site, or for the sites named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    pub all_sites: bool,
    pub sites: Vec<SiteName>,
    pub central_fallback: CentralFallback,
}

impl Activation {
    /// Whether the relays of `site` are to hold the package: the one
    /// "activated for this site" rule that central's poll answers, relay views
    /// and QUIC pushes all apply.
    pub fn includes(&self, site: &SiteName) -> bool {
        includes(self.all_sites, &self.sites, site)
    }
}

/// [`Activation::includes`] over borrowed parts, for callers that hold a
/// stored activation: the poll asks it per relay and package, so it must not
/// copy the site list.
pub fn includes(all_sites: bool, sites: &[SiteName], site: &SiteName) -> bool {
    all_sites || sites.contains(site)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn site(name: &str) -> SiteName {
        name.parse().unwrap()
    }

    #[test]
    fn a_site_is_included_when_named_or_when_all_sites_are() {
        let none = Activation::default();
        assert!(!none.includes(&site("paris")));
        let named = Activation {
            sites: vec![site("paris")],
            ..Activation::default()
        };
        assert!(named.includes(&site("paris")));
        assert!(!named.includes(&site("lyon")));
        let all = Activation {
            all_sites: true,
            ..Activation::default()
        };
        assert!(all.includes(&site("lyon")));
    }
}
