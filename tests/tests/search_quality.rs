//! Search quality on a labelled set (tests/data/search): recall@10 of keyword, vector and hybrid
//! search over the same corpus, on SQLite and PostgreSQL, with the numbers printed for
//! docs/search.md (`cargo test -p tests --test search_quality -- --nocapture`).

use std::collections::BTreeMap;

use application::markets::SearchMode;
use bootstrap::config::VectorIndexKind;
use domain::MarketId;
use domain::search::SearchQuery;
use serde::Deserialize;
use tests::{Backend, TestDatabase};

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

    let corpus: Vec<Draft> =
        serde_json::from_str(include_str!("../data/search/corpus.json")).expect("the corpus");
    let drafts: Vec<(&str, &str, &str)> = corpus
        .iter()
        .map(|d| (d.name.as_str(), d.description.as_str(), d.category.as_str()))
        .collect();
    let ids = tests::insert_markets(&pools, &drafts).await;
    let names: BTreeMap<MarketId, String> = ids
        .into_iter()
        .zip(corpus.iter().map(|d| d.name.clone()))
        .collect();
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
    let usable = tests::pgvector_usable(&pools).await;
    pools.close().await.ok();
    if !usable {
        return;
    }
    if let Some(report) = recall(Backend::Postgres, VectorIndexKind::Pgvector).await {
        print("PostgreSQL + pgvector (HNSW)", &report);
        check(&report);
    }
}
