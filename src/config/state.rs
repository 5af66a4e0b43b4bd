//! What uapid keeps across restarts: the key its tokens are signed with.
//!
//! The key is the `token_key` setting when there is one; otherwise 32 random bytes made
//! at the first start and kept in `<state_dir>/token.key` (base64url, mode 0600). Two
//! uapid nodes serving the same PBX accept each other's tokens when they have the same
//! key: the same `token_key`, or a copy of the file.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use super::{ConfigError, Settings};

/// The shortest token key accepted, in bytes.
pub const MIN_TOKEN_KEY: usize = 32;
/// The key file's name in the state directory.
pub const TOKEN_KEY_FILE: &str = "token.key";

pub(super) fn check_token_key(key: &[u8]) -> Result<(), ConfigError> {
    if key.len() < MIN_TOKEN_KEY {
        return Err(ConfigError::token_key(format!(
            "token_key must be at least {MIN_TOKEN_KEY} characters"
        )));
    }
    Ok(())
}

impl Settings {
    /// The state directory: `state_dir`, else systemd's `$STATE_DIRECTORY`, else
    /// `$XDG_STATE_HOME/uapid`, else `~/.local/state/uapid` when the home directory
    /// exists, else `/var/lib/uapid`.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(d) = &self.state_dir {
            return d.clone();
        }
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(d) = env("STATE_DIRECTORY") {
            // systemd lists one directory per StateDirectory=, separated by ':'.
            let first = d
                .to_string_lossy()
                .split(':')
                .next()
                .unwrap_or("")
                .to_string();
            return PathBuf::from(first);
        }
        if let Some(d) = env("XDG_STATE_HOME") {
            return PathBuf::from(d).join("uapid");
        }
        if let Some(home) = env("HOME").map(PathBuf::from) {
            if home.is_dir() && home != Path::new("/") {
                return home.join(".local/state/uapid");
            }
        }
        PathBuf::from("/var/lib/uapid")
    }

    /// The token key: `token_key`, else the key file's, made first if there is none.
    pub fn token_key(&self) -> Result<Vec<u8>, ConfigError> {
        if let Some(k) = &self.token_key {
            check_token_key(k.expose().as_bytes())?;
            return Ok(k.expose().as_bytes().to_vec());
        }
        load_or_create_key(&self.state_dir().join(TOKEN_KEY_FILE))
    }
}

fn key_error(path: &Path, what: impl std::fmt::Display) -> ConfigError {
    ConfigError::token_key(format!(
        "{}: {what} (set state_dir or token_key)",
        path.display()
    ))
}

fn read_key(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let text = fs::read_to_string(path).map_err(|e| key_error(path, e))?;
    let key = B64
        .decode(text.trim())
        .map_err(|_| key_error(path, "not a key written by uapid (base64url)"))?;
    if key.len() < MIN_TOKEN_KEY {
        return Err(key_error(path, "the key is too short"));
    }
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the token key file is readable by others; chmod 600 it");
        }
    }
    Ok(key)
}

/// Reads the key file, or makes it: written whole under another name, then linked into
/// place, so that a uapid starting at the same moment reads either no file or the whole
/// key, and both end up with the same one.
pub fn load_or_create_key(path: &Path) -> Result<Vec<u8>, ConfigError> {
    match fs::metadata(path) {
        Ok(_) => return read_key(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(key_error(path, e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| key_error(dir, e))?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| key_error(path, e))?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| key_error(path, e))?;
    let tmp = dir.join(format!(
        ".{TOKEN_KEY_FILE}.{}.{}",
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{}\n", B64.encode(key)).as_bytes())?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            tracing::info!(path = %path.display(), "made a new token key");
            Ok(key.to_vec())
        }
        // Another uapid made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(key_error(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let mut n = [0u8; 8];
        getrandom::fill(&mut n).unwrap();
        std::env::temp_dir().join(format!("uapid-{name}-{}", u64::from_le_bytes(n)))
    }

    #[test]
    fn the_key_is_made_once_then_kept() {
        let dir = temp_dir("key");
        let path = dir.join("nested").join(TOKEN_KEY_FILE);
        let a = load_or_create_key(&path).unwrap();
        assert_eq!(a.len(), 32);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let d = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(d & 0o777, 0o700);
        assert_eq!(load_or_create_key(&path).unwrap(), a);
        // Nothing left behind but the key.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [TOKEN_KEY_FILE]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn starting_together_gives_one_key() {
        let dir = temp_dir("race");
        let path = dir.join(TOKEN_KEY_FILE);
        let keys: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create_key(&path).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k == &keys[0]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_key_file_or_setting_is_refused() {
        let dir = temp_dir("bad");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(TOKEN_KEY_FILE);
        fs::write(&path, "c2hvcnQ\n").unwrap();
        assert!(load_or_create_key(&path).is_err());
        fs::write(&path, "not base64 at all!\n").unwrap();
        assert!(load_or_create_key(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
        let mut s = Settings::defaults();
        s.token_key = Some(super::super::Secret::new("short"));
        assert!(s.token_key().is_err());
        s.token_key = Some(super::super::Secret::new("k".repeat(32)));
        assert_eq!(s.token_key().unwrap(), b"k".repeat(32));
    }

    #[test]
    fn the_state_dir_setting_wins() {
        let mut s = Settings::defaults();
        s.state_dir = Some("/srv/uapid".into());
        assert_eq!(s.state_dir(), PathBuf::from("/srv/uapid"));
    }
}
