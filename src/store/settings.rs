//! Install-wide key/value settings (for example the per-install mark secret).

use sqlx::{Any, Executor};

use super::StoreError;

/// Reads `key`, or stores `make_value()` under it first if it is absent; returns the value
/// that is stored.
///
/// Race-safe across nodes in one statement: on a conflict the no-op `DO UPDATE` (which,
/// unlike `DO NOTHING`, makes `RETURNING` yield the row) hands back the value the first
/// writer stored, so every node ends up with the same value. `make_value` is called even
/// when the key exists; keep it cheap (random bytes are).
pub async fn get_or_insert<'c, E>(
    ex: E,
    key: &str,
    make_value: impl FnOnce() -> String,
) -> Result<String, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar::<_, String>(
        "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = settings.value \
         RETURNING value",
    )
    .bind(key)
    .bind(make_value())
    .fetch_one(ex)
    .await?)
}

pub async fn get<'c, E>(ex: E, key: &str) -> Result<Option<String>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(
        sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(ex)
            .await?,
    )
}

/// Stores `value` under `key`, replacing any previous value.
pub async fn set<'c, E>(ex: E, key: &str, value: &str) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(ex)
    .await?;
    Ok(())
}
