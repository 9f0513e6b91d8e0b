//! Two instances on one PostgreSQL database and one Redis: an event committed through either
//! reaches WebSocket clients connected to both, each exactly once and in commit order (the relay
//! runs on one instance at a time; the Redis stream fans out to every instance).

use std::time::Duration;

use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use tests::{Backend, TestApp, TestDatabase, TestRedis, test_config};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn instance(database: TestDatabase, redis: &TestRedis) -> TestApp {
    TestApp::spawn_with(Backend::Postgres, database, |url| {
        let mut config = test_config(url);
        config.redis.url = Some(SecretString::from(redis.url().to_owned()));
        config.redis.key_prefix = redis.prefix().to_owned();
        config.cache.redis_command_timeout_ms = 1_000;
        config
    })
    .await
}

async fn subscribe(app: &TestApp, market_id: &str) -> Socket {
    let url = format!(
        "{}/api/v1/markets/stream?markets={market_id}",
        app.address.replacen("http://", "ws://", 1)
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the stream opens");
    socket
}

/// The `position_opened` messages `socket` receives until `count` have come or `within` passed.
async fn positions(socket: &mut Socket, count: usize, within: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    while seen.len() < count {
        let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await else {
            break;
        };
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).expect("JSON");
            if value["type"] == "position_opened" {
                seen.push(value);
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_on_either_instance_reach_clients_of_both_once_in_order() {
    let Some(redis) = TestRedis::start().await else {
        return;
    };
    let Some(database) = TestDatabase::postgres().await else {
        return;
    };
    let url = database.url().to_owned();
    let first = instance(database, &redis).await;
    let second = instance(TestDatabase::existing(&url), &redis).await;

    let (_, token) = first.signed_in_user().await;
    let market = first
        .create_market(&token, "Watched from both", "test")
        .await;
    let market_id = market["id"].as_str().expect("an id").to_owned();
    let mut on_first = subscribe(&first, &market_id).await;
    let mut on_second = subscribe(&second, &market_id).await;
    // Subscriptions are registered once the upgrade is answered; the bus is read continuously.

    for n in 0..6 {
        let app = if n % 2 == 0 { &first } else { &second };
        let opened = app
            .post_json_as(
                &token,
                &format!("/api/v1/markets/{market_id}/positions"),
                &json!({"side": "yes", "amount": "1.00"}),
            )
            .await;
        assert_eq!(opened.status, 201, "{}", opened.text);
    }
    for (name, socket) in [("first", &mut on_first), ("second", &mut on_second)] {
        let seen = positions(socket, 6, Duration::from_secs(3)).await;
        assert_eq!(seen.len(), 6, "{name} heard every position: {seen:?}");
        let again = positions(socket, 1, Duration::from_millis(300)).await;
        assert!(again.is_empty(), "{name} heard a position twice: {again:?}");
        let volumes: Vec<&str> = seen
            .iter()
            .map(|event| event["payload"]["yes_volume"].as_str().expect("a volume"))
            .collect();
        assert_eq!(
            volumes,
            ["1.00", "2.00", "3.00", "4.00", "5.00", "6.00"],
            "{name}: in commit order"
        );
        let sequences: Vec<i64> = seen
            .iter()
            .map(|event| event["sequence"].as_i64().expect("a sequence"))
            .collect();
        assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
