//! Search quality on a labelled set (tests/data/search): recall@10 of keyword, vector and hybrid
//! search over the same corpus, on SQLite and PostgreSQL, with the numbers printed for
//! docs/search.md (`cargo test -p tests --test search_quality -- --nocapture`).

use std::collections::BTreeMap;

use application::markets::SearchMode;
use bootstrap::config::VectorIndexKind;
use chrono::Duration;
use domain::market::MarketDraft;
use domain::ports::{MarketRepository, UserRepository};
use domain::search::SearchQuery;
use domain::{
    Amount, Category, DisplayName, Email, Market, MarketDescription, MarketId, MarketName,
    PasswordHash, Role, User, UserId,
};
use serde::Deserialize;
use tests::{Backend, TestDatabase};
use uuid::Uuid;

#[derive(Deserialize)]
struct Draft {
    name: String,
    description: String,
    category: String,
}

#[derive(Deserialize)]
struct Labelled {
    queries: Vec<Query>,
}

#[derive(Deserialize)]
struct Query {
    q: String,
    kind: String,
    relevant: Vec<String>,
}

/// Recall@10 by query kind and in all, for one mode.
type Recalls = BTreeMap<String, f64>;

async fn recall(
    backend: Backend,
    vectors: VectorIndexKind,
) -> Option<BTreeMap<&'static str, Recalls>> {
    let database = TestDatabase::of(backend).await?;
    let pools = database.migrated().await;
    let mut config = tests::test_config(database.url());
    config.search.vector_index = vectors;
    let use_cases = bootstrap::app::use_cases(&config, &pools, None, None)
        .await
        .expect("use cases");

    let now = domain::ports::Clock::now(&adapter_memory::SystemClock);
    let creator = User {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse("corpus@example.com").expect("an email"),
        name: DisplayName::parse("Corpus").expect("a name"),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into()),
        role: Role::User,
        balance: Amount::ZERO,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    let users = adapter_persistence::SeaUserRepository::new(pools.clone());
    users.insert(&creator).await.expect("the creator");
    let markets = adapter_persistence::SeaMarketRepository::new(pools.clone());
    let corpus: Vec<Draft> =
        serde_json::from_str(include_str!("../data/search/corpus.json")).expect("the corpus");
    let mut names: BTreeMap<MarketId, String> = BTreeMap::new();
    for draft in &corpus {
        let market = Market::open(
            MarketId::from_uuid(Uuid::now_v7()),
            MarketDraft {
                name: MarketName::parse(&draft.name).expect("a name"),
                description: MarketDescription::parse(&draft.description).expect("a description"),
                category: Category::parse(&draft.category).expect("a category"),
                end_date: now + Duration::days(365),
            },
            creator.id,
            now,
        )
        .expect("a market");
        markets.insert(&market).await.expect("stored");
        names.insert(market.id, draft.name.clone());
    }
    let indexed = use_cases.rebuild_vector_index().await.expect("indexed");
    assert_eq!(indexed, corpus.len() as u64);

    let labelled: Labelled =
        serde_json::from_str(include_str!("../data/search/queries.json")).expect("the queries");
    let mut report = BTreeMap::new();
    for (label, mode) in [
        ("keyword", SearchMode::Keyword),
        ("vector", SearchMode::Vector),
        ("hybrid", SearchMode::Hybrid),
    ] {
        let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for query in &labelled.queries {
            let parsed = SearchQuery::parse(&query.q).expect("a valid query");
            let found = use_cases
                .search_markets_by(mode, &parsed, None, 10)
                .await
                .expect("searched");
            let top: Vec<&String> = found
                .iter()
                .filter_map(|f| names.get(&f.market.id))
                .collect();
            let hits = query
                .relevant
                .iter()
                .filter(|name| top.contains(name))
                .count();
            #[allow(clippy::cast_precision_loss)]
            let recall = hits as f64 / query.relevant.len() as f64;
            let first = f64::from(u8::from(
                top.first()
                    .is_some_and(|name| query.relevant.contains(name)),
            ));
            for kind in [query.kind.as_str(), "all"] {
                let entry = sums.entry(kind.to_owned()).or_default();
                entry.0 += recall;
                entry.1 += 1.0;
                let entry = sums.entry(format!("{kind} first")).or_default();
                entry.0 += first;
                entry.1 += 1.0;
            }
        }
        report.insert(
            label,
            sums.into_iter()
                .map(|(kind, (sum, count))| (kind, sum / count))
                .collect(),
        );
    }
    pools.close().await.ok();
    Some(report)
}

fn print(backend: &str, report: &BTreeMap<&'static str, Recalls>) {
    println!("recall@10 (and how often the first result is relevant) on {backend}:");
    for (mode, recalls) in report {
        let cells: Vec<String> = recalls
            .iter()
            .map(|(kind, recall)| format!("{kind} {recall:.2}"))
            .collect();
        println!("  {mode:8} {}", cells.join(", "));
    }
}

/// The floors are what these adapters reached when measured (docs/search.md), less a margin: a
/// change that makes search worse fails here.
fn check(report: &BTreeMap<&'static str, Recalls>) {
    let get = |mode: &str, kind: &str| report[mode][kind];
    assert!(get("keyword", "words") >= 0.9, "{report:?}");
    assert!(get("vector", "misspelling") >= 0.7, "{report:?}");
    assert!(get("vector", "synonym") >= 0.6, "{report:?}");
    assert!(
        get("hybrid", "all") >= get("keyword", "all").max(get("vector", "all")) - 0.05,
        "fusion keeps the better of both: {report:?}"
    );
    assert!(get("hybrid", "all") >= 0.9, "{report:?}");
    assert!(get("hybrid", "all first") >= 0.8, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_recall_at_10_of_keyword_vector_and_hybrid_search() {
    if let Some(report) = recall(Backend::Sqlite, VectorIndexKind::Memory).await {
        print("SQLite", &report);
        check(&report);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_recall_at_10_of_keyword_vector_and_hybrid_search() {
    if let Some(report) = recall(Backend::Postgres, VectorIndexKind::Memory).await {
        print("PostgreSQL", &report);
        check(&report);
    }
}

/// The same on pgvector's HNSW index (approximate), where the server has the extension (see
/// tests/tests/vector_index_contract.rs for how its absence is reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgvector_recall_at_10_of_keyword_vector_and_hybrid_search() {
    let Some(probe) = TestDatabase::postgres().await else {
        return;
    };
    let pools = probe.migrated().await;
    let installed = adapter_persistence::PgVectorIndex::open(pools.clone(), 256, "probe")
        .await
        .is_ok();
    pools.close().await.ok();
    if !installed {
        assert!(
            std::env::var("REQUIRE_PGVECTOR").map_or(true, |v| v != "1"),
            "pgvector is required (REQUIRE_PGVECTOR=1) but cannot be used"
        );
        eprintln!("\n!!! pgvector is not installed: its recall is not measured here.\n");
        return;
    }
    if let Some(report) = recall(Backend::Postgres, VectorIndexKind::Pgvector).await {
        print("PostgreSQL + pgvector (HNSW)", &report);
        check(&report);
    }
}
