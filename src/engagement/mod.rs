//! Seed-inbox workers: log into each seed over IMAP, find Hearth's mail, record placement.
//! Only this module (and preflight) speaks IMAP.

pub mod act;
pub mod decide;
pub mod folders;
pub mod gmail;
pub mod headers;
pub mod imap;
pub mod login;
pub mod marked;
pub mod pool;
pub mod reply;
pub mod retention;
pub mod scan;
pub mod seed_worker;
pub mod sender_scan;
pub mod upkeep;
pub mod wire;
