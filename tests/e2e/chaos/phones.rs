//! The chaos test's phones: the sandbox's four extensions and the public network, each a
//! test phone (sip_phone.rs), and every call they make or get (a *party*). A background
//! task picks up incoming calls and, as the seed decides, answers or refuses each after a
//! while, or lets it ring; it also notes when and how each party ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sip_phone::{Call, CallState, End, Phone, PUBLIC_NUMBER};

use super::rng::Rng;
use super::{clock, log};

/// A phone of the sandbox: its short number (`None`: the public network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneId(pub usize);

pub const SHORTS: [&str; 4] = ["210", "211", "024", "212"];
/// The public network's phone, after the four extensions.
pub const PUBLIC: PhoneId = PhoneId(4);
/// Public numbers the PBX sends to the trunk (the public phone answers them all).
pub const PUBLIC_NUMBERS: [&str; 2] = [PUBLIC_NUMBER, "4155550100"];

impl PhoneId {
    pub fn name(self) -> String {
        match SHORTS.get(self.0) {
            Some(s) => s.to_string(),
            None => "public".to_string(),
        }
    }

    pub fn all() -> impl Iterator<Item = PhoneId> {
        (0..=SHORTS.len()).map(PhoneId)
    }
}

/// What a phone does with an incoming call.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Answer,
    Reject(u16),
}

pub struct Party {
    /// `P<n>` in the log.
    pub n: usize,
    pub phone: PhoneId,
    pub call: Call,
    pub incoming: bool,
    pub what: String,
    /// How and when it ended, as this phone saw it.
    pub ended: Option<(End, f64)>,
    /// Whether its end has been judged (see judge.rs).
    pub judged: bool,
    plan: Option<(Instant, Plan)>,
}

impl Party {
    pub fn label(&self) -> String {
        format!("P{} ({})", self.n, self.what)
    }

    pub fn state(&self) -> CallState {
        self.call.state()
    }

    pub fn live(&self) -> bool {
        self.ended.is_none() && !matches!(self.call.state(), CallState::Ended(_))
    }
}

pub struct World {
    phones: Vec<Phone>,
    pub parties: Vec<Party>,
    rng: Rng,
    next: usize,
    /// The test is ending: incoming calls are refused at once.
    pub closing: bool,
}

impl World {
    fn add(&mut self, phone: PhoneId, call: Call, incoming: bool, what: String) -> usize {
        self.next += 1;
        let n = self.next;
        log(format!("P{n}: {what} (SIP {})", call.sip_call_id()));
        self.parties.push(Party {
            n,
            phone,
            call,
            incoming,
            what,
            ended: None,
            judged: false,
            plan: None,
        });
        n
    }

    /// Phone `from` dials `number`; returns the new party's number.
    pub fn dial(&mut self, from: PhoneId, number: &str) -> usize {
        let call = self.phones[from.0].dial(number);
        self.add(from, call, false, format!("{} dials {number}", from.name()))
    }

    pub fn party(&self, n: usize) -> Option<&Party> {
        self.parties.iter().find(|p| p.n == n)
    }

    pub fn live(&self) -> impl Iterator<Item = &Party> {
        self.parties.iter().filter(|p| p.live())
    }

    /// One pass of the phones: new incoming calls get a plan, plans due are carried out,
    /// ends are noted.
    fn tick(&mut self) {
        for id in PhoneId::all() {
            while let Some(call) = self.phones[id.0].try_next_call() {
                let what = format!("{} rung by the PBX", id.name());
                let n = self.add(id, call, true, what);
                if self.closing {
                    let p = self.parties.iter_mut().find(|p| p.n == n).expect("added");
                    p.plan = Some((Instant::now(), Plan::Reject(603)));
                    continue;
                }
                let plan = match self.rng.range(0, 99) {
                    0..=74 => Some(Plan::Answer),
                    75..=86 => Some(Plan::Reject(if self.rng.chance(50) { 486 } else { 603 })),
                    _ => None,
                };
                let after = Duration::from_millis(self.rng.range(300, 2500));
                let p = self.parties.iter_mut().find(|p| p.n == n).expect("added");
                if let Some(plan) = plan {
                    log(format!("P{n}: will {plan:?} after {after:?}"));
                    p.plan = Some((Instant::now() + after, plan));
                } else {
                    log(format!("P{n}: lets it ring"));
                }
            }
        }
        let now = Instant::now();
        for p in &mut self.parties {
            if let Some((at, plan)) = p.plan {
                if at <= now {
                    p.plan = None;
                    let done = match plan {
                        Plan::Answer => p.call.try_answer(),
                        Plan::Reject(code) => p.call.try_reject(code),
                    };
                    match done {
                        Ok(()) => log(format!("P{}: {plan:?}", p.n)),
                        Err(st) => log(format!("P{}: too late to {plan:?} ({st:?})", p.n)),
                    }
                }
            }
            if p.ended.is_none() {
                if let CallState::Ended(e) = p.call.state() {
                    p.ended = Some((e, clock()));
                    log(format!("P{}: ended {e:?}", p.n));
                }
            }
        }
    }

    /// Answers a ringing incoming party now (a step of the test, not a plan).
    pub fn answer(&mut self, n: usize) {
        if let Some(p) = self.parties.iter_mut().find(|p| p.n == n) {
            p.plan = Some((Instant::now(), Plan::Answer));
        }
        self.tick();
    }

    pub fn reject(&mut self, n: usize, code: u16) {
        if let Some(p) = self.parties.iter_mut().find(|p| p.n == n) {
            p.plan = Some((Instant::now(), Plan::Reject(code)));
        }
        self.tick();
    }

    /// The phone hangs the party up (BYE, CANCEL or 603, as its state needs).
    pub fn hang_up(&mut self, n: usize) {
        if let Some(p) = self.parties.iter_mut().find(|p| p.n == n) {
            p.plan = None;
            log(format!("P{n}: the test hangs up ({:?})", p.call.state()));
            p.call.hangup();
        }
        self.tick();
    }
}

/// The phones, shared between the test's steps and the background task.
#[derive(Clone)]
pub struct Phones(pub Arc<Mutex<World>>);

impl Phones {
    pub async fn bind(rng: Rng) -> (Phones, tokio::task::JoinHandle<()>) {
        let mut phones = Vec::new();
        for s in SHORTS {
            phones.push(Phone::bind(s).await);
        }
        phones.push(Phone::bind_public().await);
        let world = Phones(Arc::new(Mutex::new(World {
            phones,
            parties: Vec::new(),
            rng,
            next: 0,
            closing: false,
        })));
        let w = world.clone();
        let task = tokio::spawn(async move {
            loop {
                w.with(|w| w.tick());
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        (world, task)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}
