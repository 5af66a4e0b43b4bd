//! Settings and the directory.
//!
//! Settings are layered with the `config` crate: the built-in defaults (`uapid.toml` at the
//! top of the repository, which match the sandbox PBX), then an optional TOML file, then
//! `UAPID_*` environment variables (`__` between levels). The directory (organizations,
//! users, extensions, trunks and OAuth apps) is checked once here and indexed, so the rest
//! of uapid only ever sees a consistent [`Directory`].

// The directory is looked up for every channel event; its keys come from the settings.
use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The defaults, compiled in so that uapid runs with no configuration at all.
pub const DEFAULTS: &str = include_str!("../uapid.toml");

/// A secret string that never shows in logs or `Debug` output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub listen: SocketAddr,
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    pub asterisk: AsteriskSettings,
    pub directory: DirectoryConfig,
}

fn default_token_ttl() -> u64 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AsteriskSettings {
    pub ari_url: String,
    pub ari_user: String,
    pub ari_password: Secret,
    pub app: String,
    pub ami_addr: String,
    pub ami_user: String,
    pub ami_secret: Secret,
    /// AMI sessions for actions. Asterisk runs one session's actions one after the
    /// other (a Park takes tens of ms), so several let calls be acted on in parallel.
    /// The first session also carries the events.
    #[serde(default = "default_ami_sessions")]
    pub ami_sessions: usize,
    /// Where a transferred party or a click-to-call dials its destination.
    #[serde(default = "default_dial_context")]
    pub dial_context: String,
    /// A context whose extension `<app>` runs `Stasis(<app>)` (`_[a-z].` → `Stasis(${EXTEN})`).
    #[serde(default = "default_stasis_context")]
    pub stasis_context: String,
    /// A context whose `s` extension runs `VoiceMail(${UAPID_MAILBOX},u)`.
    #[serde(default = "default_voicemail_context")]
    pub voicemail_context: String,
    #[serde(default = "default_parking_lot")]
    pub parking_lot: String,
    /// The context of the lot's spaces (res_parking.conf `context`).
    #[serde(default = "default_parked_context")]
    pub parked_context: String,
}

fn default_ami_sessions() -> usize {
    4
}
fn default_dial_context() -> String {
    "phones".into()
}
fn default_stasis_context() -> String {
    "uapid-stasis".into()
}
fn default_voicemail_context() -> String {
    "uapid-voicemail".into()
}
fn default_parking_lot() -> String {
    "default".into()
}
fn default_parked_context() -> String {
    "parkedcalls".into()
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct DirectoryConfig {
    #[serde(default)]
    pub organizations: Vec<Organization>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub extensions: Vec<ExtensionConfig>,
    #[serde(default)]
    pub trunks: Vec<Trunk>,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: u64,
    /// The organization's code, the part before `*` in its extension numbers.
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub organization: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionKind {
    PhoneTerminal,
    Queue,
    Ivr,
    VoicemailCenter,
    Conference,
    CallbackCenter,
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExtensionConfig {
    /// Full UAPI number, `<organization code>*<short number>`.
    pub number: String,
    pub user: u64,
    pub kind: ExtensionKind,
    /// The PJSIP endpoint that rings this extension.
    pub endpoint: String,
    #[serde(default)]
    pub mailbox: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Trunk {
    pub endpoint: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AppConfig {
    pub client_id: String,
    pub secret: Secret,
    /// `admin`, `organization:<id>` or `user:<id>`.
    pub account: String,
}

/// Whom an OAuth app belongs to; what it may see follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {
    Admin,
    Organization(u64),
    User(u64),
}

impl Account {
    fn parse(s: &str) -> Option<Account> {
        let s = s.trim();
        if s == "admin" {
            return Some(Account::Admin);
        }
        let (kind, id) = s.split_once(':')?;
        let id: u64 = id.trim().parse().ok()?;
        match kind.trim() {
            "organization" => Some(Account::Organization(id)),
            "user" => Some(Account::User(id)),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("directory: {0}")]
    Directory(String),
}

impl Settings {
    /// Defaults, then the file (when given), then `UAPID_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("UAPID")
                .prefix_separator("_")
                .separator("__"),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        Directory::build(&settings.directory)?;
        Ok(settings)
    }

    /// The built-in defaults alone (the sandbox PBX).
    pub fn defaults() -> Settings {
        config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("built-in defaults parse")
    }

    /// Where `link.self` URLs point, given the address uapid actually listens on.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{bound}")
            }
        }
    }
}

/// One extension of the directory, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub number: String,
    pub user: u64,
    pub organization: u64,
    pub kind: ExtensionKind,
    pub endpoint: String,
    pub mailbox: Option<String>,
}

/// One OAuth app, resolved.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub secret: Secret,
    pub account: Account,
}

/// The checked, indexed directory.
#[derive(Debug, Default)]
pub struct Directory {
    pub organizations: HashMap<u64, Organization>,
    pub users: HashMap<u64, User>,
    pub extensions: HashMap<String, Extension>,
    ext_by_endpoint: HashMap<String, String>,
    trunks: FxHashSet<String>,
    pub apps: HashMap<String, App>,
}

/// Whether `s` is a UAPI extension number: `<code>*<short>` or a short number, digits only.
pub fn looks_like_extension(s: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('*') {
        Some((code, short)) => digits(code) && digits(short),
        None => digits(s),
    }
}

/// Whether `s` can only be a public number: a phone number of 5 digits or more (shorter
/// numbers are extensions, feature codes or parking spaces).
pub fn looks_like_public_number(s: &str) -> bool {
    looks_like_phone_number(s) && s.trim_start_matches('+').len() >= 5
}

/// Whether `s` is a phone number: digits, with an optional leading `+`.
pub fn looks_like_phone_number(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    !d.is_empty() && d.len() <= 32 && d.bytes().all(|b| b.is_ascii_digit())
}

impl Directory {
    pub fn build(cfg: &DirectoryConfig) -> Result<Directory, ConfigError> {
        let err = |m: String| Err(ConfigError::Directory(m));
        let mut d = Directory::default();
        for o in &cfg.organizations {
            if d.organizations.insert(o.id, o.clone()).is_some() {
                return err(format!("organization {} is listed twice", o.id));
            }
        }
        for u in &cfg.users {
            if !d.organizations.contains_key(&u.organization) {
                return err(format!(
                    "user {} names unknown organization {}",
                    u.id, u.organization
                ));
            }
            if d.users.insert(u.id, u.clone()).is_some() {
                return err(format!("user {} is listed twice", u.id));
            }
        }
        for e in &cfg.extensions {
            let Some(user) = d.users.get(&e.user) else {
                return err(format!(
                    "extension {} names unknown user {}",
                    e.number, e.user
                ));
            };
            let org = &d.organizations[&user.organization];
            let Some((code, short)) = e.number.split_once('*') else {
                return err(format!(
                    "extension {} must be written <organization code>*<number>",
                    e.number
                ));
            };
            if code != org.code || !looks_like_extension(short) {
                return err(format!(
                    "extension {} does not belong to organization code {}",
                    e.number, org.code
                ));
            }
            let ext = Extension {
                number: e.number.clone(),
                user: e.user,
                organization: user.organization,
                kind: e.kind,
                endpoint: e.endpoint.clone(),
                mailbox: e.mailbox.clone(),
            };
            if d.ext_by_endpoint
                .insert(e.endpoint.clone(), e.number.clone())
                .is_some()
            {
                return err(format!("endpoint {} is used twice", e.endpoint));
            }
            if d.extensions.insert(e.number.clone(), ext).is_some() {
                return err(format!("extension {} is listed twice", e.number));
            }
        }
        for t in &cfg.trunks {
            d.trunks.insert(t.endpoint.clone());
        }
        for a in &cfg.apps {
            let Some(account) = Account::parse(&a.account) else {
                return err(format!(
                    "app {}: account must be admin, organization:<id> or user:<id>",
                    a.client_id
                ));
            };
            match account {
                Account::Organization(id) if !d.organizations.contains_key(&id) => {
                    return err(format!(
                        "app {} names unknown organization {id}",
                        a.client_id
                    ))
                }
                Account::User(id) if !d.users.contains_key(&id) => {
                    return err(format!("app {} names unknown user {id}", a.client_id))
                }
                _ => {}
            }
            let app = App {
                client_id: a.client_id.clone(),
                secret: a.secret.clone(),
                account,
            };
            if d.apps.insert(a.client_id.clone(), app).is_some() {
                return err(format!("app {} is listed twice", a.client_id));
            }
        }
        Ok(d)
    }

    /// The extension rung through a PJSIP endpoint.
    pub fn extension_by_endpoint(&self, endpoint: &str) -> Option<&Extension> {
        self.ext_by_endpoint
            .get(endpoint)
            .and_then(|n| self.extensions.get(n))
    }

    pub fn is_trunk(&self, endpoint: &str) -> bool {
        self.trunks.contains(endpoint)
    }

    /// Resolves a full (`0003*210`) or short (`210`) number. A short number needs the
    /// organization it is read in; without one it resolves only when exactly one
    /// organization has it.
    pub fn resolve_extension(&self, number: &str, org: Option<u64>) -> Option<&Extension> {
        if number.contains('*') {
            return self.extensions.get(number);
        }
        match org {
            Some(org) => {
                let code = &self.organizations.get(&org)?.code;
                self.extensions.get(&format!("{code}*{number}"))
            }
            None => {
                let mut found = self
                    .organizations
                    .values()
                    .filter_map(|o| self.extensions.get(&format!("{}*{number}", o.code)));
                let first = found.next()?;
                found.next().is_none().then_some(first)
            }
        }
    }

    /// Whether an account may see or act on a given extension.
    pub fn account_covers(&self, account: Account, ext: &Extension) -> bool {
        match account {
            Account::Admin => true,
            Account::Organization(o) => ext.organization == o,
            Account::User(u) => ext.user == u,
        }
    }

    /// The organization an account lives in, if it lives in one.
    pub fn account_organization(&self, account: Account) -> Option<u64> {
        match account {
            Account::Admin => None,
            Account::Organization(o) => Some(o),
            Account::User(u) => self.users.get(&u).map(|u| u.organization),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_a_directory() {
        let s = Settings::defaults();
        let d = Directory::build(&s.directory).unwrap();
        assert_eq!(d.extensions.len(), 4);
        assert_eq!(
            d.extension_by_endpoint("0003_024").unwrap().number,
            "0003*024"
        );
        assert!(d.is_trunk("trunk"));
        assert_eq!(
            d.resolve_extension("210", Some(3)).unwrap().number,
            "0003*210"
        );
        assert_eq!(d.resolve_extension("210", None).unwrap().number, "0003*210");
        assert!(d.resolve_extension("999", Some(3)).is_none());
        assert_eq!(d.apps["alice-app"].account, Account::User(12));
        assert_eq!(d.apps["org-app"].account, Account::Organization(3));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::defaults();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("uapid-secret"));
        assert!(!dbg.contains("alice-secret"));
    }

    #[test]
    fn bad_directory_is_refused() {
        let mut cfg = Settings::defaults().directory;
        cfg.extensions[0].user = 999;
        assert!(Directory::build(&cfg).is_err());
        let mut cfg = Settings::defaults().directory;
        cfg.apps[0].account = "root".into();
        assert!(Directory::build(&cfg).is_err());
    }

    #[test]
    fn number_shapes() {
        assert!(looks_like_extension("0003*210"));
        assert!(looks_like_extension("210"));
        assert!(!looks_like_extension("0003*"));
        assert!(!looks_like_extension("abc"));
        assert!(looks_like_phone_number("+3334444"));
        assert!(!looks_like_phone_number("12a"));
        assert!(looks_like_public_number("3235742879"));
        assert!(!looks_like_public_number("210"));
        assert!(!looks_like_public_number("0003*210"));
    }
}
