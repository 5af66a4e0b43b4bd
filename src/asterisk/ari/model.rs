//! ARI's JSON objects and events, typed for what uapid reads.
//!
//! Unknown event types parse as [`Event::Other`]; unknown fields are ignored. Nothing
//! here panics on odd input: a message that does not parse is logged and skipped.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct CallerId {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub number: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Dialplan {
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub exten: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub app_name: String,
    #[serde(default)]
    pub app_data: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub caller: CallerId,
    #[serde(default)]
    pub connected: CallerId,
    #[serde(default)]
    pub dialplan: Dialplan,
    #[serde(default)]
    pub creationtime: String,
    #[serde(default)]
    pub channelvars: Option<HashMap<String, Option<String>>>,
}

/// The channel variable that carries the linkedid (ari.conf `channelvars`).
pub const LINKEDID_VAR: &str = "CHANNEL(linkedid)";

impl Channel {
    pub fn linkedid(&self) -> Option<&str> {
        self.channelvars
            .as_ref()?
            .get(LINKEDID_VAR)?
            .as_deref()
            .filter(|s| !s.is_empty())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Bridge {
    pub id: String,
    #[serde(default)]
    pub technology: String,
    #[serde(default)]
    pub bridge_type: String,
    #[serde(default)]
    pub bridge_class: String,
    #[serde(default)]
    pub creator: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub channels: Vec<String>,
}

/// The event types [`Event`] reads; an application's event filter lets only these through.
pub const TRACKED_EVENTS: &[&str] = &[
    "ChannelCreated",
    "ChannelDestroyed",
    "ChannelStateChange",
    "ChannelDialplan",
    "ChannelCallerId",
    "ChannelConnectedLine",
    "ChannelHangupRequest",
    "ChannelHold",
    "ChannelUnhold",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
    "BridgeCreated",
    "BridgeDestroyed",
    "BridgeMerged",
    "Dial",
    "StasisStart",
    "StasisEnd",
    "ApplicationReplaced",
];

/// ARI events (the `type` field). Each variant keeps the fields uapid uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    ChannelCreated {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelDestroyed {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
        #[serde(default)]
        cause: i64,
    },
    ChannelStateChange {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelDialplan {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelCallerId {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelConnectedLine {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelHangupRequest {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelHold {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelUnhold {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ChannelEnteredBridge {
        bridge: Bridge,
        #[serde(default)]
        channel: Option<Channel>,
        #[serde(default)]
        timestamp: String,
    },
    ChannelLeftBridge {
        bridge: Bridge,
        #[serde(default)]
        channel: Option<Channel>,
        #[serde(default)]
        timestamp: String,
    },
    BridgeCreated {
        bridge: Bridge,
        #[serde(default)]
        timestamp: String,
    },
    BridgeDestroyed {
        bridge: Bridge,
        #[serde(default)]
        timestamp: String,
    },
    BridgeMerged {
        bridge: Bridge,
        bridge_from: Bridge,
        #[serde(default)]
        timestamp: String,
    },
    Dial {
        #[serde(default)]
        caller: Option<Channel>,
        peer: Channel,
        #[serde(default)]
        dialstatus: String,
        #[serde(default)]
        timestamp: String,
    },
    StasisStart {
        channel: Channel,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        timestamp: String,
    },
    StasisEnd {
        channel: Channel,
        #[serde(default)]
        timestamp: String,
    },
    ApplicationReplaced {
        #[serde(default)]
        application: String,
    },
    #[serde(other)]
    Other,
}

/// Parses ARI's timestamps: `2026-11-22T12:34:56.789+0000`.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok()
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
        assert!(parse_time("yesterday").is_none());
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
    fn unknown_events_are_other() {
        let e: Event = serde_json::from_str(r#"{"type":"ChannelTalkingStarted","x":1}"#).unwrap();
        assert!(matches!(e, Event::Other));
    }
}
