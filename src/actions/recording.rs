//! StartRecording and StopRecording: Asterisk's MixMonitor records both parties, mixed,
//! into a file of the recordings directory named after the call, the view and the start
//! time. It runs on the view's other party (the one the view talks to), so it follows
//! that party through park and unpark, hold, and transfers made by the view's
//! extension; it stops by itself when that party's channel ends.

use super::input::{Body, ViewId};
use super::{ActionError, Ctx, Done, InputError, StateError};
use crate::calls::{LegState, Note, RECORDING_VAR};

/// A recording's format: `wav` (PCM) or `wav49` (GSM in WAV, smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Wav,
    Wav49,
}

impl Format {
    fn parse(b: &Body) -> Result<Format, InputError> {
        match b.text("format").map_err(|_| InputError::Format)?.as_deref() {
            None => Ok(Format::Wav),
            Some(f) if f.eq_ignore_ascii_case("wav") => Ok(Format::Wav),
            Some(f) if f.eq_ignore_ascii_case("wav49") => Ok(Format::Wav49),
            Some(_) => Err(InputError::Format),
        }
    }

    /// The file name's extension, which tells MixMonitor the format.
    fn extension(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::Wav49 => "wav49",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRecording {
    pub view: Option<ViewId>,
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRecording {
    pub view: Option<ViewId>,
}

/// `<dir>/<call id>-<extension>-<UTC start>-<random>.<format>`: found by call, view and
/// time; the random part keeps two recordings of one second apart.
fn file_name(
    dir: &str,
    call: &str,
    ext: &str,
    at: &chrono::DateTime<chrono::Utc>,
    f: Format,
) -> String {
    let mut r = [0u8; 3];
    getrandom::fill(&mut r).expect("the OS gives random bytes");
    format!(
        "{}/{call}-{}-{}-{:02x}{:02x}{:02x}.{}",
        dir.trim_end_matches('/'),
        ext.replace('*', "_"),
        at.format("%Y%m%dT%H%M%SZ"),
        r[0],
        r[1],
        r[2],
        f.extension()
    )
}

impl StartRecording {
    pub fn parse(b: &Body) -> Result<StartRecording, InputError> {
        Ok(StartRecording {
            view: ViewId::parse(b)?,
            format: Format::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let ext = cx.view_ext()?;
        let (own, peer) = cx.view_and_peer()?;
        for leg in [own, peer] {
            match leg.uapid_state() {
                LegState::NotAnswered => {
                    return Err(StateError::NotAnswered(leg.party.number().into()).into())
                }
                LegState::Parked => {
                    return Err(StateError::Parked(leg.party.number().into()).into())
                }
                _ => {}
            }
        }
        if cx.call.recording_for(ext).is_some() {
            return Err(StateError::AlreadyRecording.into());
        }
        let now = chrono::Utc::now();
        let file = file_name(
            &cx.pbx.names().recordings_dir,
            &cx.call.id,
            ext,
            &now,
            self.format,
        );
        cx.pbx.start_recording(&peer.name, &file).await?;
        tracing::info!(call = %cx.call.id, %file, "recording started");
        let at = now.with_timezone(&chrono::Local).fixed_offset();
        cx.calls.note(Note::Recording {
            channel: peer.id.clone(),
            extension: ext.to_string(),
            at,
        });
        // Kept on the channel, so a restarted uapid knows the recording and its view.
        let var = format!("{},{ext}", at.timestamp());
        let _ = cx.pbx.set_var(&peer.name, RECORDING_VAR, &var).await;
        let leg = peer.id.clone();
        let done = cx.done();
        cx.guard.settle(cx.calls, move |t| {
            t.channel(&leg).is_none_or(|c| c.recording.is_some())
        });
        Ok(done)
    }
}

impl StopRecording {
    pub fn parse(b: &Body) -> Result<StopRecording, InputError> {
        Ok(StopRecording {
            view: ViewId::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let ext = cx.view_ext()?;
        let leg = cx.call.recording_for(ext).ok_or(StateError::NotRecording)?;
        cx.pbx.stop_recording(&leg.name).await?;
        let _ = cx.pbx.set_var(&leg.name, RECORDING_VAR, "").await;
        cx.calls.note(Note::NotRecording {
            channel: leg.id.clone(),
        });
        let id = leg.id.clone();
        let done = cx.done();
        cx.guard.settle(cx.calls, move |t| {
            t.channel(&id).is_none_or(|c| c.recording.is_none())
        });
        Ok(done)
    }
}
