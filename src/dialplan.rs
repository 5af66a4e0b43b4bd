//! The dialplan uapid itself needs, installed over AMI (`DialplanExtensionAdd`) into
//! contexts of its own, so the PBX's admin edits nothing:
//!
//! - the Stasis context: `<app>` runs `Stasis(<app>)` (OnHold moves both legs there);
//! - the voicemail context: `s` runs `VoiceMail(${UAPID_MAILBOX},u)`;
//! - the spy context: `s` runs `ChanSpy(${UAPID_SPY},${UAPID_SPY_OPTS})` (BargeIn,
//!   Whisper, Monitor);
//! - the dial helper: a created call's destination, after `Set(CALLERID(all)=...)` when
//!   the request gave a `callerDestination`, continues in the PBX's dial context;
//! - the conference context: a room number runs `ConfBridge(<room>)` (invites).
//!
//! Asterisk forgets added extensions when its dialplan is reloaded (and on restart), and
//! says nothing about a reload over AMI: uapid installs them at each AMI login, checks
//! them every few seconds, and before each action that sends a call there.

use crate::asterisk::ami::{AmiClient, AmiError, Message};
use crate::config::AsteriskSettings;

/// The caller id a created call's destination sees, when the request gave one.
/// (Tested by length: the value has quotes of its own.)
const SET_CALLER_DEST: &str =
    "$[${LEN(${UAPID_CALLER_DEST})} > 0]?Set(CALLERID(all)=${UAPID_CALLER_DEST})";

/// One priority of an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub context: String,
    pub exten: &'static str,
    pub priority: u32,
    pub app: &'static str,
    pub data: &'static str,
}

/// Everything uapid installs. The extensions are the same for every uapid on the PBX
/// (the Stasis one takes the application's name from the number dialed), so several
/// uapids may install them side by side.
pub fn lines(a: &AsteriskSettings) -> Vec<Line> {
    let line = |context: &str, exten, priority, app, data| Line {
        context: context.to_string(),
        exten,
        priority,
        app,
        data,
    };
    vec![
        line(&a.stasis_context, "_[a-zA-Z].", 1, "Stasis", "${EXTEN}"),
        line(&a.stasis_context, "_[a-zA-Z].", 2, "Hangup", ""),
        line(&a.voicemail_context, "s", 1, "Answer", ""),
        line(
            &a.voicemail_context,
            "s",
            2,
            "VoiceMail",
            "${UAPID_MAILBOX},u",
        ),
        line(&a.voicemail_context, "s", 3, "Hangup", ""),
        line(
            &a.spy_context,
            "s",
            1,
            "ChanSpy",
            "${UAPID_SPY},${UAPID_SPY_OPTS}",
        ),
        line(&a.spy_context, "s", 2, "Hangup", ""),
        line(&a.dial_helper_context, "_X!", 1, "ExecIf", SET_CALLER_DEST),
        line(
            &a.dial_helper_context,
            "_X!",
            2,
            "Goto",
            "${UAPID_DIAL_CONTEXT},${EXTEN},1",
        ),
        line(
            &a.dial_helper_context,
            "_[*#+]!",
            1,
            "ExecIf",
            SET_CALLER_DEST,
        ),
        line(
            &a.dial_helper_context,
            "_[*#+]!",
            2,
            "Goto",
            "${UAPID_DIAL_CONTEXT},${EXTEN},1",
        ),
        line(&a.conference_context, "_X.", 1, "Answer", ""),
        line(&a.conference_context, "_X.", 2, "ConfBridge", "${EXTEN}"),
        line(&a.conference_context, "_X.", 3, "Hangup", ""),
    ]
}

/// Installs every line (replacing what is there: installing twice changes nothing).
pub async fn install(ami: &AmiClient, lines: &[Line]) -> Result<(), AmiError> {
    for l in lines {
        let add = Message::new()
            .with("Action", "DialplanExtensionAdd")
            .with("Context", &l.context)
            .with("Extension", l.exten)
            .with("Priority", l.priority.to_string())
            .with("Application", l.app)
            .with("ApplicationData", l.data)
            .with("Replace", "yes");
        ami.request(add).await?;
    }
    Ok(())
}

/// Whether the dialplan still has the lines (their first priorities, one look-up per
/// context).
pub async fn present(ami: &AmiClient, lines: &[Line]) -> Result<bool, AmiError> {
    for l in lines.iter().filter(|l| l.priority == 1) {
        let probe = match l.exten {
            "_[a-zA-Z]." => "uapid",
            "_X." | "_X!" => "1",
            "_[*#+]!" => "+1",
            e => e,
        };
        let show = Message::new()
            .with("Action", "ShowDialPlan")
            .with("Context", &l.context)
            .with("Extension", probe);
        match ami.request(show).await {
            Ok(_) => {}
            Err(AmiError::Refused(m)) if m.starts_with("Did not find") => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Keeps the lines installed: at each AMI login, then checked every `every`.
pub async fn keep(ami: AmiClient, lines: Vec<Line>, every: std::time::Duration) {
    let mut up = ami.connected_watch();
    loop {
        if *up.borrow_and_update() {
            match present(&ami, &lines).await {
                Ok(true) => {}
                Ok(false) => match install(&ami, &lines).await {
                    Ok(()) => tracing::info!("uapid's dialplan installed"),
                    Err(e) => tracing::error!(
                        "uapid's dialplan could not be installed: {e} (DialplanExtensionAdd needs the AMI user to have write=system; see uapid doctor)"
                    ),
                },
                Err(e) => tracing::debug!("dialplan check: {e}"),
            }
        }
        tokio::select! {
            _ = up.changed() => {}
            _ = tokio::time::sleep(every) => {}
        }
    }
}
