//! The sandbox PBX and its SIPp phones, and the lock that shares them with the
//! end-to-end tests.

use std::process::{Child, Command, Stdio};

use crate::repo;

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The PBX is shared with the end-to-end tests: their lock, held until the file is
/// dropped.
pub fn e2e_lock() -> std::fs::File {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("uapid-e2e.lock"))
        .expect("lock file");
    lock.lock().expect("e2e lock");
    lock
}

pub fn sandbox(args: &[&str]) -> Command {
    let mut c = Command::new("bash");
    c.arg(format!("{}/docker/sandbox.sh", repo())).args(args);
    c
}

/// The sandbox's Asterisk process.
pub fn asterisk_pid() -> u32 {
    let dir = std::env::var("UAPID_SANDBOX_DIR")
        .unwrap_or_else(|_| "/var/cache/uapid-sandbox".to_string());
    std::fs::read_to_string(format!("{dir}/asterisk.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .expect("the sandbox's asterisk.pid")
}

/// A SIPp phone (`uas`) or caller (`uac`), quiet, killed when dropped.
fn sipp(port: u16, rtp: u16, args: &[&str]) -> Proc {
    let sip = format!("{}/tests/sip", repo());
    let mut c = sandbox(&["sipp"]);
    c.args([
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mi",
        "127.0.0.1",
    ])
    .args([
        "-min_rtp_port",
        &rtp.to_string(),
        "-max_rtp_port",
        &(rtp + 999).to_string(),
    ])
    .args([
        "-nostdin",
        "-aa",
        "-trace_err",
        "-error_file",
        &format!("/tmp/uapid-bench-{port}.err"),
    ])
    .args(args.iter().map(|a| a.replace("@SIP", &sip)))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    Proc(c.spawn().expect("sipp"))
}

/// A phone that answers every call to extension `ext` of the sandbox's account 0003.
pub fn phone(ext: &str, rtp: u16) -> Proc {
    let port: u16 = 5000 + ext.parse::<u16>().expect("ext");
    sipp(port, rtp, &["-sf", "@SIP/uas_answer.xml", "-d", "0"])
}

/// `n` calls from extension 210 to `to`, kept up until dropped.
pub fn calls_from_210(to: &str, n: usize, port: u16, rtp: u16) -> Proc {
    let n = n.to_string();
    sipp(
        port,
        rtp,
        &[
            "-sf",
            "@SIP/uac.xml",
            "-key",
            "caller",
            "0003_210",
            "-s",
            to,
            "-m",
            &n,
            "-l",
            &n,
            "-r",
            "100",
            "127.0.0.1:5060",
        ],
    )
}
