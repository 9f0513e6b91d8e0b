//! The stream's wire format: events as JSON text messages, client commands, and replies.

use chrono::{DateTime, Utc};
use domain::MarketId;
use domain::id::EventId;
use domain::ports::StoredEvent;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::hub::{Filter, MAX_FILTER_IDS};

/// One event as clients receive it.
#[derive(Debug, Serialize)]
struct EventMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    market_id: Option<MarketId>,
    event_id: EventId,
    sequence: i64,
    occurred_at: &'a DateTime<Utc>,
    /// The event's own fields (its `type` tag removed).
    payload: Value,
}

/// `{"type": "position_opened", "market_id", "event_id", "sequence", "occurred_at", "payload"}`.
///
/// # Errors
/// When the event cannot be serialised (it always can; the error is kept rather than hidden).
pub fn render(stored: &StoredEvent) -> Result<String, serde_json::Error> {
    let recorded = &stored.event;
    let mut payload = serde_json::to_value(&recorded.event)?;
    if let Value::Object(fields) = &mut payload {
        fields.remove("type");
    }
    serde_json::to_string(&EventMessage {
        kind: recorded.event.name(),
        market_id: recorded.event.market_id(),
        event_id: recorded.id,
        sequence: stored.sequence,
        occurred_at: &recorded.occurred_at,
        payload,
    })
}

/// A client's text message: `{"subscribe": [ids]}` and/or `{"unsubscribe": [ids]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    subscribe: Option<Vec<String>>,
    unsubscribe: Option<Vec<String>>,
}

/// A parsed client command: markets to add, then markets to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub subscribe: Vec<MarketId>,
    pub unsubscribe: Vec<MarketId>,
}

/// A command that cannot be applied, answered with `{"type": "error", "code", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub code: &'static str,
    pub message: String,
}

impl CommandError {
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self {
            code: "malformed_request",
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "validation_failed",
            message: message.into(),
        }
    }

    /// The error message sent to the client.
    #[must_use]
    pub fn to_text(&self) -> String {
        json!({"type": "error", "code": self.code, "message": self.message}).to_string()
    }
}

/// Parses market ids (at most [`MAX_FILTER_IDS`]).
///
/// # Errors
/// A message naming the first bad id, or saying there are too many.
pub fn parse_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<MarketId>, String> {
    let mut parsed = Vec::new();
    for id in ids {
        if parsed.len() == MAX_FILTER_IDS {
            return Err(format!("at most {MAX_FILTER_IDS} market ids"));
        }
        let market = id
            .trim()
            .parse::<MarketId>()
            .map_err(|_| format!("not a market id: {:?}", truncate(id)))?;
        parsed.push(market);
    }
    Ok(parsed)
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Parses a client's text message.
///
/// # Errors
/// `malformed_request` for anything but a JSON object with `subscribe` and/or `unsubscribe`
/// arrays of strings; `validation_failed` for bad or too many ids.
pub fn parse_command(text: &str) -> Result<Command, CommandError> {
    let raw: RawCommand = serde_json::from_str(text).map_err(|error| {
        CommandError::malformed(format!(
            "expected {{\"subscribe\": [ids]}} or {{\"unsubscribe\": [ids]}}: {error}"
        ))
    })?;
    if raw.subscribe.is_none() && raw.unsubscribe.is_none() {
        return Err(CommandError::malformed(
            "expected {\"subscribe\": [ids]} or {\"unsubscribe\": [ids]}",
        ));
    }
    let ids = |list: Option<Vec<String>>| {
        parse_ids(list.iter().flatten().map(String::as_str)).map_err(CommandError::invalid)
    };
    Ok(Command {
        subscribe: ids(raw.subscribe)?,
        unsubscribe: ids(raw.unsubscribe)?,
    })
}

/// `{"type": "subscriptions", "markets": [ids]}` for a filter of some markets, or
/// `{"type": "subscriptions", "markets": "all", "except": [ids]}`: the reply to every command.
#[must_use]
pub fn subscriptions(filter: &Filter) -> String {
    match filter {
        Filter::Only(markets) => json!({"type": "subscriptions", "markets": markets}),
        Filter::All { except } => {
            json!({"type": "subscriptions", "markets": "all", "except": except})
        }
    }
    .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use domain::event::{DomainEvent, RecordedEvent};
    use uuid::Uuid;

    #[test]
    fn an_event_is_rendered_with_its_identity_and_its_fields_as_payload() {
        let market = MarketId::from_uuid(Uuid::now_v7());
        let stored = StoredEvent {
            sequence: 7,
            event: RecordedEvent {
                id: EventId::from_uuid(Uuid::now_v7()),
                occurred_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
                event: DomainEvent::MarketUpdated {
                    market_id: market,
                    version: 3,
                },
            },
        };
        let json: Value = serde_json::from_str(&render(&stored).unwrap()).unwrap();
        assert_eq!(
            json,
            json!({
                "type": "market_updated",
                "market_id": market.to_string(),
                "event_id": stored.event.id.to_string(),
                "sequence": 7,
                "occurred_at": "2027-01-15T08:00:00Z",
                "payload": {"market_id": market.to_string(), "version": 3},
            })
        );
    }

    #[test]
    fn commands_are_parsed_and_bad_ones_explained() {
        let id = Uuid::now_v7();
        let command = parse_command(&format!(r#"{{"subscribe": ["{id}"]}}"#)).unwrap();
        assert_eq!(command.subscribe, vec![MarketId::from_uuid(id)]);
        assert!(command.unsubscribe.is_empty());
        for bad in [
            "not json",
            "{}",
            r#"{"subscribe": "x"}"#,
            r#"{"other": []}"#,
            "[]",
        ] {
            assert_eq!(
                parse_command(bad).unwrap_err().code,
                "malformed_request",
                "{bad}"
            );
        }
        let invalid = parse_command(r#"{"unsubscribe": ["nope"]}"#).unwrap_err();
        assert_eq!(invalid.code, "validation_failed");
        let text: Value = serde_json::from_str(&invalid.to_text()).unwrap();
        assert_eq!(text["type"], "error");
        let too_many: Vec<String> = (0..=MAX_FILTER_IDS)
            .map(|_| format!("\"{}\"", Uuid::now_v7()))
            .collect();
        let command = format!(r#"{{"subscribe": [{}]}}"#, too_many.join(","));
        assert_eq!(
            parse_command(&command).unwrap_err().code,
            "validation_failed"
        );
    }
}
