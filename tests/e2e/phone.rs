//! End to end: the test phone (sip_phone.rs) against the sandbox Asterisk. Calls
//! set up and tear down both ways, and each party hears the other's marker in the RTP.

use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::sip_phone::*;

/// Packets of a marker that prove audio flows: 2 s of 20 ms packets.
const HEARD: u64 = 100;

/// Both calls hear each other's marker, and (almost) nothing else.
async fn assert_talking(a: &Call, a_marker: u8, b: &Call, b_marker: u8) {
    let t = Instant::now();
    let sa = a.wait_heard(b_marker, HEARD, WAIT).await;
    let sb = b.wait_heard(a_marker, HEARD, WAIT).await;
    eprintln!(
        "{} heard {:?}, {} heard {:?} ({:?})",
        a.describe(),
        sa,
        b.describe(),
        sb,
        t.elapsed()
    );
    for (c, s, own) in [(a, &sa, a_marker), (b, &sb, b_marker)] {
        assert_eq!(s.heard.get(&own), None, "{}: hears itself", c.describe());
        assert!(s.other <= 5, "{}: unexpected audio {s:?}", c.describe());
    }
}

#[tokio::test]
async fn phone_calls_phone_and_they_hear_each_other() {
    let _pbx = Pbx::take().await;
    let t = Instant::now();
    let p211 = Phone::bind("211").await;
    let mut p212 = Phone::bind("212").await;

    let out = p211.dial("212");
    let inc = p212.next_call(WAIT).await;
    assert_eq!(inc.state(), CallState::Ringing);
    out.wait_ringing(WAIT).await;
    // No audio while it rings, on either side. The witness that the ringing lasted long
    // enough for audio to show: once both sides know the call rings, each call's RTP
    // clock ticks 15 more times (300 ms of its own time), each tick a moment at which a
    // call that sends would send a packet. Neither sent, nor received, anything.
    let (o, i) = tokio::join!(out.wait_ticks(15, WAIT), inc.wait_ticks(15, WAIT));
    for (c, st) in [(&out, o), (&inc, i)] {
        assert_eq!((st.sent, st.received), (0, 0), "{}: {st:?}", c.describe());
    }
    assert_eq!(out.rtp().sent, 0, "no audio before the answer");
    inc.answer();
    out.wait_answered(WAIT).await;
    assert_eq!(inc.state(), CallState::Answered);

    assert_talking(&out, p211.marker(), &inc, p212.marker()).await;

    out.hangup();
    assert_eq!(inc.wait_ended(WAIT).await, End::HungUpThere);
    assert_eq!(out.state(), CallState::Ended(End::HungUpHere));
    eprintln!("whole call: {:?}", t.elapsed());
}

#[tokio::test]
async fn callee_hangs_up_and_audio_stops() {
    let _pbx = Pbx::take().await;
    let p211 = Phone::bind("211").await;
    let mut p212 = Phone::bind("212").await;
    p212.auto_answer(Some(Duration::from_millis(200)));

    let out = p211.dial("212");
    out.wait_answered(WAIT).await;
    let inc = p212.next_call(WAIT).await;
    assert_eq!(inc.state(), CallState::Answered);
    assert_talking(&out, p211.marker(), &inc, p212.marker()).await;

    inc.hangup();
    assert_eq!(out.wait_ended(WAIT).await, End::HungUpThere);
    assert_eq!(inc.state(), CallState::Ended(End::HungUpHere));
    // Both stop sending; Asterisk has nothing left to relay. Witnesses: Asterisk has torn
    // both legs down (no channel left in ARI); after that, each call's RTP clock ticks 10
    // more times (200 ms of its own time, each tick a moment it would send if it still
    // did) with no packet sent and none received.
    eventually("no channels left", || async {
        ari()
            .channels()
            .await
            .expect("ARI")
            .is_empty()
            .then_some(())
    })
    .await;
    let (a, b) = (out.rtp(), inc.rtp());
    let (a2, b2) = tokio::join!(out.wait_ticks(10, WAIT), inc.wait_ticks(10, WAIT));
    assert_eq!(out.rtp().sent, a.sent);
    assert_eq!(inc.rtp().sent, b.sent);
    for (c, before, after) in [(&out, a, a2), (&inc, b, b2)] {
        assert_eq!(
            after.received,
            before.received,
            "{}: audio after the end",
            c.describe()
        );
    }
}

#[tokio::test]
async fn caller_cancels_while_it_rings() {
    let _pbx = Pbx::take().await;
    let p211 = Phone::bind("211").await;
    let mut p212 = Phone::bind("212").await;

    let out = p211.dial("212");
    let inc = p212.next_call(WAIT).await;
    out.wait_ringing(WAIT).await;
    out.hangup();
    assert_eq!(out.state(), CallState::Ended(End::CancelledHere));
    assert_eq!(inc.wait_ended(WAIT).await, End::CancelledThere);
    eventually("no channels left", || async {
        ari()
            .channels()
            .await
            .expect("ARI")
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!((out.rtp().sent, inc.rtp().sent), (0, 0));
}

#[tokio::test]
async fn callee_rejects_busy() {
    let _pbx = Pbx::take().await;
    let p211 = Phone::bind("211").await;
    let mut p212 = Phone::bind("212").await;

    let out = p211.dial("212");
    let inc = p212.next_call(WAIT).await;
    inc.reject(486);
    assert_eq!(inc.state(), CallState::Ended(End::RejectedHere(486)));
    let end = out.wait_ended(WAIT).await;
    assert!(matches!(end, End::RejectedThere(_)), "{end:?}");
    eprintln!("caller got {end:?}");
}

#[tokio::test]
async fn public_network_calls_in_and_out_through_the_trunk() {
    let _pbx = Pbx::take().await;
    let mut public = Phone::bind_public().await;
    let mut p211 = Phone::bind("211").await;

    // In: 3235742879 calls 211.
    p211.auto_answer(Some(Duration::ZERO));
    let out = public.dial("211");
    out.wait_answered(WAIT).await;
    let inc = p211.next_call(WAIT).await;
    assert!(inc.describe().contains(PUBLIC_NUMBER), "{}", inc.describe());
    assert_talking(&out, PUBLIC_MARKER, &inc, p211.marker()).await;
    out.hangup();
    assert_eq!(inc.wait_ended(WAIT).await, End::HungUpThere);

    // Out: 211 calls a public number; the public network answers.
    p211.auto_answer(None);
    let out = p211.dial("3235740000");
    let inc = public.next_call(WAIT).await;
    inc.answer();
    out.wait_answered(WAIT).await;
    assert_talking(&out, p211.marker(), &inc, PUBLIC_MARKER).await;
    out.hangup();
    assert_eq!(inc.wait_ended(WAIT).await, End::HungUpThere);
}

#[tokio::test]
async fn held_party_hears_music_not_the_holder() {
    let _pbx = Pbx::take().await;
    let p211 = Phone::bind("211").await;
    let mut p212 = Phone::bind("212").await;
    let (m211, m212) = (p211.marker(), p212.marker());
    p212.auto_answer(Some(Duration::ZERO));
    let out = p211.dial("212");
    out.wait_answered(WAIT).await;
    let inc = p212.next_call(WAIT).await;
    assert_talking(&out, m211, &inc, m212).await;

    // 211 holds (re-INVITE a=sendonly): 212 gets music on hold, and 211's marker no more.
    let t = Instant::now();
    out.hold();
    eventually("Asterisk's a=recvonly answer", || async {
        (out.far_direction() == "recvonly").then_some(())
    })
    .await;
    let before = inc.rtp();
    let during = inc
        .wait_rtp("music on hold", WAIT, |s| s.other >= before.other + HEARD)
        .await;
    let leaked = during.heard.get(&m211).copied().unwrap_or(0)
        - before.heard.get(&m211).copied().unwrap_or(0);
    assert!(leaked <= 5, "held party still hears the holder: {during:?}");
    eprintln!("music on hold after {:?}: {during:?}", t.elapsed());

    // Off hold: they hear each other again.
    out.unhold();
    let n = inc.heard_from(m211);
    inc.wait_heard(m211, n + HEARD, WAIT).await;
    let n = out.heard_from(m212);
    out.wait_heard(m212, n + HEARD, WAIT).await;
    out.hangup();
    assert_eq!(inc.wait_ended(WAIT).await, End::HungUpThere);
}

#[tokio::test]
async fn dropping_a_phone_hangs_up_and_frees_its_port() {
    let _pbx = Pbx::take().await;
    let mut p212 = Phone::bind("212").await;
    p212.auto_answer(Some(Duration::ZERO));
    let p211 = Phone::bind("211").await;
    let out = p211.dial("212");
    out.wait_answered(WAIT).await;
    let inc = p212.next_call(WAIT).await;

    drop(p211);
    assert_eq!(out.state(), CallState::Ended(End::HungUpHere));
    assert_eq!(inc.wait_ended(WAIT).await, End::HungUpThere);
    drop(out);

    // The port is free again: a new phone 211 calls at once.
    let t = Instant::now();
    let p211 = Phone::bind("211").await;
    eprintln!("211 bound again after {:?}", t.elapsed());
    let out = p211.dial("212");
    out.wait_answered(WAIT).await;
    let inc = p212.next_call(WAIT).await;
    assert_talking(&out, p211.marker(), &inc, p212.marker()).await;
}

// ---------------------------------------------------------------------------------------
// The phone alone, with a test socket in the PBX's place (no Asterisk, no shared port).

async fn recv(sock: &tokio::net::UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("a datagram within 5 s")
        .expect("recv");
    buf.truncate(n);
    buf
}

async fn recv_sip(sock: &tokio::net::UdpSocket) -> String {
    String::from_utf8(recv(sock).await).expect("UTF-8")
}

/// A request from the fake PBX at port `from`.
fn request(first: &str, call_id: &str, cseq: &str, from: u16, body: &str) -> String {
    format!(
        "{first}\r\nVia: SIP/2.0/UDP 127.0.0.1:{from};branch=z9hG4bK-{call_id}-{cseq}\r\n\
         From: <sip:pbx@127.0.0.1>;tag=pbx\r\nTo: <sip:odd@127.0.0.1>\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq}\r\nContact: <sip:pbx@127.0.0.1:{from}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn offer(rtp_port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0 8 101\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n"
    )
}

#[tokio::test]
async fn odd_sip_is_answered_or_ignored_and_reinvites_move_the_media() {
    let mut phone = Phone::bind_at("127.0.0.1:0".parse().unwrap(), "odd", 0x42).await;
    let to = phone.addr();
    let pbx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = pbx.local_addr().unwrap().port();
    let rtp1 = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp2 = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let send = |text: String| {
        let pbx = &pbx;
        async move { pbx.send_to(text.as_bytes(), to).await.unwrap() }
    };

    // Garbage, requests without Call-ID or CSeq, a response for no call: ignored.
    for junk in [
        "\u{0}\u{1}\u{2}".to_string(),
        "INVITE sip:x SIP/2.0\r\nCall-ID: c\r\n\r\n".into(),
        "SIP/2.0 200 OK\r\nCall-ID: nobody\r\nCSeq: 1 INVITE\r\n\r\n".into(),
        "SIP/2.0 2x\r\nCall-ID: c\r\nCSeq: x\r\n\r\n".into(),
        "BYE\r\n\r\n".into(),
    ] {
        send(junk).await;
    }
    // OPTIONS: 200. A BYE for no call: 481.
    send(request(
        "OPTIONS sip:odd@127.0.0.1 SIP/2.0",
        "opt",
        "1 OPTIONS",
        port,
        "",
    ))
    .await;
    let r = recv_sip(&pbx).await;
    assert!(
        r.starts_with("SIP/2.0 200 OK\r\n") && r.contains("Call-ID: opt\r\n"),
        "{r}"
    );
    send(request(
        "BYE sip:odd@127.0.0.1 SIP/2.0",
        "none",
        "1 BYE",
        port,
        "",
    ))
    .await;
    assert!(recv_sip(&pbx).await.starts_with("SIP/2.0 481 "));

    // A call: 100, 180; answered, 200 with PCMA; RTP of the marker to the offered port.
    let rtp1_port = rtp1.local_addr().unwrap().port();
    let invite = request(
        "INVITE sip:odd@127.0.0.1 SIP/2.0",
        "c1",
        "1 INVITE",
        port,
        &offer(rtp1_port),
    );
    send(invite.clone()).await;
    let call = phone.next_call(WAIT).await;
    assert!(recv_sip(&pbx).await.starts_with("SIP/2.0 100 "));
    assert!(recv_sip(&pbx).await.starts_with("SIP/2.0 180 "));
    send(invite).await; // a retransmission gets the 180 again
    assert!(recv_sip(&pbx).await.starts_with("SIP/2.0 180 "));
    call.answer();
    let ok = recv_sip(&pbx).await;
    assert!(
        ok.starts_with("SIP/2.0 200 OK\r\n") && ok.contains("a=rtpmap:8 PCMA/8000"),
        "{ok}"
    );
    let phone_rtp: u16 = ok
        .split("m=audio ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port");
    let pkt = recv(&rtp1).await;
    assert_eq!(pkt.len(), 12 + 160);
    assert_eq!((pkt[0], pkt[1] & 0x7f), (0x80, 8));
    assert!(pkt[12..].iter().all(|&b| b == 0x42));

    // What arrives at the phone's RTP port is counted by payload.
    let mut hello = pkt.clone();
    hello[12..].fill(0x33);
    rtp1.send_to(&hello, ("127.0.0.1", phone_rtp))
        .await
        .unwrap();
    hello[20] = 0;
    rtp1.send_to(&hello, ("127.0.0.1", phone_rtp))
        .await
        .unwrap();
    rtp1.send_to(b"short", ("127.0.0.1", phone_rtp))
        .await
        .unwrap();
    let st = call.wait_rtp("2 packets", WAIT, |s| s.received == 2).await;
    assert_eq!((st.heard.get(&0x33), st.other), (Some(&1), 1), "{st:?}");

    // A re-INVITE moves the media: 200 with our SDP again, RTP then goes to rtp2.
    let rtp2_port = rtp2.local_addr().unwrap().port();
    send(request(
        "INVITE sip:odd@127.0.0.1 SIP/2.0",
        "c1",
        "2 INVITE",
        port,
        &offer(rtp2_port),
    ))
    .await;
    let ok2 = recv_sip(&pbx).await;
    assert!(
        ok2.starts_with("SIP/2.0 200 OK\r\n") && ok2.contains("m=audio "),
        "{ok2}"
    );
    let pkt = recv(&rtp2).await;
    assert!(pkt[12..].iter().all(|&b| b == 0x42));

    // BYE: 200, and the call has ended; the phone sends no more RTP.
    send(request(
        "BYE sip:odd@127.0.0.1 SIP/2.0",
        "c1",
        "3 BYE",
        port,
        "",
    ))
    .await;
    assert!(recv_sip(&pbx).await.starts_with("SIP/2.0 200 OK\r\n"));
    assert_eq!(call.wait_ended(WAIT).await, End::HungUpThere);
    // The witness that it had the chance to send: its RTP clock ticks 5 more times
    // (100 ms of its own time, each tick a moment it would send if it still did).
    let sent = call.rtp().sent;
    call.wait_ticks(5, WAIT).await;
    assert_eq!(call.rtp().sent, sent);
}
