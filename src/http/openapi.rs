//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand with `serde_json`.
//! A test checks that every route of [`super::routes`] is described here and nothing else.

use axum::Json;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::domain::{
    CampaignStatus, OutboxStatus, PauseReason, Placement, PreflightTrigger, Provider, SeedStatus,
    Source, TlsMode, Verdict,
};

pub async fn document() -> impl IntoResponse {
    Json(spec())
}

fn words<T: Copy>(all: &[T], f: impl Fn(T) -> &'static str) -> Value {
    json!(all.iter().map(|v| f(*v)).collect::<Vec<_>>())
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_body(s: Value) -> Value {
    json!({ "content": { "application/json": { "schema": s } } })
}

fn ok(description: &str, s: Value) -> Value {
    let mut r = json_body(s);
    r["description"] = json!(description);
    r
}

fn err(description: &str) -> Value {
    ok(description, schema("Error"))
}

fn id_param(what: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true,
            "description": format!("The {what}'s id."), "schema": { "type": "integer" } })
}

fn query(name: &str, description: &str, s: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": s })
}

/// An operation needing the bearer token, with the errors every such operation can give.
fn op(summary: &str, tag: &str, mut responses: Value) -> Value {
    responses["401"] = err("Missing or wrong bearer token (when tokens are configured).");
    responses["500"] = err("Internal error (details are in the server log, never here).");
    responses["503"] = err("The database is temporarily unavailable.");
    json!({ "summary": summary, "tags": [tag], "responses": responses })
}

fn with(mut op: Value, key: &str, v: Value) -> Value {
    op[key] = v;
    op
}

fn crud(tag: &str, what: &str, item: &str, input: &str, key_field: &str) -> (Value, Value) {
    let list = json!({ "type": "object", "required": ["items"],
        "properties": { "items": { "type": "array", "items": schema(item) } } });
    let collection = json!({
        "get": op(&format!("List {what}s"), tag, json!({ "200": ok("All of them.", list) })),
        "post": with(op(&format!("Create a {what}"), tag, json!({
            "201": ok("Created (source `api`).", schema(item)),
            "409": err("`already_exists`, or `declared_in_config` when the config file declares it."),
            "415": err("The body is not JSON."),
            "422": err("`invalid`: every problem with its key, as `hearth config check` reports them; `secret_reference_not_allowed` for an env/file password."),
        })), "requestBody", with(json_body(schema(input)), "required", json!(true))),
    });
    let one = json!({
        "parameters": [id_param(what)],
        "get": op(&format!("One {what}"), tag, json!({
            "200": ok("Found.", schema(item)), "404": err("No such id.") })),
        "put": with(op(&format!("Replace a {what} created through the API"), tag, json!({
            "200": ok("Replaced; its state and history are kept.", schema(item)),
            "404": err("No such id."),
            "409": err("`declared_in_config`: read-only through the API."),
            "422": err(&format!("`invalid` (the `{key_field}` is the stable key and cannot change), or `secret_reference_not_allowed`.")),
        })), "requestBody", with(json_body(schema(input)), "required", json!(true))),
        "delete": op(&format!("Delete a {what} created through the API"), tag, json!({
            "204": { "description": "Deleted." },
            "404": err("No such id."),
            "409": err("`declared_in_config`; `in_use` (a sender with campaigns); `has_history` (a seed or campaign the ledger refers to)."),
        })),
    });
    (collection, one)
}

fn lifecycle(summary: &str, description: &str, refusals: &str) -> Value {
    let answer = json!({ "type": "object", "required": ["campaign"], "properties": {
        "campaign": schema("Campaign"),
        "planned_today": { "type": ["integer", "null"],
            "description": "Sends the scheduler planned right after (start/resume only; null if planning failed and will be retried)." } } });
    with(
        with(
            op(
                summary,
                "campaigns",
                json!({
                    "200": ok("Done.", answer),
                    "404": err("No such id."),
                    "409": err(refusals),
                }),
            ),
            "description",
            json!(description),
        ),
        "parameters",
        json!([id_param("campaign")]),
    )
}

/// The whole document.
pub fn spec() -> Value {
    let (senders, sender) = crud("senders", "sender", "Sender", "SenderInput", "name");
    let (seeds, seed) = crud("seeds", "seed", "Seed", "SeedInput", "address");
    let (campaigns, campaign) = crud("campaigns", "campaign", "Campaign", "CampaignInput", "name");
    let limit = |d: i64| {
        query(
            "limit",
            &format!("Rows per page, 1 to 500 (default {d})."),
            json!({ "type": "integer", "minimum": 1, "maximum": 500 }),
        )
    };
    let cursor = query(
        "cursor",
        "`next_cursor` of the previous page (rows come newest first).",
        json!({ "type": "string" }),
    );
    let time = json!({ "type": "string", "description": "RFC 3339, a date YYYY-MM-DD (midnight UTC) or unix seconds." });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Hearth API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted email warm-up. Times are unix seconds (UTC). Errors are `{\"error\":{\"code\":\"...\",\"message\":\"...\"}}`. Senders, seeds and campaigns declared in the config file are read-only here (`read_only: true`, `source: config`). Secrets are accepted inline (stored sealed) and shown only as their kind. Placement reports (`/api/v1/campaigns/{id}/report`) come with the reports module.",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "tags": [
            { "name": "health" }, { "name": "senders" }, { "name": "seeds" },
            { "name": "campaigns" }, { "name": "preflight" }, { "name": "ledger" },
            { "name": "metrics" },
        ],
        "paths": {
            "/healthz": { "get": { "summary": "Liveness", "tags": ["health"], "security": [],
                "responses": { "200": ok("The process answers.", json!({ "type": "object", "properties": { "status": { "const": "ok" } } })) } } },
            "/readyz": { "get": { "summary": "Readiness: the database, and each worker's last state", "tags": ["health"], "security": [],
                "responses": {
                    "200": ok("Ready, or degraded (a mail server failing: see components).", schema("Readiness")),
                    "503": ok("The database is unreachable.", schema("Readiness")) } } },
            "/openapi.json": { "get": { "summary": "This document", "tags": ["health"], "security": [],
                "responses": { "200": { "description": "OpenAPI 3.1.", "content": { "application/json": {} } } } } },
            "/metrics": { "get": with(op("Prometheus metrics", "metrics", json!({
                "200": { "description": "Text exposition format 0.0.4: hearth_sends{status}, hearth_outbox_depth, hearth_outbox_due, hearth_placements{provider,folder_class}, hearth_campaigns{status,reason}, hearth_seeds{status}, hearth_preflight_runs_total{verdict}, hearth_sender_preflight_verdict{sender,verdict}, hearth_imap_sessions_total{result}.",
                    "content": { "text/plain": { "schema": { "type": "string" } } } } })),
                "description", json!("Requires the bearer token when one is configured.")) },
            "/api/v1/senders": senders,
            "/api/v1/senders/{id}": sender,
            "/api/v1/senders/{id}/preflight": {
                "parameters": [id_param("sender")],
                "post": with(op("Run preflight for the sender now", "preflight", json!({
                    "200": ok("The stored run, and the campaigns it paused or resumed.", json!({ "type": "object",
                        "required": ["run", "paused", "resumed"],
                        "properties": { "run": schema("PreflightRun"),
                            "paused": { "type": "array", "items": { "type": "string" } },
                            "resumed": { "type": "array", "items": { "type": "string" } } } })),
                    "404": err("No such sender."),
                })), "description", json!("Runs every identity check (DNS, SPF, DKIM, DMARC, blocklists, an SMTP probe that never sends), stores the run, and applies it like a scheduled re-check: a failure pauses the sender's running campaigns (reason `preflight`), a pass resumes campaigns paused by preflight whose `auto_resume` is on.")),
                "get": with(op("The sender's preflight history, newest first", "preflight", json!({
                    "200": ok("One page.", json!({ "type": "object", "required": ["items", "next_cursor"], "properties": {
                        "items": { "type": "array", "items": schema("PreflightRun") },
                        "next_cursor": { "type": ["string", "null"] } } })),
                    "400": err("Bad limit or cursor."),
                    "404": err("No such sender."),
                })), "parameters", json!([limit(20), cursor])),
            },
            "/api/v1/seeds": seeds,
            "/api/v1/seeds/{id}": seed,
            "/api/v1/campaigns": campaigns,
            "/api/v1/campaigns/{id}": campaign,
            "/api/v1/campaigns/{id}/start": { "post": lifecycle("Start a draft or completed campaign",
                "Runs preflight for the campaign's sender first and refuses while any check fails or cannot be verified.",
                "`invalid_state` (not draft or completed), or `preflight_failed` (the failing checks are named; details at GET /api/v1/senders/{id}/preflight).") },
            "/api/v1/campaigns/{id}/pause": { "post": lifecycle("Pause an active campaign (reason `manual`)",
                "A manual pause stays until a person resumes it.",
                "`invalid_state`: the campaign is not active.") },
            "/api/v1/campaigns/{id}/resume": { "post": lifecycle("Resume a paused campaign",
                "Runs preflight first and refuses while it does not pass, whatever the pause reason. Placement, bounce and sender-error pauses are never lifted automatically: this is how a person lifts them. A preflight pause is lifted only by a passing preflight (this one, or a re-check when auto_resume is on).",
                "`invalid_state` (not paused), or `preflight_failed`.") },
            "/api/v1/campaigns/{id}/report": {
                "parameters": [id_param("campaign")],
                "get": with(with(op("The campaign's report: per provider and plan day, from the daily roll-ups", "reports", json!({
                    "200": { "description": "The report: per day and provider planned, sent, seen, inbox/spam/promotions/missing shares, rescued, replied, median and p95 delivery latency (log-bucket histogram, within 9.1 %), the receivers' SPF/DKIM/DMARC pass rates; planned vs actual volume per day; the health score: 0-100, null without placed mail; per day d, quality(d) = (inbox + 0.75 promotions + 0.5 other) / placed (spam and missing count 0), bounce(d) = failed / (sent + failed), score(d) = quality(d) * max(0, 1 - 10 bounce(d)), weight(d) = placed(d) * 2^(-age(d)/7) with age in days (0 = today); health = round(100 * sum(weight * score) / sum(weight)). CSV with format=csv: one row per day and provider.",
                        "content": { "application/json": { "schema": { "type": "object" } }, "text/csv": { "schema": { "type": "string" } } } },
                    "404": err("No such campaign."),
                    "422": err("days out of range, or an unknown format."),
                })), "parameters", json!([
                    query("days", "Plan days ending today in the plan's time zone (default 30).", json!({ "type": "integer", "minimum": 1, "maximum": crate::report::MAX_DAYS })),
                    query("format", "json (default) or csv.", json!({ "enum": ["json", "csv"] })),
                ])), "description", json!("Brings the campaign's roll-ups up to date first, so it is never stale.")),
            },
            "/api/v1/ledger": { "get": with(op("The placement ledger, newest first", "ledger", json!({
                    "200": ok("One page.", json!({ "type": "object", "required": ["items", "next_cursor"], "properties": {
                        "items": { "type": "array", "items": schema("LedgerEntry") },
                        "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last." } } })),
                    "400": err("A filter, limit or cursor does not parse."),
                })), "parameters", json!([
                    query("campaign", "Campaign id.", json!({ "type": "integer" })),
                    query("provider", "Seed provider.", json!({ "enum": words(Provider::ALL, Provider::as_str) })),
                    query("folder_class", "Where the message landed.", json!({ "enum": words(Placement::ALL, Placement::as_str) })),
                    query("since", "Sent at or after.", time.clone()),
                    query("until", "Sent before.", time),
                    limit(100), cursor,
                ])) },
            "/api/v1/outbox": { "get": with(op("Outbox depth", "ledger", json!({
                    "200": ok("Counts.", schema("Outbox")),
                    "400": err("Bad campaign id."),
                })), "parameters", json!([query("campaign", "Only this campaign's rows.", json!({ "type": "integer" }))])) },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                "description": "A token from server.api_token. Required for every endpoint but /healthz, /readyz and /openapi.json once a token is configured; a non-loopback bind requires one." } },
            "schemas": schemas(),
        },
    })
}

fn schemas() -> Value {
    let int = json!({ "type": "integer" });
    let str_ = json!({ "type": "string" });
    let opt_str = json!({ "type": ["string", "null"] });
    let opt_int = json!({ "type": ["integer", "null"] });
    let source = json!({ "enum": words(Source::ALL, Source::as_str) });
    let tls = json!({ "enum": words(TlsMode::ALL, TlsMode::as_str) });
    let password = json!({ "type": "string", "writeOnly": true,
        "description": "Inline only (stored sealed); env/file references belong in the config file." });
    let mut m = serde_json::Map::new();
    m.insert("Error".into(), json!({ "type": "object", "required": ["error"], "properties": { "error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string", "description": "Stable: bad_request, invalid, not_found, unauthorized, declared_in_config, already_exists, in_use, has_history, invalid_state, preflight_failed, secret_reference_not_allowed, unsupported_media_type, unavailable, internal." },
                "message": { "type": "string" } } } } }));
    m.insert(
        "Readiness".into(),
        json!({ "type": "object", "properties": {
            "status": { "enum": ["ready", "degraded", "unavailable"] },
            "database": { "enum": ["ok", "unreachable"] },
            "backend": { "enum": ["sqlite", "postgres"] },
            "components": { "type": "object" }, "now": int } }),
    );
    m.insert("Endpoint".into(), json!({ "type": "object", "required": ["host", "port", "tls", "username", "secret"], "properties": {
            "host": str_, "port": int, "tls": tls, "ca_file": opt_str, "username": str_,
            "secret": { "enum": ["sealed", "env", "file", "none"], "description": "The kind of credential, never its value." } } }));
    m.insert("ConnInput".into(), json!({ "type": "object", "required": ["host"], "additionalProperties": false, "properties": {
            "host": str_, "port": int, "tls": tls, "ca_file": str_,
            "username": { "type": "string", "description": "Defaults to the address." }, "password": password } }));
    m.insert("Sender".into(), json!({ "type": "object", "properties": {
            "id": int, "name": str_, "address": str_, "display_name": opt_str, "helo": str_,
            "ips": { "type": "array", "items": str_ }, "smtp": schema("Endpoint"),
            "dkim": { "type": ["object", "null"], "properties": { "domain": str_, "selector": str_, "key_file": str_ } },
            "imap": { "oneOf": [schema("Endpoint"), { "type": "null" }] },
            "source": source, "read_only": { "type": "boolean" }, "created_at": int, "updated_at": int } }));
    m.insert("SenderInput".into(), json!({ "type": "object", "required": ["name", "address", "helo", "smtp"], "additionalProperties": false,
            "description": "The shape of a [[senders]] entry of the config file, validated the same way.",
            "properties": {
                "name": str_, "address": { "type": "string", "format": "email" }, "display_name": str_,
                "helo": { "type": "string", "description": "A fully qualified host name." },
                "ips": { "type": "array", "items": str_ }, "smtp": schema("ConnInput"), "imap": schema("ConnInput"),
                "dkim": { "type": "object", "required": ["selector", "key_file"], "additionalProperties": false,
                    "properties": { "domain": str_, "selector": str_, "key_file": str_ } } } }));
    m.insert("Seed".into(), json!({ "type": "object", "properties": {
            "id": int, "address": str_, "provider": { "enum": words(Provider::ALL, Provider::as_str) },
            "daily_cap": int, "status": { "enum": words(SeedStatus::ALL, SeedStatus::as_str) },
            "status_reason": opt_str, "imap": schema("Endpoint"),
            "smtp": { "oneOf": [schema("Endpoint"), { "type": "null" }] }, "folders": { "type": "object" },
            "source": source, "read_only": { "type": "boolean" }, "created_at": int, "updated_at": int } }));
    m.insert("SeedInput".into(), json!({ "type": "object", "required": ["address", "imap"], "additionalProperties": false,
            "description": "The shape of a [[seeds]] entry of the config file, validated the same way.",
            "properties": {
                "address": { "type": "string", "format": "email" },
                "provider": { "enum": words(Provider::ALL, Provider::as_str), "description": "Guessed from the domain when absent." },
                "daily_cap": { "type": "integer", "minimum": 0, "maximum": 1000 },
                "imap": schema("ConnInput"), "smtp": schema("ConnInput"),
                "folders": { "type": "object", "additionalProperties": false, "properties": {
                    "inbox": str_, "spam": str_, "sent": str_, "warmup": str_ } } } }));
    m.insert("Campaign".into(), json!({ "type": "object", "properties": {
            "id": int, "name": str_, "sender_id": int, "sender": str_,
            "status": { "enum": words(CampaignStatus::ALL, CampaignStatus::as_str) },
            "pause_reason": { "enum": words(PauseReason::ALL, PauseReason::as_str).as_array().map(|a| { let mut a = a.clone(); a.push(Value::Null); a }) },
            "pause_detail": opt_str, "auto_resume": { "type": "boolean" }, "started_at": opt_int,
            "spec": { "type": "object", "description": "{ plan, seeds? }: the validated ramp plan." },
            "source": source, "read_only": { "type": "boolean" }, "created_at": int, "updated_at": int } }));
    m.insert("CampaignInput".into(), json!({ "type": "object", "required": ["name", "sender"], "additionalProperties": false,
            "description": "The shape of a [[campaigns]] entry of the config file, validated the same way (defaults as documented in config/hearth.toml).",
            "properties": {
                "name": str_, "sender": { "type": "string", "description": "The sender's name." },
                "seeds": { "type": "array", "items": str_, "description": "Seed addresses of the pool; all active seeds when absent." },
                "auto_resume": { "type": "boolean" },
                "plan": { "type": "object", "additionalProperties": false, "properties": {
                    "start_per_day": int, "increase_per_day": int, "increase_percent": { "type": "number" },
                    "max_per_day": int, "maintenance_per_day": int, "variance_percent": int,
                    "timezone": { "type": "string", "description": "IANA zone, e.g. Europe/Berlin." },
                    "window": { "type": "object", "additionalProperties": false, "properties": {
                        "days": { "type": "array", "items": str_ }, "start": str_, "end": str_ } },
                    "provider_mix": { "type": "object", "additionalProperties": { "type": "number" } },
                    "pair_daily_max": int, "min_gap_secs": int,
                    "rates": { "type": "object", "additionalProperties": false, "properties": {
                        "open": { "type": "number" }, "star": { "type": "number" }, "important": { "type": "number" },
                        "rescue": { "type": "number" }, "reply": { "type": "number" } } } } } } }));
    m.insert("PreflightRun".into(), json!({ "type": "object", "properties": {
            "id": int, "sender_id": int,
            "trigger": { "enum": words(PreflightTrigger::ALL, PreflightTrigger::as_str) },
            "verdict": { "enum": words(Verdict::ALL, Verdict::as_str).as_array().map(|a| { let mut a = a.clone(); a.push(Value::Null); a }) },
            "started_at": int, "finished_at": opt_int,
            "checks": { "type": "array", "items": { "type": "object", "properties": {
                "check": { "type": "string", "description": "e.g. spf.mail_from, dkim.key, smtp.probe." },
                "verdict": { "enum": words(Verdict::ALL, Verdict::as_str) },
                "evidence": str_, "remediation": opt_str } } } } }));
    m.insert("LedgerEntry".into(), json!({ "type": "object", "properties": {
            "id": int, "campaign_id": int, "campaign": str_, "seed_id": int, "seed": str_,
            "provider": { "enum": words(Provider::ALL, Provider::as_str) },
            "folder_class": { "enum": words(Placement::ALL, Placement::as_str) },
            "folder": opt_str, "message_id": str_, "sent_at": opt_int, "seen_at": opt_int,
            "latency_secs": opt_int,
            "auth": { "type": "object", "properties": { "spf": opt_str, "dkim": opt_str, "dmarc": opt_str } },
            "recorded_at": int } }));
    m.insert("Outbox".into(), json!({ "type": "object", "properties": {
            "campaign": opt_int, "depth": { "type": "integer", "description": "planned + sending" },
            "due": { "type": "integer", "description": "planned rows whose time has come" },
            "by_status": { "type": "object", "properties":
                OutboxStatus::ALL.iter().map(|s| (s.as_str().to_owned(), json!({ "type": "integer" }))).collect::<serde_json::Map<_, _>>() } } }));
    Value::Object(m)
}
