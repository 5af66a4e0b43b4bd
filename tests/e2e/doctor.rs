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

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::broken_pbx::BrokenPbx;
use crate::helpers::*;
use crate::sipp::{dial_from_phone, phone_answering};
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
    let _pbx = Pbx::take().await;
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
    let _pbx = Pbx::take().await;
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

/// Settings for a uapid of this test: a free port, an ARI application of its own, the
/// given directory.
fn test_settings(directory: uapid::config::DirectoryConfig, n: u32) -> Settings {
    let mut s = Settings::defaults();
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.asterisk.app = format!("uapid-doctor-test-{}-{n}", std::process::id());
    s.directory = directory;
    s
}

async fn start(settings: Settings) -> (uapid::Running, Api) {
    let running = uapid::start(settings).await.expect("uapid starts");
    assert!(
        running.wait_connected(WAIT).await,
        "uapid connects to the sandbox"
    );
    let api = Api::new(&format!("http://{}", running.addr));
    (running, api)
}

#[tokio::test]
async fn a_uapid_with_the_imported_directory_lists_a_call_as_the_built_in_one() {
    let _pbx = Pbx::take().await;
    let (imported, _) = tokio::task::spawn_blocking(imported_settings)
        .await
        .unwrap();
    let their_secret = imported.directory.apps[0].secret.clone();
    let built_in = Settings::defaults().directory;
    let our_secret = built_in
        .apps
        .iter()
        .find(|a| a.client_id == "admin-app")
        .unwrap()
        .secret
        .clone();
    let (theirs, their_api) = start(test_settings(imported.directory, 0)).await;
    let (ours, our_api) = start(test_settings(built_in, 1)).await;
    let their_token = their_api.token("admin-app", &their_secret).await;
    let our_token = our_api.token("admin-app", &our_secret).await;

    let _bob = phone_answering("024", 500);
    let _call = dial_from_phone("210", "024", 1);
    let all = "/uapi/phoneCalls/@me/@self";
    let answered = |c: &[serde_json::Value]| {
        c.len() == 1 && status_of(&c[0], "0003*024").as_deref() == Some("5")
    };
    let ours_saw = our_api
        .wait_calls(all, &our_token, "answered (built-in)", answered)
        .await;
    let theirs_saw = their_api
        .wait_calls(all, &their_token, "answered (imported)", answered)
        .await;
    assert_eq!(views(&theirs_saw), views(&ours_saw));
    hangup_all().await;
    theirs.shutdown().await;
    ours.shutdown().await;
}

/// Runs the daemon with `config` until it logs a line with `until` (at most 20 s), then
/// stops it; returns what it logged.
fn startup_log(config: &std::path::Path, until: &str) -> String {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .env("UAPID_LISTEN", "127.0.0.1:0")
        .env(
            "UAPID_ASTERISK__APP",
            format!("uapid-doctor-startup-{}", std::process::id()),
        )
        .env("RUST_LOG", "uapid=info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start uapid");
    let out = child.stdout.take().expect("its stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let mut log = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(until) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    log
}

fn assert_lines(out: &str, lines: &[&str]) {
    for line in lines {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
}

#[test]
fn doctor_reports_each_miss_of_an_incomplete_pbx() {
    // Its own Asterisk on ports of its own: the shared PBX's lock is not needed, only
    // the sandbox's root filesystem.
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
    // The daemon says the same at start-up, in its log.
    let log = startup_log(&full, "start-up check done");
    assert!(log.contains("start-up check: missing: 0003*212 endpoint 0003_212: no such PJSIP endpoint; fix: add endpoint 0003_212 to pjsip.conf"), "{log}");
    assert!(
        log.contains("start-up check: missing: parking lot default"),
        "{log}"
    );
    assert!(log.contains("start-up check done"), "{log}");
    // A wrong secret: said at once, with the fix.
    let log = startup_log(&wrong, "AMI 127.0.0.1:");
    assert!(
        log.contains(
            "login refused: Authentication failed; fix: check asterisk.ami_user / ami_secret"
        ),
        "{log}"
    );
    drop(pbx);
    eprintln!("the incomplete PBX test took {:?}", started.elapsed());
}
