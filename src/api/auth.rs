//! OAuth 2.0 client credentials for the apps of the directory, and bearer tokens.
//!
//! Tokens are random, kept in memory with their expiry, and looked up per request (a hash
//! map read). They do not survive a uapid restart: UAPI clients fetch a new token when
//! theirs is refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::error::ApiError;
use crate::config::{Account, Directory};

#[derive(Debug, Clone)]
struct Grant {
    account: Account,
    expires: Instant,
}

#[derive(Debug)]
pub struct TokenStore {
    ttl: Duration,
    tokens: Mutex<HashMap<String, Grant>>,
}

/// An issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares secrets without stopping at the first differing byte.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

impl TokenStore {
    pub fn new(ttl: Duration) -> TokenStore {
        TokenStore {
            ttl,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Client credentials grant: a token for a known app with the right secret.
    pub fn issue(
        &self,
        dir: &Directory,
        client_id: &str,
        secret: &str,
        now: Instant,
    ) -> Option<Issued> {
        let app = dir.apps.get(client_id)?;
        if !same_secret(app.secret.expose(), secret) {
            return None;
        }
        let token = random_token();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, g| g.expires > now);
        tokens.insert(
            token.clone(),
            Grant {
                account: app.account,
                expires: now + self.ttl,
            },
        );
        Some(Issued {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// The account behind a token, if it is known and still valid.
    pub fn check(&self, token: &str, now: Instant) -> Option<Account> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let g = tokens.get(token)?;
        (g.expires > now).then_some(g.account)
    }

    /// The account of a request: `Authorization: Bearer <token>` or `accessRequestToken`.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Account, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let token = match header {
            Some(h) => {
                let (scheme, tok) = h.split_once(' ').unwrap_or((h, ""));
                if !scheme.eq_ignore_ascii_case("bearer") || tok.trim().is_empty() {
                    return Err(ApiError::unauthorized(
                        "the Authorization header must be: Bearer <token>",
                    ));
                }
                tok.trim()
            }
            None => match query_token {
                Some(t) if !t.is_empty() => t,
                _ => return Err(ApiError::unauthorized("an access token is required")),
            },
        };
        self.check(token, Instant::now())
            .ok_or_else(|| ApiError::unauthorized("the access token is invalid or has expired"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn dir() -> Directory {
        Directory::build(&Settings::defaults().directory).unwrap()
    }

    #[test]
    fn issues_checks_and_expires() {
        let d = dir();
        let store = TokenStore::new(Duration::from_secs(60));
        let now = Instant::now();
        assert!(store.issue(&d, "alice-app", "wrong", now).is_none());
        assert!(store.issue(&d, "nobody", "alice-secret", now).is_none());
        let t = store.issue(&d, "alice-app", "alice-secret", now).unwrap();
        assert_eq!(t.expires_in, 60);
        assert_eq!(t.token.len(), 48);
        assert_eq!(store.check(&t.token, now), Some(Account::User(12)));
        assert_eq!(store.check(&t.token, now + Duration::from_secs(61)), None);
        assert_eq!(store.check("forged", now), None);
    }

    #[test]
    fn reads_header_or_query() {
        let d = dir();
        let store = TokenStore::new(Duration::from_secs(60));
        let t = store
            .issue(&d, "admin-app", "admin-secret", Instant::now())
            .unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(
            store.authenticate(&h, None).unwrap_err().code.as_str(),
            "access_denied"
        );
        assert_eq!(store.authenticate(&h, Some(&t.token)), Ok(Account::Admin));
        h.insert(
            "authorization",
            format!("Bearer {}", t.token).parse().unwrap(),
        );
        assert_eq!(store.authenticate(&h, None), Ok(Account::Admin));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(store.authenticate(&h, None).unwrap_err().status, 401);
    }

    #[test]
    fn secret_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
