//! UAPI actions on live calls: parse → plan (read the tracker) → execute (AMI/ARI) →
//! confirm (the outcome arrives as events and shows in List).
//!
//! Actions on one call are serialized: each takes the call's lock, and a second action
//! that finds it taken gets `409 pc_phonecall_busy` instead of racing the first. After
//! an operation is accepted the lock is held a little longer, until the tracker shows its
//! outcome (bounded), so the next action plans on the new state, not the old one.

pub mod calls;
pub mod hold;
pub mod park;
pub mod parse;
pub mod pickup;
pub mod transfer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{mpsc, watch};

use crate::api::error::ApiError;
use crate::asterisk::ami::{AmiClient, AmiError, Message};
use crate::asterisk::ari::model::Text;
use crate::asterisk::ari::{AriError, AriRest};
use crate::calls::tracker::{CallState, ChanState, Input, ParkedState, Party};
use crate::calls::Tracker;
use crate::config::{AsteriskSettings, Directory};
use parse::{Action, ViewId};

/// How long an action waits for Asterisk to show what it did, before it reports.
pub const SETTLE: Duration = Duration::from_secs(5);

/// The dialplan contexts and names uapid relies on (see README, "What uapid needs").
#[derive(Debug, Clone)]
pub struct PbxNames {
    pub app: String,
    pub dial_context: String,
    pub stasis_context: String,
    pub voicemail_context: String,
    pub parking_lot: String,
    pub parked_context: String,
}

impl PbxNames {
    pub fn from_settings(a: &AsteriskSettings) -> PbxNames {
        PbxNames {
            app: a.app.clone(),
            dial_context: a.dial_context.clone(),
            stasis_context: a.stasis_context.clone(),
            voicemail_context: a.voicemail_context.clone(),
            parking_lot: a.parking_lot.clone(),
            parked_context: a.parked_context.clone(),
        }
    }
}

pub struct Engine {
    /// The AMI session that carries the events; its link is the PBX link.
    pub ami: AmiClient,
    /// Every AMI session actions may use (`ami` first).
    ami_pool: Vec<AmiClient>,
    next_ami: std::sync::atomic::AtomicUsize,
    pub ari: AriRest,
    pub tracker: Arc<RwLock<Tracker>>,
    pub changes: watch::Receiver<u64>,
    pub notes: mpsc::UnboundedSender<Input>,
    pub dir: Arc<Directory>,
    pub names: PbxNames,
    locks: Mutex<HashMap<Arc<str>, CallLock>>,
}

/// One call's lock, and whether its holder is only waiting for Asterisk to show the
/// outcome of an operation already done ([`Engine::settle`]).
#[derive(Default, Clone)]
struct CallLock {
    mutex: Arc<tokio::sync::Mutex<()>>,
    settling: Arc<std::sync::atomic::AtomicBool>,
}

/// The lock of one call, held while an action works on it.
pub struct CallGuard {
    _held: tokio::sync::OwnedMutexGuard<()>,
    settling: Arc<std::sync::atomic::AtomicBool>,
}

/// One leg of a call as an action sees it.
#[derive(Debug, Clone)]
pub struct Leg {
    pub id: String,
    pub name: String,
    pub party: Party,
    pub state: ChanState,
    pub bridge: Option<String>,
    pub parked: Option<ParkedState>,
    pub in_stasis: bool,
    pub held_by_uapid: bool,
    pub caller_name: String,
    pub caller_number: String,
}

impl Leg {
    pub fn is_extension(&self, number: &str) -> bool {
        matches!(&self.party, Party::Extension(n) if n == number)
    }
}

/// A call as an action sees it: a copy taken under the read lock.
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub id: Arc<str>,
    pub extensions: Vec<String>,
    pub legs: Vec<Leg>,
}

impl CallPlan {
    /// The extension of a view: "01" is the first extension of the call.
    pub fn view_extension(&self, view: ViewId) -> Option<&str> {
        self.extensions
            .get(view.0.checked_sub(1)?)
            .map(String::as_str)
    }

    /// The most advanced leg of an extension (answered over ringing over the rest).
    pub fn leg_of(&self, ext: &str) -> Option<&Leg> {
        let rank = |l: &Leg| match l.state {
            ChanState::Up => 3,
            ChanState::Ringing => 2,
            _ => 1,
        };
        self.legs
            .iter()
            .filter(|l| l.is_extension(ext))
            .max_by_key(|l| rank(l))
    }

    /// The party `leg` talks to: the one in its bridge, else the other answered leg.
    pub fn peer_of(&self, leg: &Leg) -> Option<&Leg> {
        let other = |l: &&Leg| l.id != leg.id && l.party != leg.party;
        if let Some(b) = &leg.bridge {
            if let Some(p) = self
                .legs
                .iter()
                .filter(other)
                .find(|l| l.bridge.as_ref() == Some(b))
            {
                return Some(p);
            }
        }
        self.legs
            .iter()
            .filter(other)
            .find(|l| l.state == ChanState::Up && l.parked.is_none())
    }

    /// The leg of a party named by number (full or short extension, or public number).
    pub fn leg_by_number(&self, dir: &Directory, number: &str) -> Option<&Leg> {
        let org = self
            .extensions
            .first()
            .and_then(|e| dir.extensions.get(e))
            .map(|e| e.organization);
        let ext = dir.resolve_extension(number, org).map(|e| e.number.clone());
        let matches = |l: &&Leg| match (&l.party, &ext) {
            (Party::Extension(n), Some(e)) => n == e,
            (Party::Public(n), _) => {
                n == number || n.trim_start_matches('+') == number.trim_start_matches('+')
            }
            _ => false,
        };
        let rank = |l: &&Leg| if l.state == ChanState::Up { 1 } else { 0 };
        self.legs.iter().filter(matches).max_by_key(rank)
    }
}

/// What an action did to one call.
#[derive(Debug, Clone)]
pub struct Done {
    pub call: Arc<str>,
}

/// Error helpers: what went wrong, in UAPI terms.
pub fn wrong_state(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "pc_phonecall_state_invalid", msg)
}

pub fn no_such_call() -> ApiError {
    ApiError::bad_request(
        "pc_phonecall_invalid",
        "phoneCallId does not reference a phone call this app can act on",
    )
}

pub fn bad_view() -> ApiError {
    ApiError::bad_request(
        "pc_phonecallview_invalid",
        "phoneCallViewId does not reference a view of this phone call",
    )
}

impl From<AmiError> for ApiError {
    fn from(e: AmiError) -> ApiError {
        match e {
            AmiError::NotConnected | AmiError::Timeout(_) => {
                ApiError::unavailable(format!("Asterisk is unreachable: {e}"))
            }
            AmiError::Refused(m) => ApiError::new(
                StatusCode::CONFLICT,
                "pc_operation_failed",
                format!("Asterisk refused the operation: {m}"),
            ),
        }
    }
}

impl From<AriError> for ApiError {
    fn from(e: AriError) -> ApiError {
        match e {
            AriError::Unreachable(_) => {
                ApiError::unavailable(format!("Asterisk is unreachable: {e}"))
            }
            AriError::Status { status: 404, .. }
            | AriError::Status { status: 409, .. }
            | AriError::Status { status: 422, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "pc_operation_failed",
                format!("the call changed meanwhile: {e}"),
            ),
            other => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "pc_operation_failed",
                other.to_string(),
            ),
        }
    }
}

/// A fresh id for a channel uapid creates (also its call's linkedid).
pub fn new_channel_id() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS gives random bytes");
    format!(
        "uapid-{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

impl Engine {
    /// `ami_pool`: the AMI sessions, the one that carries the events first.
    pub fn new(
        ami_pool: Vec<AmiClient>,
        ari: AriRest,
        tracker: Arc<RwLock<Tracker>>,
        changes: watch::Receiver<u64>,
        notes: mpsc::UnboundedSender<Input>,
        dir: Arc<Directory>,
        names: PbxNames,
    ) -> Engine {
        let ami = ami_pool.first().expect("one AMI session").clone();
        Engine {
            ami,
            ami_pool,
            next_ami: Default::default(),
            ari,
            tracker,
            changes,
            notes,
            dir,
            names,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tracker> {
        self.tracker.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the call's lock. An action that arrives while another one only waits for
    /// Asterisk to show its outcome waits its turn (bounded) and then plans on that
    /// outcome, as a PBX user would expect of Park followed at once by UnPark; one that
    /// arrives while another is still working is told the call is busy.
    pub async fn lock_call(&self, call: &Arc<str>) -> Result<CallGuard, ApiError> {
        use std::sync::atomic::Ordering;
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|_, l| Arc::strong_count(&l.mutex) > 1 || l.mutex.try_lock().is_err());
            locks.entry(call.clone()).or_default().clone()
        };
        let guard = |held| CallGuard {
            _held: held,
            settling: lock.settling.clone(),
        };
        if let Ok(held) = lock.mutex.clone().try_lock_owned() {
            return Ok(guard(held));
        }
        if lock.settling.load(Ordering::Acquire) {
            if let Ok(held) = tokio::time::timeout(SETTLE, lock.mutex.clone().lock_owned()).await {
                return Ok(guard(held));
            }
        }
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "pc_phonecall_busy",
            "another action is in progress on this phone call; try again when it is done",
        ))
    }

    /// Whether some action holds the call's lock now.
    pub fn is_busy(&self, call: &str) -> bool {
        let locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.get(call).is_some_and(|l| l.mutex.try_lock().is_err())
    }

    /// A copy of what actions need to know about a call.
    pub fn plan(&self, call: &str) -> Option<CallPlan> {
        let t = self.read();
        let c = t.call(call)?;
        Some(plan_of(&t, c, &self.names.app))
    }

    /// Waits until `pred` holds on the tracker (checked after each change), at most `within`.
    pub async fn wait_until(&self, within: Duration, pred: impl Fn(&Tracker) -> bool) -> bool {
        let mut changes = self.changes.clone();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if pred(&self.read()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return pred(&self.read()),
            }
        }
    }

    /// Holds the call's lock until `pred` holds (bounded), in the background, so the
    /// next action on the call plans on the outcome of this one.
    pub fn settle(
        self: &Arc<Self>,
        guard: CallGuard,
        pred: impl Fn(&Tracker) -> bool + Send + 'static,
    ) {
        use std::sync::atomic::Ordering;
        guard.settling.store(true, Ordering::Release);
        let me = self.clone();
        tokio::spawn(async move {
            me.wait_until(SETTLE, pred).await;
            guard.settling.store(false, Ordering::Release);
            drop(guard);
        });
    }

    pub fn note(&self, n: crate::calls::tracker::Note) {
        let _ = self.notes.send(Input::Note(n));
    }

    /// Runs one action on one call.
    pub async fn act(
        self: &Arc<Self>,
        call: &Arc<str>,
        path_ext: Option<&str>,
        action: &Action,
    ) -> Result<Done, ApiError> {
        let guard = self.lock_call(call).await?;
        let plan = self.plan(call).ok_or_else(no_such_call)?;
        // The view the action names; without one, the path extension's view.
        let view_ext: Option<String> = match action.view() {
            Some(v) => Some(plan.view_extension(v).ok_or_else(bad_view)?.to_string()),
            None => path_ext
                .filter(|e| plan.extensions.iter().any(|x| x == e))
                .map(str::to_string),
        };
        let view_ext = view_ext.or_else(|| plan.extensions.first().cloned());
        match action {
            Action::Park { timeout, .. } => {
                park::park(self, guard, &plan, view_ext.as_deref(), *timeout).await
            }
            Action::UnPark {
                send_call_to,
                caller_id,
                wait,
                ..
            } => {
                park::unpark(
                    self,
                    guard,
                    &plan,
                    view_ext.as_deref(),
                    send_call_to,
                    caller_id.as_ref(),
                    *wait,
                )
                .await
            }
            Action::PickUp {
                send_call_to,
                caller_id,
                wait,
                ..
            } => {
                pickup::pickup(
                    self,
                    guard,
                    &plan,
                    view_ext.as_deref(),
                    send_call_to,
                    caller_id.as_ref(),
                    *wait,
                )
                .await
            }
            Action::OnHold { .. } => hold::on_hold(self, guard, &plan, view_ext.as_deref()).await,
            Action::OffHold { .. } => hold::off_hold(self, guard, &plan, view_ext.as_deref()).await,
            Action::Transfer {
                send_call_to,
                from,
                number,
            } => {
                transfer::transfer(self, guard, &plan, send_call_to, from, number.as_deref()).await
            }
            Action::TransferToVoicemail {
                send_call_to,
                from,
                number,
            } => {
                transfer::to_voicemail(
                    self,
                    guard,
                    &plan,
                    path_ext,
                    send_call_to,
                    from.as_deref(),
                    number.as_deref(),
                )
                .await
            }
        }
    }

    /// AMI action that must succeed.
    pub async fn ami(&self, action: Message) -> Result<crate::asterisk::ami::AmiReply, ApiError> {
        Ok(self.pick_ami().request(action).await?)
    }

    /// The next connected session of the pool, in turn; the events' session when that one
    /// is down (so the action fails as the PBX link is down).
    fn pick_ami(&self) -> &AmiClient {
        if !self.ami.is_connected() || self.ami_pool.is_empty() {
            return &self.ami;
        }
        let n = self.ami_pool.len();
        let start = self
            .next_ami
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (0..n)
            .map(|i| &self.ami_pool[(start + i) % n])
            .find(|c| c.is_connected())
            .unwrap_or(&self.ami)
    }
}

pub fn plan_of(t: &Tracker, c: &CallState, app: &str) -> CallPlan {
    let legs = c
        .channels
        .iter()
        .filter_map(|id| t.channel(id))
        .map(|ch| Leg {
            id: ch.id.to_string(),
            name: ch.name.to_string(),
            party: t.party_of(ch),
            state: ch.state,
            bridge: ch.bridge.as_ref().map(Text::to_string),
            parked: t.parked(&ch.id).cloned(),
            in_stasis: t.in_stasis(&ch.id, app),
            held_by_uapid: ch.held_by_uapid.is_some(),
            caller_name: ch.caller.name.to_string(),
            caller_number: ch.caller.number.to_string(),
        })
        .collect();
    CallPlan {
        id: c.id.clone(),
        extensions: c.extensions.clone(),
        legs,
    }
}

/// A caller id as Asterisk takes it: `"Name" <number>`.
pub fn asterisk_caller_id(name: &str, number: &str) -> String {
    format!("\"{}\" <{}>", name.replace('"', ""), number)
}

/// The PJSIP dial string of an extension.
pub fn dial_string(ext: &crate::config::Extension) -> String {
    format!("PJSIP/{}", ext.endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asterisk::ami::AmiConfig;
    use crate::config::Settings;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// An engine whose PBX links point at a closed port: only its call locks are used.
    fn engine() -> (Arc<Engine>, watch::Sender<u64>) {
        let s = Settings::defaults();
        let a = &s.asterisk;
        let (ami, _task) = AmiClient::spawn(
            AmiConfig {
                addr: "127.0.0.1:9".into(),
                user: a.ami_user.clone(),
                secret: a.ami_secret.clone(),
                events: vec![],
            },
            mpsc::unbounded_channel().0,
        );
        let dir = Arc::new(Directory::build(&s.directory).expect("directory"));
        let (changes_tx, changes) = watch::channel(0);
        let e = Engine::new(
            vec![ami],
            AriRest::new("http://127.0.0.1:9", &a.ari_user, a.ari_password.clone()),
            Arc::new(RwLock::new(Tracker::new(dir.clone()))),
            changes,
            mpsc::unbounded_channel().0,
            dir,
            PbxNames::from_settings(a),
        );
        (Arc::new(e), changes_tx)
    }

    #[tokio::test]
    async fn a_working_action_makes_others_busy_a_settling_one_makes_them_wait() {
        let (e, changes) = engine();
        let call: Arc<str> = Arc::from("c1");
        let first = e.lock_call(&call).await.expect("free");
        let busy = e.lock_call(&call).await.err().expect("busy while working");
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::CONFLICT, "pc_phonecall_busy")
        );
        assert!(e.is_busy(&call));

        // The first action's operation is done; it waits for the PBX to show it.
        let shown = Arc::new(AtomicBool::new(false));
        let s2 = shown.clone();
        e.settle(first, move |_| s2.load(Ordering::SeqCst));
        let e2 = e.clone();
        let c2 = call.clone();
        let mut next = tokio::spawn(async move { e2.lock_call(&c2).await.map(|_| ()) });
        // Still waiting: the outcome has not shown yet.
        assert!(tokio::time::timeout(Duration::from_millis(50), &mut next)
            .await
            .is_err());
        shown.store(true, Ordering::SeqCst);
        changes.send_modify(|n| *n += 1);
        let got = tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .expect("the waiting action gets the lock once the outcome shows")
            .expect("task");
        assert!(got.is_ok());
        // Another call was never locked.
        assert!(e.lock_call(&Arc::from("c2")).await.is_ok());
    }
}
