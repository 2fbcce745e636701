//! The one source of "now". Production uses the system clock; tests and `--time-scale`
//! use their own. Nothing else calls `SystemTime::now`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix seconds.
    fn now(&self) -> i64;

    /// How much faster than real time this clock runs (workers shorten their ticks by it).
    fn scale(&self) -> f64 {
        1.0
    }
}

/// A worker's real-time tick for a period of `period` on `clock`, never below `floor`.
pub fn scaled(
    clock: &dyn Clock,
    period: std::time::Duration,
    floor: std::time::Duration,
) -> std::time::Duration {
    period.div_f64(clock.scale().max(1.0)).max(floor)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one permitted call
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}

/// Real time sped up N times from the moment it was made (`hearth serve --time-scale N`):
/// with N = 1440 a day of the plan passes in a minute, so a ramp can be watched in minutes.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    origin_ms: i64,
    scale: f64,
}

impl ScaledClock {
    pub fn new(scale: f64) -> Self {
        Self {
            origin_ms: real_millis(),
            scale,
        }
    }
}

impl Clock for ScaledClock {
    fn scale(&self) -> f64 {
        self.scale
    }

    fn now(&self) -> i64 {
        let elapsed = (real_millis() - self.origin_ms) as f64 * self.scale;
        (self.origin_ms + elapsed as i64) / 1000
    }
}

#[allow(clippy::disallowed_methods)] // the one permitted call
fn real_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: i64) -> Self {
        Self(Arc::new(AtomicI64::new(start)))
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub type SharedClock = Arc<dyn Clock>;
