//! `/api/v1/senders`: sending identities. Rows declared in the config file are read-only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::errors::{ApiError, ApiJson, ApiPath, ApiResult};
use super::views::SenderView;
use crate::config::{RawConn, RawSender};
use crate::domain::Source;
use crate::store;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let rows = store::senders::list(st.app.store.pool()).await?;
    let items: Vec<SenderView> = rows.iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<SenderView>> {
    Ok(Json((&find(&st, id).await?).into()))
}

pub async fn create(
    State(st): State<AppState>,
    ApiJson(raw): ApiJson<RawSender>,
) -> ApiResult<(StatusCode, Json<SenderView>)> {
    let pool = st.app.store.pool();
    if let Some(existing) = store::senders::get_by_name(pool, &raw.name).await? {
        return Err(exists(&existing));
    }
    let row = save(&st, &raw).await?;
    tracing::info!(sender = %row.record.name, id = row.id, "sender created through the API");
    Ok((StatusCode::CREATED, Json((&row).into())))
}

pub async fn update(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(raw): ApiJson<RawSender>,
) -> ApiResult<Json<SenderView>> {
    let current = find(&st, id).await?;
    if current.record.source == Source::Config {
        return Err(ApiError::read_only(format!(
            "sender {:?}",
            current.record.name
        )));
    }
    if raw.name != current.record.name {
        return Err(ApiError::invalid(format!(
            "name: a sender's name is its stable key and cannot change (expected {:?})",
            current.record.name
        )));
    }
    let row = save(&st, &raw).await?;
    Ok(Json((&row).into()))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let current = find(&st, id).await?;
    if current.record.source == Source::Config {
        return Err(ApiError::read_only(format!(
            "sender {:?}",
            current.record.name
        )));
    }
    let mut tx = st.app.store.begin().await?;
    let used = store::campaigns::count_for_sender(&mut *tx, id).await?;
    if used > 0 {
        return Err(ApiError::conflict(
            "in_use",
            format!(
                "sender {:?} is used by {used} campaign(s); delete or change them first",
                current.record.name
            ),
        ));
    }
    store::senders::delete(&mut tx, id).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    tracing::info!(sender = %current.record.name, id, "sender deleted through the API");
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn find(st: &AppState, id: i64) -> ApiResult<store::senders::SenderRow> {
    store::senders::get(st.app.store.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("sender {id}")))
}

fn exists(existing: &store::senders::SenderRow) -> ApiError {
    if existing.record.source == Source::Config {
        ApiError::read_only(format!("sender {:?}", existing.record.name))
    } else {
        ApiError::conflict(
            "already_exists",
            format!(
                "a sender named {:?} exists (id {}); PUT /api/v1/senders/{} changes it",
                existing.record.name, existing.id, existing.id
            ),
        )
    }
}

/// Validates like the config file does, seals the password, and writes the row.
async fn save(st: &AppState, raw: &RawSender) -> ApiResult<store::senders::SenderRow> {
    inline_secret_only(&raw.smtp, "smtp")?;
    if let Some(imap) = &raw.imap {
        inline_secret_only(imap, "imap")?;
    }
    let cfg =
        crate::config::validate_sender(raw, &st.base_dir()).map_err(|p| ApiError::problems(&p))?;
    let rec = crate::startup::sender_record(&st.app.key, &cfg, Source::Api);
    let pool = st.app.store.pool();
    let id = store::senders::upsert(pool, &rec, st.app.clock.now()).await?;
    find(st, id).await
}

/// Through the API a password is given inline (and stored sealed). `{ env = … }` and
/// `{ file = … }` references are for the config file only: they would let an API client
/// make the server read any of its variables or files and send it to a host of its choice.
/// The same holds for an `oauth2` block's client secret and refresh token (its token
/// endpoint is the client's to choose).
pub(super) fn inline_secret_only(conn: &RawConn, key: &str) -> ApiResult<()> {
    let inline = |v: Option<&toml::Value>, what: &str| match v {
        None | Some(toml::Value::String(_)) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "secret_reference_not_allowed",
            format!(
                "{key}.{what}: give it as a string (it is stored sealed); env and file references are accepted in the config file only"
            ),
        )),
    };
    inline(conn.password.as_ref(), "password")?;
    if let Some(o) = &conn.oauth2 {
        inline(o.client_secret.as_ref(), "oauth2.client_secret")?;
        inline(Some(&o.refresh_token), "oauth2.refresh_token")?;
    }
    Ok(())
}
