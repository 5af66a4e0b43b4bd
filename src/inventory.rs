//! What a PBX has, read over AMI: its PJSIP endpoints (and their details), voicemail
//! boxes, parking lots and dialplan matches. `uapid doctor` checks the directory against
//! it; `uapid directory import` writes a directory from it. Reads only: nothing here
//! changes the PBX.

use crate::asterisk::ami::{AmiClient, AmiError, Message};

/// Why Asterisk refused an action, as far as its answer tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The AMI user lacks the action's class in its `write =` line.
    Denied,
    /// No such action: the module that provides it is not loaded.
    Unknown,
    /// Anything else (the message).
    Other(String),
}

impl Refusal {
    pub fn of(message: &str) -> Refusal {
        if message.eq_ignore_ascii_case("Permission denied") {
            Refusal::Denied
        } else if message.starts_with("Invalid/unknown command") {
            Refusal::Unknown
        } else {
            Refusal::Other(message.to_string())
        }
    }
}

/// A failed read: the link failed, or Asterisk refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    Link(String),
    Refused(Refusal),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Link(why) => f.write_str(why),
            ReadError::Refused(Refusal::Denied) => f.write_str("permission denied"),
            ReadError::Refused(Refusal::Unknown) => f.write_str("unknown action"),
            ReadError::Refused(Refusal::Other(m)) => write!(f, "refused: {m}"),
        }
    }
}

impl From<AmiError> for ReadError {
    fn from(e: AmiError) -> ReadError {
        match e {
            AmiError::Refused(m) => ReadError::Refused(Refusal::of(&m)),
            e => ReadError::Link(e.to_string()),
        }
    }
}

/// Sends an action and returns its list events (none for a plain answer).
pub async fn list(ami: &AmiClient, action: Message) -> Result<Vec<Message>, ReadError> {
    Ok(ami.request(action).await?.events)
}

/// One PJSIP endpoint as `PJSIPShowEndpoints` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSummary {
    pub name: String,
    /// Contact URIs (`sip:0003_210@127.0.0.1:5210`).
    pub contacts: Vec<String>,
    pub outbound_auths: String,
}

/// Every PJSIP endpoint (AMI `PJSIPShowEndpoints`; write class `system`).
pub async fn endpoints(ami: &AmiClient) -> Result<Vec<EndpointSummary>, ReadError> {
    let events = list(ami, Message::new().with("Action", "PJSIPShowEndpoints")).await?;
    Ok(events
        .iter()
        .filter(|e| e.event() == Some("EndpointList"))
        .filter_map(|e| {
            Some(EndpointSummary {
                name: e.get("ObjectName")?.to_string(),
                contacts: contact_uris(e.get("Contacts").unwrap_or("")),
                outbound_auths: e.get("OutboundAuths").unwrap_or("").to_string(),
            })
        })
        .collect())
}

/// `Contacts: 0003_210/sip:0003_210@127.0.0.1:5210,` → the URIs.
fn contact_uris(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| match c.find("/sip") {
            Some(i) => c[i + 1..].to_string(),
            None => c.to_string(),
        })
        .collect()
}

/// An endpoint's details, as `PJSIPShowEndpoint` tells them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointDetail {
    pub name: String,
    /// `"Alice Anders" <0003*210>`, as configured (empty when none).
    pub callerid: String,
    /// The context its calls start in.
    pub context: String,
    /// Its MWI mailboxes (`210@0003`).
    pub mailboxes: Vec<String>,
    /// `identify_by` (`username`, `ip`, ...).
    pub identify_by: String,
    /// Addresses of its `type = identify` sections: calls from there are its calls.
    pub identify_matches: Vec<String>,
    pub outbound_auth: String,
    pub contacts: Vec<String>,
}

/// One endpoint's details (AMI `PJSIPShowEndpoint`; write class `system`).
pub async fn endpoint_detail(ami: &AmiClient, name: &str) -> Result<EndpointDetail, ReadError> {
    let action = Message::new()
        .with("Action", "PJSIPShowEndpoint")
        .with("Endpoint", name);
    Ok(parse_endpoint_detail(name, &list(ami, action).await?))
}

/// Reads the events of a `PJSIPShowEndpoint` answer.
pub fn parse_endpoint_detail(name: &str, events: &[Message]) -> EndpointDetail {
    let mut d = EndpointDetail {
        name: name.to_string(),
        ..EndpointDetail::default()
    };
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    for e in events {
        match e.event() {
            Some("EndpointDetail") => {
                d.callerid = e.get("Callerid").unwrap_or("").trim().to_string();
                d.context = e.get("Context").unwrap_or("").to_string();
                d.mailboxes = split(e.get("Mailboxes").unwrap_or(""));
                d.identify_by = e.get("IdentifyBy").unwrap_or("").to_string();
                d.outbound_auth = e.get("OutboundAuth").unwrap_or("").to_string();
            }
            Some("IdentifyDetail") => d
                .identify_matches
                .extend(split(e.get("Match").unwrap_or(""))),
            Some("ContactStatusDetail") => {
                if let Some(uri) = e.get("URI").filter(|u| !u.is_empty()) {
                    d.contacts.push(uri.to_string());
                }
            }
            _ => {}
        }
    }
    d
}

/// A caller id as `"Name" <number>` splits: (name, number), either may be empty.
pub fn split_callerid(s: &str) -> (String, String) {
    let s = s.trim();
    let (name, number) = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => (&s[..i], &s[i + 1..s.len() - 1]),
        _ if s.bytes().all(|b| b.is_ascii_digit() || b"*#+".contains(&b)) => ("", s),
        _ => (s, ""),
    };
    let name = name.trim().trim_matches('"').trim();
    (name.to_string(), number.trim().to_string())
}

/// One voicemail box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub mailbox: String,
    pub context: String,
    pub full_name: String,
}

impl Mailbox {
    /// As VoiceMail() takes it: `<box>@<context>`.
    pub fn address(&self) -> String {
        format!("{}@{}", self.mailbox, self.context)
    }
}

/// Every voicemail box (AMI `VoicemailUsersList`; write class `call` or `reporting`).
pub async fn mailboxes(ami: &AmiClient) -> Result<Vec<Mailbox>, ReadError> {
    let events = list(ami, Message::new().with("Action", "VoicemailUsersList")).await?;
    Ok(events
        .iter()
        .filter(|e| e.event() == Some("VoicemailUserEntry"))
        .filter_map(|e| {
            Some(Mailbox {
                mailbox: e.get("VoiceMailbox")?.to_string(),
                context: e.get("VMContext")?.to_string(),
                full_name: e.get("Fullname").unwrap_or("").to_string(),
            })
        })
        .collect())
}

/// One res_parking lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkingLot {
    pub name: String,
    pub start_space: String,
    pub stop_space: String,
}

/// Every parking lot (AMI `Parkinglots`; write class `call`).
pub async fn parking_lots(ami: &AmiClient) -> Result<Vec<ParkingLot>, ReadError> {
    let events = list(ami, Message::new().with("Action", "Parkinglots")).await?;
    Ok(events
        .iter()
        .filter(|e| e.event() == Some("Parkinglot"))
        .filter_map(|e| {
            Some(ParkingLot {
                name: e.get("Name")?.to_string(),
                start_space: e.get("StartSpace").unwrap_or("").to_string(),
                stop_space: e.get("StopSpace").unwrap_or("").to_string(),
            })
        })
        .collect())
}

/// One line of a dialplan match: where it was found and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialplanLine {
    pub context: String,
    pub extension: String,
    pub application: String,
    pub registrar: String,
}

/// What `context` runs for `exten` (AMI `ShowDialPlan`, which follows includes and
/// patterns; write class `config` or `reporting`). Empty: the context has no such
/// extension, or no such context. `exten` `None` lists the whole context.
pub async fn dialplan(
    ami: &AmiClient,
    context: &str,
    exten: Option<&str>,
) -> Result<Vec<DialplanLine>, ReadError> {
    let mut show = Message::new()
        .with("Action", "ShowDialPlan")
        .with("Context", context);
    if let Some(x) = exten {
        show = show.with("Extension", x);
    }
    match list(ami, show).await {
        Ok(events) => Ok(events
            .iter()
            .filter(|e| e.event() == Some("ListDialplan"))
            .map(|e| DialplanLine {
                context: e.get("Context").unwrap_or("").to_string(),
                extension: e.get("Extension").unwrap_or("").to_string(),
                application: e.get("Application").unwrap_or("").to_string(),
                registrar: e.get("Registrar").unwrap_or("").to_string(),
            })
            .collect()),
        Err(ReadError::Refused(Refusal::Other(m))) if m.starts_with("Did not find") => {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Asterisk's version (AMI `CoreSettings`; write class `system` or `reporting`).
pub async fn version(ami: &AmiClient) -> Result<String, ReadError> {
    let reply = ami
        .request(Message::new().with("Action", "CoreSettings"))
        .await?;
    Ok(reply
        .response
        .get("AsteriskVersion")
        .unwrap_or("")
        .to_string())
}

/// The major version of `22.10.1+dfsg...` (also `GIT-master-...`: none).
pub fn major_version(v: &str) -> Option<u32> {
    v.split(['.', '-', '+']).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        assert_eq!(Refusal::of("Permission denied"), Refusal::Denied);
        assert_eq!(
            Refusal::of("Invalid/unknown command: Park. Use Action: ListCommands to show available commands."),
            Refusal::Unknown
        );
        assert_eq!(
            Refusal::of("Channel not specified"),
            Refusal::Other("Channel not specified".into())
        );
    }

    #[test]
    fn caller_ids() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            split_callerid("\"Alice Anders\" <0003*210>"),
            s("Alice Anders", "0003*210")
        );
        assert_eq!(split_callerid("Bob <24>"), s("Bob", "24"));
        assert_eq!(split_callerid("<210>"), s("", "210"));
        assert_eq!(split_callerid("210"), s("", "210"));
        assert_eq!(split_callerid("Reception"), s("Reception", ""));
        assert_eq!(split_callerid(""), s("", ""));
    }

    #[test]
    fn contacts_and_versions() {
        assert_eq!(
            contact_uris("0003_210/sip:0003_210@127.0.0.1:5210,trunk/sip:127.0.0.2:5060,"),
            ["sip:0003_210@127.0.0.1:5210", "sip:127.0.0.2:5060"]
        );
        assert!(contact_uris("").is_empty());
        assert_eq!(major_version("22.10.1+dfsg+~cs6.17.60671434-1"), Some(22));
        assert_eq!(major_version("20.5.0"), Some(20));
        assert_eq!(major_version("GIT-master-abc"), None);
    }

    #[test]
    fn endpoint_details() {
        let ev =
            |pairs: &[(&str, &str)]| pairs.iter().fold(Message::new(), |m, (k, v)| m.with(k, v));
        let events = [
            ev(&[
                ("Event", "EndpointDetail"),
                ("Callerid", "\"Alice Anders\" <0003*210>"),
                ("Context", "phones"),
                ("Mailboxes", "210@0003"),
                ("IdentifyBy", "username"),
                ("OutboundAuth", ""),
            ]),
            ev(&[
                ("Event", "ContactStatusDetail"),
                ("URI", "sip:0003_210@127.0.0.1:5210"),
            ]),
            ev(&[
                ("Event", "IdentifyDetail"),
                ("Match", "127.0.0.2/255.255.255.255"),
            ]),
        ];
        let d = parse_endpoint_detail("0003_210", &events);
        assert_eq!(d.callerid, "\"Alice Anders\" <0003*210>");
        assert_eq!(d.context, "phones");
        assert_eq!(d.mailboxes, ["210@0003"]);
        assert_eq!(d.contacts, ["sip:0003_210@127.0.0.1:5210"]);
        assert_eq!(d.identify_matches, ["127.0.0.2/255.255.255.255"]);
    }
}
