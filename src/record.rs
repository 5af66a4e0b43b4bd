//! Recording and replaying what Asterisk tells uapid.
//!
//! `uapid record --out FILE.jsonl` keeps ARI's websocket events (exactly as sent), ARI's
//! snapshots and AMI's events (with the time they arrived), one JSON object a line. The
//! same file replays into the tracker ([`read_fixture`]): the tracker's unit tests and the
//! benchmarks run on sequences captured from the real sandbox PBX.
//!
//! Line shapes: `{"ari": {...event...}}`, `{"ari_connected": true}`,
//! `{"ari_snapshot": {"channels": [...], "bridges": [...]}}`,
//! `{"ami": [["Event","ParkedCall"], ...], "at": "<rfc3339>"}`, `{"ami_connected": true}`.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::asterisk::ami::client::TRACKED_EVENTS;
use crate::asterisk::ami::{AmiClient, AmiNotice, Message};
use crate::asterisk::ari::ws::AriNotice;
use crate::asterisk::ari::Event;
use crate::calls::Input;
use crate::config::Settings;

/// Records until SIGINT or SIGTERM.
pub async fn run(settings: &Settings, out: &Path) -> Result<(), String> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?,
    );
    let a = &settings.asterisk;
    let rest = a.ari_rest();
    let (ari_tx, mut ari_rx) = mpsc::unbounded_channel();
    let app = format!("{}-record", a.app);
    let (_, ws_task) = crate::asterisk::ari::ws::spawn(a.ari_events(&app), rest.clone(), ari_tx);
    let (ami_tx, mut ami_rx) = mpsc::unbounded_channel();
    let (ami, ami_task) = AmiClient::spawn(a.ami(TRACKED_EVENTS), ami_tx);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut lines = 0u64;
    loop {
        let line = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            n = ari_rx.recv() => match n {
                Some(AriNotice::Text(t)) => match serde_json::from_str::<Value>(&t) {
                    Ok(v) => json!({ "ari": v }),
                    Err(_) => continue,
                },
                Some(AriNotice::Connected) => {
                    if let Err(e) = rest.set_event_filter(&app).await {
                        eprintln!("event filter not set: {e}");
                    }
                    writeln!(file, "{}", json!({ "ari_connected": true })).map_err(|e| e.to_string())?;
                    let channels: Value = rest.get("/channels").await.map_err(|e| e.to_string())?;
                    let bridges: Value = rest.get("/bridges").await.map_err(|e| e.to_string())?;
                    json!({ "ari_snapshot": { "channels": channels, "bridges": bridges } })
                }
                Some(AriNotice::Disconnected(_)) | None => continue,
            },
            n = ami_rx.recv() => match n {
                Some(AmiNotice::Event(m)) => {
                    let at = chrono::Local::now().fixed_offset().to_rfc3339();
                    json!({ "ami": m.headers, "at": at })
                }
                Some(AmiNotice::Connected) => {
                    let ami = ami.clone();
                    tokio::spawn(async move {
                        let _ = ami.send(Message::new().with("Action", "ParkedCalls")).await;
                    });
                    json!({ "ami_connected": true })
                }
                Some(AmiNotice::Disconnected(_)) | None => continue,
            },
        };
        writeln!(file, "{line}").map_err(|e| e.to_string())?;
        lines += 1;
        if lines.is_multiple_of(50) {
            file.flush().map_err(|e| e.to_string())?;
        }
    }
    file.flush().map_err(|e| e.to_string())?;
    ws_task.abort();
    ami_task.abort();
    eprintln!("recorded {lines} lines to {}", out.display());
    Ok(())
}

/// One line of a fixture as a tracker input (`None` for lines uapid does not use).
pub fn parse_line(line: &str) -> Result<Option<Input>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if let Some(ev) = v.get("ari") {
        let ev: Event = serde_json::from_value(ev.clone()).map_err(|e| e.to_string())?;
        return Ok(match ev {
            Event::Other => None,
            ev => Some(Input::AriEvent(Box::new(ev))),
        });
    }
    if v.get("ari_connected").is_some() {
        return Ok(Some(Input::AriConnected));
    }
    if let Some(s) = v.get("ari_snapshot") {
        let channels = serde_json::from_value(s["channels"].clone()).map_err(|e| e.to_string())?;
        let bridges = serde_json::from_value(s["bridges"].clone()).map_err(|e| e.to_string())?;
        return Ok(Some(Input::AriSnapshot { channels, bridges }));
    }
    if let Some(h) = v.get("ami") {
        let headers: Vec<(String, String)> =
            serde_json::from_value(h.clone()).map_err(|e| e.to_string())?;
        let at = v
            .get("at")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .ok_or("AMI line without a valid `at`")?;
        return Ok(Some(Input::AmiEvent(Message { headers }, at)));
    }
    if v.get("ami_connected").is_some() {
        return Ok(Some(Input::AmiConnected));
    }
    Ok(None)
}

/// All the inputs of a fixture file's text.
pub fn read_fixture(text: &str) -> Result<Vec<Input>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(input) = parse_line(line).map_err(|e| format!("line {}: {e}", i + 1))? {
            out.push(input);
        }
    }
    Ok(out)
}
