//! Thin typed clients for the parts of Asterisk uapid uses: ARI (REST and the events
//! websocket) and AMI (actions and events).

pub mod ami;
pub mod ari;

use std::time::Duration;

/// How uapid checks that a link to Asterisk is alive: a probe (AMI `Ping`, a websocket
/// ping) after `every` without traffic, and the link is declared dead when nothing at
/// all arrives `within` that long after the probe. A frozen Asterisk keeps its TCP
/// connections open, so only this notices it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub every: Duration,
    pub within: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            every: Duration::from_secs(1),
            within: Duration::from_secs(3),
        }
    }
}

/// The keepalive state of one connection.
#[derive(Debug)]
pub(crate) struct Liveness {
    cfg: Keepalive,
    last_heard: tokio::time::Instant,
    probe_sent: Option<tokio::time::Instant>,
}

/// What the keepalive wants done at its next deadline.
pub(crate) enum Due {
    /// Send a probe now.
    Probe,
    /// The link is dead: nothing arrived since the probe.
    Dead(Duration),
}

impl Liveness {
    pub fn new(cfg: Keepalive) -> Liveness {
        Liveness {
            cfg,
            last_heard: tokio::time::Instant::now(),
            probe_sent: None,
        }
    }

    /// Anything arrived: the link is alive.
    pub fn heard(&mut self) {
        self.last_heard = tokio::time::Instant::now();
        self.probe_sent = None;
    }

    /// When the keepalive next needs attention.
    pub fn deadline(&self) -> tokio::time::Instant {
        match self.probe_sent {
            Some(at) => at + self.cfg.within,
            None => self.last_heard + self.cfg.every,
        }
    }

    /// At the deadline: probe, or declare the link dead.
    pub fn due(&mut self) -> Due {
        match self.probe_sent {
            Some(at) => Due::Dead(at.elapsed()),
            None => {
                self.probe_sent = Some(tokio::time::Instant::now());
                Due::Probe
            }
        }
    }
}
