//! How many IMAP sessions the seed workers may hold at once: `imap.max_sessions` in all and
//! `imap.provider_sessions` per provider, as semaphores. A session holds its permits from the
//! login to the drop (through IDLE), so the limits count open connections, not work.
//!
//! Waiting workers are not starved by idling ones: a worker that has to wait wakes one idle
//! worker of the same provider (or any, when the overall cap is the one reached), which logs
//! out and polls for a while instead.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::ImapConfig;
use crate::domain::Provider;

#[derive(Debug, Default)]
struct Gauge {
    open: AtomicUsize,
    peak: AtomicUsize,
    waiting: AtomicUsize,
}

impl Gauge {
    fn up(&self) {
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn down(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Lane {
    sem: Arc<Semaphore>,
    gauge: Gauge,
    /// Rung once per worker that starts waiting here: one idle worker gives way.
    wanted: Notify,
}

impl Lane {
    fn new(limit: usize) -> Self {
        Lane {
            sem: Arc::new(Semaphore::new(limit.max(1))),
            gauge: Gauge::default(),
            wanted: Notify::new(),
        }
    }

    async fn acquire(&self) -> OwnedSemaphorePermit {
        if let Ok(p) = self.sem.clone().try_acquire_owned() {
            return p;
        }
        self.gauge.waiting.fetch_add(1, Ordering::SeqCst);
        self.wanted.notify_one();
        let permit = self.sem.clone().acquire_owned().await;
        self.gauge.waiting.fetch_sub(1, Ordering::SeqCst);
        permit.expect("the semaphore is never closed")
    }
}

/// The session limits of one process, shared by all seed workers.
#[derive(Debug)]
pub struct SessionLimits {
    all: Lane,
    providers: HashMap<Provider, Lane>,
}

impl SessionLimits {
    pub fn new(config: &ImapConfig) -> Arc<Self> {
        Arc::new(SessionLimits {
            all: Lane::new(config.max_sessions),
            providers: Provider::ALL
                .iter()
                .map(|p| (*p, Lane::new(config.for_provider(*p))))
                .collect(),
        })
    }

    fn lane(&self, provider: Provider) -> &Lane {
        self.providers
            .get(&provider)
            .expect("every provider has a lane")
    }

    /// Waits for room for one more session to `provider`. The provider's permit first, then
    /// the overall one (always in this order, so two workers never hold one each of the other's).
    pub async fn acquire(self: &Arc<Self>, provider: Provider) -> Slot {
        let provider_permit = self.lane(provider).acquire().await;
        let all_permit = self.all.acquire().await;
        Slot {
            _permits: (provider_permit, all_permit),
            limits: self.clone(),
            provider,
            open: false,
        }
    }

    /// Whether some worker is waiting for room that a session of `provider` could give.
    pub fn contended(&self, provider: Provider) -> bool {
        self.lane(provider).gauge.waiting.load(Ordering::SeqCst) > 0
            || self.all.gauge.waiting.load(Ordering::SeqCst) > 0
    }

    /// Resolves when a worker starts waiting for room that a session of `provider` could give.
    pub async fn wanted(&self, provider: Provider) {
        tokio::select! {
            _ = self.lane(provider).wanted.notified() => {}
            _ = self.all.wanted.notified() => {}
        }
    }

    /// Sessions open now, to `provider` or (None) in all.
    pub fn open(&self, provider: Option<Provider>) -> usize {
        let lane = provider.map_or(&self.all, |p| self.lane(p));
        lane.gauge.open.load(Ordering::SeqCst)
    }

    /// The most sessions that were ever open at once, to `provider` or (None) in all.
    pub fn peak(&self, provider: Option<Provider>) -> usize {
        let lane = provider.map_or(&self.all, |p| self.lane(p));
        lane.gauge.peak.load(Ordering::SeqCst)
    }
}

/// Room for one session. Counted as open once the login succeeded ([`Slot::opened`]);
/// dropping it gives the room back.
#[derive(Debug)]
pub struct Slot {
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    limits: Arc<SessionLimits>,
    provider: Provider,
    open: bool,
}

impl Slot {
    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn opened(&mut self) {
        if !self.open {
            self.open = true;
            self.limits.lane(self.provider).gauge.up();
            self.limits.all.gauge.up();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.open {
            self.limits.lane(self.provider).gauge.down();
            self.limits.all.gauge.down();
        }
    }
}

/// Exponential backoff with "equal jitter": half the delay is fixed, half random, so a crowd
/// of workers that failed together (a server restart) does not come back together. `attempt`
/// 0 is the first retry; `unit` is a random draw in [0, 1).
pub fn backoff(attempt: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let full = base
        .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
        .min(max);
    full / 2 + (full / 2).mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let s = Duration::from_secs;
        // (attempt, draw, expected)
        let cases = [
            (0, 0.0, Duration::from_millis(500)),
            (0, 0.999_999, Duration::from_millis(999)),
            (1, 0.0, s(1)),
            (3, 0.5, s(6)),
            (8, 0.0, s(128)),
            (9, 0.0, s(150)),
            (40, 1.0, s(300)),
        ];
        for (attempt, unit, want) in cases {
            let got = backoff(attempt, s(1), s(300), unit);
            assert!(
                got.abs_diff(want) < Duration::from_millis(2),
                "attempt {attempt}, draw {unit}: {got:?}, expected {want:?}"
            );
        }
    }

    #[tokio::test]
    async fn sessions_are_bounded_per_provider_and_in_all() {
        let mut config = ImapConfig {
            max_sessions: 3,
            ..ImapConfig::default()
        };
        config.provider_sessions.insert(Provider::Gmail, 2);
        let limits = SessionLimits::new(&config);
        let mut a = limits.acquire(Provider::Gmail).await;
        let mut b = limits.acquire(Provider::Gmail).await;
        a.opened();
        b.opened();
        // A third Gmail session waits, and says so to the idle ones.
        let third = {
            let l = limits.clone();
            tokio::spawn(async move { l.acquire(Provider::Gmail).await })
        };
        limits.wanted(Provider::Gmail).await;
        assert!(limits.contended(Provider::Gmail));
        let mut y = limits.acquire(Provider::Yahoo).await;
        y.opened();
        assert_eq!(
            (limits.open(Some(Provider::Gmail)), limits.open(None)),
            (2, 3)
        );
        // Room overall, none at Gmail: still waiting.
        drop(y);
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!third.is_finished());
        drop(a);
        let mut c = third.await.unwrap();
        c.opened();
        // Gmail has 2 (b, c); one Yahoo fills the overall cap, a second waits on it.
        let mut y2 = limits.acquire(Provider::Yahoo).await;
        y2.opened();
        let fourth = {
            let l = limits.clone();
            tokio::spawn(async move { l.acquire(Provider::Yahoo).await })
        };
        limits.wanted(Provider::Gmail).await; // an overall wait concerns every provider
        assert!(limits.contended(Provider::Outlook));
        drop(b);
        drop(fourth.await.unwrap());
        assert_eq!(limits.peak(Some(Provider::Gmail)), 2);
        assert_eq!(limits.peak(None), 3);
        assert!(!limits.contended(Provider::Gmail));
    }
}
