//! SIPp user agents (scenarios in tests/sip/) run inside the sandbox: phones that answer
//! or only ring, the public network behind the trunk, and callers.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::{sandbox_script, REPO, WAIT};

/// A SIPp process; killed when dropped.
pub struct Sipp {
    child: Child,
    pub what: String,
    pub log: PathBuf,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sipp {
    /// Whether the process has ended (e.g. a caller whose call is over).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A fresh SIP port and RTP range for a SIPp instance of this process.
fn ports() -> (u16, u16) {
    let n = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
    let base = 5400 + (std::process::id() % 40) as u16 * 50;
    let sip = base + (n % 50);
    let rtp = 20000 + (std::process::id() % 40) as u16 * 1000 + (n % 50) * 20;
    (sip, rtp)
}

fn spawn_sipp(what: String, ip: &str, port: u16, rtp: u16, args: &[String]) -> Sipp {
    let dir = std::env::temp_dir().join("uapid-e2e");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join(format!("{}-{port}.log", std::process::id()));
    let err = dir.join(format!("{}-{port}.err", std::process::id()));
    let mut cmd = Command::new("bash");
    cmd.arg(sandbox_script())
        .arg("sipp")
        .args(["-i", ip, "-p", &port.to_string(), "-mi", ip])
        .args([
            "-min_rtp_port",
            &rtp.to_string(),
            "-max_rtp_port",
            &(rtp + 19).to_string(),
        ])
        .args(["-nostdin", "-aa", "-trace_err", "-error_file"])
        .arg(&err)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(&log)
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
        );
    let child = cmd.spawn().expect("start sipp");
    let mut s = Sipp { child, what, log };
    // Ready once its SIP port is bound (read from the kernel's table: probing with a bind
    // of our own could take the port from under SIPp).
    let deadline = Instant::now() + WAIT;
    while !udp_bound(ip, port) {
        assert!(
            !s.exited(),
            "sipp ({}) exited at start; see {}",
            s.what,
            s.log.display()
        );
        assert!(
            Instant::now() < deadline,
            "sipp ({}) did not bind {ip}:{port}",
            s.what
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    s
}

/// Whether a UDP socket is bound to `ip:port` (from /proc/net/udp).
fn udp_bound(ip: &str, port: u16) -> bool {
    let Ok(addr) = ip.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    let o = addr.octets();
    let want = format!(
        "{:02X}{:02X}{:02X}{:02X}:{port:04X}",
        o[3], o[2], o[1], o[0]
    );
    std::fs::read_to_string("/proc/net/udp")
        .map(|t| {
            t.lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

fn scenario(name: &str) -> String {
    format!("{REPO}/tests/sip/{name}")
}

/// The SIP port a sandbox phone listens on (asterisk-conf/pjsip.conf): 5000 + its number.
pub fn phone_port(short: &str) -> u16 {
    5000 + short.parse::<u16>().expect("numeric extension")
}

/// A phone that rings for `ring_ms`, then answers and echoes a tone over RTP.
pub fn phone_answering(short: &str, ring_ms: u64) -> Sipp {
    let (_, rtp) = ports();
    let args = vec![
        "-sf".into(),
        scenario("uas_answer.xml"),
        "-d".into(),
        ring_ms.to_string(),
    ];
    spawn_sipp(
        format!("phone {short}"),
        "127.0.0.1",
        phone_port(short),
        rtp,
        &args,
    )
}

/// A phone that rings and never answers.
pub fn phone_ringing(short: &str) -> Sipp {
    let (_, rtp) = ports();
    let args = vec!["-sf".into(), scenario("uas_ring.xml")];
    spawn_sipp(
        format!("phone {short} (no answer)"),
        "127.0.0.1",
        phone_port(short),
        rtp,
        &args,
    )
}

/// The public network side of the trunk (127.0.0.2:5060), answering after `ring_ms`.
pub fn public_answering(ring_ms: u64) -> Sipp {
    let (_, rtp) = ports();
    let args = vec![
        "-sf".into(),
        scenario("uas_answer.xml"),
        "-d".into(),
        ring_ms.to_string(),
    ];
    spawn_sipp("public network".into(), "127.0.0.2", 5060, rtp, &args)
}

/// Phone `short` (endpoint 0003_<short>) dials `to`; `calls` calls at once.
pub fn dial_from_phone(short: &str, to: &str, calls: u32) -> Sipp {
    let (port, rtp) = ports();
    let args = vec![
        "-sf".into(),
        scenario("uac.xml"),
        "-key".into(),
        "caller".into(),
        format!("0003_{short}"),
        "-s".into(),
        to.into(),
        "-m".into(),
        calls.to_string(),
        "-l".into(),
        calls.to_string(),
        "-r".into(),
        "1000".into(),
        "127.0.0.1:5060".into(),
    ];
    spawn_sipp(format!("{short} dials {to}"), "127.0.0.1", port, rtp, &args)
}

/// A public caller `number` calls `to` through the trunk.
pub fn dial_from_public(number: &str, to: &str) -> Sipp {
    let (port, rtp) = ports();
    let args = vec![
        "-sf".into(),
        scenario("uac.xml"),
        "-key".into(),
        "caller".into(),
        number.into(),
        "-s".into(),
        to.into(),
        "-m".into(),
        "1".into(),
        "127.0.0.1:5060".into(),
    ];
    spawn_sipp(
        format!("{number} dials {to}"),
        "127.0.0.2",
        port,
        rtp,
        &args,
    )
}
