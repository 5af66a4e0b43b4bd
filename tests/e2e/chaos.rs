//! A randomized end-to-end test (issue 9): several calls between the test phones and the
//! public network, several UAPI clients (admin, organization, two users), and random
//! steps of every action, DELETE, the three POSTs, List, and the phones dialing,
//! answering, refusing and hanging up, with random timing. Each step runs one to three
//! operations at once, each after a random delay of up to 0.4 s, so they race, often on
//! the same call. After each step, and at the end, it checks its invariants:
//!
//! - no party hung up that no request or phone hung up (judge.rs);
//! - every 2xx's outcome shows in List (ops.rs), every answer is a documented one;
//! - phones, List and Asterisk's channels and bridges agree (checks.rs);
//! - once everything hangs up, no channel, uapid bridge or call is left.
//!
//! A failure prints the seed that replays the same choices (the PBX's timing may still
//! differ), the invariant, what broke it and the recent history; the whole history is
//! written to `$TMPDIR/uapid-chaos-<seed>.log`.
//!
//! What it does not judge: a call that ends before it is answered (a ring that times
//! out, a caller that gives up, a pickup) is counted, not explained; a party's end is
//! judged from the moment its phone answered.
//!
//! Environment:
//!
//! - `UAPID_CHAOS_SEED`: the seed (decimal or 0x-hex); default random, printed first;
//! - `UAPID_CHAOS_SECS` (default 60) and `UAPID_CHAOS_STEPS` (default unbounded): the
//!   run stops at whichever comes first, then hangs everything up and checks;
//! - `UAPID_CHAOS_VERBOSE=1`: the history as it happens, on stderr;
//! - `UAPID_CHAOS_KEEP_GOING=1`: a broken invariant is reported and the run goes on; the
//!   test fails at the end with every invariant that broke (to see past a known bug).

mod checks;
mod judge;
mod observer;
mod ops;
mod phones;
mod rng;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use uapid::asterisk::ari::AriRest;

use crate::helpers::{ari, Api, TestApp};
use crate::sip_phone::{CallState, End, PUBLIC_NUMBER};

use judge::License;
use observer::Observer;
use ops::{Client, ClientOp, Op};
use phones::{PhoneId, Phones, PUBLIC};
use rng::Rng;

static T0: OnceLock<Instant> = OnceLock::new();
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Seconds since the test began.
pub fn clock() -> f64 {
    T0.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// One line of the history.
pub fn log(line: String) {
    let line = format!("{:8.3} {line}", clock());
    if std::env::var_os("UAPID_CHAOS_VERBOSE").is_some() {
        eprintln!("{line}");
    }
    LOG.lock().unwrap().push(line);
}

struct Config {
    seed: u64,
    secs: u64,
    steps: u64,
    keep_going: bool,
}

impl Config {
    fn from_env() -> Config {
        let num = |k: &str| -> Option<u64> {
            let v = std::env::var(k).ok()?;
            let v = v.trim();
            let n = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            Some(n.unwrap_or_else(|_| panic!("{k}={v} is not a number")))
        };
        Config {
            seed: num("UAPID_CHAOS_SEED").unwrap_or_else(Rng::fresh_seed),
            secs: num("UAPID_CHAOS_SECS").unwrap_or(60),
            steps: num("UAPID_CHAOS_STEPS").unwrap_or(u64::MAX),
            keep_going: std::env::var_os("UAPID_CHAOS_KEEP_GOING").is_some(),
        }
    }

    fn replay(&self) -> String {
        format!(
            "UAPID_CHAOS_SEED={} cargo test --test e2e chaos -- --nocapture",
            self.seed
        )
    }
}

/// Counters for the summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub counts: BTreeMap<String, u64>,
    pub inconclusive: u64,
}

/// What the operations and checks share.
pub struct Ctx<'a> {
    pub api: &'a Api,
    pub ari: AriRest,
    pub obs: &'a Observer,
    pub phones: Phones,
    tokens: HashMap<Client, String>,
    pub licenses: Mutex<Vec<License>>,
    failures: Mutex<Vec<(String, String)>>,
    /// Keep-going mode: what broke in earlier steps (invariant, step, details).
    broken: Mutex<Vec<(String, u64, String)>>,
    pub stats: Mutex<Stats>,
    /// Calls the operations of the current step touch: (operation tag, call id or `*`).
    touched: Mutex<Vec<(String, String)>>,
    /// Calls uapid made for an extension (callbacks): call id → that extension.
    pub made_for: Mutex<HashMap<String, String>>,
}

impl Ctx<'_> {
    pub fn token(&self, who: Client) -> &str {
        &self.tokens[&who]
    }

    /// Records a broken invariant (the step ends, then the test fails with a report).
    pub fn fail(&self, invariant: &str, details: String) {
        log(format!("FAILED: {invariant}: {details}"));
        self.failures
            .lock()
            .unwrap()
            .push((invariant.to_string(), details));
    }

    pub fn count(&self, key: &str) {
        *self
            .stats
            .lock()
            .unwrap()
            .counts
            .entry(key.to_string())
            .or_default() += 1;
    }

    /// How each party that ended did, by SIP Call-ID.
    pub fn ends(&self) -> HashMap<String, End> {
        self.phones.with(|w| {
            w.parties
                .iter()
                .filter_map(|p| match p.state() {
                    CallState::Ended(e) => Some((p.call.sip_call_id().to_string(), e)),
                    _ => None,
                })
                .collect()
        })
    }

    /// Channels of call `id` ended so far, leaving out those of `except` (a party the
    /// action itself ends).
    pub fn ended_in(&self, id: &str, except: Option<&str>) -> u64 {
        self.obs.read(|s| {
            s.chans
                .values()
                .filter(|c| c.destroyed.is_some() && c.in_call(id))
                .filter(|c| except.is_none_or(|e| !judge::same_party(c, e)))
                .count() as u64
        })
    }

    pub fn touch(&self, tag: &str, call: &str) {
        self.touched
            .lock()
            .unwrap()
            .push((tag.to_string(), call.to_string()));
    }

    /// Whether another operation of this step touches call `id`.
    pub fn conflicts(&self, id: &str, tag: &str) -> bool {
        self.touched
            .lock()
            .unwrap()
            .iter()
            .any(|(t, c)| t != tag && (c == id || c == "*"))
    }

    /// The calls a party's channel belongs to (`*` when the test does not know).
    fn calls_of_party(&self, n: usize) -> Vec<String> {
        let sip = self
            .phones
            .with(|w| w.party(n).map(|p| p.call.sip_call_id().to_string()));
        let calls = sip.and_then(|s| self.obs.read(|o| o.by_sip(&s).map(|c| c.call_ids.clone())));
        match calls {
            Some(c) if !c.is_empty() => c,
            _ => vec!["*".into()],
        }
    }
}

async fn run_op(ctx: &Ctx<'_>, op: Op, delay: Duration, focus: Option<String>, tag: String) {
    tokio::time::sleep(delay).await;
    match op {
        Op::Client { who, op, rng } => {
            ops::run_client(ctx, who, op, rng, focus, &tag).await;
        }
        Op::Dial { from, number } => {
            if number == "701" {
                ctx.touch(&tag, "*");
            }
            log(format!("{tag} {} dials {number}", from.name()));
            ctx.phones.with(|w| w.dial(from, &number));
            ctx.count("phone: dial");
        }
        Op::HangUp { party } => {
            for c in ctx.calls_of_party(party) {
                ctx.touch(&tag, &c);
            }
            log(format!("{tag} hang up P{party}"));
            ctx.phones.with(|w| w.hang_up(party));
            ctx.count("phone: hang up");
        }
        Op::Answer { party } => {
            for c in ctx.calls_of_party(party) {
                ctx.touch(&tag, &c);
            }
            log(format!("{tag} answer P{party}"));
            ctx.phones.with(|w| w.answer(party));
            ctx.count("phone: answer");
        }
        Op::Reject { party, code } => {
            for c in ctx.calls_of_party(party) {
                ctx.touch(&tag, &c);
            }
            log(format!("{tag} refuse P{party} ({code})"));
            ctx.phones.with(|w| w.reject(party, code));
            ctx.count("phone: refuse");
        }
    }
}

/// Three calls to begin with, answered: 210 ↔ 024, 211 → the public network, the public
/// network → 212.
async fn setup(ctx: &Ctx<'_>) {
    let plan = [
        (PhoneId(0), "024", PhoneId(2)),
        (PhoneId(1), PUBLIC_NUMBER, PUBLIC),
        (PUBLIC, "212", PhoneId(3)),
    ];
    for (from, number, to) in plan {
        let caller = ctx.phones.with(|w| w.dial(from, number));
        let deadline = Instant::now() + crate::helpers::WAIT;
        let callee = loop {
            let found = ctx.phones.with(|w| {
                w.parties
                    .iter()
                    .find(|p| p.incoming && p.phone == to && p.n > caller)
                    .map(|p| p.n)
            });
            if let Some(n) = found {
                break n;
            }
            assert!(Instant::now() < deadline, "setup: {number} did not ring");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        ctx.phones.with(|w| w.answer(callee));
        loop {
            let st = ctx.phones.with(|w| w.party(caller).map(|p| p.state()));
            if st == Some(CallState::Answered) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "setup: {} calling {number} not answered ({st:?})",
                from.name()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The operations of one step: one to three, each with its own generator, so the seed's
/// stream advances the same way whatever the PBX did.
fn plan_step(rng: &mut Rng, ctx: &Ctx<'_>) -> Vec<(Op, Duration)> {
    let n = rng.weighted(&[(45, 1), (35, 2), (20, 3)]);
    (0..n)
        .map(|_| {
            let mut r = rng.fork();
            let delay = Duration::from_millis(r.range(0, 400));
            let op = if r.chance(35) {
                ops::plan_phone(&mut r, ctx, 12)
            } else {
                let who = r.weighted(&[
                    (30, Client::Admin),
                    (20, Client::Org),
                    (30, Client::Alice),
                    (20, Client::Bob),
                ]);
                let op = r.weighted(&[
                    (70, ClientOp::Action),
                    (10, ClientOp::Delete),
                    (10, ClientOp::Create),
                    (10, ClientOp::List),
                ]);
                Op::Client {
                    who,
                    op,
                    rng: r.fork(),
                }
            };
            (op, delay)
        })
        .collect()
}

/// The checks after a step: ends judged, phones and List against Asterisk.
async fn after_step(ctx: &Ctx<'_>) {
    checks::judge_ends(ctx).await;
    checks::phones_agree(ctx).await;
    checks::list_agrees(ctx, Duration::from_secs(5)).await;
}

/// Fails the test if an invariant broke: the seed, the invariant, the details, the
/// recent history.
fn verdict(ctx: &Ctx<'_>, cfg: &Config, step: u64, when: &str) {
    let failures = std::mem::take(&mut *ctx.failures.lock().unwrap());
    let Some((invariant, details)) = failures.first() else {
        return;
    };
    if cfg.keep_going {
        let mut b = ctx.broken.lock().unwrap();
        for (i, d) in failures {
            // Each invariant's first few, on stderr; all of them in the history.
            if b.iter().filter(|x| x.0 == i).count() < 3 {
                eprintln!(
                    "uapid chaos: seed {}, step {step}: BROKEN: {i}: {}",
                    cfg.seed,
                    d.lines().next().unwrap_or_default()
                );
            }
            b.push((i, step, d));
        }
        return;
    }
    let path = write_log(cfg);
    // The failures' details are above: the history without them.
    let tail: Vec<String> = {
        let l = LOG.lock().unwrap();
        let lines: Vec<&String> = l.iter().filter(|x| !x.contains(" FAILED: ")).collect();
        lines
            .iter()
            .rev()
            .take(80)
            .rev()
            .map(|x| x.to_string())
            .collect()
    };
    let others: Vec<&String> = failures.iter().skip(1).map(|(i, _)| i).collect();
    panic!(
        "\n=== uapid chaos FAILED {when} step {step}, seed {seed} ===\n\
         invariant: {invariant}\n{details}\n\
         (also broken in this step: {others:?})\n\
         --- the last 80 lines of the history ---\n{}\n\
         --- the whole history: {path}\n\
         replay: {replay}\n",
        tail.join("\n"),
        seed = cfg.seed,
        replay = cfg.replay(),
    );
}

fn write_log(cfg: &Config) -> String {
    let path = std::env::temp_dir().join(format!("uapid-chaos-{}.log", cfg.seed));
    let text = LOG.lock().unwrap().join("\n");
    match std::fs::write(&path, text + "\n") {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not written: {e})"),
    }
}

/// Prints the seed if the test panics elsewhere (a helper's assertion, a timeout).
struct SeedOnPanic<'a>(&'a Config);

impl Drop for SeedOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let path = write_log(self.0);
            eprintln!(
                "uapid chaos: seed {} (history: {path}); replay: {}",
                self.0.seed,
                self.0.replay()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos() {
    let cfg = Config::from_env();
    clock();
    eprintln!(
        "uapid chaos: seed {} for up to {} s{}; replay: {}",
        cfg.seed,
        cfg.secs,
        if cfg.steps == u64::MAX {
            String::new()
        } else {
            format!(" or {} steps", cfg.steps)
        },
        cfg.replay()
    );
    let _seed = SeedOnPanic(&cfg);
    let app = TestApp::spawn().await;
    let mut rng = Rng::new(cfg.seed);
    let obs = Observer::start().await;
    let (phones, phones_task) = Phones::bind(rng.fork()).await;
    let mut tokens = HashMap::new();
    for who in Client::ALL {
        tokens.insert(who, app.api.token_for(who.app()).await);
    }
    let ctx = Ctx {
        api: &app.api,
        ari: ari(),
        obs: &obs,
        phones,
        tokens,
        licenses: Mutex::new(Vec::new()),
        failures: Mutex::new(Vec::new()),
        broken: Mutex::new(Vec::new()),
        stats: Mutex::new(Stats::default()),
        touched: Mutex::new(Vec::new()),
        made_for: Mutex::new(HashMap::new()),
    };
    log(format!("seed {}", cfg.seed));
    setup(&ctx).await;
    after_step(&ctx).await;
    verdict(&ctx, &cfg, 0, "after the set-up,");

    let started = Instant::now();
    let mut step = 0;
    while step < cfg.steps && started.elapsed() < Duration::from_secs(cfg.secs) {
        step += 1;
        let focus = {
            let mut r = rng.fork();
            let calls = if r.chance(40) {
                app.api
                    .calls(
                        "/uapi/phoneCalls/@me/@self?count=100",
                        ctx.token(Client::Admin),
                    )
                    .await
            } else {
                Vec::new()
            };
            r.pick(&calls)
                .and_then(|c| c["id"].as_str())
                .map(str::to_string)
        };
        let planned = plan_step(&mut rng, &ctx);
        let what: Vec<String> = planned
            .iter()
            .map(|(o, d)| format!("{} +{d:?}", o.describe()))
            .collect();
        log(format!(
            "== step {step} (focus {focus:?}): {}",
            what.join("; ")
        ));
        ctx.touched.lock().unwrap().clear();
        join_all(planned.into_iter().enumerate().map(|(i, (op, delay))| {
            run_op(&ctx, op, delay, focus.clone(), format!("[{step}.{i}]"))
        }))
        .await;
        after_step(&ctx).await;
        verdict(&ctx, &cfg, step, "at");
    }

    log(format!(
        "== teardown after {step} steps ({:?})",
        started.elapsed()
    ));
    ctx.phones.with(|w| {
        w.closing = true;
        let live: Vec<usize> = w.live().map(|p| p.n).collect();
        for n in live {
            w.hang_up(n);
        }
    });
    let admin = ctx.token(Client::Admin);
    let sent = Instant::now();
    let (st, body) = app
        .api
        .send(
            reqwest::Method::DELETE,
            "/uapi/phoneCalls/@me/@self",
            admin,
            None,
        )
        .await;
    log(format!("teardown DELETE @me/@self → {st} {body}"));
    if let Some(a) = body.as_array() {
        let mut l = ctx.licenses.lock().unwrap();
        for id in a.iter().filter_map(|x| x["id"].as_str()) {
            l.push(License {
                kind: judge::LicenseKind::HangUp,
                call: id.to_string(),
                parties: Vec::new(),
                sent,
                answered: Instant::now(),
                what: "teardown DELETE @me/@self".into(),
            });
        }
    }
    checks::nothing_left(&ctx, Duration::from_secs(30)).await;
    checks::judge_ends(&ctx).await;
    verdict(&ctx, &cfg, step, "at the end, after");

    phones_task.abort();
    let path = write_log(&cfg);
    {
        let stats = ctx.stats.lock().unwrap();
        let gaps = obs.read(|s| s.gaps.clone());
        eprintln!(
            "uapid chaos: seed {}: {step} steps in {:?}; {} outcome checks inconclusive; ARI websocket gaps {gaps:?}; history {path}",
            cfg.seed,
            started.elapsed(),
            stats.inconclusive
        );
        for (k, n) in &stats.counts {
            eprintln!("  {n:5} {k}");
        }
    }
    let broken = std::mem::take(&mut *ctx.broken.lock().unwrap());
    if !broken.is_empty() {
        let mut by: BTreeMap<&str, Vec<(u64, &str)>> = BTreeMap::new();
        for (i, step, d) in &broken {
            by.entry(i).or_default().push((*step, d));
        }
        let summary: Vec<String> = by
            .iter()
            .map(|(i, v)| {
                let steps: Vec<u64> = v.iter().map(|x| x.0).collect();
                format!(
                    "{} × {i} (steps {steps:?}); the first:\n{}",
                    v.len(),
                    v[0].1
                )
            })
            .collect();
        panic!(
            "\n=== uapid chaos: seed {} broke invariants ({} times) ===\n{}\n--- the whole history: {path}\nreplay: {}\n",
            cfg.seed,
            broken.len(),
            summary.join("\n\n"),
            cfg.replay()
        );
    }
    eprintln!("uapid chaos: seed {} passed", cfg.seed);
    drop(ctx);
    obs.stop().await;
}
