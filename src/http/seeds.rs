//! `/api/v1/seeds`: the seed pool. Rows declared in the config file are read-only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::errors::{ApiError, ApiJson, ApiPath, ApiResult};
use super::senders::inline_secret_only;
use super::views::SeedView;
use crate::config::RawSeed;
use crate::domain::{EmailAddress, Source};
use crate::store;

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let rows = store::seeds::list(st.app.store.pool()).await?;
    let items: Vec<SeedView> = rows.iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<SeedView>> {
    Ok(Json((&find(&st, id).await?).into()))
}

pub async fn create(
    State(st): State<AppState>,
    ApiJson(raw): ApiJson<RawSeed>,
) -> ApiResult<(StatusCode, Json<SeedView>)> {
    let cfg = validate(&st, &raw)?;
    if let Some(existing) = store::seeds::get_by_address(st.app.store.pool(), &cfg.address).await? {
        return Err(if existing.record.source == Source::Config {
            ApiError::read_only(format!("seed {}", existing.record.address))
        } else {
            ApiError::conflict(
                "already_exists",
                format!(
                    "seed {} exists (id {}); PUT /api/v1/seeds/{} changes it",
                    existing.record.address, existing.id, existing.id
                ),
            )
        });
    }
    let row = save(&st, &cfg).await?;
    tracing::info!(seed = %row.record.address, id = row.id, "seed created through the API");
    Ok((StatusCode::CREATED, Json((&row).into())))
}

pub async fn update(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(raw): ApiJson<RawSeed>,
) -> ApiResult<Json<SeedView>> {
    let current = find(&st, id).await?;
    if current.record.source == Source::Config {
        return Err(ApiError::read_only(format!(
            "seed {}",
            current.record.address
        )));
    }
    let cfg = validate(&st, &raw)?;
    if cfg.address != current.record.address {
        return Err(ApiError::invalid(format!(
            "address: a seed's address is its stable key and cannot change (expected {})",
            current.record.address
        )));
    }
    Ok(Json((&save(&st, &cfg).await?).into()))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let current = find(&st, id).await?;
    if current.record.source == Source::Config {
        return Err(ApiError::read_only(format!(
            "seed {}",
            current.record.address
        )));
    }
    let mut tx = st.app.store.begin().await?;
    if store::seeds::has_history(&mut *tx, id).await? {
        return Err(ApiError::conflict(
            "has_history",
            format!(
                "seed {} has received warm-up mail and the ledger refers to it; it cannot be deleted",
                current.record.address
            ),
        ));
    }
    store::seeds::delete(&mut *tx, id).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    tracing::info!(seed = %current.record.address, id, "seed deleted through the API");
    Ok(StatusCode::NO_CONTENT)
}

async fn find(st: &AppState, id: i64) -> ApiResult<store::seeds::SeedRow> {
    store::seeds::get(st.app.store.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("seed {id}")))
}

fn validate(st: &AppState, raw: &RawSeed) -> ApiResult<crate::config::SeedConfig> {
    inline_secret_only(&raw.imap, "imap")?;
    if let Some(smtp) = &raw.smtp {
        inline_secret_only(smtp, "smtp")?;
    }
    crate::config::validate_seed(raw, &st.base_dir()).map_err(|p| ApiError::problems(&p))
}

async fn save(st: &AppState, cfg: &crate::config::SeedConfig) -> ApiResult<store::seeds::SeedRow> {
    let rec = crate::startup::seed_record(&st.app.key, cfg, Source::Api);
    let pool = st.app.store.pool();
    store::seeds::upsert(pool, &rec, st.app.clock.now()).await?;
    let address: &EmailAddress = &cfg.address;
    store::seeds::get_by_address(pool, address)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("seed {address}")))
}
