//! A second Asterisk, chrooted into the sandbox's root filesystem, with a copy of the
//! sandbox's configuration made incomplete on purpose; on free loopback ports, with run,
//! spool, log and database directories of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::REPO;

/// A free loopback port (TCP, or UDP for SIP).
fn free_port(udp: bool) -> u16 {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().unwrap().port()
    } else {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().unwrap().port()
    }
}

/// A second Asterisk chrooted into the sandbox's root, with a broken copy of the
/// sandbox's configuration; stopped and removed when dropped.
pub struct BrokenPbx {
    child: Child,
    /// The directory of its configuration and state, as the host sees it.
    host_dir: PathBuf,
    ami: u16,
    http: u16,
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).expect("read conf");
    std::fs::write(path, f(text)).expect("write conf");
}

/// Copies asterisk-conf/ to `etc` and breaks it (see the module's comment).
fn broken_conf(etc: &Path, inside: &str, ports: (u16, u16, u16)) {
    let (ami, http, sip) = ports;
    let copy = Command::new("cp")
        .args([
            "-r",
            &format!("{REPO}/asterisk-conf"),
            &etc.to_string_lossy(),
        ])
        .status()
        .expect("cp");
    assert!(copy.success());
    edit(&etc.join("asterisk.conf"), |t| {
        let mut out = String::new();
        for l in t.lines() {
            let l = match l.split_once(" => ") {
                Some((k @ "astetcdir", _)) => format!("{k} => {inside}/etc"),
                Some((k @ ("astdbdir" | "astspooldir" | "astrundir" | "astlogdir"), _)) => {
                    format!("{k} => {inside}/{}", &k[3..k.len() - 3])
                }
                _ => l.to_string(),
            };
            out.push_str(&l);
            out.push('\n');
        }
        out
    });
    std::fs::write(
        etc.join("manager.conf"),
        format!(
            "[general]\nenabled = yes\nbindaddr = 127.0.0.1\nport = {ami}\n\n\
             ; may not add dialplan, record or read the modules, nor read call events\n\
             [uapid]\nsecret = uapid-secret\npermit = 127.0.0.0/255.0.0.0\n\
             read = system,reporting\nwrite = call,originate,reporting\n\n\
             [uapid-full]\nsecret = uapid-secret\npermit = 127.0.0.0/255.0.0.0\n\
             read = system,call,reporting\nwrite = system,call,originate,reporting,config\n"
        ),
    )
    .unwrap();
    edit(&etc.join("http.conf"), |t| {
        t.replace("bindport = 8088", &format!("bindport = {http}"))
    });
    edit(&etc.join("pjsip.conf"), |t| {
        let t = t.replace("bind = 127.0.0.1:5060", &format!("bind = 127.0.0.1:{sip}"));
        // Endpoint 0003_212 and its AOR go.
        let start = t.find("[0003_212](phone)").expect("0003_212 in pjsip.conf");
        let end = t[start..]
            .find("contact = sip:0003_212")
            .map(|i| start + i)
            .unwrap();
        let end = end + t[end..].find('\n').unwrap();
        format!("{}{}", &t[..start], &t[end..])
    });
    // The dial context no longer matches 024 (only 2XX).
    edit(&etc.join("extensions.conf"), |t| {
        t.replace(
            "exten => _XXX,1,Dial(PJSIP/${ORG}",
            "exten => _2XX,1,Dial(PJSIP/${ORG}",
        )
    });
    edit(&etc.join("modules.conf"), |t| {
        t + "noload => res_parking.so\n"
    });
}

impl BrokenPbx {
    pub fn start() -> BrokenPbx {
        let root = PathBuf::from(crate::helpers::sandbox_root());
        let inside = format!("/var/tmp/uapid-doctor-{}", std::process::id());
        let host_dir = root.join(inside.trim_start_matches('/'));
        let _ = std::fs::remove_dir_all(&host_dir);
        for d in ["db", "spool", "run", "log"] {
            std::fs::create_dir_all(host_dir.join(d)).expect("mkdir");
        }
        let (ami, http, sip) = (free_port(false), free_port(false), free_port(true));
        broken_conf(&host_dir.join("etc"), &inside, (ami, http, sip));
        let conf = format!("{inside}/etc/asterisk.conf");
        let child = Command::new("chroot")
            .arg(&root)
            .args(["/usr/sbin/asterisk", "-C", &conf, "-f", "-n"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the second Asterisk");
        let pbx = BrokenPbx {
            child,
            host_dir,
            ami,
            http,
        };
        let mut booted = Command::new("timeout");
        booted.args(["10", "chroot"]).arg(&root).args([
            "/usr/sbin/asterisk",
            "-C",
            &conf,
            "-rx",
            "core waitfullybooted",
        ]);
        pbx.wait_booted(booted);
        pbx
    }

    fn wait_booted(&self, mut ask: Command) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let ok = ask
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("the second Asterisk did not boot within 30 s");
    }

    /// A configuration file for uapid pointing at this PBX as `user` (kept in the PBX's
    /// directory, so it goes with it).
    pub fn config(&self, user: &str, secret: &str) -> PathBuf {
        let path = self.host_dir.join(format!("uapid-{user}-{secret}.toml"));
        let text = format!(
            "[asterisk]\nami_addr = \"127.0.0.1:{}\"\nari_url = \"http://127.0.0.1:{}\"\n\
             ami_user = \"{user}\"\nami_secret = \"{secret}\"\n",
            self.ami, self.http
        );
        std::fs::write(&path, text).expect("write uapid's configuration");
        path
    }
}

impl Drop for BrokenPbx {
    fn drop(&mut self) {
        // SIGTERM: Asterisk stops at once; SIGKILL if it has not within 10 s.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.host_dir);
    }
}
