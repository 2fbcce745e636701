//! Preflight: verify the sending identity the way receivers do, and gate campaigns on it.
//! Only this module and `engagement/` speak DNS.

pub mod check;
pub mod checks;
pub mod dns;
pub mod gate;
pub mod identity;
pub mod run;
pub mod spf;

pub use check::{CheckId, CheckResult, PreflightReport};
pub use identity::{DkimExpectation, Identity, Options};
pub use run::run_checks;
