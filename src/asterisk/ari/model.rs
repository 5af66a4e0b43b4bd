//! ARI's JSON objects and events, typed for what uapid reads.
//!
//! Unknown event types parse as [`Event::Other`]; unknown fields are ignored. Nothing
//! here panics on odd input: a message that does not parse is logged and skipped.

use chrono::{DateTime, FixedOffset};
pub use compact_str::CompactString as Text;
use serde::Deserialize;

/// A time as ARI gives it, with the PBX's offset.
pub type Time = DateTime<FixedOffset>;

/// Reads one of ARI's timestamps without keeping the string; `None` when it is not one.
/// (Each event carries at least one: parsing it in place saves an allocation per event.)
fn de_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<Time>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an ARI timestamp")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(parse_time(v))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct CallerId {
    #[serde(default)]
    pub name: Text,
    #[serde(default)]
    pub number: Text,
}

/// The dialplan location uapid reads (its context and priority are skipped).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Dialplan {
    #[serde(default)]
    pub exten: Text,
    #[serde(default)]
    pub app_name: Text,
    #[serde(default)]
    pub app_data: Text,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: Text,
    pub name: Text,
    pub state: Text,
    #[serde(default)]
    pub caller: CallerId,
    #[serde(default)]
    pub connected: CallerId,
    #[serde(default)]
    pub dialplan: Dialplan,
    /// `creationtime`, parsed.
    #[serde(rename = "creationtime", default, deserialize_with = "de_time")]
    pub created: Option<Time>,
    #[serde(default)]
    pub channelvars: ChannelVars,
}

/// The channel variables uapid asks ARI to put in every snapshot (ari.conf `channelvars`);
/// others are skipped while parsing.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ChannelVars {
    /// The call's linkedid: groups a call's channels and gives the UAPI id.
    #[serde(rename = "CHANNEL(linkedid)", default)]
    pub linkedid: Option<Text>,
    /// The answer time as Unix seconds, from the sandbox's quiet `uapid-vars` helper...
    #[serde(rename = "EVAL_EXTEN(uapid-vars,answered,1)", default)]
    pub answered: Option<Text>,
    /// ...or straight from the CDR (which logs an error for each new channel).
    #[serde(rename = "CDR(answer,u)", default)]
    pub cdr_answer: Option<Text>,
}

impl Channel {
    pub fn linkedid(&self) -> Option<&str> {
        self.channelvars
            .linkedid
            .as_deref()
            .filter(|s| !s.is_empty())
    }

    /// The answer time variable, when the PBX provides one.
    pub fn answered_var(&self) -> Option<&str> {
        let v = &self.channelvars;
        v.answered
            .as_deref()
            .or(v.cdr_answer.as_deref())
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Bridge {
    pub id: Text,
    #[serde(default)]
    pub technology: Text,
    #[serde(default)]
    pub bridge_class: Text,
    #[serde(default)]
    pub name: Text,
    #[serde(default)]
    pub channels: Vec<Text>,
}

/// The event types [`Event`] reads, written once: the application's event filter
/// (`TRACKED_EVENTS`) and the `type` field's reading (`Kind`) come from the same list.
macro_rules! tracked_events {
    ($($name:ident),* $(,)?) => {
        /// The event types [`Event`] reads; an application's event filter lets only these
        /// through.
        pub const TRACKED_EVENTS: &[&str] = &[$(stringify!($name)),*];

        /// The `type` of an event, read without allocating.
        #[derive(Deserialize, Debug, Clone, Copy)]
        enum Kind {
            $($name,)*
            #[serde(other)]
            Other,
        }
    };
}

tracked_events!(
    ChannelCreated,
    ChannelDestroyed,
    ChannelStateChange,
    ChannelDialplan,
    ChannelCallerId,
    ChannelConnectedLine,
    ChannelHangupRequest,
    ChannelHold,
    ChannelUnhold,
    ChannelEnteredBridge,
    ChannelLeftBridge,
    BridgeCreated,
    BridgeDestroyed,
    BridgeMerged,
    Dial,
    StasisStart,
    StasisEnd,
    ApplicationReplaced,
);

/// ARI events (the `type` field). Each variant keeps the fields uapid uses.
// Variants differ in size (a channel snapshot or nothing); events travel boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    ChannelCreated {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelDestroyed {
        channel: Channel,
        timestamp: Option<Time>,
        cause: i64,
    },
    ChannelStateChange {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelDialplan {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelCallerId {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelConnectedLine {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelHangupRequest {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelHold {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelUnhold {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ChannelEnteredBridge {
        bridge: Bridge,
        channel: Option<Channel>,
        timestamp: Option<Time>,
    },
    ChannelLeftBridge {
        bridge: Bridge,
        channel: Option<Channel>,
        timestamp: Option<Time>,
    },
    BridgeCreated {
        bridge: Bridge,
        timestamp: Option<Time>,
    },
    BridgeDestroyed {
        bridge: Bridge,
        timestamp: Option<Time>,
    },
    BridgeMerged {
        bridge: Bridge,
        bridge_from: Bridge,
        timestamp: Option<Time>,
    },
    Dial {
        caller: Option<Channel>,
        peer: Channel,
        dialstatus: Text,
        timestamp: Option<Time>,
    },
    StasisStart {
        channel: Channel,
        args: Vec<String>,
        timestamp: Option<Time>,
    },
    StasisEnd {
        channel: Channel,
        timestamp: Option<Time>,
    },
    ApplicationReplaced {
        application: String,
    },
    /// A type uapid does not read.
    Other,
}

/// An event as it arrives: every field any event type uses, all optional, parsed in one
/// pass (an internally tagged enum would buffer the whole object first).
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default, deserialize_with = "de_time")]
    timestamp: Option<Time>,
    channel: Option<Channel>,
    peer: Option<Channel>,
    caller: Option<Channel>,
    bridge: Option<Bridge>,
    bridge_from: Option<Bridge>,
    #[serde(default)]
    cause: i64,
    #[serde(default)]
    dialstatus: Text,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    application: String,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        use serde::de::Error;
        let r = RawEvent::deserialize(d)?;
        let kind = r.kind;
        let missing = |f: &str| D::Error::custom(format!("{kind:?} without {f}"));
        let timestamp = r.timestamp;
        macro_rules! channel {
            () => {
                r.channel.ok_or_else(|| missing("channel"))?
            };
        }
        // An event that carries a channel and its time, nothing else.
        macro_rules! plain {
            ($v:ident) => {
                Event::$v {
                    channel: channel!(),
                    timestamp,
                }
            };
        }
        Ok(match kind {
            Kind::ChannelCreated => plain!(ChannelCreated),
            Kind::ChannelDestroyed => Event::ChannelDestroyed {
                cause: r.cause,
                channel: channel!(),
                timestamp,
            },
            Kind::ChannelStateChange => plain!(ChannelStateChange),
            Kind::ChannelDialplan => plain!(ChannelDialplan),
            Kind::ChannelCallerId => plain!(ChannelCallerId),
            Kind::ChannelConnectedLine => plain!(ChannelConnectedLine),
            Kind::ChannelHangupRequest => plain!(ChannelHangupRequest),
            Kind::ChannelHold => plain!(ChannelHold),
            Kind::ChannelUnhold => plain!(ChannelUnhold),
            Kind::ChannelEnteredBridge => Event::ChannelEnteredBridge {
                bridge: r.bridge.ok_or_else(|| missing("bridge"))?,
                channel: r.channel,
                timestamp,
            },
            Kind::ChannelLeftBridge => Event::ChannelLeftBridge {
                bridge: r.bridge.ok_or_else(|| missing("bridge"))?,
                channel: r.channel,
                timestamp,
            },
            Kind::BridgeCreated => Event::BridgeCreated {
                bridge: r.bridge.ok_or_else(|| missing("bridge"))?,
                timestamp,
            },
            Kind::BridgeDestroyed => Event::BridgeDestroyed {
                bridge: r.bridge.ok_or_else(|| missing("bridge"))?,
                timestamp,
            },
            Kind::BridgeMerged => Event::BridgeMerged {
                bridge: r.bridge.ok_or_else(|| missing("bridge"))?,
                bridge_from: r.bridge_from.ok_or_else(|| missing("bridge_from"))?,
                timestamp,
            },
            Kind::Dial => Event::Dial {
                caller: r.caller,
                peer: r.peer.ok_or_else(|| missing("peer"))?,
                dialstatus: r.dialstatus,
                timestamp,
            },
            Kind::StasisStart => Event::StasisStart {
                args: r.args,
                channel: channel!(),
                timestamp,
            },
            Kind::StasisEnd => plain!(StasisEnd),
            Kind::ApplicationReplaced => Event::ApplicationReplaced {
                application: r.application,
            },
            Kind::Other => Event::Other,
        })
    }
}

/// Parses ARI's timestamps: `2026-11-22T12:34:56.789+0000` (the fraction and the
/// offset's colon optional). Written out by hand: it runs for every event.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i.min(start + 9)];
        nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
    }
    let time =
        chrono::NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
    let sign = match b.get(i)? {
        b'+' => 1,
        b'-' => -1,
        b'Z' => return Some(date.and_time(time).and_utc().fixed_offset()),
        _ => return None,
    };
    let rest = &s[i + 1..];
    let (h, m) = match rest.len() {
        4 => (rest.get(0..2)?, rest.get(2..4)?),
        5 if rest.as_bytes()[2] == b':' => (rest.get(0..2)?, rest.get(3..5)?),
        _ => return None,
    };
    let secs = sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60);
    let offset = FixedOffset::east_opt(secs)?;
    date.and_time(time).and_local_timezone(offset).single()
}

/// The endpoint (resource) of a channel name: `PJSIP/0003_210-0000002a` → (`PJSIP`,
/// `0003_210`). Local channels and other technologies come back with their own resource.
pub fn channel_endpoint(name: &str) -> Option<(&str, &str)> {
    let (tech, rest) = name.split_once('/')?;
    let resource = match rest.rfind('-') {
        Some(i) => &rest[..i],
        None => rest,
    };
    Some((tech, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_with_and_without_fraction() {
        let t = parse_time("2026-11-22T12:34:56.789+0000").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T12:34:56.789+00:00");
        let t = parse_time("2026-11-22T12:34:56+0200").unwrap();
        assert_eq!(t.offset().local_minus_utc(), 7200);
        let t = parse_time("2026-11-22T12:34:56.5-03:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T12:34:56.500-03:30");
        assert!(parse_time("yesterday").is_none());
        assert!(parse_time("2026-13-22T12:34:56+0000").is_none());
        assert!(parse_time("2026-11-22T12:34:56+00").is_none());
    }

    #[test]
    fn endpoint_from_channel_name() {
        assert_eq!(
            channel_endpoint("PJSIP/0003_210-0000002a"),
            Some(("PJSIP", "0003_210"))
        );
        assert_eq!(
            channel_endpoint("PJSIP/trunk-00000001"),
            Some(("PJSIP", "trunk"))
        );
        assert_eq!(
            channel_endpoint("Local/210@phones-00000001;1"),
            Some(("Local", "210@phones"))
        );
        assert_eq!(channel_endpoint("garbage"), None);
    }

    #[test]
    fn events_parse_in_any_field_order() {
        let e: Event = serde_json::from_str(
            r#"{"timestamp":"2026-11-22T12:00:00.000+0000","channel":{"id":"1.1","name":"PJSIP/a-1","state":"Up",
                "channelvars":{"CHANNEL(linkedid)":"1.0","OTHER":"x"}},"type":"ChannelStateChange"}"#,
        )
        .unwrap();
        match e {
            Event::ChannelStateChange { channel, timestamp } => {
                assert_eq!(channel.linkedid(), Some("1.0"));
                assert_eq!(timestamp, parse_time("2026-11-22T12:00:00.000+0000"));
            }
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Event>(r#"{"type":"ChannelCreated"}"#).is_err());
    }

    #[test]
    fn unknown_events_are_other() {
        let e: Event = serde_json::from_str(r#"{"type":"ChannelTalkingStarted","x":1}"#).unwrap();
        assert!(matches!(e, Event::Other));
    }
}
