//! From the tracker's state to UAPI's `PhoneCall` and `PhoneCallView`, exactly as UAPI
//! shapes them: numbers as strings, dates as XML Schema dateTime with offset, fields
//! that have no value left out.

use serde::Serialize;

use super::state::{CallState, ChanState, ChannelState, Party, Time};
use super::tracker::Tracker;
use crate::asterisk::ari::model::CallerId;

/// UAPI view status.
pub mod status {
    pub const UNKNOWN: u8 = 0;
    pub const OFF_HOOK: u8 = 1;
    pub const TRYING: u8 = 2;
    pub const RINGING: u8 = 3;
    pub const OTHER_SIDE_RINGING: u8 = 4;
    pub const ON_CALL: u8 = 5;
}

/// UAPI call flow.
pub mod flow {
    pub const LOCAL: u8 = 2;
    pub const OUTGOING_PUBLIC: u8 = 4;
    pub const INCOMING_PUBLIC: u8 = 8;
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    #[serde(rename = "self")]
    pub self_: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PhoneCall {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    pub published: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered: Option<String>,
    pub phone_call_view: Vec<PhoneCallView>,
    pub link: Link,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PhoneCallView {
    pub id: String,
    pub extension: String,
    pub status: String,
    pub flow: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    pub source: Vec<String>,
    pub destination: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ringing: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_pos: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// `2012-06-27T16:08:55+03:00`. Written digit by digit: a listing formats several per
/// call, and chrono's general formatter cost a tenth of a List request.
pub fn format_time(t: &Time) -> String {
    use chrono::{Datelike, Timelike};
    fn two(out: &mut String, n: u32) {
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    }
    let local = t.naive_local();
    let year = local.year();
    if !(0..=9999).contains(&year) {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    }
    let mut out = String::with_capacity(25);
    two(&mut out, year as u32 / 100);
    two(&mut out, year as u32 % 100);
    out.push('-');
    two(&mut out, local.month());
    out.push('-');
    two(&mut out, local.day());
    out.push('T');
    two(&mut out, local.hour());
    out.push(':');
    two(&mut out, local.minute());
    out.push(':');
    two(&mut out, local.second());
    let offset = t.offset().local_minus_utc();
    out.push(if offset < 0 { '-' } else { '+' });
    let minutes = offset.unsigned_abs() / 60;
    two(&mut out, minutes / 60);
    out.push(':');
    two(&mut out, minutes % 60);
    out
}

/// `Name <number>`; a caller with no name shows its number as the name.
pub fn format_caller_id(c: &CallerId) -> Option<String> {
    if c.number.is_empty() && c.name.is_empty() {
        return None;
    }
    let name = if c.name.is_empty() {
        &c.number
    } else {
        &c.name
    };
    let mut out = String::with_capacity(name.len() + c.number.len() + 3);
    out.push_str(name);
    out.push_str(" <");
    out.push_str(&c.number);
    out.push('>');
    Some(out)
}

/// `link.self` of a call: the one place its URL is written.
pub fn self_link(base_url: &str, user: &str, extension: &str, call: &str) -> Link {
    Link {
        self_: format!("{base_url}/uapi/phoneCalls/{user}/{extension}/{call}"),
    }
}

/// What every view of a call shares.
struct Shared<'a> {
    chans: Vec<&'a ChannelState>,
    parties: Vec<Party>,
    flow: u8,
    source: Vec<String>,
    destination: Vec<String>,
}

/// The PhoneCall of one tracked call. `base_url` prefixes `link.self`.
pub fn phone_call(t: &Tracker, call: &CallState, base_url: &str) -> PhoneCall {
    let dir = t.directory();
    let shared = shared(t, call);
    let charged = match &call.origin {
        Party::Extension(n) => Some(n.clone()),
        _ => call.extensions.first().cloned(),
    };
    let charged_ext = charged.as_ref().and_then(|n| dir.extensions.get(n));
    let owner = charged_ext.and_then(|e| dir.organizations.get(&e.organization));
    let owner_user = charged_ext.map_or_else(|| "@me".to_string(), |e| e.user.to_string());
    let views = call
        .extensions
        .iter()
        .enumerate()
        .map(|(i, ext)| view(t, call, &shared, ext, i))
        .collect();
    let link_ext = charged.as_deref().unwrap_or("@self");
    PhoneCall {
        id: call.id.to_string(),
        link: self_link(base_url, &owner_user, link_ext, &call.id),
        extension: charged,
        owner_id: owner.map(|o| o.id.to_string()),
        owner_name: owner.map(|o| o.name.clone()),
        published: format_time(&call.published),
        answered: call.answered.as_ref().map(format_time),
        phone_call_view: views,
    }
}

/// The call's channels and parties, its flow, source and destination.
fn shared<'a>(t: &'a Tracker, call: &CallState) -> Shared<'a> {
    let chans: Vec<&ChannelState> = call.channels.iter().filter_map(|c| t.channel(c)).collect();
    let parties: Vec<Party> = chans.iter().map(|c| t.party_of(c)).collect();
    // Only numbers show: a Local channel's name or the dialplan's start extension "s"
    // (where a channel is before it dials, or where a transfer left it) is no number.
    let source: Vec<String> = Some(call.origin.number())
        .filter(|n| is_number(n))
        .map(str::to_string)
        .into_iter()
        .collect();
    let mut destination: Vec<String> = Vec::new();
    for p in &parties {
        let n = p.number();
        let other = *p != call.origin && !matches!(p, Party::Other(_));
        if other && !n.is_empty() && !destination.iter().any(|d| d == n) {
            destination.push(n.to_string());
        }
    }
    if destination.is_empty() && is_number(&call.dialed) {
        destination.push(dialed_number(t, call));
    }
    let has_trunk = parties.iter().any(|p| matches!(p, Party::Public(_)));
    let flow = match call.origin {
        Party::Public(_) => flow::INCOMING_PUBLIC,
        _ if has_trunk => flow::OUTGOING_PUBLIC,
        _ if destination
            .iter()
            .any(|d| crate::config::looks_like_public_number(d)) =>
        {
            flow::OUTGOING_PUBLIC
        }
        _ => flow::LOCAL,
    };
    Shared {
        chans,
        parties,
        flow,
        source,
        destination,
    }
}

/// Whether `s` is a number a phone dials or shows (digits, `*`, `#`, a leading `+`).
fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

/// The number the originator dialed, as a UAPI number where it names an extension.
fn dialed_number(t: &Tracker, call: &CallState) -> String {
    match t
        .directory()
        .resolve_extension(&call.dialed, call.organization())
    {
        Some(e) => e.number.clone(),
        None => call.dialed.to_string(),
    }
}

/// The UAPI status of a view whose leg is `own`. A view with no leg of its own shows
/// "on call" when it parked the call, and, when uapid made the call for it (a
/// callback), how the call stands; otherwise "unknown".
fn view_status(
    own: Option<&ChannelState>,
    others: &[&ChannelState],
    parked: bool,
    made_for: bool,
) -> u8 {
    let other_ringing = others.iter().any(|c| c.state == ChanState::Ringing);
    let Some(c) = own else {
        return match () {
            _ if parked => status::ON_CALL,
            _ if !made_for => status::UNKNOWN,
            _ if other_ringing => status::OTHER_SIDE_RINGING,
            _ if others.iter().any(|c| c.state == ChanState::Up) => status::ON_CALL,
            _ => status::TRYING,
        };
    };
    match c.state {
        ChanState::Ringing => status::RINGING,
        ChanState::Up if c.bridge.is_none() && other_ringing => status::OTHER_SIDE_RINGING,
        ChanState::Up => status::ON_CALL,
        ChanState::Ring | ChanState::Dialing | ChanState::Down | ChanState::Reserved => {
            if other_ringing {
                status::OTHER_SIDE_RINGING
            } else if others.iter().any(|c| c.state == ChanState::Up) {
                // The other side answered; this leg is being connected.
                status::ON_CALL
            } else {
                status::TRYING
            }
        }
        ChanState::OffHook => status::OFF_HOOK,
        ChanState::Busy | ChanState::Other => status::UNKNOWN,
    }
}

fn view(t: &Tracker, call: &CallState, s: &Shared<'_>, ext: &str, index: usize) -> PhoneCallView {
    let is_mine = |p: &Party| matches!(p, Party::Extension(n) if n == ext);
    let (mine, others): (Vec<_>, Vec<_>) = s
        .chans
        .iter()
        .zip(&s.parties)
        .partition(|(_, p)| is_mine(p));
    let mine: Vec<&ChannelState> = mine.into_iter().map(|(c, _)| *c).collect();
    let others: Vec<&ChannelState> = others.into_iter().map(|(c, _)| *c).collect();
    // The leg that speaks for the view: the same rule the actions use.
    let own = t.view_leg(call, ext);

    // Parked: a channel of this call waits in a lot, parked by this extension.
    let parked = s.chans.iter().find_map(|c| {
        let p = t.parked(&c.id)?;
        (t.parker_extension(p) == Some(ext)).then_some(p)
    });
    let made_for = t.owner_of(&call.id) == Some(ext);
    let st = view_status(own, &others, parked.is_some(), made_for);

    // The other party as this extension's phone shows it (its connected line). A leg
    // uapid or the lot originated has no connected line until bridged: its caller id
    // is what the phone shows.
    let caller = match own {
        Some(c) => format_caller_id(&c.connected).or_else(|| format_caller_id(&c.caller)),
        None => others.iter().find_map(|c| format_caller_id(&c.caller)),
    };

    // Hold: this side holds (holder), or the other side holds this one. A phone's own
    // hold (ChannelHold) is on its channel; uapid's is read from its bridge.
    let uapid_held = |cs: &[&ChannelState]| cs.iter().filter_map(|c| t.uapid_hold_since(c)).min();
    let holds_by_uapid = mine.iter().any(|c| t.holding(c));
    let own_hold = mine
        .iter()
        .filter_map(|c| c.hold)
        .chain(uapid_held(&others).filter(|_| holds_by_uapid))
        .min();
    let other_hold = others
        .iter()
        .filter_map(|c| c.hold)
        .chain(uapid_held(&mine))
        .min();

    PhoneCallView {
        id: format!("{:02}", index + 1),
        extension: ext.to_string(),
        status: st.to_string(),
        flow: s.flow.to_string(),
        caller_id: caller,
        source: s.source.clone(),
        destination: s.destination.clone(),
        ringing: own
            .and_then(|c| c.ringing.filter(|_| c.state == ChanState::Ringing))
            .as_ref()
            .map(format_time),
        answered: own.and_then(|c| c.answered).as_ref().map(format_time),
        recording: t.recording_for(call, ext).as_ref().map(format_time),
        parked: parked.map(|p| format_time(&p.since)),
        parked_pos: parked.map(|p| p.space.clone()),
        parked_by: parked.map(|_| ext.to_string()),
        on_hold: own_hold.or(other_hold).as_ref().map(format_time),
        holder: own_hold.map(|_| "1".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asterisk::ari::model::parse_time;

    #[test]
    fn times_format_as_chrono_does() {
        for t in [
            "2026-11-22T12:34:56.789+0000",
            "2012-06-27T16:08:55+0300",
            "2026-01-02T03:04:05-0330",
            "0999-12-31T23:59:59+1400",
        ] {
            let t = parse_time(t).unwrap();
            assert_eq!(
                format_time(&t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
            );
        }
        assert_eq!(
            format_time(&parse_time("2012-06-27T16:08:55+0300").unwrap()),
            "2012-06-27T16:08:55+03:00"
        );
    }

    #[test]
    fn caller_ids() {
        let c = |name: &str, number: &str| CallerId {
            name: name.into(),
            number: number.into(),
        };
        assert_eq!(
            format_caller_id(&c("John Doe", "42")).as_deref(),
            Some("John Doe <42>")
        );
        assert_eq!(format_caller_id(&c("", "42")).as_deref(), Some("42 <42>"));
        assert_eq!(format_caller_id(&c("", "")), None);
    }
}
