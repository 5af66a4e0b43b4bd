//! The directory: organizations, users, extensions, trunks and OAuth apps, checked once
//! and indexed, so the rest of uapid only ever sees a consistent [`Directory`].

// The directory is looked up for every channel event; its keys come from the settings.
use rustc_hash::{FxHashMap as HashMap, FxHashSet};

use super::{
    AppConfig, ConfigError, DirectoryConfig, ExtensionConfig, ExtensionKind, Organization, Secret,
    User,
};

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

/// One extension of the directory, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub number: String,
    pub user: u64,
    pub organization: u64,
    pub kind: ExtensionKind,
    /// The PJSIP endpoint (every phone terminal has one).
    pub endpoint: String,
    pub mailbox: Option<String>,
    /// The number the PBX's dial context knows it by (for a conference: its room).
    pub dial: String,
    /// A conference's PIN.
    pub pin: Option<Secret>,
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

/// A directory entry that does not hold: its key (`directory.extensions[2]`) and why.
fn invalid<T>(key: String, why: String) -> Result<T, ConfigError> {
    Err(ConfigError::at(key, why))
}

fn key(array: &str, i: usize) -> String {
    format!("directory.{array}[{i}]")
}

impl Directory {
    pub fn build(cfg: &DirectoryConfig) -> Result<Directory, ConfigError> {
        let mut d = Directory::default();
        for (i, o) in cfg.organizations.iter().enumerate() {
            if d.organizations.insert(o.id, o.clone()).is_some() {
                let why = format!("organization {} is listed twice", o.id);
                return invalid(key("organizations", i), why);
            }
        }
        for (i, u) in cfg.users.iter().enumerate() {
            if !d.organizations.contains_key(&u.organization) {
                return invalid(
                    key("users", i),
                    format!(
                        "user {} names unknown organization {}",
                        u.id, u.organization
                    ),
                );
            }
            if d.users.insert(u.id, u.clone()).is_some() {
                return invalid(key("users", i), format!("user {} is listed twice", u.id));
            }
        }
        for (i, e) in cfg.extensions.iter().enumerate() {
            d.add_extension(e)
                .or_else(|why| invalid(key("extensions", i), why))?;
        }
        for t in &cfg.trunks {
            d.trunks.insert(t.endpoint.clone());
        }
        for (i, a) in cfg.apps.iter().enumerate() {
            d.add_app(a).or_else(|why| invalid(key("apps", i), why))?;
        }
        Ok(d)
    }

    fn add_extension(&mut self, e: &ExtensionConfig) -> Result<(), String> {
        let Some(user) = self.users.get(&e.user) else {
            return Err(format!(
                "extension {} names unknown user {}",
                e.number, e.user
            ));
        };
        let org = &self.organizations[&user.organization];
        let Some((code, short)) = e.number.split_once('*') else {
            return Err(format!(
                "extension {} must be written <organization code>*<number>",
                e.number
            ));
        };
        if code != org.code || !looks_like_extension(short) {
            return Err(format!(
                "extension {} does not belong to organization code {}",
                e.number, org.code
            ));
        }
        let endpoint = e.endpoint.clone().unwrap_or_default();
        if endpoint.is_empty() && e.kind == ExtensionKind::PhoneTerminal {
            return Err(format!(
                "extension {}: a phone terminal needs its endpoint (the PJSIP endpoint that rings it)",
                e.number
            ));
        }
        if let Some(d) = &e.dial {
            let ok = |b: u8| b.is_ascii_digit() || b"*#+".contains(&b);
            if d.is_empty() || d.len() > 32 || !d.bytes().all(ok) {
                return Err(format!(
                    "extension {}: dial {d:?} must be the digits the PBX dials it by",
                    e.number
                ));
            }
        }
        let ext = Extension {
            number: e.number.clone(),
            user: e.user,
            organization: user.organization,
            kind: e.kind,
            endpoint: endpoint.clone(),
            mailbox: e.mailbox.clone(),
            dial: e.dial.clone().unwrap_or_else(|| short.to_string()),
            pin: e.pin.clone(),
        };
        if !endpoint.is_empty()
            && self
                .ext_by_endpoint
                .insert(endpoint.clone(), e.number.clone())
                .is_some()
        {
            return Err(format!("endpoint {endpoint} is used twice"));
        }
        if self.extensions.insert(e.number.clone(), ext).is_some() {
            return Err(format!("extension {} is listed twice", e.number));
        }
        Ok(())
    }

    fn add_app(&mut self, a: &AppConfig) -> Result<(), String> {
        let Some(account) = Account::parse(&a.account) else {
            return Err(format!(
                "app {}: account must be admin, organization:<id> or user:<id>",
                a.client_id
            ));
        };
        match account {
            Account::Organization(id) if !self.organizations.contains_key(&id) => {
                return Err(format!(
                    "app {} names unknown organization {id}",
                    a.client_id
                ))
            }
            Account::User(id) if !self.users.contains_key(&id) => {
                return Err(format!("app {} names unknown user {id}", a.client_id))
            }
            _ => {}
        }
        let app = App {
            client_id: a.client_id.clone(),
            secret: a.secret.clone(),
            account,
        };
        if self.apps.insert(a.client_id.clone(), app).is_some() {
            return Err(format!("app {} is listed twice", a.client_id));
        }
        Ok(())
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

    /// The trunks' endpoints.
    pub fn trunks(&self) -> impl Iterator<Item = &str> {
        self.trunks.iter().map(String::as_str)
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

/// Compares secrets without stopping at the first differing byte.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}
