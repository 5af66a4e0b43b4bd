//! A small SIP user agent with RTP, to play the sandbox's phones and the public network
//! in end-to-end tests, and to tell a test which audio each call received.
//!
//! One UDP socket per [`Phone`] for SIP (a task routes what arrives by Call-ID), one UDP
//! socket and task per [`Call`] for RTP. Once a call is answered it streams 20 ms PCMA
//! packets (payload type 8, 160 bytes) whose payload is the phone's *marker* byte
//! repeated, and it counts what it receives by payload: a packet whose payload is one
//! byte repeated counts for that byte ([`Call::heard_from`]); anything else (music on
//! hold, tones, prompts, DTMF events) counts as `other`. Asterisk relays PCMA between two
//! PCMA legs unchanged, so a phone hears the other phone's marker. It also counts the
//! ticks of its 20 ms clock, so a test can tell that a silent call had every chance to
//! send ([`Call::wait_ticks`]).
//!
//! No authentication, no TCP, no retransmission timers (loopback does not lose packets);
//! retransmitted requests from Asterisk get the last answer again. Waits panic with a
//! clear message when their timeout passes. Dropping a [`Call`] hangs it up (BYE, CANCEL
//! or 603) and stops its RTP task; dropping a [`Phone`] does that for all its calls and
//! stops its SIP task. `UAPID_PHONE_TRACE=1` prints every SIP message sent and received.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Asterisk's SIP address in the sandbox.
pub const PBX: &str = "127.0.0.1:5060";
/// The calling number of [`Phone::bind_public`].
pub const PUBLIC_NUMBER: &str = "3235742879";
/// The marker byte of [`Phone::bind_public`].
pub const PUBLIC_MARKER: u8 = 0x99;

fn trace(what: impl FnOnce() -> String) {
    if std::env::var_os("UAPID_PHONE_TRACE").is_some() {
        eprintln!("[phone] {}", what());
    }
}

/// A random number (std's randomly keyed hasher over a counter).
fn random() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A fresh tag, branch or Call-ID part.
fn unique() -> String {
    format!("{:016x}", random())
}

/// The marker of a phone: its number modulo 256, moved off A-law silence (0x55, 0xD5).
pub fn marker_for(ext_short: &str) -> u8 {
    let m = (ext_short.parse::<u32>().expect("numeric extension") % 256) as u8;
    if m & 0x7f == 0x55 {
        m ^ 1
    } else {
        m
    }
}

// ---------------------------------------------------------------------------------------
// SIP messages

#[derive(Debug, Clone, Default)]
struct Msg {
    /// The request's method, or the CSeq method of a response.
    method: String,
    /// The status of a response (0 in a request).
    code: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Msg {
    fn parse(data: &[u8]) -> Option<Msg> {
        let text = std::str::from_utf8(data).ok()?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let first = lines.next()?.trim();
        let mut m = Msg::default();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = match name.trim() {
                "i" => "Call-ID",
                "f" => "From",
                "t" => "To",
                "v" => "Via",
                "m" => "Contact",
                "l" => "Content-Length",
                "c" => "Content-Type",
                n => n,
            };
            m.headers.push((name.to_string(), value.trim().to_string()));
        }
        let len = m.header("Content-Length").and_then(|l| l.parse().ok());
        m.body = len.and_then(|l| body.get(..l)).unwrap_or(body).to_string();
        let cseq_method = m.cseq()?.1.to_string();
        m.header("Call-ID")?;
        if let Some(status) = first.strip_prefix("SIP/2.0 ") {
            m.code = status
                .get(..3)?
                .parse()
                .ok()
                .filter(|c| (100..700).contains(c))?;
            m.method = cseq_method;
        } else {
            let mut p = first.split_whitespace();
            m.method = p.next()?.to_string();
            p.next()?; // the Request-URI: any
        }
        Some(m)
    }

    fn header(&self, name: &'static str) -> Option<&str> {
        self.all(name).next()
    }

    fn all(&self, name: &'static str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_default()
    }

    fn cseq(&self) -> Option<(u32, &str)> {
        let (n, method) = self.header("CSeq")?.split_once(' ')?;
        Some((n.trim().parse().ok()?, method.trim()))
    }

    fn cseq_num(&self) -> u32 {
        self.cseq().map(|c| c.0).unwrap_or(0)
    }
}

/// The URI in a From/To/Contact value: inside <...>, or up to the first ';'.
fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

fn has_tag(value: &str) -> bool {
    let params = value.rsplit_once('>').map(|(_, p)| p).unwrap_or(value);
    params.to_ascii_lowercase().contains(";tag=")
}

/// A SIP message: start line, headers (Content-Length added), body.
fn render(first: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = format!("{first}\r\n");
    for (n, v) in headers {
        s += &format!("{n}: {v}\r\n");
    }
    if !body.is_empty() {
        s += "Content-Type: application/sdp\r\n";
    }
    s += &format!(
        "User-Agent: uapid-test-phone\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s
}

// ---------------------------------------------------------------------------------------
// SDP

fn sdp(rtp: SocketAddr, version: u64, held: bool) -> String {
    let (ip, port) = (rtp.ip(), rtp.port());
    let dir = if held { "sendonly" } else { "sendrecv" };
    format!(
        "v=0\r\no=- {port} {version} IN IP4 {ip}\r\ns=uapid-test-phone\r\nc=IN IP4 {ip}\r\n\
         t=0 0\r\nm=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na={dir}\r\n"
    )
}

/// Where the far end wants RTP (None: no audio stream), and its direction attribute.
fn parse_sdp(body: &str) -> Option<(Option<SocketAddr>, String)> {
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut dir = "sendrecv".to_string();
    let mut audio = false;
    for line in body.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = c
                .split('/')
                .next()
                .and_then(|a| a.trim().parse().ok())
                .or(ip);
        } else if let Some(m) = line.strip_prefix("m=") {
            audio = m.starts_with("audio ");
            if audio {
                port = m.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            }
        } else if let Some(a) = line.strip_prefix("a=") {
            if audio && ["sendrecv", "sendonly", "recvonly", "inactive"].contains(&a) {
                dir = a.to_string();
            }
        }
    }
    if !body.contains("m=") {
        return None;
    }
    let to = match (ip, port) {
        (Some(ip), Some(p)) if p != 0 => Some(SocketAddr::new(ip, p)),
        _ => None,
    };
    Some((to, dir))
}

// ---------------------------------------------------------------------------------------
// RTP

/// What a call's RTP socket has sent and received so far.
#[derive(Debug, Clone, Default)]
pub struct RtpStats {
    /// Ticks of the call's 20 ms RTP clock since the call began. Each tick is a moment
    /// the call sends a packet if it is sending, so `ticks` going up while `sent` stays
    /// put shows the call deciding, again and again, not to send.
    pub ticks: u64,
    pub sent: u64,
    pub received: u64,
    /// Received PCMA packets whose payload is one byte repeated, by that byte.
    pub heard: HashMap<u8, u64>,
    /// Every other received packet (music, tones, prompts, DTMF events).
    pub other: u64,
}

#[derive(Default)]
struct Media {
    remote: Option<SocketAddr>,
    far_direction: String,
    sending: bool,
    /// Sends nothing while the call stays up (so a mix Asterisk makes of this call and
    /// others carries the others' markers alone).
    muted: bool,
    stats: RtpStats,
}

/// The payload type and payload of an RTP packet (None for RTCP and garbage).
fn rtp_payload(p: &[u8]) -> Option<(u8, &[u8])> {
    if p.len() < 12 || p[0] >> 6 != 2 || (200..=204).contains(&p[1]) {
        return None;
    }
    let mut start = 12 + 4 * (p[0] & 0x0f) as usize;
    if p[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*p.get(start + 2)?, *p.get(start + 3)?]) as usize;
        start += 4 + 4 * words;
    }
    let mut end = p.len();
    if p[0] & 0x20 != 0 {
        end = end.checked_sub(*p.last()? as usize)?;
    }
    Some((p[1] & 0x7f, p.get(start..end)?))
}

async fn rtp_loop(sock: UdpSocket, media: Arc<Mutex<Media>>, marker: u8) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let r = random();
    let (ssrc, mut seq, mut ts) = (r as u32, (r >> 32) as u16, (r >> 48) as u32 * 160);
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let to = {
                    let mut m = media.lock().unwrap();
                    m.stats.ticks += 1;
                    m.remote.filter(|_| m.sending && !m.muted)
                };
                let Some(to) = to else { continue };
                let mut pkt = vec![0x80, 8];
                pkt.extend_from_slice(&seq.to_be_bytes());
                pkt.extend_from_slice(&ts.to_be_bytes());
                pkt.extend_from_slice(&ssrc.to_be_bytes());
                pkt.resize(12 + 160, marker);
                if sock.send_to(&pkt, to).await.is_ok() {
                    media.lock().unwrap().stats.sent += 1;
                }
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
            }
            r = sock.recv_from(&mut buf) => {
                let Ok((n, _)) = r else { continue };
                let Some((pt, payload)) = rtp_payload(&buf[..n]) else { continue };
                let st = &mut media.lock().unwrap().stats;
                st.received += 1;
                match payload.first() {
                    Some(&b) if pt == 8 && payload.iter().all(|&x| x == b) => {
                        *st.heard.entry(b).or_default() += 1
                    }
                    _ => st.other += 1,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Calls

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// Outgoing, no ringing yet.
    Calling,
    /// Incoming and not answered yet, or outgoing and the far end rings (180/183).
    Ringing,
    Answered,
    Ended(End),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// This side sent BYE.
    HungUpHere,
    /// The far end sent BYE.
    HungUpThere,
    /// This side cancelled its ringing call.
    CancelledHere,
    /// The far end cancelled the call while it rang here.
    CancelledThere,
    /// This side answered an incoming call with this error status.
    RejectedHere(u16),
    /// The far end answered our call with this error status.
    RejectedThere(u16),
}

struct Dialog {
    /// Our side, with tag (From of our requests).
    local: String,
    /// The far side (To of our requests); with tag once the dialog is confirmed.
    remote: String,
    /// Request-URI of our in-dialog requests.
    target: String,
    /// CSeq of our last request.
    cseq: u32,
    /// Via branch of our last INVITE.
    branch: String,
    /// The INVITE being answered here (incoming calls and re-INVITEs).
    invite: Option<Msg>,
    /// CSeq and text of our last response to an INVITE (for retransmitted INVITEs).
    last_reply: Option<(u32, String)>,
    sdp_version: u64,
    held: bool,
}

impl Dialog {
    fn new(local: String, remote: &str, target: &str) -> Dialog {
        Dialog {
            local,
            remote: remote.to_string(),
            target: target.to_string(),
            cseq: 0,
            branch: String::new(),
            invite: None,
            last_reply: None,
            sdp_version: 1,
            held: false,
        }
    }
}

struct CallInner {
    phone: Arc<Shared>,
    /// Where this call's SIP goes: the PBX (or whoever sent the INVITE).
    peer: SocketAddr,
    call_id: String,
    outgoing: bool,
    desc: String,
    marker: u8,
    rtp_addr: SocketAddr,
    state: watch::Sender<CallState>,
    dialog: Mutex<Dialog>,
    media: Arc<Mutex<Media>>,
    rtp_task: JoinHandle<()>,
}

/// One call of a [`Phone`]. Dropping it hangs the call up and ends its RTP task.
pub struct Call(Arc<CallInner>);

impl CallInner {
    fn send(&self, text: &str) {
        self.phone.send(text, self.peer)
    }

    fn state(&self) -> CallState {
        self.state.borrow().clone()
    }

    fn set_state(&self, s: CallState) {
        if matches!(s, CallState::Ended(_)) {
            self.media.lock().unwrap().sending = false;
        }
        self.state.send_replace(s);
    }

    fn our_sdp(&self, d: &Dialog) -> String {
        sdp(self.rtp_addr, d.sdp_version, d.held)
    }

    fn apply_sdp(&self, body: &str) {
        if let Some((to, dir)) = parse_sdp(body) {
            let mut m = self.media.lock().unwrap();
            m.remote = to.or(m.remote);
            m.far_direction = dir;
        }
    }

    /// Our response to `req` in this dialog (our tag in the To of INVITE responses).
    fn reply(&self, d: &Dialog, req: &Msg, code: u16, body: &str) -> String {
        let to = match req.header("To") {
            Some(to) if code == 100 || req.method != "INVITE" => to,
            _ => &d.local,
        };
        let contact = req.method == "INVITE" && (101..300).contains(&code);
        self.phone.response(req, code, to, contact, body)
    }

    /// Answers the INVITE being handled (initial or re-INVITE) and remembers the answer.
    fn reply_invite(&self, d: &mut Dialog, code: u16, with_sdp: bool) {
        let Some(inv) = d.invite.clone() else { return };
        let body = if with_sdp {
            self.our_sdp(d)
        } else {
            String::new()
        };
        let text = self.reply(d, &inv, code, &body);
        d.last_reply = Some((inv.cseq_num(), text.clone()));
        self.send(&text);
    }

    /// A request of ours in this dialog, with the given CSeq number, Via branch and To.
    fn request(&self, d: &Dialog, method: &str, cseq: u32, branch: &str, to: &str) -> String {
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.phone.addr);
        let cseq = format!("{cseq} {method}");
        let contact = self.phone.contact();
        let mut h = vec![
            ("Via", via.as_str()),
            ("Max-Forwards", "70"),
            ("From", &d.local),
            ("To", to),
            ("Call-ID", &self.call_id),
            ("CSeq", &cseq),
        ];
        let body = if method == "INVITE" {
            h.push(("Contact", &contact));
            h.push(("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, INFO"));
            self.our_sdp(d)
        } else {
            String::new()
        };
        render(&format!("{method} {} SIP/2.0", d.target), &h, &body)
    }

    /// Sends a new request in this dialog (INVITE with our SDP, or BYE).
    fn send_request(&self, d: &mut Dialog, method: &str) {
        d.cseq += 1;
        let branch = format!("z9hG4bK{}", unique());
        if method == "INVITE" {
            d.branch = branch.clone();
        }
        self.send(&self.request(d, method, d.cseq, &branch, &d.remote));
    }

    /// Sends the ACK of a final response to our INVITE: a transaction of its own after a
    /// 2xx, the INVITE's otherwise.
    fn send_ack(&self, d: &Dialog, resp: &Msg) {
        let branch = match resp.code {
            200..=299 => format!("z9hG4bK{}", unique()),
            _ => d.branch.clone(),
        };
        let to = resp.header("To").unwrap_or(&d.remote);
        self.send(&self.request(d, "ACK", resp.cseq_num(), &branch, to));
    }

    // State changes happen with the dialog locked: the SIP task changes it too.

    /// Answers (200) or refuses (an error status) an incoming call that rings.
    fn respond(&self, code: u16) -> Result<(), CallState> {
        let mut d = self.dialog.lock().unwrap();
        let st = self.state();
        if self.outgoing || st != CallState::Ringing {
            return Err(st);
        }
        self.reply_invite(&mut d, code, code == 200);
        if code == 200 {
            self.media.lock().unwrap().sending = true;
            self.set_state(CallState::Answered);
        } else {
            self.set_state(CallState::Ended(End::RejectedHere(code)));
        }
        Ok(())
    }

    fn hangup(&self) {
        let mut d = self.dialog.lock().unwrap();
        match self.state() {
            CallState::Answered => {
                self.send_request(&mut d, "BYE");
                self.set_state(CallState::Ended(End::HungUpHere));
            }
            CallState::Calling | CallState::Ringing if self.outgoing => {
                let cancel = self.request(&d, "CANCEL", d.cseq, &d.branch, &d.remote);
                self.send(&cancel);
                self.set_state(CallState::Ended(End::CancelledHere));
            }
            CallState::Ringing => {
                self.reply_invite(&mut d, 603, false);
                self.set_state(CallState::Ended(End::RejectedHere(603)));
            }
            _ => {}
        }
    }

    fn reinvite(&self, held: bool) {
        let mut d = self.dialog.lock().unwrap();
        d.held = held;
        d.sdp_version += 1;
        self.send_request(&mut d, "INVITE");
        self.media.lock().unwrap().sending = !held;
    }

    /// A request from the far end in this call.
    fn on_request(&self, req: &Msg) {
        let mut d = self.dialog.lock().unwrap();
        let answer = |code: u16| self.send(&self.reply(&d, req, code, ""));
        match req.method.as_str() {
            "INVITE" => {
                if let Some((cseq, text)) = &d.last_reply {
                    if *cseq == req.cseq_num() {
                        return self.send(text);
                    }
                }
                if self.state() != CallState::Answered {
                    return answer(491);
                }
                self.apply_sdp(&req.body);
                if let Some(c) = req.header("Contact") {
                    d.target = uri_of(c).to_string();
                }
                d.invite = Some(req.clone());
                self.reply_invite(&mut d, 200, true);
            }
            "ACK" => self.apply_sdp(&req.body),
            "BYE" => {
                answer(200);
                if !matches!(self.state(), CallState::Ended(_)) {
                    self.set_state(CallState::Ended(End::HungUpThere));
                }
            }
            "CANCEL" => {
                answer(200);
                if !self.outgoing && self.state() == CallState::Ringing {
                    self.reply_invite(&mut d, 487, false);
                    self.set_state(CallState::Ended(End::CancelledThere));
                }
            }
            "UPDATE" => {
                self.apply_sdp(&req.body);
                let body = if req.body.is_empty() {
                    String::new()
                } else {
                    self.our_sdp(&d)
                };
                self.send(&self.reply(&d, req, 200, &body));
            }
            "OPTIONS" | "NOTIFY" | "INFO" => answer(200),
            m => {
                trace(|| format!("{}: {m} not handled", self.desc));
                answer(501);
            }
        }
    }

    /// A response to one of our requests in this call.
    fn on_response(&self, resp: &Msg) {
        let mut d = self.dialog.lock().unwrap();
        if resp.method != "INVITE" || resp.cseq_num() != d.cseq {
            return; // BYE, CANCEL, or an old transaction
        }
        let st = self.state();
        match resp.code {
            100 => {}
            101..=199 => {
                self.apply_sdp(&resp.body);
                if st == CallState::Calling {
                    self.set_state(CallState::Ringing);
                }
            }
            200..=299 => {
                if let Some(to) = resp.header("To").filter(|to| has_tag(to)) {
                    d.remote = to.to_string();
                }
                if let Some(c) = resp.header("Contact") {
                    d.target = uri_of(c).to_string();
                }
                self.apply_sdp(&resp.body);
                self.send_ack(&d, resp);
                match st {
                    CallState::Calling | CallState::Ringing => {
                        self.media.lock().unwrap().sending = true;
                        self.set_state(CallState::Answered);
                    }
                    CallState::Ended(_) => {
                        // Answered while we cancelled: end it properly.
                        self.send_request(&mut d, "BYE");
                    }
                    CallState::Answered => {}
                }
            }
            code => {
                self.send_ack(&d, resp);
                if matches!(st, CallState::Calling | CallState::Ringing) {
                    self.set_state(CallState::Ended(End::RejectedThere(code)));
                }
            }
        }
    }
}

impl Call {
    /// The state now.
    pub fn state(&self) -> CallState {
        self.0.state()
    }

    /// Who calls whom, for messages.
    pub fn describe(&self) -> &str {
        &self.0.desc
    }

    /// The marker byte this call sends.
    pub fn marker(&self) -> u8 {
        self.0.marker
    }

    /// The far end's last SDP direction attribute (sendrecv, sendonly, ...).
    pub fn far_direction(&self) -> String {
        self.0.media.lock().unwrap().far_direction.clone()
    }

    /// Answers an incoming ringing call (200 with SDP); starts sending RTP.
    pub fn answer(&self) {
        if let Err(st) = self.0.respond(200) {
            panic!("{}: cannot answer in state {st:?}", self.0.desc);
        }
    }

    /// Answers an incoming call if it still rings; otherwise says in which state it is
    /// (for a test whose phones answer while the PBX may cancel at any moment).
    pub fn try_answer(&self) -> Result<(), CallState> {
        self.0.respond(200)
    }

    /// Refuses an incoming call with `code` if it still rings (see [`Call::try_answer`]).
    pub fn try_reject(&self, code: u16) -> Result<(), CallState> {
        assert!(code >= 300, "{}: reject with {code}", self.0.desc);
        self.0.respond(code)
    }

    /// The SIP Call-ID of its dialog (Asterisk's `CHANNEL(pjsip,call-id)` of its channel).
    pub fn sip_call_id(&self) -> &str {
        &self.0.call_id
    }

    /// Refuses an incoming ringing call with `code` (486, 603, ...).
    pub fn reject(&self, code: u16) {
        assert!(code >= 300, "{}: reject with {code}", self.0.desc);
        if let Err(st) = self.0.respond(code) {
            panic!("{}: cannot reject in state {st:?}", self.0.desc);
        }
    }

    /// Ends the call: BYE once answered, CANCEL while our call rings, 603 for an incoming
    /// call that rings here. Does nothing once it has ended.
    pub fn hangup(&self) {
        self.0.hangup()
    }

    /// Puts the far end on hold (re-INVITE with a=sendonly) and stops sending RTP.
    pub fn hold(&self) {
        assert_eq!(self.state(), CallState::Answered, "{}: hold", self.0.desc);
        self.0.reinvite(true)
    }

    /// Takes the far end off hold (re-INVITE with a=sendrecv) and sends RTP again.
    pub fn unhold(&self) {
        assert_eq!(self.state(), CallState::Answered, "{}: unhold", self.0.desc);
        self.0.reinvite(false)
    }

    /// Waits until the state satisfies `pred`; panics after `timeout`.
    pub async fn wait_state(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&CallState) -> bool,
    ) -> CallState {
        let mut rx = self.0.state.subscribe();
        let got = match tokio::time::timeout(timeout, rx.wait_for(|s| pred(s))).await {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        };
        got.unwrap_or_else(|| {
            panic!(
                "{}: no {what} within {timeout:?}; state {:?}",
                self.0.desc,
                self.state()
            )
        })
    }

    /// Waits until the far end rings (180/183) or answers.
    pub async fn wait_ringing(&self, timeout: Duration) {
        let s = self
            .wait_state("ringing", timeout, |s| *s != CallState::Calling)
            .await;
        assert!(
            !matches!(s, CallState::Ended(_)),
            "{}: ended ({s:?}) instead of ringing",
            self.0.desc
        );
    }

    /// Waits until the call is answered; panics if it ends first.
    pub async fn wait_answered(&self, timeout: Duration) {
        let s = self
            .wait_state("answer", timeout, |s| {
                matches!(s, CallState::Answered | CallState::Ended(_))
            })
            .await;
        assert_eq!(s, CallState::Answered, "{}: ended unanswered", self.0.desc);
    }

    /// Waits until the call has ended; returns how.
    pub async fn wait_ended(&self, timeout: Duration) -> End {
        match self
            .wait_state("end", timeout, |s| matches!(s, CallState::Ended(_)))
            .await
        {
            CallState::Ended(e) => e,
            s => unreachable!("{s:?}"),
        }
    }

    /// RTP counters so far.
    pub fn rtp(&self) -> RtpStats {
        self.0.media.lock().unwrap().stats.clone()
    }

    /// Stops (or resumes) sending audio, the call otherwise unchanged.
    pub fn mute(&self, muted: bool) {
        self.0.media.lock().unwrap().muted = muted;
    }

    /// Received packets whose payload is `marker` repeated.
    pub fn heard_from(&self, marker: u8) -> u64 {
        self.rtp().heard.get(&marker).copied().unwrap_or(0)
    }

    /// Polls the RTP counters every 20 ms until `pred` holds; panics after `timeout`.
    pub async fn wait_rtp(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&RtpStats) -> bool,
    ) -> RtpStats {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let st = self.rtp();
            if pred(&st) {
                return st;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: no {what} within {timeout:?}; state {:?}, RTP {st:?}",
                self.0.desc,
                self.state()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the call's RTP clock has ticked `n` more times (`n` × 20 ms of its
    /// own time, each a moment it would send if it were sending); returns the counters.
    pub async fn wait_ticks(&self, n: u64, timeout: Duration) -> RtpStats {
        let until = self.rtp().ticks + n;
        self.wait_rtp(&format!("{n} RTP clock ticks"), timeout, |s| {
            s.ticks >= until
        })
        .await
    }

    /// Waits until at least `n` packets of `marker` have arrived (in all).
    pub async fn wait_heard(&self, marker: u8, n: u64, timeout: Duration) -> RtpStats {
        let what = format!("{n} packets of marker {marker:#04x}");
        self.wait_rtp(&what, timeout, |s| {
            s.heard.get(&marker).copied().unwrap_or(0) >= n
        })
        .await
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.0.hangup();
        self.0.rtp_task.abort();
        self.0.phone.calls.lock().unwrap().remove(&self.0.call_id);
    }
}

// ---------------------------------------------------------------------------------------
// Phones

struct Shared {
    /// Receives (the SIP task).
    sock: UdpSocket,
    /// Sends, at once from any thread (tokio's `try_send_to` fails until the socket
    /// was first polled as writable).
    tx: std::net::UdpSocket,
    addr: SocketAddr,
    /// From user of our calls: the endpoint name, or the public number.
    user: String,
    pbx: SocketAddr,
    marker: u8,
    auto_answer: Mutex<Option<Duration>>,
    calls: Mutex<HashMap<String, Arc<CallInner>>>,
}

impl Shared {
    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.addr)
    }

    /// A response to `req` with `to` as To (and our Contact if `contact`).
    fn response(&self, req: &Msg, code: u16, to: &str, contact: bool, body: &str) -> String {
        let reason = match code {
            100 => "Trying",
            180 => "Ringing",
            200 => "OK",
            481 => "Call/Transaction Does Not Exist",
            486 => "Busy Here",
            487 => "Request Terminated",
            491 => "Request Pending",
            501 => "Not Implemented",
            500 => "Server Internal Error",
            603 => "Decline",
            _ => "Refused",
        };
        let mut h: Vec<(&str, &str)> = req.all("Via").map(|v| ("Via", v)).collect();
        h.extend([
            ("From", req.header("From").unwrap_or_default()),
            ("To", to),
            ("Call-ID", req.call_id()),
            ("CSeq", req.header("CSeq").unwrap_or_default()),
        ]);
        let contact_value = self.contact();
        if contact {
            h.push(("Contact", &contact_value));
        }
        render(&format!("SIP/2.0 {code} {reason}"), &h, body)
    }

    fn send(&self, text: &str, to: SocketAddr) {
        trace(|| format!("{} → {to}\n{text}", self.addr));
        if let Err(e) = self.tx.send_to(text.as_bytes(), to) {
            trace(|| format!("{}: send failed: {e}", self.addr));
        }
    }

    fn new_call(
        self: &Arc<Self>,
        peer: SocketAddr,
        call_id: String,
        outgoing: bool,
        desc: String,
        dialog: Dialog,
        state: CallState,
    ) -> std::io::Result<Arc<CallInner>> {
        let std_sock = std::net::UdpSocket::bind((self.addr.ip(), 0))?;
        std_sock.set_nonblocking(true)?;
        let sock = UdpSocket::from_std(std_sock)?;
        let rtp_addr = sock.local_addr()?;
        let media = Arc::new(Mutex::new(Media::default()));
        let marker = self.marker;
        let rtp_task = tokio::spawn(rtp_loop(sock, media.clone(), marker));
        let call = Arc::new(CallInner {
            phone: self.clone(),
            peer,
            call_id: call_id.clone(),
            outgoing,
            desc,
            marker,
            rtp_addr,
            state: watch::Sender::new(state),
            dialog: Mutex::new(dialog),
            media,
            rtp_task,
        });
        self.calls.lock().unwrap().insert(call_id, call.clone());
        Ok(call)
    }

    /// A request outside any call we know.
    fn on_new_request(
        self: &Arc<Self>,
        req: &Msg,
        src: SocketAddr,
        incoming: &mpsc::UnboundedSender<Call>,
    ) {
        let to = req.header("To").unwrap_or_default();
        let stateless = |code: u16| {
            let to = match has_tag(to) {
                true => to.to_string(),
                false => format!("{to};tag={}", unique()),
            };
            self.send(&self.response(req, code, &to, false, ""), src);
        };
        match req.method.as_str() {
            "INVITE" if !has_tag(to) => {}
            "ACK" => return,
            "OPTIONS" | "NOTIFY" | "INFO" => return stateless(200),
            _ => return stateless(481),
        }
        let from = req.header("From").unwrap_or_default();
        let target = uri_of(req.header("Contact").unwrap_or(from));
        let mut dialog = Dialog::new(format!("{to};tag={}", unique()), from, target);
        dialog.invite = Some(req.clone());
        let desc = format!("{} called by {}", self.user, uri_of(from));
        let state = CallState::Ringing;
        let call = match self.new_call(src, req.call_id().to_string(), false, desc, dialog, state) {
            Ok(c) => c,
            Err(e) => {
                trace(|| format!("{}: no RTP socket: {e}", self.addr));
                return stateless(500);
            }
        };
        call.apply_sdp(&req.body);
        {
            let mut d = call.dialog.lock().unwrap();
            call.send(&call.reply(&d, req, 100, ""));
            call.reply_invite(&mut d, 180, false);
        }
        match *self.auto_answer.lock().unwrap() {
            Some(delay) if delay.is_zero() => {
                let _ = call.respond(200);
            }
            Some(delay) => {
                // Weak: a dropped call or phone must not stay alive (and bound) until then.
                let c = Arc::downgrade(&call);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(c) = c.upgrade() {
                        let _ = c.respond(200);
                    }
                });
            }
            None => {}
        }
        let _ = incoming.send(Call(call));
    }
}

async fn sip_loop(shared: Arc<Shared>, incoming: mpsc::UnboundedSender<Call>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = shared.sock.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some(msg) = Msg::parse(&buf[..n]) else {
            trace(|| format!("{}: not SIP from {from}: {:?}", shared.addr, &buf[..n]));
            continue;
        };
        trace(|| {
            format!(
                "{} ← {from}\n{}",
                shared.addr,
                String::from_utf8_lossy(&buf[..n])
            )
        });
        let call = shared.calls.lock().unwrap().get(msg.call_id()).cloned();
        match call {
            Some(c) if msg.code != 0 => c.on_response(&msg),
            Some(c) => c.on_request(&msg),
            None if msg.code == 0 => shared.on_new_request(&msg, from, &incoming),
            None => trace(|| format!("{}: stray response {}", shared.addr, msg.code)),
        }
    }
}

/// A SIP phone on its own UDP port.
pub struct Phone {
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedReceiver<Call>,
    task: JoinHandle<()>,
}

impl Phone {
    /// Phone `0003_<ext>` on 127.0.0.1:(5000 + ext), its static contact in pjsip.conf;
    /// marker [`marker_for`]`(ext)`.
    pub async fn bind(ext_short: &str) -> Phone {
        let port = 5000 + ext_short.parse::<u16>().expect("numeric extension");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Phone::bind_at(addr, &format!("0003_{ext_short}"), marker_for(ext_short)).await
    }

    /// The public network at 127.0.0.2:5060 (the trunk's contact), calling as
    /// [`PUBLIC_NUMBER`]; marker [`PUBLIC_MARKER`].
    pub async fn bind_public() -> Phone {
        let addr = SocketAddr::from(([127, 0, 0, 2], 5060));
        Phone::bind_at(addr, PUBLIC_NUMBER, PUBLIC_MARKER).await
    }

    /// A phone on `addr` whose calls come from `user`. Retries a port still in use for
    /// up to 5 s (a phone just dropped, whose task is being cancelled).
    pub async fn bind_at(addr: SocketAddr, user: &str, marker: u8) -> Phone {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let tx = loop {
            match std::net::UdpSocket::bind(addr) {
                Ok(s) => break s,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    trace(|| format!("bind {addr}: {e}; retrying"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("phone {user}: cannot bind {addr}: {e}"),
            }
        };
        let addr = tx.local_addr().expect("bound address");
        let sock = tx
            .try_clone()
            .and_then(|s| s.set_nonblocking(true).map(|_| s))
            .and_then(UdpSocket::from_std)
            .expect("SIP socket");
        let shared = Arc::new(Shared {
            sock,
            tx,
            addr,
            user: user.to_string(),
            pbx: PBX.parse().expect("PBX address"),
            marker,
            auto_answer: Mutex::new(None),
            calls: Mutex::new(HashMap::new()),
        });
        let (tx, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(sip_loop(shared.clone(), tx));
        Phone {
            shared,
            incoming,
            task,
        }
    }

    /// Its SIP address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The marker byte of this phone's calls.
    pub fn marker(&self) -> u8 {
        self.shared.marker
    }

    /// Answer incoming calls by themselves after `delay` of ringing (None: do not).
    /// They are still queued for [`Phone::next_call`].
    pub fn auto_answer(&self, delay: Option<Duration>) {
        *self.shared.auto_answer.lock().unwrap() = delay;
    }

    /// The next incoming call (ringing, unless auto-answered); panics after `timeout`.
    pub async fn next_call(&mut self, timeout: Duration) -> Call {
        match tokio::time::timeout(timeout, self.incoming.recv()).await {
            Ok(Some(c)) => c,
            _ => panic!(
                "phone {}: no incoming call within {timeout:?}",
                self.shared.user
            ),
        }
    }

    /// The next incoming call if one has come, without waiting.
    pub fn try_next_call(&mut self) -> Option<Call> {
        self.incoming.try_recv().ok()
    }

    /// How many incoming calls wait for [`Phone::next_call`].
    pub fn incoming(&self) -> usize {
        self.incoming.len()
    }

    /// Calls `number` (an extension, a full number, a public number) through the PBX.
    pub fn dial(&self, number: &str) -> Call {
        let s = &self.shared;
        let target = format!("sip:{number}@{}", s.pbx);
        let local = format!("<sip:{}@{}>;tag={}", s.user, s.addr, unique());
        let dialog = Dialog::new(local, &format!("<{target}>"), &target);
        let call_id = format!("{}@{}", unique(), s.addr.ip());
        let desc = format!("{} calling {number}", s.user);
        let call = s
            .new_call(s.pbx, call_id, true, desc, dialog, CallState::Calling)
            .expect("RTP socket");
        call.send_request(&mut call.dialog.lock().unwrap(), "INVITE");
        Call(call)
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.task.abort();
        let calls = std::mem::take(&mut *self.shared.calls.lock().unwrap());
        for c in calls.values() {
            c.hangup();
            c.rtp_task.abort();
        }
    }
}
