//! `GET /api/v1/markets/search` over HTTP on SQLite and PostgreSQL: words of a market, a
//! misspelling and a synonym (the vector side), the status filter, an edited market found by its
//! new words, the bounds of the parameters, and one batched load of the markets found.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::{Reply, TestApp};

tests::api_tests!(
    markets_are_found_by_words_misspellings_and_synonyms_with_filters,
    an_edited_market_is_found_by_its_new_words,
    search_parameters_are_bounded,
    found_markets_are_loaded_in_one_batch,
);

async fn search(app: &TestApp, query: &str) -> Reply {
    app.get(&format!("/api/v1/markets/search?{query}")).await
}

fn names(reply: &Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|hit| hit["market"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Waits (up to 5 s) until `query` finds `name` first: markets reach the vector index through
/// the event relay, a moment after they are written.
async fn first_eventually(app: &TestApp, query: &str, name: &str) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = search(app, query).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        if names(&reply).first().map(String::as_str) == Some(name) || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create(
    app: &TestApp,
    token: &str,
    name: &str,
    description: &str,
    category: &str,
) -> Value {
    let reply = app
        .post_json_as(
            token,
            "/api/v1/markets",
            &json!({"name": name, "description": description, "category": category,
                    "end_date": "2031-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["data"].clone()
}

async fn markets_are_found_by_words_misspellings_and_synonyms_with_filters(app: TestApp) {
    let (_, token) = app.signed_in_with_role(domain::Role::Moderator).await;
    create(
        &app,
        &token,
        "Will it rain in Paris on Bastille Day?",
        "Measurable precipitation at Montsouris.",
        "weather",
    )
    .await;
    let bitcoin = create(
        &app,
        &token,
        "Will Bitcoin close above 150k?",
        "The BTC/USD daily close.",
        "crypto",
    )
    .await;
    create(
        &app,
        &token,
        "Who wins the presidential election?",
        "The certified winner.",
        "politics",
    )
    .await;

    let words = first_eventually(
        &app,
        "q=rain%20Paris",
        "Will it rain in Paris on Bastille Day?",
    )
    .await;
    assert_eq!(names(&words)[0], "Will it rain in Paris on Bastille Day?");
    let score = words.body["data"][0]["score"].as_f64().expect("a score");
    assert!(score > 0.0);
    assert_eq!(words.body["data"][0]["market"]["category"], "weather");

    let misspelt = first_eventually(&app, "q=bitcoim", "Will Bitcoin close above 150k?").await;
    assert_eq!(
        names(&misspelt)[0],
        "Will Bitcoin close above 150k?",
        "{}",
        misspelt.text
    );
    let typo = first_eventually(
        &app,
        "q=presidentail%20electon",
        "Who wins the presidential election?",
    )
    .await;
    assert_eq!(
        names(&typo)[0],
        "Who wins the presidential election?",
        "{}",
        typo.text
    );
    let synonym = first_eventually(&app, "q=crypto", "Will Bitcoin close above 150k?").await;
    assert_eq!(
        names(&synonym)[0],
        "Will Bitcoin close above 150k?",
        "{}",
        synonym.text
    );

    // Closed, it leaves `status=active` results and stays in `status=closed` ones.
    let id = bitcoin["id"].as_str().expect("an id");
    let closed = app
        .send(
            app.client
                .patch(app.url(&format!("/api/v1/markets/{id}")))
                .bearer_auth(&token)
                .json(&json!({"status": "closed"})),
        )
        .await;
    assert_eq!(closed.status, 200, "{}", closed.text);
    let active = search(&app, "q=bitcoin&status=active").await;
    assert!(
        !names(&active).contains(&"Will Bitcoin close above 150k?".to_owned()),
        "{}",
        active.text
    );
    let only_closed = search(&app, "q=bitcoin&status=closed").await;
    assert_eq!(names(&only_closed), ["Will Bitcoin close above 150k?"]);
    assert!(
        only_closed.body["data"]
            .as_array()
            .expect("a list")
            .iter()
            .all(|hit| hit["market"]["status"] == "closed")
    );
    let limited = search(&app, "q=will&limit=1").await;
    assert_eq!(limited.body["data"].as_array().map(Vec::len), Some(1));
}

async fn an_edited_market_is_found_by_its_new_words(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = create(
        &app,
        &token,
        "Will the bridge open in May?",
        "A new bridge.",
        "infrastructure",
    )
    .await;
    assert!(names(&search(&app, "q=tunnel").await).is_empty());
    let id = market["id"].as_str().expect("an id");
    let edited = app
        .send(
            app.client
                .patch(app.url(&format!("/api/v1/markets/{id}")))
                .bearer_auth(&token)
                .json(&json!({"name": "Will the tunnel open in June?"})),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.text);
    let found = search(&app, "q=tunnel").await;
    assert_eq!(
        names(&found),
        ["Will the tunnel open in June?"],
        "the keyword index is current at once"
    );
    let old = search(&app, "q=bridge&status=active").await;
    let eventually = first_eventually(&app, "q=tunel", "Will the tunnel open in June?").await;
    assert_eq!(
        names(&eventually)[0],
        "Will the tunnel open in June?",
        "and the vector index soon after"
    );
    assert!(
        names(&old)
            .iter()
            .all(|name| name != "Will the bridge open in May?"),
        "the old name is gone"
    );
}

async fn search_parameters_are_bounded(app: TestApp) {
    for query in [
        "",
        "q=",
        "q=%20%20",
        "q=%3F%21",
        &format!("q={}", "a".repeat(201)),
        "q=rain&limit=0",
        "q=rain&limit=51",
        "q=rain&limit=ten",
        "q=rain&status=open",
        "q=a%00b",
    ] {
        let reply = search(&app, query).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(reply.body["code"], "validation_failed", "{query}");
    }
    let unknown = search(&app, "q=rain&sort=name").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["code"], "malformed_request");
    let empty = search(&app, "q=nothing%20matches%20this").await;
    assert_eq!(empty.status, 200);
    assert!(empty.body["data"].is_array());
}

async fn found_markets_are_loaded_in_one_batch(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    for n in 0..12 {
        create(
            &app,
            &token,
            &format!("Will launch number {n} reach orbit?"),
            "A rocket launch.",
            "space",
        )
        .await;
    }
    // Each new market is also read once more by the vector indexer when its event arrives.
    app.wait_for_idle_jobs().await;
    let statements = |limit: u32| {
        let app = &app;
        async move {
            let before = app.pools.statement_count();
            let reply = search(app, &format!("q=launch%20orbit&limit={limit}")).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            (app.pools.statement_count() - before, reply)
        }
    };
    let (few, reply) = statements(2).await;
    assert_eq!(reply.body["data"].as_array().map(Vec::len), Some(2));
    let (many, reply) = statements(12).await;
    assert_eq!(reply.body["data"].as_array().map(Vec::len), Some(12));
    assert_eq!(few, many, "the same statements for 2 results as for 12");
    assert_eq!(many, 2, "one keyword query and one batched load");
}
