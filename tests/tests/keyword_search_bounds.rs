//! `SeaKeywordSearch`'s bound on the matches it ranks (`MATCHES_RANKED`, 500 per match set) on
//! SQLite and PostgreSQL: a precise match is still found first when a broad word matches more
//! markets than are ranked.

use adapter_persistence::{MATCHES_RANKED, SeaKeywordSearch};
use domain::ports::KeywordSearch;
use domain::search::SearchQuery;
use tests::{Backend, TestDatabase};

async fn a_precise_match_beyond_the_ranked_broad_matches_comes_first(backend: Backend) {
    let Some(database) = TestDatabase::of(backend).await else {
        return;
    };
    let pools = database.migrated().await;
    let broad = usize::try_from(MATCHES_RANKED).expect("a small bound") + 100;
    let names: Vec<String> = (0..broad)
        .map(|n| format!("Will alpha happen, number {n}?"))
        .collect();
    let mut drafts: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|name| (name.as_str(), "An alpha market.", "tests"))
        .collect();
    // Written last: in table order it lies past the first MATCHES_RANKED matches of `alpha`.
    drafts.push(("Will alpha meet beta?", "Both words.", "tests"));
    let ids = tests::insert_markets(&pools, &drafts).await;
    let precise = *ids.last().expect("ids");

    let search = SeaKeywordSearch::new(pools.clone());
    let found = search
        .search(
            &SearchQuery::parse("alpha beta").expect("a query"),
            None,
            10,
        )
        .await
        .expect("searched");
    assert_eq!(found.len(), 10);
    assert_eq!(found[0].market_id, precise, "{found:?}");
    assert!(found[0].score > found[1].score);

    let broad_only = search
        .search(&SearchQuery::parse("alpha").expect("a query"), None, 50)
        .await
        .expect("searched");
    assert_eq!(broad_only.len(), 50, "a broad word still fills the page");
    pools.close().await.ok();
}

#[tokio::test]
async fn sqlite_ranks_a_bounded_number_of_matches() {
    a_precise_match_beyond_the_ranked_broad_matches_comes_first(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_ranks_a_bounded_number_of_matches() {
    a_precise_match_beyond_the_ranked_broad_matches_comes_first(Backend::Postgres).await;
}
