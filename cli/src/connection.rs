//! Where central is and how to prove we are its admin: read from a central's
//! DIR (`--central-dir`, on central's own machine), or given as flags or
//! environment variables.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sitecast_common::layout::{self, CentralLayout};

use crate::args::Cli;
use crate::client::Client;
use crate::error::CliError;

/// Central's URL, the admin token and the CA its certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub url: String,
    pub token: String,
    pub ca: PathBuf,
}

/// The one setting of `central.toml` the CLI needs. Central owns the file:
/// the rest of it is central's business and is not read here.
#[derive(Deserialize)]
struct ApiListen {
    api_listen: SocketAddr,
}

impl Connection {
    /// Reads a central's DIR: where its API listens, its admin token, its CA.
    pub fn from_dir(dir: &Path) -> Result<Self, CliError> {
        let layout = CentralLayout::new(dir);
        let path = layout.config();
        let text = std::fs::read_to_string(&path).map_err(CliError::io(&path))?;
        let config: ApiListen =
            toml::from_str(&text).map_err(|source| CliError::Config { path, source })?;
        let path = layout.admin_token();
        let text = std::fs::read_to_string(&path).map_err(CliError::io(&path))?;
        let token = layout::token(&text)
            .ok_or(CliError::EmptyToken { path })?
            .to_owned();
        Ok(Self {
            url: local_url(config.api_listen),
            token,
            ca: layout.ca_cert(),
        })
    }

    /// Each setting from its flag, else from its environment variable (`env`
    /// looks one up; empty counts as unset).
    pub fn from_flags(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Self, CliError> {
        let missing = |what: &str, flag: &str, var: &str| {
            CliError::Invalid(format!(
                "no {what}: give --central-dir DIR, or {flag} (or {var})"
            ))
        };
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let url = cli
            .url
            .clone()
            .or_else(|| env("SITECAST_URL"))
            .ok_or_else(|| missing("central URL", "--url", "SITECAST_URL"))?;
        let token = cli
            .token
            .clone()
            .or_else(|| env("SITECAST_TOKEN"))
            .ok_or_else(|| missing("admin token", "--token", "SITECAST_TOKEN"))?;
        let ca = cli
            .ca
            .clone()
            .or_else(|| env("SITECAST_CA").map(PathBuf::from))
            .ok_or_else(|| missing("CA certificate", "--ca", "SITECAST_CA"))?;
        Ok(Self { url, token, ca })
    }
}

/// Resolves central's URL, token and CA from a DIR, the flags or the environment,
/// and sets up the client.
pub fn connect(cli: &Cli) -> Result<Client, CliError> {
    // The environment is read here rather than by clap, so that variables exported
    // for one central never conflict with an explicit --central-dir.
    let c = match &cli.central_dir {
        Some(dir) => Connection::from_dir(dir)?,
        None => Connection::from_flags(cli, |name| std::env::var(name).ok())?,
    };
    Client::new(&c.url, &c.token, &c.ca)
}

/// The URL that reaches central's API from its own machine: a central
/// listening on every address is reached on loopback.
fn local_url(mut addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("https://{addr}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_address_means_loopback() {
        let url = |a: &str| local_url(a.parse().unwrap());
        assert_eq!(url("0.0.0.0:1"), "https://127.0.0.1:1");
        assert_eq!(url("[::]:8443"), "https://[::1]:8443");
        assert_eq!(url("10.0.0.5:8443"), "https://10.0.0.5:8443");
    }

    #[test]
    fn a_dir_gives_its_url_trimmed_token_and_ca_whatever_else_central_toml_says() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join("central.toml"),
            "# Sitecast central\napi_listen = \"0.0.0.0:9443\"\nquic_listen = \"0.0.0.0:4433\"\n\
             names = [\"localhost\"]\npoll_interval = \"1m\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("admin.token"), "  secret\n").unwrap();
        assert_eq!(
            Connection::from_dir(dir).unwrap(),
            Connection {
                url: "https://127.0.0.1:9443".into(),
                token: "secret".into(),
                ca: dir.join("tls/ca.pem"),
            }
        );
        std::fs::write(dir.join("admin.token"), "\n").unwrap();
        let e = Connection::from_dir(dir).unwrap_err().to_string();
        assert!(e.ends_with("admin.token: the token file is empty"), "{e}");
        std::fs::write(dir.join("central.toml"), "quic_listen = \"0.0.0.0:4433\"\n").unwrap();
        let e = Connection::from_dir(dir).unwrap_err().to_string();
        assert!(
            e.contains("central.toml") && e.contains("api_listen"),
            "{e}"
        );
    }

    #[test]
    fn flags_win_over_the_environment_and_each_missing_setting_is_named() {
        let cli = |args: &[&str]| {
            Cli::try_parse_from(["sitecast"].iter().chain(args).chain(&["site", "list"])).unwrap()
        };
        let env = |name: &str| match name {
            "SITECAST_URL" => Some("https://env:1".to_owned()),
            "SITECAST_TOKEN" => Some("env-token".to_owned()),
            _ => Some(String::new()),
        };
        let c = Connection::from_flags(&cli(&["--ca", "ca.pem"]), env).unwrap();
        assert_eq!(c.url, "https://env:1");
        assert_eq!(c.token, "env-token");
        let c = Connection::from_flags(&cli(&["--url", "https://flag:2", "--ca", "ca.pem"]), env)
            .unwrap();
        assert_eq!(c.url, "https://flag:2");
        // An empty variable is no setting.
        let e = Connection::from_flags(&cli(&[]), env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "no CA certificate: give --central-dir DIR, or --ca (or SITECAST_CA)"
        );
        let e = Connection::from_flags(&cli(&[]), |_| None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "no central URL: give --central-dir DIR, or --url (or SITECAST_URL)"
        );
    }
}
