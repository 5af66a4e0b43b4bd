//! Configuration errors that say where (the file, or the environment variable), which
//! key and why; and the check that a file names only keys uapid knows.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::{AppConfig, AsteriskSettings, DirectoryConfig, ExtensionConfig, Organization};
use super::{Settings, TlsSettings, Trunk, User};

/// A configuration that does not load.
#[derive(Debug)]
pub struct ConfigError {
    /// The file, `environment variable UAPID_...`, or `the built-in defaults` (unknown:
    /// a directory built outside [`Settings::load`]).
    pub origin: Option<String>,
    /// The key, as in the file (`asterisk.ami_sessions`, `directory.extensions[2].kind`).
    pub key: Option<String>,
    pub reason: String,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("configuration")?;
        if let Some(o) = &self.origin {
            write!(f, " in {o}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ", key {k}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl ConfigError {
    /// The token key is unusable (a setting, or the file that keeps it).
    pub fn token_key(reason: String) -> ConfigError {
        ConfigError {
            origin: None,
            key: Some("token_key".into()),
            reason,
        }
    }

    /// An error at `key` (where it came from is found by [`locate`]).
    pub fn at(key: String, reason: String) -> ConfigError {
        ConfigError {
            origin: None,
            key: Some(key),
            reason,
        }
    }

    /// Says where the key was set, unless known.
    pub(super) fn located(mut self, file: Option<&Path>) -> ConfigError {
        if self.origin.is_none() {
            self.origin = Some(match &self.key {
                Some(k) => locate(k, file),
                None => file.map_or("the settings".into(), |f| f.display().to_string()),
            });
        }
        self
    }
}

/// `directory.extensions[0]kind` (as the config crate joins them) → `...[0].kind`.
fn tidy_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut after_bracket = false;
    for c in key.chars() {
        if after_bracket && c != '.' && c != '[' {
            out.push('.');
        }
        after_bracket = c == ']';
        out.push(c);
    }
    out
}

/// The kinds an extension may have, for the message of an unknown one.
const KINDS: &str =
    "phone_terminal, queue, ivr, voicemail_center, conference, callback_center, other";

/// A reason in uapid's words for what serde and the config crate said.
fn reason_of(message: &str, key: Option<&str>) -> String {
    if let Some(rest) = message.split("does not have variant constructor ").nth(1) {
        let expected = match key {
            Some(k) if k.ends_with("kind") => format!(" (one of {KINDS})"),
            _ => String::new(),
        };
        return format!("unknown value {rest:?}{expected}");
    }
    message.to_string()
}

impl ConfigError {
    /// What the config crate said, with the key and where it was set.
    pub(super) fn from_config(e: config::ConfigError, file: Option<&Path>) -> ConfigError {
        use config::ConfigError as C;
        let (key, reason, origin) = match e {
            // The config crate names the file relative to the working directory: say it
            // as it was given.
            C::FileParse { uri, cause } => {
                let given = file.map(|f| f.display().to_string());
                (None, cause.to_string(), given.or(uri))
            }
            C::Type {
                unexpected,
                expected,
                key,
                ..
            } => (
                key,
                format!("{unexpected} where {expected} was expected"),
                None,
            ),
            C::At { error, key, .. } => {
                let reason = reason_of(&error.to_string(), key.as_deref());
                (key, reason, None)
            }
            C::NotFound(key) => (Some(key), "missing".to_string(), None),
            other => (None, reason_of(&other.to_string(), None), None),
        };
        ConfigError {
            origin,
            key: key.map(|k| tidy_key(&k)),
            reason,
        }
        .located(file)
    }
}

/// Where a key was set: the environment wins over the file, the file over the
/// built-in defaults (each level's arrays replace the one's below).
pub(super) fn locate(key: &str, file: Option<&Path>) -> String {
    let parts: Vec<&str> = key
        .split('.')
        .map(|p| p.split('[').next().unwrap_or(p))
        .collect();
    for n in (1..=parts.len()).rev() {
        let var = format!("UAPID_{}", parts[..n].join("__").to_ascii_uppercase());
        if std::env::var_os(&var).is_some() {
            return format!("environment variable {var}");
        }
    }
    if let Some(path) = file {
        let alone = config::Config::builder()
            .add_source(config::File::from(path))
            .build();
        if let Ok(alone) = alone {
            for n in (1..=parts.len()).rev() {
                if alone.get::<config::Value>(&parts[..n].join(".")).is_ok() {
                    return path.display().to_string();
                }
            }
        }
    }
    "the built-in defaults".to_string()
}

/// A deserializer that only notes the field names a struct asks for.
struct FieldNames(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut FieldNames {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("names noted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// The keys a settings struct takes.
fn fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut names = FieldNames(&[]);
    let _ = T::deserialize(&mut names);
    names.0
}

/// The keys known at a table of the file (`""` is the top).
fn known_at(path: &str) -> Option<&'static [&'static str]> {
    Some(match path {
        "" => fields::<Settings>(),
        "tls" => fields::<TlsSettings>(),
        "asterisk" => fields::<AsteriskSettings>(),
        "directory" => fields::<DirectoryConfig>(),
        "directory.organizations" => fields::<Organization>(),
        "directory.users" => fields::<User>(),
        "directory.extensions" => fields::<ExtensionConfig>(),
        "directory.trunks" => fields::<Trunk>(),
        "directory.apps" => fields::<AppConfig>(),
        _ => return None,
    })
}

/// The known key closest to a misspelt one, if one is close.
fn closest(word: &str, known: &[&str]) -> Option<String> {
    let distance = |a: &str, b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k.to_string())
}

/// Fails on the first key of the file that uapid does not know (a misspelt key
/// would otherwise be ignored, and its default used without a word).
pub(super) fn check_known_keys(file: &Path) -> Result<(), ConfigError> {
    let alone = config::Config::builder()
        .add_source(config::File::from(file))
        .build()
        .map_err(|e| ConfigError::from_config(e, Some(file)))?;
    let table = alone
        .try_deserialize::<config::Map<String, config::Value>>()
        .map_err(|e| ConfigError::from_config(e, Some(file)))?;
    walk("", "", table, file)
}

fn walk(
    schema: &str,
    key: &str,
    table: config::Map<String, config::Value>,
    file: &Path,
) -> Result<(), ConfigError> {
    let Some(known) = known_at(schema) else {
        return Ok(());
    };
    for (name, value) in table {
        let full = if key.is_empty() {
            name.clone()
        } else {
            format!("{key}.{name}")
        };
        if !known.contains(&name.as_str()) {
            let hint =
                closest(&name, known).map_or(String::new(), |k| format!(" (did you mean {k}?)"));
            return Err(ConfigError {
                origin: Some(file.display().to_string()),
                key: Some(full),
                reason: format!("unknown key{hint}"),
            });
        }
        let inner = if schema.is_empty() {
            name.clone()
        } else {
            format!("{schema}.{name}")
        };
        match value.kind {
            config::ValueKind::Table(t) => walk(&inner, &full, t, file)?,
            config::ValueKind::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    if let config::ValueKind::Table(t) = item.kind {
                        walk(&inner, &format!("{full}[{i}]"), t, file)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `text` as the configuration file; returns the error's message and the
    /// file's path as it shows in messages.
    fn error_of(name: &str, text: &str) -> (String, String) {
        let path =
            std::env::temp_dir().join(format!("uapid-config-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let err = Settings::load(Some(&path)).expect_err("a bad configuration");
        let _ = std::fs::remove_file(&path);
        (err.to_string(), path.display().to_string())
    }

    #[test]
    fn a_wrong_type_names_file_key_and_reason() {
        let (e, file) = error_of("type", "[asterisk]\nami_sessions = \"four\"\n");
        assert_eq!(
            e,
            format!(
                "configuration in {file}, key asterisk.ami_sessions: string \"four\" where an integer was expected"
            )
        );
    }

    #[test]
    fn an_unknown_enum_value_names_file_key_and_the_choices() {
        let text = "[[directory.extensions]]\nnumber = \"0003*210\"\nuser = 12\nkind = \"phone\"\nendpoint = \"0003_210\"\n";
        let (e, file) = error_of("enum", text);
        assert_eq!(
            e,
            format!(
                "configuration in {file}, key directory.extensions[0].kind: unknown value \"phone\" (one of {KINDS})"
            )
        );
    }

    #[test]
    fn a_bad_directory_entry_names_file_and_entry() {
        let text = "[[directory.extensions]]\nnumber = \"0003*210\"\nuser = 99\nkind = \"phone_terminal\"\nendpoint = \"0003_210\"\n";
        let (e, file) = error_of("dir", text);
        assert_eq!(
            e,
            format!("configuration in {file}, key directory.extensions[0]: extension 0003*210 names unknown user 99")
        );
        let text = "[[directory.apps]]\nclient_id = \"x\"\nsecret = \"y\"\naccount = \"root\"\n";
        let (e, _) = error_of("app", text);
        assert!(
            e.contains(", key directory.apps[0]: app x: account must be"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_field_names_its_key() {
        let text = "[[directory.extensions]]\nnumber = \"0003*210\"\nkind = \"phone_terminal\"\n";
        let (e, file) = error_of("missing", text);
        assert_eq!(
            e,
            format!("configuration in {file}, key directory.extensions[0].user: missing")
        );
    }

    #[test]
    fn an_unknown_key_fails_with_a_suggestion() {
        let (e, file) = error_of("unknown", "[asterisk]\ndial_contxt = \"phones\"\n");
        assert_eq!(
            e,
            format!("configuration in {file}, key asterisk.dial_contxt: unknown key (did you mean dial_context?)")
        );
        let text = "[[directory.extensions]]\nnumber = \"0003*210\"\nuser = 12\nkind = \"phone_terminal\"\nendpoint = \"0003_210\"\nmail_box = \"210@0003\"\n";
        let (e, _) = error_of("unknown2", text);
        assert!(
            e.ends_with(
                ", key directory.extensions[0].mail_box: unknown key (did you mean mailbox?)"
            ),
            "{e}"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let (e, file) = error_of("syntax", "[asterisk\nami_sessions = 2\n");
        assert!(
            e.starts_with(&format!(
                "configuration in {file}: TOML parse error at line 1"
            )),
            "{e}"
        );
    }

    #[test]
    fn a_value_from_the_environment_is_said_to_come_from_there() {
        // A key no settings struct has, so loads in parallel tests are not disturbed.
        std::env::set_var("UAPID_ASTERISK__ZZ_DOCTOR_TEST", "x");
        assert_eq!(
            locate("asterisk.zz_doctor_test", None),
            "environment variable UAPID_ASTERISK__ZZ_DOCTOR_TEST"
        );
        std::env::remove_var("UAPID_ASTERISK__ZZ_DOCTOR_TEST");
        assert_eq!(
            locate("asterisk.ami_sessions", None),
            "the built-in defaults"
        );
    }

    #[test]
    fn the_built_in_file_loads_as_a_configuration_file() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/uapid.toml"));
        let s = Settings::load(Some(path)).expect("uapid.toml loads as a file");
        assert_eq!(s.directory_source.from_file.len(), 5);
        assert!(s
            .directory_summary()
            .ends_with(&format!("all from {}", path.display())));
    }

    #[test]
    fn field_names_and_keys() {
        assert!(fields::<AsteriskSettings>().contains(&"dial_context"));
        assert!(fields::<ExtensionConfig>().contains(&"mailbox"));
        assert_eq!(
            tidy_key("directory.extensions[0]kind"),
            "directory.extensions[0].kind"
        );
        assert_eq!(tidy_key("a[1][2]b"), "a[1][2].b");
    }
}
