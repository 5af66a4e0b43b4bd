//! Loading the settings: the layers, where each directory array came from, and errors
//! that name the file, the key and the reason.

use std::path::Path;

use super::errors::{check_known_keys, ConfigError};
use super::{Directory, DirectorySource, ExtensionKind, Settings, DEFAULTS, DIRECTORY_ARRAYS};

impl Settings {
    /// Defaults, then the file (when given), then `UAPID_*` environment variables. An
    /// error names where the bad value was set, its key and why; a key the file names
    /// that uapid does not know is an error too.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let explain = |e| ConfigError::from_config(e, file);
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
        let merged = builder.build().map_err(explain)?;
        if let Some(path) = file {
            check_known_keys(path)?;
        }
        let mut settings: Settings = merged.try_deserialize().map_err(explain)?;
        if let Some(path) = file {
            settings.directory_source = directory_source(path).map_err(explain)?;
        }
        Directory::build(&settings.directory).map_err(|e| e.located(file))?;
        settings.limits.check().map_err(|e| e.located(file))?;
        if let Some(k) = &settings.token_key {
            super::check_token_key(k.expose().as_bytes()).map_err(|e| e.located(file))?;
        }
        Ok(settings)
    }
}

/// Which directory arrays the file sets.
fn directory_source(path: &Path) -> Result<DirectorySource, config::ConfigError> {
    let alone = config::Config::builder()
        .add_source(config::File::from(path).required(true))
        .build()?;
    let from_file = DIRECTORY_ARRAYS
        .iter()
        .copied()
        .filter(|k| {
            alone
                .get::<config::Value>(&format!("directory.{k}"))
                .is_ok()
        })
        .collect();
    Ok(DirectorySource {
        file: Some(path.to_path_buf()),
        from_file,
    })
}

impl Settings {
    /// What the directory in force holds and where it came from (counts, no secrets),
    /// as the start-up log and `uapid doctor` say it.
    pub fn directory_summary(&self) -> String {
        let d = &self.directory;
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let phones = d
            .extensions
            .iter()
            .filter(|e| e.kind == ExtensionKind::PhoneTerminal)
            .count();
        let mailboxes = d.extensions.iter().filter(|e| e.mailbox.is_some()).count();
        let counts = format!(
            "directory: {}, {}, {} ({} phone terminals, {} with a mailbox), {}, {}",
            plural(d.organizations.len(), "organization", "organizations"),
            plural(d.users.len(), "user", "users"),
            plural(d.extensions.len(), "extension", "extensions"),
            phones,
            mailboxes,
            plural(d.trunks.len(), "trunk", "trunks"),
            plural(d.apps.len(), "OAuth app", "OAuth apps"),
        );
        let src = &self.directory_source;
        let built_in: Vec<&str> = DIRECTORY_ARRAYS
            .iter()
            .copied()
            .filter(|k| !src.from_file.contains(k))
            .collect();
        let from = match (&src.file, src.from_file.is_empty()) {
            (Some(f), false) if built_in.is_empty() => format!("all from {}", f.display()),
            (Some(f), false) => format!(
                "{} from {}; {} built in",
                src.from_file.join(", "),
                f.display(),
                built_in.join(", ")
            ),
            _ => "all built in (the sandbox's)".to_string(),
        };
        format!("{counts}; {from}")
    }
}
