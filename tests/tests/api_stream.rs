//! The live stream seen from outside: a subscriber hears the positions opened on its markets within
//! two seconds (with the outbox's event id), filters exclude other markets and change with
//! `subscribe` messages, bad origins and bad filters are refused before upgrading, and a failed
//! write sends nothing.

use std::time::Duration;

use adapter_persistence::SeaOutbox;
use domain::ports::Outbox;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tests::TestApp;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

tests::api_tests!(
    a_subscriber_hears_positions_on_its_market_and_nothing_of_the_others,
    subscribe_messages_change_the_filter_and_bad_ones_are_answered,
    bad_origins_and_bad_filters_are_refused_before_upgrading,
    a_failed_write_sends_no_event,
);

/// What a live event must arrive within.
const PROMPTLY: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn stream_url(app: &TestApp, query: &str) -> String {
    format!(
        "{}/api/v1/markets/stream{query}",
        app.address.replacen("http://", "ws://", 1)
    )
}

/// Opens the stream, optionally as a page of `origin`: the socket, or the refusal's status and
/// JSON body.
async fn try_connect(
    app: &TestApp,
    query: &str,
    origin: Option<&str>,
) -> Result<Socket, (u16, Value)> {
    let mut request = stream_url(app, query)
        .into_client_request()
        .expect("a WebSocket request");
    if let Some(origin) = origin {
        request.headers_mut().insert(
            "origin",
            HeaderValue::from_str(origin).expect("a header value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(socket)
        }
        Err(tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice(body).ok())
                .unwrap_or(Value::Null);
            Err((response.status().as_u16(), body))
        }
        Err(error) => panic!("connecting to the stream failed: {error}"),
    }
}

async fn connect(app: &TestApp, query: &str) -> Socket {
    try_connect(app, query, None)
        .await
        .unwrap_or_else(|(status, body)| panic!("the stream answered {status}: {body}"))
}

/// The next JSON text message within `within`, answering pings on the way; `None` on timeout.
async fn next_json(socket: &mut Socket, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        match message.expect("the stream stays open").expect("a frame") {
            Message::Text(text) => return Some(serde_json::from_str(&text).expect("JSON")),
            Message::Close(frame) => panic!("the stream closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads until a `position_opened` arrives (within [`PROMPTLY`]), checking that every event is
/// about `market`; returns it.
async fn position_opened_on(socket: &mut Socket, market: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PROMPTLY;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = next_json(socket, left)
            .await
            .unwrap_or_else(|| panic!("no position_opened on {market} within {PROMPTLY:?}"));
        assert_eq!(message["market_id"], market, "filtered out: {message}");
        if message["type"] == "position_opened" {
            return message;
        }
    }
}

async fn open_position(app: &TestApp, token: &str, market: &str, side: &str, amount: &str) -> u16 {
    let reply = app
        .post_json_as(
            token,
            &format!("/api/v1/markets/{market}/positions"),
            &json!({"side": side, "amount": amount}),
        )
        .await;
    reply.status
}

async fn market_id(app: &TestApp, token: &str, name: &str) -> String {
    app.create_market(token, name, "test").await["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

async fn a_subscriber_hears_positions_on_its_market_and_nothing_of_the_others(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let watched = market_id(&app, &token, "Watched market").await;
    let other = market_id(&app, &token, "Other market").await;
    let mut filtered = connect(&app, &format!("?markets={watched}")).await;
    let mut everything = connect(&app, "").await;

    assert_eq!(open_position(&app, &token, &other, "no", "7.00").await, 201);
    assert_eq!(
        open_position(&app, &token, &watched, "yes", "25.00").await,
        201
    );

    let event = position_opened_on(&mut filtered, &watched).await;
    assert_eq!(event["payload"]["yes_volume"], "25.00", "{event}");
    assert_eq!(event["payload"]["no_volume"], "0.00", "{event}");
    assert_eq!(event["payload"]["amount"], "25.00", "{event}");
    assert_eq!(event["payload"]["side"], "yes", "{event}");
    assert!(event["occurred_at"].is_string(), "{event}");
    let sequence = event["sequence"].as_i64().expect("a sequence");

    // The event id and sequence are the outbox's.
    let recorded = SeaOutbox::new(app.pools.clone())
        .after(sequence - 1, 1)
        .await
        .expect("the outbox");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].sequence, sequence);
    assert_eq!(event["event_id"], recorded[0].event.id.to_string());

    // The other market's event was published: the unfiltered client heard both.
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let message = next_json(&mut everything, PROMPTLY)
            .await
            .expect("the unfiltered client hears both positions");
        if message["type"] == "position_opened" {
            heard.push(message["market_id"].as_str().expect("an id").to_owned());
        }
    }
    assert_eq!(heard, [other.clone(), watched.clone()]);
    // ...and the filtered one nothing more.
    assert_eq!(
        next_json(&mut filtered, Duration::from_millis(300)).await,
        None
    );
}

async fn subscribe_messages_change_the_filter_and_bad_ones_are_answered(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = market_id(&app, &token, "Subscribed later").await;
    let mut socket = connect(&app, "?markets=").await;

    socket
        .send(Message::text("this is not JSON"))
        .await
        .expect("sent");
    let error = next_json(&mut socket, PROMPTLY).await.expect("an answer");
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "malformed_request");
    socket
        .send(Message::text(r#"{"subscribe": ["not-an-id"]}"#))
        .await
        .expect("sent");
    let error = next_json(&mut socket, PROMPTLY).await.expect("an answer");
    assert_eq!(error["code"], "validation_failed");

    socket
        .send(Message::text(json!({"subscribe": [market]}).to_string()))
        .await
        .expect("sent");
    let subscriptions = next_json(&mut socket, PROMPTLY).await.expect("an answer");
    assert_eq!(
        subscriptions,
        json!({"type": "subscriptions", "markets": [market]})
    );

    assert_eq!(
        open_position(&app, &token, &market, "no", "3.50").await,
        201
    );
    let event = position_opened_on(&mut socket, &market).await;
    assert_eq!(event["payload"]["no_volume"], "3.50");

    socket
        .send(Message::text(json!({"unsubscribe": [market]}).to_string()))
        .await
        .expect("sent");
    let subscriptions = next_json(&mut socket, PROMPTLY).await.expect("an answer");
    assert_eq!(subscriptions["markets"], json!([]));
    assert_eq!(
        open_position(&app, &token, &market, "no", "1.00").await,
        201
    );
    assert_eq!(
        next_json(&mut socket, Duration::from_millis(500)).await,
        None
    );
    socket.close(None).await.expect("a clean close");
}

async fn bad_origins_and_bad_filters_are_refused_before_upgrading(app: TestApp) {
    let (status, body) = try_connect(&app, "", Some("https://evil.example"))
        .await
        .expect_err("refused");
    assert_eq!(status, 403);
    assert_eq!(body["code"], "forbidden_origin", "{body}");
    assert!(body["request_id"].is_string(), "{body}");

    let own = app.address.clone();
    let socket = try_connect(&app, "", Some(&own)).await;
    assert!(socket.is_ok(), "the service's own pages may connect");

    let (status, body) = try_connect(&app, "?markets=not-a-uuid", None)
        .await
        .expect_err("refused");
    assert_eq!(status, 400);
    assert_eq!(body["code"], "validation_failed", "{body}");
    assert_eq!(body["details"][0]["field"], "markets", "{body}");

    let (status, body) = try_connect(&app, "?market=x", None)
        .await
        .expect_err("refused");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("malformed_request"))
    );

    let plain = app.get("/api/v1/markets/stream").await;
    assert_eq!(plain.status, 400, "{}", plain.text);
    assert_eq!(plain.body["code"], "malformed_request");
}

async fn a_failed_write_sends_no_event(app: TestApp) {
    let (_, token) = app.signed_in_user().await;
    let market = market_id(&app, &token, "Nothing happens").await;
    let mut socket = connect(&app, &format!("?markets={market}")).await;

    // The starting balance is 1000.00.
    assert_eq!(
        open_position(&app, &token, &market, "yes", "5000.00").await,
        409
    );
    assert_eq!(
        open_position(&app, &token, &market, "yes", "1.00").await,
        201
    );
    let event = position_opened_on(&mut socket, &market).await;
    assert_eq!(
        event["payload"]["amount"], "1.00",
        "the refused position sent nothing: {event}"
    );
    assert_eq!(event["payload"]["yes_volume"], "1.00");
    assert_eq!(
        next_json(&mut socket, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_the_connection_limit_are_refused_before_upgrading() {
    let app = TestApp::spawn_with(
        tests::Backend::Sqlite,
        tests::TestDatabase::sqlite(),
        |url| {
            let mut config = tests::test_config(url);
            config.http.ws_max_connections = 2;
            config
        },
    )
    .await;
    let first = connect(&app, "").await;
    let _second = connect(&app, "").await;
    let Err((status, body)) = try_connect(&app, "", None).await else {
        panic!("a third client was let in");
    };
    assert_eq!(status, 503);
    assert_eq!(body["code"], "too_many_connections");
    drop(first);
    // The freed place is taken again once the server has seen the first client go.
    let mut admitted = false;
    for _ in 0..50 {
        if try_connect(&app, "", None).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a place freed by a leaving client is given again");
}
