//! `uapid doctor`: connects to the PBX with uapid's settings and checks everything uapid
//! relies on, without changing the PBX. Each check says what it saw and, when it misses,
//! how to fix it:
//!
//! - the links: AMI login, ARI credentials and write access, the ARI application free,
//!   the Asterisk version;
//! - AMI permissions: each action uapid sends, tried with a parameter missing (Asterisk
//!   checks the user's `write =` classes before it reads the parameters, so the answer
//!   says whether the user may, and nothing happens); the `read =` class of the events
//!   uapid reads, by an originate to an endpoint that does not exist, whose
//!   `OriginateResponse` (class `call`) comes back only to a user that may read it;
//! - the modules behind the dialplan applications uapid uses;
//! - the directory: every extension's endpoint, its dial number in the dial context,
//!   its mailbox; the trunks; the parking lot and its context.
//!
//! The daemon runs the same checks once at start-up and logs what is missing
//! ([`log_at_startup`]); it never fails an action because of them.

mod ami_checks;
mod ari_checks;
pub(crate) mod link;
mod pbx_checks;

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{AsteriskSettings, Directory};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// uapid lacks something it needs: a fix is given.
    Miss,
    /// Works, but not as well as it could (or only an admin can tell).
    Warn,
    /// Not checked: what it needs is missing (said by another check).
    Skip,
}

impl Status {
    fn tag(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Miss => "MISS",
            Status::Warn => "warn",
            Status::Skip => "skip",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    /// What was checked (`write call: Park`).
    pub what: String,
    /// What was seen.
    pub seen: String,
    /// How to fix a miss (or a warning).
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(what: impl Into<String>, seen: impl Into<String>) -> Check {
        Check::new(Status::Ok, what, seen, None)
    }
    pub fn miss(what: impl Into<String>, seen: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(Status::Miss, what, seen, Some(fix.into()))
    }
    pub fn warn(what: impl Into<String>, seen: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(Status::Warn, what, seen, Some(fix.into()))
    }
    pub fn skip(what: impl Into<String>, seen: impl Into<String>) -> Check {
        Check::new(Status::Skip, what, seen, None)
    }
    fn new(
        status: Status,
        what: impl Into<String>,
        seen: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check {
            status,
            what: what.into(),
            seen: seen.into(),
            fix,
        }
    }
}

/// A titled group of checks.
#[derive(Debug, Clone)]
pub struct Section {
    pub title: String,
    pub checks: Vec<Check>,
}

/// Everything the doctor found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sections: Vec<Section>,
    /// AMI logged in and ARI answered (else most checks could not run).
    pub connected: bool,
}

impl Report {
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.sections.iter().flat_map(|s| s.checks.iter())
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks().filter(|c| c.status == status).count()
    }

    /// 0: every check passed (warnings allowed); 1: something is missing; 2: uapid's
    /// links could not be made (AMI login or ARI refused or unreachable).
    pub fn exit_code(&self) -> u8 {
        if !self.connected {
            2
        } else if self.count(Status::Miss) > 0 {
            1
        } else {
            0
        }
    }

    /// The checklist, as `uapid doctor` prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            let _ = writeln!(out, "{}", s.title);
            let mut fixes_said: Vec<&str> = Vec::new();
            for c in &s.checks {
                let _ = writeln!(out, "  {:<4}  {}: {}", c.status.tag(), c.what, c.seen);
                if let Some(fix) = &c.fix {
                    if fixes_said.contains(&fix.as_str()) {
                        let _ = writeln!(out, "        fix: as above");
                    } else {
                        let _ = writeln!(out, "        fix: {fix}");
                        fixes_said.push(fix);
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "\n{} ok, {} missing, {} warning{}, {} not checked",
            self.count(Status::Ok),
            self.count(Status::Miss),
            self.count(Status::Warn),
            if self.count(Status::Warn) == 1 {
                ""
            } else {
                "s"
            },
            self.count(Status::Skip)
        );
        out
    }
}

/// Who runs the checks: the command, or the daemon at start-up (which holds the ARI
/// application itself and installs its own dialplan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Command,
    Startup,
}

/// Runs every check against the PBX in `a`, for the directory `d`.
pub async fn run(a: &AsteriskSettings, d: &Directory, mode: Mode) -> Report {
    let mut report = Report::default();
    let mut conn = Section {
        title: "Connections".into(),
        checks: Vec::new(),
    };
    let ami = match link::DoctorAmi::connect(a).await {
        Ok(ami) => {
            conn.checks.push(Check::ok(
                format!("AMI {}", a.ami_addr),
                format!("logged in as {}", a.ami_user),
            ));
            Some(ami)
        }
        Err(why) => {
            conn.checks.push(link::ami_failed(a, &why));
            None
        }
    };
    let ari = ari_checks::check(a, mode, &mut conn.checks).await;
    report.connected = ami.is_some() && ari.answered;
    let Some(ami) = ami else {
        report.sections.push(conn);
        return report;
    };
    conn.checks
        .push(ami_checks::version(&ami, ari.version.as_deref()).await);
    report.sections.push(conn);
    let perms = ami_checks::permissions(&ami, a).await;
    report.sections.push(perms.section);
    report.sections.push(ami_checks::modules(&ami, d).await);
    report
        .sections
        .push(pbx_checks::parking(&ami, a, &perms.allowed).await);
    report
        .sections
        .push(pbx_checks::directory(&ami, a, d, &perms.allowed).await);
    report
}

/// The daemon's start-up check: once AMI and ARI answer, runs the checks and logs each
/// miss with its fix. While they do not (for about a minute), it says why once, with
/// the fix (a wrong secret, say), and tries again every 5 s. It only logs.
pub async fn log_at_startup(a: AsteriskSettings, d: std::sync::Arc<Directory>) {
    let mut report = run(&a, &d, Mode::Startup).await;
    if !report.connected {
        for c in report.checks().filter(|c| c.status == Status::Miss) {
            let fix = c.fix.as_deref().unwrap_or("-");
            tracing::warn!("start-up check: {}: {}; fix: {fix}", c.what, c.seen);
        }
    }
    for _ in 0..12 {
        if report.connected {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        report = run(&a, &d, Mode::Startup).await;
    }
    if !report.connected {
        tracing::warn!(
            "start-up check: the PBX could not be reached; run `uapid doctor` once it answers"
        );
        return;
    }
    // A large directory may miss many entries: the log names the first ones.
    const AT_MOST: usize = 20;
    let mut said = 0;
    for c in report.checks() {
        let fix = c.fix.as_deref().unwrap_or("-");
        if c.status != Status::Ok {
            said += 1;
            if said > AT_MOST {
                continue;
            }
        }
        match c.status {
            Status::Miss => tracing::warn!(
                "start-up check: missing: {}: {}; fix: {fix}",
                c.what,
                c.seen
            ),
            Status::Warn => tracing::warn!("start-up check: {}: {}; {fix}", c.what, c.seen),
            Status::Skip => tracing::info!("start-up check: not checked: {}: {}", c.what, c.seen),
            Status::Ok => tracing::debug!("start-up check: ok: {}: {}", c.what, c.seen),
        }
    }
    if said > AT_MOST {
        tracing::warn!("start-up check: {} more not said here", said - AT_MOST);
    }
    tracing::info!(
        ok = report.count(Status::Ok),
        missing = report.count(Status::Miss),
        warnings = report.count(Status::Warn),
        "start-up check done{}",
        if report.count(Status::Miss) > 0 {
            " (`uapid doctor` prints the checklist)"
        } else {
            ""
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>, connected: bool) -> Report {
        Report {
            sections: vec![Section {
                title: "Test".into(),
                checks,
            }],
            connected,
        }
    }

    #[test]
    fn exit_codes() {
        let ok = Check::ok("a", "fine");
        let warn = Check::warn("b", "slow", "tune it");
        let miss = Check::miss("c", "absent", "add it");
        assert_eq!(report(vec![ok.clone(), warn.clone()], true).exit_code(), 0);
        assert_eq!(report(vec![ok.clone(), miss.clone()], true).exit_code(), 1);
        assert_eq!(report(vec![ok], false).exit_code(), 2);
    }

    #[test]
    fn render_says_each_fix_once_per_section() {
        let r = report(
            vec![
                Check::ok("write call: Park", "allowed"),
                Check::miss(
                    "write system: MixMonitor",
                    "permission denied",
                    "add system",
                ),
                Check::miss("write system: Filter", "permission denied", "add system"),
            ],
            true,
        );
        let text = r.render();
        assert!(
            text.contains("  ok    write call: Park: allowed\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  MISS  write system: MixMonitor: permission denied\n        fix: add system\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  MISS  write system: Filter: permission denied\n        fix: as above\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("1 ok, 2 missing, 0 warnings, 0 not checked\n"),
            "{text}"
        );
    }
}
