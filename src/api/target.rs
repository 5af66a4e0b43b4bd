//! What a request's `{userId}/{extension}[/{phoneCallId}]` names, checked against the
//! directory and against what the authenticated account may see.

use super::error::{ApiError, Code};
use crate::calls::Scope;
use crate::config::{looks_like_extension, Account, Directory};

/// What a request's path names, for the account that asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The calls it is about.
    pub scope: Scope,
    /// The organization the request speaks in: short extension numbers in its body are
    /// read in it.
    pub org: Option<u64>,
}

/// A user id from the path: `@me`, `@viewer`, `@owner` or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserRef {
    Me,
    Owner,
    Id(u64),
}

fn parse_user(s: &str) -> Result<UserRef, ApiError> {
    match s {
        "@me" | "@viewer" => Ok(UserRef::Me),
        "@owner" => Ok(UserRef::Owner),
        _ => s.parse::<u64>().map(UserRef::Id).map_err(|_| {
            ApiError::bad_request(
                Code::UserInvalid,
                format!("{s:?} is not a user id, @me, @viewer or @owner"),
            )
        }),
    }
}

/// Resolves `{userId}/{extension}` for `account`.
pub fn resolve(
    dir: &Directory,
    account: Account,
    user: &str,
    extension: &str,
) -> Result<Target, ApiError> {
    let user_ref = parse_user(user)?;
    // The user the path names, when it names one.
    let user_id = match user_ref {
        UserRef::Me => match account {
            Account::User(u) => Some(u),
            _ => None,
        },
        UserRef::Owner => None,
        UserRef::Id(id) => {
            let Some(u) = dir.users.get(&id) else {
                return Err(ApiError::bad_request(
                    Code::UserInvalid,
                    format!("user {id} does not exist"),
                ));
            };
            let allowed = match account {
                Account::Admin => true,
                Account::Organization(o) => u.organization == o,
                Account::User(me) => me == id,
            };
            if !allowed {
                return Err(ApiError::forbidden(format!(
                    "this app may not act for user {id}"
                )));
            }
            Some(id)
        }
    };

    // Short numbers in the path are read in the named user's organization, else the
    // account's.
    let hint = user_id
        .and_then(|u| dir.users.get(&u))
        .map(|u| u.organization)
        .or_else(|| dir.account_organization(account));
    if extension == "@self" {
        let scope = match (user_id, account) {
            (Some(u), _) => Scope::User(u),
            (None, Account::Admin) => Scope::All,
            (None, Account::Organization(o)) => Scope::Organization(o),
            (None, Account::User(u)) => Scope::User(u),
        };
        return Ok(target(dir, scope, hint));
    }

    if !looks_like_extension(extension) {
        return Err(ApiError::bad_request(
            Code::ExtensionInvalid,
            format!("{extension:?} is not an extension number (e.g. 0003*210 or 210) or @self"),
        ));
    }
    let Some(ext) = dir.resolve_extension(extension, hint) else {
        return Err(ApiError::bad_request(
            Code::ExtensionInvalid,
            format!("extension {extension} does not exist"),
        ));
    };
    if !dir.account_covers(account, ext) {
        return Err(ApiError::forbidden(format!(
            "this app may not see extension {}",
            ext.number
        )));
    }
    if let Some(u) = user_id {
        if ext.user != u {
            return Err(ApiError::bad_request(
                Code::ExtensionInvalid,
                format!("extension {} does not belong to user {u}", ext.number),
            ));
        }
    }
    Ok(target(dir, Scope::Extension(ext.number.clone()), hint))
}

/// The organization a request speaks in: its scope's, else (for every call) the
/// account's.
fn target(dir: &Directory, scope: Scope, hint: Option<u64>) -> Target {
    let org = match &scope {
        Scope::Extension(e) => dir.extensions.get(e).map(|x| x.organization),
        Scope::User(u) => dir.users.get(u).map(|u| u.organization),
        Scope::Organization(o) => Some(*o),
        Scope::All => hint,
    };
    Target { scope, org }
}

/// A phoneCallId from the path: alphanumeric.
pub fn parse_phone_call_id(s: &str) -> Result<&str, ApiError> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(s)
    } else {
        Err(ApiError::bad_request(
            Code::PhoneCallInvalid,
            format!("{s:?} is not a phone call id"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn dir() -> Directory {
        Directory::build(&Settings::defaults().directory).unwrap()
    }

    /// What a path resolves to: a scope and the request's organization, or an error's
    /// status and code.
    fn resolved(
        d: &Directory,
        a: Account,
        user: &str,
        ext: &str,
    ) -> Result<(Scope, Option<u64>), (u16, &'static str)> {
        resolve(d, a, user, ext)
            .map(|t| (t.scope, t.org))
            .map_err(|e| (e.status.as_u16(), e.code.as_str()))
    }

    #[test]
    fn paths_resolve_for_each_kind_of_account() {
        let d = dir();
        let ext = |n: &str| Ok((Scope::Extension(n.into()), Some(3)));
        let (me, org) = (Account::User(12), Account::Organization(3));
        let cases = [
            (me, "@me", "@self", Ok((Scope::User(12), Some(3)))),
            (me, "@viewer", "210", ext("0003*210")),
            (me, "12", "0003*211", ext("0003*211")),
            (me, "@me", "024", Err((403, "permission_denied"))),
            (me, "13", "@self", Err((403, "permission_denied"))),
            (me, "999", "@self", Err((400, "user_invalid"))),
            (me, "bob", "@self", Err((400, "user_invalid"))),
            (me, "@me", "999", Err((400, "extension_invalid"))),
            (me, "@me", "21x", Err((400, "extension_invalid"))),
            (org, "@me", "@self", Ok((Scope::Organization(3), Some(3)))),
            (org, "13", "@self", Ok((Scope::User(13), Some(3)))),
            (org, "@owner", "024", ext("0003*024")),
            (org, "12", "024", Err((400, "extension_invalid"))),
            (Account::Admin, "@me", "@self", Ok((Scope::All, None))),
            (Account::Admin, "@me", "210", ext("0003*210")),
            (
                Account::Organization(4),
                "@me",
                "0003*210",
                Err((403, "permission_denied")),
            ),
        ];
        for (account, user, extension, want) in cases {
            assert_eq!(
                resolved(&d, account, user, extension),
                want,
                "{account:?} {user}/{extension}"
            );
        }
    }

    #[test]
    fn phone_call_ids() {
        assert!(parse_phone_call_id("b817d2618fe6f1804333").is_ok());
        assert_eq!(
            parse_phone_call_id("a.b").unwrap_err().code,
            Code::PhoneCallInvalid
        );
        assert!(parse_phone_call_id("").is_err());
    }
}
