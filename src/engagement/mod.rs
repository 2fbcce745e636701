//! Seed-inbox workers: log into each seed over IMAP, find Hearth's mail, record placement.
//! Only this module (and preflight) speaks IMAP.

pub mod act;
pub mod decide;
pub mod folders;
pub mod headers;
pub mod imap;
pub mod pool;
pub mod scan;
pub mod seed_worker;
