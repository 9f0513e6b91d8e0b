//! `GET /api/v1/markets/stream`: the WebSocket upgrade, checked before upgrading, and the loop that
//! serves one connection (events out, commands in, heartbeats, closes).

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use serde::Deserialize;
use tokio::time::Instant;
use utoipa::IntoParams;

use super::hub::{Delivery, Disconnect, Filter, Subscriber};
use super::message::{self, CommandError};
use super::origin;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// How long a close frame may take to leave before the connection is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The query of `GET /api/v1/markets/stream`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Comma-separated market ids, at most 100. Absent: every market; empty: none until the
    /// client subscribes.
    pub markets: Option<String>,
}

impl StreamParams {
    fn filter(&self) -> Result<Filter, ApiError> {
        let Some(markets) = &self.markets else {
            return Ok(Filter::all());
        };
        let ids = message::parse_ids(markets.split(',').filter(|id| !id.trim().is_empty()))
            .map_err(|problem| ApiError::invalid_field("markets", problem))?;
        Filter::only(ids).map_err(|problem| ApiError::invalid_field("markets", problem))
    }
}

/// Live market events over a WebSocket.
///
/// Each event is one JSON text message: `{"type": "position_opened", "market_id", "event_id",
/// "sequence", "occurred_at", "payload": {the event's fields}}` (types: `market_created`,
/// `market_updated`, `market_status_changed`, `market_deleted`, `position_opened`, whose payload
/// carries the new `yes_volume` and `no_volume`). Clients change their filter with
/// `{"subscribe": [ids]}` / `{"unsubscribe": [ids]}`, answered with
/// `{"type": "subscriptions", "markets": [ids] | "all", "except": [ids]}`; a bad message is answered
/// with `{"type": "error", "code": "malformed_request" | "validation_failed", "message"}` and the
/// connection stays open. The server pings every 10 s (by default); a client silent for 30 s is
/// closed (4001 `timed out`). A client that does not keep up is closed with 4000 `too slow` (it missed events:
/// reload, then reconnect); on shutdown clients are closed with 1001. Browsers may connect only
/// from the service's own origin (or configured ones).
#[utoipa::path(
    get, path = "/api/v1/markets/stream", tag = "markets",
    params(
        StreamParams,
        ("Origin" = Option<String>, Header, description = "Sent by browsers; must be the service's own origin or an allowed one"),
    ),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open"),
        (status = 400, description = "`validation_failed` (bad or too many market ids), `malformed_request` (unknown query parameter, or not a WebSocket upgrade)", body = ErrorBody),
        (status = 403, description = "`forbidden_origin`: a page of another origin", body = ErrorBody),
        (status = 503, description = "`too_many_connections` on this instance, or `service_unavailable` while shutting down", body = ErrorBody),
    )
)]
pub async fn market_stream(
    state: web::Data<AppState>,
    request: HttpRequest,
    params: web::Query<StreamParams>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let filter = params.filter()?;
    let stream = &state.stream;
    let settings = stream.settings();
    if let Some(page) = request.headers().get(header::ORIGIN) {
        let host = request.connection_info().host().to_owned();
        let allowed = page
            .to_str()
            .is_ok_and(|page| origin::allowed(page, &host, &settings.allowed_origins));
        if !allowed {
            return Err(ApiError::forbidden_origin());
        }
    }
    let (response, session, messages) = actix_ws::handle(&request, body).map_err(|_| {
        ApiError::malformed(
            "a WebSocket upgrade is required (Connection: Upgrade, Upgrade: websocket)",
        )
    })?;
    let subscriber = stream.connect(filter)?;
    let connection = Connection {
        session,
        subscriber,
        heartbeat: settings.heartbeat.max(Duration::from_millis(1)),
        client_timeout: settings.client_timeout,
    };
    actix_web::rt::spawn(connection.serve(messages));
    Ok(response)
}

/// Why the loop ends.
enum End {
    /// Close with this reason.
    Close(Option<CloseReason>),
    /// The connection is gone: nothing more can be sent.
    Gone,
}

fn close_with(disconnect: Disconnect) -> End {
    End::Close(Some(CloseReason {
        code: CloseCode::from(disconnect.code()),
        description: Some(disconnect.reason().to_owned()),
    }))
}

/// One open WebSocket.
struct Connection {
    session: Session,
    subscriber: Subscriber,
    heartbeat: Duration,
    client_timeout: Duration,
}

impl Connection {
    async fn serve(mut self, mut messages: MessageStream) {
        let end = self.run(&mut messages).await;
        let Self {
            session,
            subscriber,
            ..
        } = self;
        drop(subscriber);
        if let End::Close(reason) = end {
            tokio::time::timeout(CLOSE_GRACE, session.close(reason))
                .await
                .ok();
        }
    }

    async fn run(&mut self, messages: &mut MessageStream) -> End {
        match self.run_until_end(messages).await {
            Err(end) => end,
            Ok(never) => match never {},
        }
    }

    async fn run_until_end(
        &mut self,
        messages: &mut MessageStream,
    ) -> Result<std::convert::Infallible, End> {
        let mut last_heard = Instant::now();
        let mut ticks = tokio::time::interval_at(Instant::now() + self.heartbeat, self.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                delivery = self.subscriber.next() => match delivery {
                    Delivery::Event(text) => self.send(Message::Text(String::from(&*text).into())).await?,
                    Delivery::Closed(reason) => return Err(close_with(reason)),
                },
                message = messages.recv() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Ping(bytes))) => self.send(Message::Pong(bytes)).await?,
                        Some(Ok(Message::Text(text))) => {
                            let reply = self.command(&text);
                            self.send(Message::Text(reply.into())).await?;
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let reply = CommandError::malformed("send JSON text messages").to_text();
                            self.send(Message::Text(reply.into())).await?;
                        }
                        Some(Ok(Message::Close(reason))) => return Err(End::Close(reason)),
                        Some(Ok(Message::Pong(_) | Message::Continuation(_) | Message::Nop)) => {}
                        Some(Err(error)) => {
                            tracing::debug!(%error, "stream client protocol error");
                            return Err(End::Close(Some(CloseCode::Protocol.into())));
                        }
                        None => return Err(End::Gone),
                    }
                }
                _ = ticks.tick() => {
                    if last_heard.elapsed() >= self.client_timeout {
                        return Err(close_with(Disconnect::TimedOut));
                    }
                    self.send(Message::Ping(actix_web::web::Bytes::new())).await?;
                }
            }
        }
    }

    /// Applies a client command; the reply to send.
    fn command(&self, text: &str) -> String {
        let applied = message::parse_command(text).and_then(|command| {
            self.subscriber
                .change_filter(|filter| {
                    filter.subscribe(&command.subscribe)?;
                    filter.unsubscribe(&command.unsubscribe)
                })
                .map_err(|problem| CommandError::invalid(problem.to_string()))
        });
        match applied {
            Ok(Some(filter)) => message::subscriptions(&filter),
            // Dropped by the hub meanwhile: the close follows.
            Ok(None) => CommandError::invalid("the stream is closing").to_text(),
            Err(error) => error.to_text(),
        }
    }

    /// Sends one message, unless the hub drops the client meanwhile or the client does not take
    /// it within `client_timeout`.
    async fn send(&mut self, message: Message) -> Result<(), End> {
        let sending = tokio::time::timeout(
            self.client_timeout,
            send_message(&mut self.session, message),
        );
        tokio::select! {
            biased;
            reason = self.subscriber.dropped() => Err(close_with(reason)),
            sent = sending => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(actix_ws::Closed)) => Err(End::Gone),
                Err(_) => Err(close_with(Disconnect::TimedOut)),
            },
        }
    }
}

async fn send_message(session: &mut Session, message: Message) -> Result<(), actix_ws::Closed> {
    match message {
        Message::Text(text) => session.text(text).await,
        Message::Ping(bytes) => session.ping(&bytes).await,
        Message::Pong(bytes) => session.pong(&bytes).await,
        _ => Ok(()),
    }
}
