//! The doctor's own AMI session: one login, no retries, closed when dropped.

use std::ops::Deref;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use super::Check;
use crate::asterisk::ami::{AmiClient, AmiNotice, Message};
use crate::config::AsteriskSettings;

/// How long the login may take.
const LOGIN_WITHIN: Duration = Duration::from_secs(8);

pub(crate) struct DoctorAmi {
    client: AmiClient,
    /// The session's events (only `OriginateResponse`, when the user may set a filter).
    events: Mutex<mpsc::UnboundedReceiver<AmiNotice>>,
    task: tokio::task::JoinHandle<()>,
}

impl Deref for DoctorAmi {
    type Target = AmiClient;
    fn deref(&self) -> &AmiClient {
        &self.client
    }
}

impl Drop for DoctorAmi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DoctorAmi {
    /// Logs in, or says why not (connection refused, login refused, ...).
    pub(crate) async fn connect(a: &AsteriskSettings) -> Result<DoctorAmi, String> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (client, task) = AmiClient::spawn(a.ami(&["OriginateResponse"]), tx);
        let first = tokio::time::timeout(LOGIN_WITHIN, rx.recv()).await;
        match first {
            Ok(Some(AmiNotice::Connected)) => Ok(DoctorAmi {
                client,
                events: Mutex::new(rx),
                task,
            }),
            Ok(Some(AmiNotice::Disconnected(why))) => {
                task.abort();
                Err(why)
            }
            Ok(_) => {
                task.abort();
                Err("the AMI session ended".into())
            }
            Err(_) => {
                task.abort();
                Err(format!("no login within {}s", LOGIN_WITHIN.as_secs()))
            }
        }
    }

    /// Waits (at most `within`) for an event for which `matches` holds.
    pub async fn wait_event(&self, within: Duration, matches: impl Fn(&Message) -> bool) -> bool {
        let mut rx = self.events.lock().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(AmiNotice::Event(m))) if matches(&m) => return true,
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return false,
            }
        }
    }
}

/// The check line for an AMI session that could not be made, with the likely fix.
pub(super) fn ami_failed(a: &AsteriskSettings, why: &str) -> Check {
    let what = format!("AMI {}", a.ami_addr);
    let fix = if why.contains("login refused") {
        format!(
            "check asterisk.ami_user / ami_secret against the [{}] section of manager.conf \
             (its `secret`, and `permit`/`deny` for this host)",
            a.ami_user
        )
    } else {
        format!(
            "enable AMI in manager.conf ([general] enabled = yes, port and bindaddr as in \
             asterisk.ami_addr = {}), or correct asterisk.ami_addr",
            a.ami_addr
        )
    };
    Check::miss(what, why.to_string(), fix)
}
