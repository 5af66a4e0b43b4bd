//! `uapid doctor` and `uapid directory import`, run as the `uapid` binary against real
//! Asterisks:
//!
//! - the sandbox PBX: every check passes; the imported directory resolves the sandbox's
//!   phones as the hand-written one does, and a uapid started with it lists a real call
//!   as a uapid with the built-in directory does;
//! - a second Asterisk, started here from the sandbox's root filesystem with a copy of
//!   `asterisk-conf/` made incomplete on purpose (res_parking not loaded, an AMI user
//!   without write=system nor read=call, endpoint 0003_212 gone, a dial context that
//!   no longer matches 024), on free loopback ports and with run, spool, log and
//!   database directories of its own: the doctor reports each miss and exits 1. It is
//!   stopped at the end of the test (also when the test fails).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use uapid::config::{Directory, ExtensionKind, Settings};

const BIN: &str = env!("CARGO_BIN_EXE_uapid");

/// Runs `uapid ARGS` → (exit code, stdout, stderr).
fn uapid(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run uapid");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("uapid-doctor-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write a temp file");
    path
}

#[tokio::test]
async fn doctor_passes_on_the_sandbox() {
    let _g = serial().await;
    sandbox();
    let started = Instant::now();
    let (code, out, err) = uapid(&["doctor"]);
    eprintln!("doctor took {:?}", started.elapsed());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(" 0 missing"), "{out}");
    assert!(!out.contains("MISS"), "{out}");
    for line in [
        "ok    write system: DialplanExtensionAdd",
        "ok    read call: parking and originate events",
        "ok    parking lot default: spaces 701-",
        "ok    0003*212 endpoint 0003_212: exists",
        "ok    0003*024 dial 024: phones matches _XXX in org-0003",
        "ok    0003*211 mailbox 211@0003: exists",
        "ok    trunk endpoint trunk: exists",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
}

/// The directory `uapid directory import` writes for the sandbox, loaded as uapid
/// loads a configuration file.
fn imported_settings() -> (Settings, String) {
    let (code, toml, err) = uapid(&["directory", "import"]);
    assert_eq!(code, 0, "{err}");
    let path = temp_file("import.toml", &toml);
    let settings = Settings::load(Some(&path));
    let _ = std::fs::remove_file(&path);
    (settings.unwrap_or_else(|e| panic!("{e}\n{toml}")), toml)
}

#[tokio::test]
async fn import_resolves_the_sandbox_as_the_hand_written_directory() {
    let _g = serial().await;
    sandbox();
    let (imported, toml) = imported_settings();
    let built_in = Directory::build(&Settings::defaults().directory).unwrap();
    let got = Directory::build(&imported.directory).unwrap();
    let phones = |d: &Directory| {
        let mut v: Vec<_> = d
            .extensions
            .values()
            .filter(|e| e.kind == ExtensionKind::PhoneTerminal)
            .map(|e| {
                (
                    e.number.clone(),
                    e.endpoint.clone(),
                    e.mailbox.clone(),
                    e.dial.clone(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(phones(&got), phones(&built_in), "{toml}");
    for e in built_in
        .extensions
        .values()
        .filter(|e| !e.endpoint.is_empty())
    {
        let found = got.extension_by_endpoint(&e.endpoint).map(|x| &x.number);
        assert_eq!(found, Some(&e.number), "{toml}");
        assert_eq!(
            got.resolve_extension(&e.dial, None).map(|x| &x.number),
            Some(&e.number)
        );
    }
    let trunks = |d: &Directory| {
        let mut t: Vec<String> = d.trunks().map(str::to_string).collect();
        t.sort();
        t
    };
    assert_eq!(trunks(&got), trunks(&built_in), "{toml}");
    assert_eq!(got.organizations[&3].code, "0003");
    assert_eq!(imported.directory_source.from_file.len(), 5);
}

/// The views of every call listed, without what depends on the directory's names and
/// ids (organization name, users in links).
fn views(calls: &[serde_json::Value]) -> Vec<serde_json::Value> {
    calls
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c["id"], "extension": c["extension"], "ownerId": c["ownerId"],
                "views": c["phoneCallView"].as_array().map(|vs| vs.iter().map(|v| {
                    serde_json::json!({
                        "id": v["id"], "extension": v["extension"], "status": v["status"],
                        "flow": v["flow"], "callerId": v["callerId"],
                        "source": v["source"], "destination": v["destination"],
                    })
                }).collect::<Vec<_>>()),
            })
        })
        .collect()
}

#[tokio::test]
async fn a_uapid_with_the_imported_directory_lists_a_call_as_the_built_in_one() {
    let _g = serial().await;
    sandbox();
    hangup_all().await;
    let (imported, _) = imported_settings();
    let secret = imported.directory.apps[0].secret.clone();
    let mut settings = test_settings();
    settings.directory = imported.directory;
    let theirs = start_uapid(settings).await;
    let ours = start_uapid(test_settings()).await;
    let their_token = theirs.api.token("admin-app", &secret).await;
    let our_token = ours.api.token_for("admin-app").await;

    let _bob = phone_answering("024", 500);
    let _call = dial_from_phone("210", "024", 1);
    let all = "/uapi/phoneCalls/@me/@self";
    let answered = |c: &[serde_json::Value]| {
        c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("5")
    };
    let ours_saw = ours
        .api
        .wait_calls(all, &our_token, "the call, answered", answered)
        .await;
    let theirs_saw = theirs
        .api
        .wait_calls(all, &their_token, "the call, answered", answered)
        .await;
    assert_eq!(views(&theirs_saw), views(&ours_saw));
    hangup_all().await;
    theirs.running.shutdown().await;
    ours.running.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// A deliberately incomplete PBX

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
struct BrokenPbx {
    child: Child,
    /// The directory of its configuration and state, as the host sees it.
    host_dir: PathBuf,
    ami: u16,
    http: u16,
}

fn sandbox_root() -> PathBuf {
    let out = Command::new("bash")
        .arg(format!("{REPO}/docker/sandbox.sh"))
        .arg("root")
        .output()
        .expect("docker/sandbox.sh root");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
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
    fn start() -> BrokenPbx {
        let root = sandbox_root();
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

    /// A configuration file for uapid pointing at this PBX as `user`.
    fn config(&self, user: &str, secret: &str) -> PathBuf {
        temp_file(
            &format!("{user}.toml"),
            &format!(
                "[asterisk]\nami_addr = \"127.0.0.1:{}\"\nari_url = \"http://127.0.0.1:{}\"\n\
                 ami_user = \"{user}\"\nami_secret = \"{secret}\"\n",
                self.ami, self.http
            ),
        )
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

fn assert_lines(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
}

#[tokio::test]
async fn doctor_reports_each_miss_of_an_incomplete_pbx() {
    sandbox();
    let started = Instant::now();
    let pbx = BrokenPbx::start();
    eprintln!("the second Asterisk booted in {:?}", started.elapsed());

    // The user as the PBX has it: permission misses with their fixes.
    let limited = pbx.config("uapid", "uapid-secret");
    let (code, out, err) = uapid(&["doctor", "--config", &limited.to_string_lossy()]);
    eprintln!("{out}");
    assert_eq!(code, 1, "{out}\n{err}");
    assert_lines(
        &out,
        &[
            "MISS  write system: DialplanExtensionAdd: permission denied",
            "fix: add `system` to the `write =` line of [uapid] in manager.conf",
            "MISS  write system: MixMonitor: permission denied",
            "warn  write system: Filter: permission denied",
            "MISS  read call: parking and originate events: no OriginateResponse",
            "fix: add `call` to the `read =` line of [uapid] in manager.conf",
            "MISS  write call: Park: no such action: its module is not loaded",
            "fix: load res_parking.so",
            "skip  0003*212 endpoint 0003_212: PJSIPShowEndpoints needs write class system",
            "MISS  0003*024 dial 024: context phones has no 024",
            "ok    0003*210 dial 210: phones matches _2XX in org-0003",
            "MISS  parking lot default: Asterisk has no parking",
            "skip  parked context parkedcalls: no lot to check it against",
        ],
    );

    // A user that may do everything: what the PBX itself lacks.
    let full = pbx.config("uapid-full", "uapid-secret");
    let (code, out, err) = uapid(&["doctor", "--config", &full.to_string_lossy()]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_lines(
        &out,
        &[
            "ok    write system: DialplanExtensionAdd",
            "ok    read call: parking and originate events",
            "MISS  module res_parking.so: not loaded",
            "MISS  0003*212 endpoint 0003_212: no such PJSIP endpoint",
            "fix: add endpoint 0003_212 to pjsip.conf, or set `endpoint` of extension 0003*212",
            "ok    0003*210 endpoint 0003_210: exists",
            "MISS  0003*024 dial 024: context phones has no 024",
            "MISS  parking lot default",
        ],
    );
    assert!(!out.contains("permission denied"), "{out}");

    // A wrong secret: no connection, exit 2.
    let wrong = pbx.config("uapid-full", "not-the-secret");
    let (code, out, _) = uapid(&["doctor", "--config", &wrong.to_string_lossy()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("MISS  AMI 127.0.0.1:"), "{out}");
    assert!(out.contains("login refused"), "{out}");
    for f in [limited, full, wrong] {
        let _ = std::fs::remove_file(f);
    }
    drop(pbx);
    eprintln!("the incomplete PBX test took {:?}", started.elapsed());
}
