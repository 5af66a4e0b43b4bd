//! What a request's `{userId}/{extension}[/{phoneCallId}]` names, checked against the
//! directory and against what the authenticated account may see.

use super::error::ApiError;
use crate::calls::Scope;
use crate::config::{looks_like_extension, Account, Directory};

/// The calls a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Organization(u64),
    User(u64),
    Extension(String),
}

impl Target {
    pub fn scope(&self) -> Scope<'_> {
        match self {
            Target::All => Scope::All,
            Target::Organization(o) => Scope::Organization(*o),
            Target::User(u) => Scope::User(*u),
            Target::Extension(e) => Scope::Extension(e),
        }
    }
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
                "user_invalid",
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
                    "user_invalid",
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

    if extension == "@self" {
        return Ok(match (user_id, account) {
            (Some(u), _) => Target::User(u),
            (None, Account::Admin) => Target::All,
            (None, Account::Organization(o)) => Target::Organization(o),
            (None, Account::User(u)) => Target::User(u),
        });
    }

    if !looks_like_extension(extension) {
        return Err(ApiError::bad_request(
            "extension_invalid",
            format!("{extension:?} is not an extension number (e.g. 0003*210 or 210) or @self"),
        ));
    }
    let org = user_id
        .and_then(|u| dir.users.get(&u))
        .map(|u| u.organization)
        .or_else(|| dir.account_organization(account));
    let Some(ext) = dir.resolve_extension(extension, org) else {
        return Err(ApiError::bad_request(
            "extension_invalid",
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
                "extension_invalid",
                format!("extension {} does not belong to user {u}", ext.number),
            ));
        }
    }
    Ok(Target::Extension(ext.number.clone()))
}

/// A phoneCallId from the path: alphanumeric.
pub fn parse_phone_call_id(s: &str) -> Result<&str, ApiError> {
    if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(s)
    } else {
        Err(ApiError::bad_request(
            "pc_phonecall_invalid",
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

    #[test]
    fn user_account_sees_its_own() {
        let d = dir();
        let me = Account::User(12);
        assert_eq!(resolve(&d, me, "@me", "@self"), Ok(Target::User(12)));
        assert_eq!(
            resolve(&d, me, "@viewer", "210"),
            Ok(Target::Extension("0003*210".into()))
        );
        assert_eq!(
            resolve(&d, me, "12", "0003*211"),
            Ok(Target::Extension("0003*211".into()))
        );
        assert_eq!(resolve(&d, me, "@me", "024").unwrap_err().status, 403);
        assert_eq!(resolve(&d, me, "13", "@self").unwrap_err().status, 403);
        assert_eq!(
            resolve(&d, me, "999", "@self").unwrap_err().code,
            "user_invalid"
        );
        assert_eq!(
            resolve(&d, me, "bob", "@self").unwrap_err().code,
            "user_invalid"
        );
        assert_eq!(
            resolve(&d, me, "@me", "999").unwrap_err().code,
            "extension_invalid"
        );
        assert_eq!(
            resolve(&d, me, "@me", "21x").unwrap_err().code,
            "extension_invalid"
        );
    }

    #[test]
    fn organization_and_admin() {
        let d = dir();
        let org = Account::Organization(3);
        assert_eq!(
            resolve(&d, org, "@me", "@self"),
            Ok(Target::Organization(3))
        );
        assert_eq!(resolve(&d, org, "13", "@self"), Ok(Target::User(13)));
        assert_eq!(
            resolve(&d, org, "@owner", "024"),
            Ok(Target::Extension("0003*024".into()))
        );
        assert_eq!(
            resolve(&d, org, "12", "024").unwrap_err().code,
            "extension_invalid"
        );
        assert_eq!(resolve(&d, Account::Admin, "@me", "@self"), Ok(Target::All));
        assert_eq!(
            resolve(&d, Account::Organization(4), "@me", "0003*210")
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn phone_call_ids() {
        assert!(parse_phone_call_id("b817d2618fe6f1804333").is_ok());
        assert_eq!(
            parse_phone_call_id("a.b").unwrap_err().code,
            "pc_phonecall_invalid"
        );
        assert!(parse_phone_call_id("").is_err());
    }
}
