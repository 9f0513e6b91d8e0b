//! `bench-baseline`: the minimal servers `bench/run` compares the service with, on the same machine in the same run.
//!
//! - `GET /bare/markets/{id}`: a bare actix-web handler returning fixed JSON bytes (a real response
//!   body of the service's `GET /api/v1/markets/{id}`, read once at start from `BASELINE_BODY`).
//! - `GET /sqlx/markets/{id}`: actix-web + sqlx running the service's single-row SQL (the text
//!   SeaORM generates, same binds) and serialising the same JSON shape.
//! - `GET /sqlx/markets?status=..&limit=..`: actix-web + sqlx running the service's list SQL (the
//!   page, then the count when the page is full, as the service does) on every request.
//!
//! Same architecture as the service: actix-web workers (one per CPU unless `BASELINE_WORKERS`) on
//! the actix system runtime, one shared sqlx pool of `BASELINE_POOL` (default 10, the service's
//! default) connections. No middleware, no logging, no domain mapping: that is the point.
//!
//! Environment: `BASELINE_PORT` (required), `BASELINE_BODY` (required), `DATABASE_URL` (optional;
//! without it only `/bare` is served), `BASELINE_WORKERS`, `BASELINE_POOL`, and
//! `BASELINE_TEST_BEFORE_ACQUIRE=false` to skip sqlx's ping before each checkout (an experiment;
//! the harness keeps sqlx's default, as the service does).

use std::time::Duration;

use actix_web::http::header::ContentType;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row as _;
use uuid::Uuid;

/// The columns of `markets`, in the order SeaORM selects them.
macro_rules! columns {
    () => {
        r#""markets"."id", "markets"."name", "markets"."description", "markets"."category", "markets"."status", "markets"."end_date", "markets"."creator_id", "markets"."yes_volume_cents", "markets"."no_volume_cents", "markets"."volume_cents", "markets"."outcome", "markets"."image_url", "markets"."thumbnail_url", "markets"."version", "markets"."created_at", "markets"."updated_at""#
    };
}

/// The service's single-row query, as SeaORM generates it for `find_by_id(..).one(..)`.
const ONE_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    r#" FROM "markets" WHERE "markets"."id" = $1 LIMIT $2"#
);
/// The service's page query for `status=..&sort=-volume`.
const PAGE_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    r#" FROM "markets" WHERE "markets"."status" = $1 ORDER BY "markets"."volume_cents" DESC, "markets"."id" ASC LIMIT $2 OFFSET $3"#
);
/// The service's count query, run when the page is full.
const COUNT_SQL: &str =
    r#"SELECT COUNT("markets"."id") AS "total" FROM "markets" WHERE "markets"."status" = $1"#;

struct State {
    body: Bytes,
    pool: Option<PgPool>,
}

#[derive(Serialize)]
struct Envelope<T> {
    success: bool,
    data: T,
}

#[derive(Serialize)]
struct ListEnvelope<T> {
    success: bool,
    data: Vec<T>,
    meta: Meta,
}

#[derive(Serialize)]
struct Meta {
    total: u64,
    page: u64,
    limit: u64,
}

/// The JSON shape of the service's `MarketResponse`.
#[derive(Serialize)]
struct Market {
    id: Uuid,
    name: String,
    description: String,
    category: String,
    status: String,
    end_date: DateTime<Utc>,
    creator_id: Uuid,
    yes_volume: String,
    no_volume: String,
    volume: String,
    outcome: Option<String>,
    image_url: Option<String>,
    thumbnail_url: Option<String>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn credits(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, (cents % 100).abs())
}

fn market(row: &PgRow) -> Result<Market, sqlx::Error> {
    Ok(Market {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        description: row.try_get(2)?,
        category: row.try_get(3)?,
        status: row.try_get(4)?,
        end_date: row.try_get(5)?,
        creator_id: row.try_get(6)?,
        yes_volume: credits(row.try_get(7)?),
        no_volume: credits(row.try_get(8)?),
        volume: credits(row.try_get(9)?),
        outcome: row.try_get(10)?,
        image_url: row.try_get(11)?,
        thumbnail_url: row.try_get(12)?,
        version: row.try_get(13)?,
        created_at: row.try_get(14)?,
        updated_at: row.try_get(15)?,
    })
}

fn unavailable(error: &sqlx::Error) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type(ContentType::json())
        .body(format!(
            r#"{{"success":false,"error":{},"code":"service_unavailable"}}"#,
            serde_json::Value::String(error.to_string())
        ))
}

async fn bare(state: web::Data<State>, _id: web::Path<Uuid>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(state.body.clone())
}

async fn one(state: web::Data<State>, id: web::Path<Uuid>) -> HttpResponse {
    let Some(pool) = &state.pool else {
        return HttpResponse::NotFound().finish();
    };
    let row = sqlx::query(ONE_SQL)
        .bind(id.into_inner())
        .bind(1_i64)
        .fetch_optional(pool)
        .await;
    match row.and_then(|row| row.as_ref().map(market).transpose()) {
        Ok(Some(data)) => HttpResponse::Ok().json(Envelope {
            success: true,
            data,
        }),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(error) => unavailable(&error),
    }
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    /// Only `-volume` is implemented: the query the benchmark compares.
    #[allow(dead_code)]
    sort: Option<String>,
    limit: Option<u64>,
    page: Option<u64>,
}

async fn list(state: web::Data<State>, params: web::Query<ListParams>) -> HttpResponse {
    let Some(pool) = &state.pool else {
        return HttpResponse::NotFound().finish();
    };
    let status = params.status.clone().unwrap_or_else(|| "active".to_owned());
    let limit = params.limit.unwrap_or(20).clamp(1, 100);
    let page = params.page.unwrap_or(1).max(1);
    let offset = (page - 1) * limit;
    let result = async {
        let rows = sqlx::query(PAGE_SQL)
            .bind(&status)
            .bind(limit as i64)
            .bind(offset as i64)
            .fetch_all(pool)
            .await?;
        let data = rows.iter().map(market).collect::<Result<Vec<_>, _>>()?;
        // As the service: a page that is not full tells the total; otherwise count.
        let shown = data.len() as u64;
        let total = if shown < limit && (shown > 0 || offset == 0) {
            offset + shown
        } else {
            let total: i64 = sqlx::query(COUNT_SQL)
                .bind(&status)
                .fetch_one(pool)
                .await?
                .try_get(0)?;
            total as u64
        };
        Ok::<_, sqlx::Error>(ListEnvelope {
            success: true,
            data,
            meta: Meta { total, page, limit },
        })
    }
    .await;
    match result {
        Ok(list) => HttpResponse::Ok().json(list),
        Err(error) => unavailable(&error),
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("BASELINE_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .expect("BASELINE_PORT: a port number");
    let body_path = std::env::var("BASELINE_BODY").expect("BASELINE_BODY: a file of JSON bytes");
    let body = Bytes::from(std::fs::read(&body_path)?);
    let workers = env_number(
        "BASELINE_WORKERS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let pool = match std::env::var("DATABASE_URL").ok().filter(|url| !url.is_empty()) {
        Some(url) => Some(
            PgPoolOptions::new()
                .max_connections(u32::try_from(env_number("BASELINE_POOL", 10)).unwrap_or(10))
                // sqlx's default (true, as in the service): a ping before every checkout.
                .test_before_acquire(std::env::var("BASELINE_TEST_BEFORE_ACQUIRE").as_deref() != Ok("false"))
                .acquire_timeout(Duration::from_secs(3))
                .connect(&url)
                .await
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let state = web::Data::new(State {
        body,
        pool,
    });
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/health", web::get().to(HttpResponse::Ok))
            .route("/bare/markets/{id}", web::get().to(bare))
            .route("/sqlx/markets/{id}", web::get().to(one))
            .route("/sqlx/markets", web::get().to(list))
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
