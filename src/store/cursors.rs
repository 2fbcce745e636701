//! IMAP cursors: how far each seed folder (and each folder of a sender's own mailbox, read
//! for replies) has been read (UIDVALIDITY + highest UID seen).

use sqlx::{Any, Executor};

use super::StoreError;
use super::row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapCursor {
    pub uidvalidity: i64,
    pub last_uid: i64,
    pub updated_at: i64,
}

/// Whose mailbox a cursor belongs to: a seed's (`imap_cursors`) or a sender's own, read for
/// replies (`sender_cursors`). The two tables have the same shape.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Seed(i64),
    Sender(i64),
}

impl Owner {
    fn get_sql(self) -> &'static str {
        match self {
            Owner::Seed(_) => {
                "SELECT uidvalidity, last_uid, updated_at FROM imap_cursors \
                 WHERE seed_id = $1 AND folder = $2"
            }
            Owner::Sender(_) => {
                "SELECT uidvalidity, last_uid, updated_at FROM sender_cursors \
                 WHERE sender_id = $1 AND folder = $2"
            }
        }
    }

    fn set_sql(self) -> &'static str {
        match self {
            Owner::Seed(_) => SEED_SET_SQL,
            Owner::Sender(_) => {
                "INSERT INTO sender_cursors (sender_id, folder, uidvalidity, last_uid, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (sender_id, folder) DO UPDATE SET \
                   uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, \
                   updated_at = excluded.updated_at"
            }
        }
    }

    fn id(self) -> i64 {
        match self {
            Owner::Seed(id) | Owner::Sender(id) => id,
        }
    }
}

/// Stores a seed folder's cursor: (seed_id, folder, uidvalidity, last_uid, updated_at).
pub(super) const SEED_SET_SQL: &str = "INSERT INTO imap_cursors (seed_id, folder, uidvalidity, last_uid, updated_at) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (seed_id, folder) DO UPDATE SET \
       uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, \
       updated_at = excluded.updated_at";

async fn get_of<'c, E>(ex: E, owner: Owner, folder: &str) -> Result<Option<ImapCursor>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(owner.get_sql())
        .bind(owner.id())
        .bind(folder)
        .fetch_optional(ex)
        .await?
        .map(|r| {
            Ok(ImapCursor {
                uidvalidity: row::int(&r, "uidvalidity")?,
                last_uid: row::int(&r, "last_uid")?,
                updated_at: row::int(&r, "updated_at")?,
            })
        })
        .transpose()
}

async fn set_of<'c, E>(
    ex: E,
    owner: Owner,
    folder: &str,
    uidvalidity: i64,
    last_uid: i64,
    now: i64,
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(owner.set_sql())
        .bind(owner.id())
        .bind(folder)
        .bind(uidvalidity)
        .bind(last_uid)
        .bind(now)
        .execute(ex)
        .await?;
    Ok(())
}

/// The cursor of a seed's folder.
pub async fn get<'c, E>(ex: E, seed_id: i64, folder: &str) -> Result<Option<ImapCursor>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    get_of(ex, Owner::Seed(seed_id), folder).await
}

/// Stores the cursor of (seed, folder), replacing the previous one.
pub async fn set<'c, E>(
    ex: E,
    seed_id: i64,
    folder: &str,
    uidvalidity: i64,
    last_uid: i64,
    now: i64,
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    set_of(ex, Owner::Seed(seed_id), folder, uidvalidity, last_uid, now).await
}

/// The cursor of a folder of a sender's own mailbox.
pub async fn get_sender<'c, E>(
    ex: E,
    sender_id: i64,
    folder: &str,
) -> Result<Option<ImapCursor>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    get_of(ex, Owner::Sender(sender_id), folder).await
}

/// Stores the cursor of (sender, folder), replacing the previous one.
pub async fn set_sender<'c, E>(
    ex: E,
    sender_id: i64,
    folder: &str,
    uidvalidity: i64,
    last_uid: i64,
    now: i64,
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    set_of(
        ex,
        Owner::Sender(sender_id),
        folder,
        uidvalidity,
        last_uid,
        now,
    )
    .await
}
