//! ARI: credentials, write access, the application.

use super::{Check, Mode};
use crate::asterisk::ari::AriError;
use crate::config::AsteriskSettings;

/// What the ARI checks learned for the others.
pub(super) struct AriSeen {
    /// ARI answered with the configured user.
    pub answered: bool,
    /// Asterisk's version as ARI tells it.
    pub version: Option<String>,
}

/// Checks ARI; adds its lines to `out`.
pub(super) async fn check(a: &AsteriskSettings, mode: Mode, out: &mut Vec<Check>) -> AriSeen {
    let rest = a.ari_rest();
    let what = format!("ARI {}", a.ari_url);
    let info = rest
        .get::<serde_json::Value>("/asterisk/info?only=system")
        .await;
    let version = match info {
        Ok(v) => v
            .pointer("/system/version")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        Err(e) => {
            out.push(unreachable(a, what, &e));
            return AriSeen {
                answered: false,
                version: None,
            };
        }
    };
    out.push(Check::ok(what, format!("answers {}", a.ari_user)));
    out.push(write_access(&rest, a).await);
    if mode == Mode::Command {
        out.push(app_free(&rest, &a.app).await);
    }
    AriSeen {
        answered: true,
        version,
    }
}

fn unreachable(a: &AsteriskSettings, what: String, e: &AriError) -> Check {
    let fix = match e.status() {
        Some(401) => format!(
            "check asterisk.ari_user / ari_password against the [{}] user of ari.conf \
             (type = user, password)",
            a.ari_user
        ),
        Some(404) => "load res_ari and its resources (ARI answers under /ari)".to_string(),
        _ => format!(
            "enable Asterisk's HTTP server (http.conf: enabled = yes, bindaddr, bindport \
             as in asterisk.ari_url = {}) and ARI (ari.conf: enabled = yes)",
            a.ari_url
        ),
    };
    Check::miss(what, e.to_string(), fix)
}

/// A user with `read_only = yes` may only GET: a DELETE of a channel that does not
/// exist answers 404 to a user that may write, 403 to one that may not.
async fn write_access(rest: &crate::asterisk::ari::AriRest, a: &AsteriskSettings) -> Check {
    let what = "ARI write access";
    match rest
        .delete("/channels/uapid-doctor-no-such-channel", &[])
        .await
    {
        Err(e) if e.status() == Some(404) => Check::ok(what, "allowed"),
        Err(e) if e.status() == Some(403) => Check::miss(
            what,
            "the user is read-only",
            format!("set `read_only = no` for [{}] in ari.conf", a.ari_user),
        ),
        Ok(()) => Check::ok(what, "allowed"),
        Err(e) => Check::skip(what, format!("could not tell: {e}")),
    }
}

async fn app_free(rest: &crate::asterisk::ari::AriRest, app: &str) -> Check {
    let what = format!("ARI application {app}");
    match crate::asterisk::ari::ws::app_registered(rest, app).await {
        Some(false) => Check::ok(what, "free"),
        Some(true) => Check::warn(
            what,
            "in use by a client now",
            "fine when that is this uapid, running; a second uapid needs an asterisk.app of its own",
        ),
        None => Check::skip(what, "ARI did not say"),
    }
}
