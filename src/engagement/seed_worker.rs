//! One logical worker per seed inbox. It keeps one IMAP session open (within the limits of
//! [`SessionLimits`]), scans and engages on every [`SeedWorker::step`], and between steps
//! waits in IDLE on the inbox when the server offers it (new mail wakes it at once), or polls,
//! backing off while nothing arrives. A dropped connection is reopened with exponential backoff
//! and jitter; a refused login marks the seed `broken` with the server's words, and the first
//! login that succeeds again (after a config change) marks it `active`.
//!
//! The production loop ([`SeedWorker::run`]) and the tests call the same `step` and `wait`.

use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response};
use rand::RngExt as _;
use tokio_util::sync::CancellationToken;

use super::act::{self, EngageReport};
use super::imap::{ImapError, Session};
use super::pool::{SessionLimits, Slot, backoff};
use super::scan::{self, ScanError, ScanReport};
use crate::domain::SeedStatus;
use crate::startup::App;
use crate::status::Health;
use crate::store::{self, seeds::SeedRow};

const IMAP_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 2177: re-issue IDLE at least every 29 minutes.
const IDLE_MAX: Duration = Duration::from_secs(25 * 60);
/// After a dropped connection: 1 s, 2 s, 4 s … up to 5 minutes (halved by the jitter at worst).
const RECONNECT_BASE: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(300);
/// After a refused login: 15 minutes, then longer, up to 6 hours. Providers lock accounts
/// that keep failing, so a broken seed is retried slowly.
const REFUSED_BASE: Duration = Duration::from_secs(15 * 60);
const REFUSED_MAX: Duration = Duration::from_secs(6 * 3600);
/// Polling without IDLE doubles the interval after each empty poll, up to this factor.
const QUIET_MAX_DOUBLINGS: u32 = 3;

/// What one step did.
#[derive(Debug)]
pub enum StepOutcome {
    Scanned {
        scan: ScanReport,
        engage: EngageReport,
    },
    /// The server refused the login; the seed is now `broken` with this reason.
    LoginRefused { reason: String },
    /// Anything else (unreachable, TLS, protocol, database); the session was dropped.
    Failed { error: String, transient: bool },
    /// The seed was removed or disabled: the worker ends.
    Gone,
}

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The server announced new mail in the inbox (IDLE).
    NewMail,
    /// The poll interval or the backoff passed.
    Timer,
    Shutdown,
}

struct Open {
    // Dropped before the slot: the connection closes, then the room is given back.
    session: Session,
    slot: Slot,
    idle: bool,
}

pub struct SeedWorker {
    app: App,
    limits: Arc<SessionLimits>,
    seed_id: i64,
    open: Option<Open>,
    /// Consecutive failed connections or refused logins.
    failures: u32,
    /// Consecutive steps that found nothing.
    quiet: u32,
    /// True while the session waits in IDLE.
    idling: tokio::sync::watch::Sender<bool>,
}

impl SeedWorker {
    pub fn new(app: App, limits: Arc<SessionLimits>, seed_id: i64) -> Self {
        SeedWorker {
            app,
            limits,
            seed_id,
            open: None,
            failures: 0,
            quiet: 0,
            idling: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Follows whether the worker is waiting in IDLE (for status and tests).
    pub fn idling(&self) -> tokio::sync::watch::Receiver<bool> {
        self.idling.subscribe()
    }

    /// Whether a session is open now.
    pub fn is_connected(&self) -> bool {
        self.open.is_some()
    }

    /// Whether the open session's server offers IDLE.
    pub fn uses_idle(&self) -> bool {
        self.open.as_ref().is_some_and(|o| o.idle)
    }

    /// One pass: log in when there is no session (waiting for room under the limits), then scan
    /// and engage. Re-reads the seed each time, so a config change takes effect at the next
    /// login.
    pub async fn step(&mut self) -> StepOutcome {
        let app = self.app.clone();
        let pool = app.store.pool();
        let seed = match store::seeds::get(pool, self.seed_id).await {
            Ok(Some(s)) if s.status != SeedStatus::Disabled => s,
            Ok(_) => {
                self.open = None;
                return StepOutcome::Gone;
            }
            Err(e) => return self.failed(&ScanError::Store(e)),
        };
        if self.open.is_none()
            && let Err(outcome) = self.login(&seed).await
        {
            return outcome;
        }
        let session = &mut self.open.as_mut().expect("logged in above").session;
        // One LIST for the pass: the scan and the engagement look in the same folders.
        let result = async {
            let folders = scan::discover_folders(session, &seed).await?;
            let scan = scan::scan_folders(&app, &seed, session, &folders).await?;
            let engage = act::engage_session(&app, &seed, session, &folders).await?;
            Ok::<_, ScanError>((scan, engage))
        }
        .await;
        match result {
            Ok((scan, engage)) => {
                self.failures = 0;
                self.quiet = if scan.found == 0 { self.quiet + 1 } else { 0 };
                app.status.set(
                    component(&seed),
                    Health::Ok,
                    format!(
                        "scanned {} folders, {} new placements, {} actions ({})",
                        scan.folders.len(),
                        scan.recorded,
                        engage.performed,
                        if self.uses_idle() { "IDLE" } else { "polling" }
                    ),
                    app.clock.now(),
                );
                StepOutcome::Scanned { scan, engage }
            }
            Err(e) => {
                tracing::warn!(seed = %seed.record.address, error = %e, "seed pass failed");
                app.status.set(
                    component(&seed),
                    Health::Failing,
                    e.to_string(),
                    app.clock.now(),
                );
                self.failed(&e)
            }
        }
    }

    async fn login(&mut self, seed: &SeedRow) -> Result<(), StepOutcome> {
        let app = &self.app;
        let pool = app.store.pool();
        let mut slot = self.limits.acquire(seed.record.provider).await;
        // A password, or XOAUTH2 with the grant's token (replaced once if refused).
        let mut session = match super::login::open(app, &seed.record.imap, IMAP_TIMEOUT).await {
            Ok(s) => s,
            Err(ScanError::Imap(e @ ImapError::Login { .. })) => {
                let reason = e.to_string();
                tracing::warn!(seed = %seed.record.address, %reason, "IMAP login refused: seed broken");
                let now = app.clock.now();
                if let Err(e) =
                    store::seeds::set_status(pool, seed.id, SeedStatus::Broken, Some(&reason), now)
                        .await
                {
                    return Err(self.failed(&ScanError::Store(e)));
                }
                app.status
                    .set(component(seed), Health::Failing, reason.clone(), now);
                self.failures += 1;
                return Err(StepOutcome::LoginRefused { reason });
            }
            Err(e) => {
                app.status.set(
                    component(seed),
                    Health::Failing,
                    e.to_string(),
                    app.clock.now(),
                );
                return Err(self.failed(&e));
            }
        };
        slot.opened();
        if seed.status == SeedStatus::Broken {
            tracing::info!(seed = %seed.record.address, "IMAP login accepted again: seed active");
            if let Err(e) =
                store::seeds::set_status(pool, seed.id, SeedStatus::Active, None, app.clock.now())
                    .await
            {
                return Err(self.failed(&ScanError::Store(e)));
            }
        }
        let idle = match super::imap::capabilities(&mut session).await {
            Ok(caps) => caps.has("IDLE"),
            Err(e) => return Err(self.failed(&ScanError::Imap(e))),
        };
        self.open = Some(Open {
            session,
            slot,
            idle,
        });
        Ok(())
    }

    fn failed(&mut self, e: &ScanError) -> StepOutcome {
        self.open = None;
        self.failures += 1;
        StepOutcome::Failed {
            error: e.to_string(),
            transient: e.is_transient(),
        }
    }

    /// Waits until the next step is due, after `last`: the backoff after a failure; otherwise
    /// IDLE on the inbox (until new mail, the poll interval, or a waiting worker needs the
    /// room), or the poll interval, doubled after each empty poll.
    pub async fn wait(&mut self, last: &StepOutcome, shutdown: &CancellationToken) -> Wake {
        let draw: f64 = rand::rng().random_range(0.0..1.0);
        let attempt = self.failures.saturating_sub(1);
        let delay = match last {
            StepOutcome::Gone => return Wake::Shutdown,
            StepOutcome::LoginRefused { .. } => backoff(attempt, REFUSED_BASE, REFUSED_MAX, draw),
            StepOutcome::Failed {
                transient: false, ..
            } => backoff(attempt, REFUSED_BASE, REFUSED_MAX, draw),
            StepOutcome::Failed { .. } => backoff(attempt, RECONNECT_BASE, RECONNECT_MAX, draw),
            StepOutcome::Scanned { .. } => {
                let poll = self.poll_interval();
                let contended = self
                    .open
                    .as_ref()
                    .is_some_and(|o| self.limits.contended(o.slot.provider()));
                if self.uses_idle() && !contended {
                    return self.idle(poll, shutdown).await;
                }
                if contended && let Some(open) = self.open.take() {
                    // Give the room to a waiting worker; poll again later.
                    let mut session = open.session;
                    let _ = session.logout().await;
                }
                let doublings = self.quiet.saturating_sub(1).min(QUIET_MAX_DOUBLINGS);
                // Jitter of up to a tenth, so polls of many seeds spread out.
                (poll * (1 << doublings)).mul_f64(1.0 + draw / 10.0)
            }
        };
        let delay =
            crate::clock::scaled(self.app.clock.as_ref(), delay, Duration::from_millis(100));
        tokio::select! {
            _ = shutdown.cancelled() => Wake::Shutdown,
            _ = tokio::time::sleep(delay) => Wake::Timer,
        }
    }

    fn poll_interval(&self) -> Duration {
        crate::clock::scaled(
            self.app.clock.as_ref(),
            Duration::from_secs(self.app.config.warmup.scan_interval_secs),
            Duration::from_secs(1),
        )
        .min(IDLE_MAX)
    }

    /// IDLE on the inbox for at most `limit`. Ends early on new mail, shutdown, or when a
    /// worker waits for the room this session holds (then the session is closed).
    async fn idle(&mut self, limit: Duration, shutdown: &CancellationToken) -> Wake {
        let Some(open) = self.open.take() else {
            return Wake::Timer;
        };
        let Open {
            mut session,
            slot,
            idle,
        } = open;
        let provider = slot.provider();
        if session.select("INBOX").await.is_err() {
            return Wake::Timer; // the session is dropped; the next step logs in again
        }
        let mut handle = session.idle();
        if handle.init().await.is_err() {
            return Wake::Timer;
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut wake = Wake::Timer;
        let mut give_way = false;
        self.idling.send_replace(true);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let (fut, _stop) = handle.wait_with_timeout(left);
            let answer = tokio::select! {
                r = fut => r,
                _ = shutdown.cancelled() => { wake = Wake::Shutdown; break }
                _ = self.limits.wanted(provider) => { give_way = true; break }
            };
            match answer {
                Ok(IdleResponse::NewData(data)) => {
                    if announces_mail(data.parsed()) {
                        wake = Wake::NewMail;
                        break;
                    }
                    if says_bye(data.parsed()) {
                        return Wake::Timer; // the server hangs up: log in again next step
                    }
                    // "* OK Still here" and the like: keep waiting.
                }
                Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt) => break,
                Err(_) => break, // dropped: `done` fails and the next step logs in again
            }
        }
        self.idling.send_replace(false);
        let Ok(mut session) = handle.done().await else {
            return wake;
        };
        if give_way || wake == Wake::Shutdown {
            let _ = session.logout().await;
            if give_way {
                // Do not come straight back for the room just given up.
                let pause = self.poll_interval();
                tokio::select! {
                    _ = shutdown.cancelled() => return Wake::Shutdown,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            return wake;
        }
        self.open = Some(Open {
            session,
            slot,
            idle,
        });
        wake
    }

    /// The production loop: step, wait, until the seed is gone or `shutdown` fires. Shutdown
    /// also cuts a step short (waiting for room, or mid-pass): a pass is idempotent (see
    /// `act.rs`), so the next start completes it. The session is logged out on the way out.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let outcome = tokio::select! {
                o = self.step() => o,
                _ = shutdown.cancelled() => break,
            };
            if let StepOutcome::Failed { error, .. } = &outcome {
                tracing::debug!(seed_id = self.seed_id, %error, "seed worker backs off");
            }
            if self.wait(&outcome, &shutdown).await == Wake::Shutdown {
                break;
            }
        }
        if let Some(open) = self.open.take() {
            let mut session = open.session;
            let _ = session.logout().await;
        }
    }
}

/// Whether an untagged answer during IDLE means the mailbox changed.
fn announces_mail(response: &Response<'_>) -> bool {
    matches!(
        response,
        Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_))
    )
}

fn says_bye(response: &Response<'_>) -> bool {
    matches!(
        response,
        Response::Data {
            status: async_imap::imap_proto::Status::Bye,
            ..
        }
    )
}

fn component(seed: &SeedRow) -> String {
    format!("seed {}", seed.record.address)
}
