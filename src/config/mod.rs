//! Settings and the directory.
//!
//! Settings are layered with the `config` crate: the built-in defaults (`uapid.toml` at the
//! top of the repository, which match the sandbox PBX), then an optional TOML file, then
//! `UAPID_*` environment variables (`__` between levels). The directory (organizations,
//! users, extensions, trunks and OAuth apps) is checked once here and indexed, so the rest
//! of uapid only ever sees a consistent [`Directory`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

mod directory;
mod errors;
mod load;
mod state;
pub use directory::*;
pub use errors::ConfigError;
pub use state::*;

/// The defaults, compiled in so that uapid runs with no configuration at all.
pub const DEFAULTS: &str = include_str!("../../uapid.toml");

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
    /// The key tokens are signed with (at least 32 characters). Unset: the key kept in
    /// `<state_dir>/token.key`, made at the first start.
    #[serde(default)]
    pub token_key: Option<Secret>,
    /// Where uapid keeps what must outlive a restart (the token key). Unset: see
    /// [`Settings::state_dir`].
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    #[serde(default)]
    pub limits: Limits,
    /// Run `uapid doctor`'s checks once at start-up and log what is missing.
    #[serde(default = "yes")]
    pub startup_check: bool,
    pub asterisk: AsteriskSettings,
    pub directory: DirectoryConfig,
    /// Which of the directory's arrays the file set (the others are the built-in ones).
    #[serde(skip)]
    pub directory_source: DirectorySource,
}

/// Where the directory in force came from: each array is either the built-in one or,
/// when the configuration file sets it, the file's (arrays replace, they never merge).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorySource {
    pub file: Option<PathBuf>,
    /// The arrays the file sets (`organizations`, `users`, ...).
    pub from_file: Vec<&'static str>,
}

/// The directory's arrays, as keys under `directory`.
pub const DIRECTORY_ARRAYS: [&str; 5] = ["organizations", "users", "extensions", "trunks", "apps"];

fn yes() -> bool {
    true
}

fn default_token_ttl() -> u64 {
    3600
}

/// What a client may take of uapid: connections, time, sizes, failed token requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one address at most (0: no limit of its own).
    pub max_connections_per_address: usize,
    /// A request's line and headers must be in within this time, counted from when the
    /// connection opens or the previous answer ends.
    pub header_timeout_secs: u64,
    /// A connection with no request in progress is closed after this long without a byte
    /// from the client.
    pub keep_alive_secs: u64,
    /// A request's body must be in within this time after its headers.
    pub body_timeout_secs: u64,
    pub max_body_bytes: usize,
    pub max_uri_bytes: usize,
    /// The request's header lines together (names, values, separators).
    pub max_header_bytes: usize,
    /// Failed token requests of one app within a window that throttle it (0: never).
    pub token_failures_per_client: u32,
    /// Failed token requests from one address within a window that throttle it.
    pub token_failures_per_address: u32,
    pub token_failure_window_secs: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 2048,
            max_connections_per_address: 256,
            header_timeout_secs: 10,
            keep_alive_secs: 5,
            body_timeout_secs: 10,
            max_body_bytes: 64 * 1024,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            token_failures_per_client: 10,
            token_failures_per_address: 10,
            token_failure_window_secs: 60,
        }
    }
}

impl Limits {
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::at("limits".into(), what.to_string()));
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.header_timeout_secs == 0 || self.keep_alive_secs == 0 || self.body_timeout_secs == 0
        {
            return bad(
                "header_timeout_secs, keep_alive_secs and body_timeout_secs must be at least 1",
            );
        }
        if self.max_uri_bytes < 256 || self.max_header_bytes < 1024 {
            return bad("max_uri_bytes must be at least 256 and max_header_bytes at least 1024");
        }
        if self.token_failure_window_secs == 0 {
            return bad("token_failure_window_secs must be at least 1");
        }
        Ok(())
    }
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
    /// A keepalive probe goes out on each link after this long without traffic...
    #[serde(default = "default_keepalive_ms")]
    pub keepalive_ms: u64,
    /// ...and the link is declared dead (torn down, reconnected, resynced; /health 503)
    /// when nothing arrives this long after the probe.
    #[serde(default = "default_keepalive_timeout_ms")]
    pub keepalive_timeout_ms: u64,
    /// Where a transferred party or a click-to-call dials its destination.
    #[serde(default = "default_dial_context")]
    pub dial_context: String,
    /// A context whose extension `<app>` runs `Stasis(<app>)` (`_[a-z].` → `Stasis(${EXTEN})`).
    #[serde(default = "default_stasis_context")]
    pub stasis_context: String,
    /// A context whose `s` extension runs `VoiceMail(${UAPID_MAILBOX},u)`.
    #[serde(default = "default_voicemail_context")]
    pub voicemail_context: String,
    /// uapid's context for BargeIn, Whisper and Monitor (ChanSpy).
    #[serde(default = "default_spy_context")]
    pub spy_context: String,
    /// Where Asterisk writes recordings (StartRecording), as Asterisk sees its disk.
    #[serde(default = "default_recordings_dir")]
    pub recordings_dir: String,
    /// uapid's context a created call goes through on its way to the dial context (it
    /// sets the caller id the destination sees).
    #[serde(default = "default_dial_helper_context")]
    pub dial_helper_context: String,
    /// uapid's context for conference invites (ConfBridge).
    #[serde(default = "default_conference_context")]
    pub conference_context: String,
    #[serde(default = "default_parking_lot")]
    pub parking_lot: String,
    /// The context of the lot's spaces (res_parking.conf `context`).
    #[serde(default = "default_parked_context")]
    pub parked_context: String,
}

impl AsteriskSettings {
    /// How the links to Asterisk are checked (see [`Keepalive`]).
    pub fn keepalive(&self) -> crate::asterisk::Keepalive {
        crate::asterisk::Keepalive {
            every: std::time::Duration::from_millis(self.keepalive_ms),
            within: std::time::Duration::from_millis(self.keepalive_timeout_ms),
        }
    }

    /// ARI's REST client.
    pub fn ari_rest(&self) -> crate::asterisk::ari::AriRest {
        crate::asterisk::ari::AriRest::new(&self.ari_url, &self.ari_user, self.ari_password.clone())
    }

    /// ARI's events websocket for application `app`.
    pub fn ari_events(&self, app: &str) -> crate::asterisk::ari::ws::AriWsConfig {
        crate::asterisk::ari::ws::AriWsConfig {
            base_url: self.ari_url.clone(),
            user: self.ari_user.clone(),
            password: self.ari_password.clone(),
            app: app.to_string(),
            keepalive: self.keepalive(),
        }
    }

    /// An AMI session receiving `events` (empty: every event).
    pub fn ami(&self, events: &[&str]) -> crate::asterisk::ami::AmiConfig {
        crate::asterisk::ami::AmiConfig {
            addr: self.ami_addr.clone(),
            user: self.ami_user.clone(),
            secret: self.ami_secret.clone(),
            events: events.iter().map(|e| e.to_string()).collect(),
            keepalive: self.keepalive(),
        }
    }
}

fn default_keepalive_ms() -> u64 {
    1000
}
fn default_keepalive_timeout_ms() -> u64 {
    3000
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
fn default_recordings_dir() -> String {
    "/var/spool/asterisk/monitor/uapid".into()
}
fn default_dial_helper_context() -> String {
    "uapid-dial".into()
}
fn default_spy_context() -> String {
    "uapid-spy".into()
}
fn default_conference_context() -> String {
    "uapid-conference".into()
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
    /// The PJSIP endpoint that rings this extension (required for a phone terminal).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub mailbox: Option<String>,
    /// The number the PBX's dial context knows this extension by (what a transfer or a
    /// click-to-call dials); default: its short number (`210` for `0003*210`).
    #[serde(default)]
    pub dial: Option<String>,
    /// A conference's PIN (kind `conference`): conference invites must give it.
    #[serde(default)]
    pub pin: Option<Secret>,
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

impl Settings {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_build_a_directory() {
        let s = Settings::defaults();
        let d = Directory::build(&s.directory).unwrap();
        assert_eq!(d.extensions.len(), 5);
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
