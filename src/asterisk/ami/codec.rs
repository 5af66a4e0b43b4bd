//! AMI framing: `Key: Value` lines ended by CRLF, a blank line ends a message.
//!
//! The decoder is fed raw bytes as they arrive and yields whole messages; it never
//! panics on what Asterisk (or anything else on the port) sends. The encoder refuses to
//! let a value smuggle in a line break, so a caller id from a UAPI client can never inject
//! an AMI header.

use std::fmt::Write as _;

/// One AMI message (response, event or action), headers in their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
}

impl Message {
    pub fn new() -> Self {
        Message::default()
    }

    /// Builder: appends a header.
    pub fn with(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.headers
            .push((key.to_string(), value.as_ref().to_string()));
        self
    }

    /// The first value of `key` (case-insensitive, as Asterisk treats it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// Serializes an action for the wire; CR and LF inside keys or values are dropped.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 * self.headers.len());
        for (k, v) in &self.headers {
            let clean = |s: &str| s.replace(['\r', '\n'], "");
            let _ = write!(out, "{}: {}\r\n", clean(k), clean(v));
        }
        out.push_str("\r\n");
        out
    }
}

/// Longest message we accept before deciding the peer is not speaking AMI.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("AMI message longer than {MAX_MESSAGE} bytes")]
    TooLong,
}

/// Incremental decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Headers of the message being read.
    current: Vec<(String, String)>,
    /// Bytes of the current message so far (for the size limit).
    current_len: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, if the bytes fed so far hold one.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        let mut start = 0;
        let result = loop {
            let Some(rel) = self.buf[start..].iter().position(|&b| b == b'\n') else {
                if self.current_len + self.buf.len() - start > MAX_MESSAGE {
                    return Err(DecodeError::TooLong);
                }
                break None;
            };
            let end = start + rel;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            self.current_len += rel + 1;
            start = end + 1;
            if line.is_empty() {
                if self.current.is_empty() {
                    continue; // stray blank line between messages
                }
                self.current_len = 0;
                break Some(Message {
                    headers: std::mem::take(&mut self.current),
                });
            }
            if self.current_len > MAX_MESSAGE {
                return Err(DecodeError::TooLong);
            }
            let text = String::from_utf8_lossy(line);
            match text.split_once(':') {
                Some((k, v)) => {
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    self.current.push((k.to_string(), v.to_string()));
                }
                // A line without a colon (e.g. raw command output): keep it under "".
                None => self.current.push((String::new(), text.into_owned())),
            }
        };
        self.buf.drain(..start);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_messages_split_anywhere() {
        let wire = b"Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            d.feed(&wire[..split]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            d.feed(&wire[split..]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert_eq!(got[0].get("response"), Some("Success"));
            assert_eq!(got[0].action_id(), Some("1"));
            assert_eq!(got[1].event(), Some("FullyBooted"));
            assert_eq!(got[1].get("Status"), Some("Fully Booted"));
        }
    }

    #[test]
    fn keeps_colons_in_values_and_tolerates_bare_lf() {
        let mut d = Decoder::new();
        d.feed(b"Event: ParkedCall\nParkeeChannel: PJSIP/trunk-00000001\nParkerDialString: PJSIP/0003_210\nText: a: b\n\n");
        let m = d.next_message().unwrap().unwrap();
        assert_eq!(m.get("Text"), Some("a: b"));
        assert_eq!(m.get("ParkeeChannel"), Some("PJSIP/trunk-00000001"));
        assert!(d.next_message().unwrap().is_none());
    }

    #[test]
    fn encoder_strips_line_breaks() {
        let m = Message::new()
            .with("Action", "Originate")
            .with("CallerID", "Evil\r\nAction: Logoff <1>");
        assert_eq!(
            m.encode(),
            "Action: Originate\r\nCallerID: EvilAction: Logoff <1>\r\n\r\n"
        );
    }

    #[test]
    fn refuses_endless_garbage() {
        let mut d = Decoder::new();
        d.feed(&vec![b'x'; MAX_MESSAGE + 10]);
        assert_eq!(d.next_message(), Err(DecodeError::TooLong));
    }
}
