//! Redis stream ids and the replies of `XREAD`, `XRANGE` and this crate's scripts, read from raw
//! [`Value`]s (RESP2 arrays or RESP3 maps alike).

use std::fmt;
use std::str::FromStr;

use deadpool_redis::redis::Value;
use domain::RecordedEvent;
use domain::ports::StoredEvent;

/// Redis answered something this crate did not expect.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from Redis: {0}")]
pub struct UnexpectedReply(pub String);

fn unexpected(what: impl Into<String>) -> UnexpectedReply {
    UnexpectedReply(what.into())
}

/// A stream entry id, `{milliseconds}-{sequence}`; this crate writes `{event sequence}-0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub major: u64,
    pub minor: u64,
}

impl StreamId {
    /// The id of the entry for the event with this sequence, `None` for a sequence below 1 (a
    /// stream entry id must be above `0-0`).
    pub fn of_sequence(sequence: i64) -> Option<Self> {
        u64::try_from(sequence)
            .ok()
            .filter(|major| *major > 0)
            .map(|major| Self { major, minor: 0 })
    }

    /// The event sequence this id stands for: its first part.
    pub fn sequence(self) -> Option<i64> {
        i64::try_from(self.major).ok()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.major, self.minor)
    }
}

impl FromStr for StreamId {
    type Err = UnexpectedReply;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (major, minor) = text.split_once('-').unwrap_or((text, "0"));
        match (major.parse(), minor.parse()) {
            (Ok(major), Ok(minor)) => Ok(Self { major, minor }),
            _ => Err(unexpected(format!("a stream id, not {text:?}"))),
        }
    }
}

/// One entry read from the stream: its id and, when it holds a readable event, the event.
#[derive(Debug)]
pub struct Entry {
    pub id: StreamId,
    /// `Err` with the reason when the entry holds no event this version understands.
    pub event: Result<StoredEvent, String>,
}

/// The text of a string reply.
pub fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

/// A stream id reply.
pub fn stream_id(value: &Value) -> Result<StreamId, UnexpectedReply> {
    text(value)
        .ok_or_else(|| unexpected(format!("a stream id, not {value:?}")))?
        .parse()
}

/// An integer reply (or a string holding one).
pub fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(number) => Some(*number),
        other => text(other).and_then(|text| text.parse().ok()),
    }
}

/// The elements of an array reply (`Nil` counts as empty).
pub fn array(value: &Value) -> Result<&[Value], UnexpectedReply> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(unexpected(format!("an array, not {other:?}"))),
    }
}

/// The key-value pairs of a map reply, or of a flat array of alternating keys and values.
fn pairs(value: &Value) -> Result<Vec<(&Value, &Value)>, UnexpectedReply> {
    match value {
        Value::Map(pairs) => Ok(pairs.iter().map(|(key, value)| (key, value)).collect()),
        other => {
            let items = array(other)?;
            if items.len() % 2 != 0 {
                return Err(unexpected("an odd number of field names and values"));
            }
            Ok(items
                .chunks_exact(2)
                .map(|pair| (&pair[0], &pair[1]))
                .collect())
        }
    }
}

/// The entries of an `XRANGE` reply: `[[id, [field, value, ...]], ...]`.
pub fn entries(value: &Value) -> Result<Vec<Entry>, UnexpectedReply> {
    array(value)?.iter().map(entry).collect()
}

fn entry(value: &Value) -> Result<Entry, UnexpectedReply> {
    let [id, fields] = array(value)? else {
        return Err(unexpected(format!("a stream entry, not {value:?}")));
    };
    let id = stream_id(id)?;
    let payload = pairs(fields)?
        .into_iter()
        .find(|(field, _)| text(field) == Some("e"))
        .map(|(_, payload)| payload);
    let event = match (payload, id.sequence()) {
        (None, _) => Err("no `e` field".to_owned()),
        (Some(_), None) => Err("a sequence above i64::MAX".to_owned()),
        (Some(payload), Some(sequence)) => {
            decode(payload).map(|event| StoredEvent { sequence, event })
        }
    };
    Ok(Entry { id, event })
}

fn decode(payload: &Value) -> Result<RecordedEvent, String> {
    let bytes: &[u8] = match payload {
        Value::BulkString(bytes) => bytes,
        other => text(other)
            .ok_or("a payload that is not a string")?
            .as_bytes(),
    };
    serde_json::from_slice(bytes).map_err(|error| error.to_string())
}

/// The entries of an `XREAD` reply on one stream: nil on timeout, else
/// `[[key, [entry, ...]]]` (RESP2) or `{key: [entry, ...]}` (RESP3).
pub fn read_reply(value: &Value) -> Result<Vec<Entry>, UnexpectedReply> {
    let streams: Vec<&Value> = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs.iter().map(|(_, entries)| entries).collect(),
        other => array(other)?
            .iter()
            .map(|stream| match array(stream)? {
                [_key, entries] => Ok(entries),
                _ => Err(unexpected(format!(
                    "a stream and its entries, not {stream:?}"
                ))),
            })
            .collect::<Result<_, _>>()?,
    };
    let mut all = Vec::new();
    for stream in streams {
        all.extend(entries(stream)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn ids_order_print_and_parse() {
        let id: StreamId = "42-0".parse().expect("an id");
        assert_eq!(id, StreamId::of_sequence(42).expect("a positive sequence"));
        assert_eq!(id.to_string(), "42-0");
        assert_eq!(id.sequence(), Some(42));
        assert!("42-1".parse::<StreamId>().expect("an id") > id);
        assert!("43-0".parse::<StreamId>().expect("an id") > "42-7".parse().expect("an id"));
        assert_eq!("7".parse::<StreamId>().expect("an id").major, 7);
        assert!("x-0".parse::<StreamId>().is_err());
        assert_eq!(StreamId::of_sequence(0), None);
        assert_eq!(StreamId::of_sequence(-3), None);
    }

    #[test]
    fn read_replies_in_both_protocols_give_the_entries() {
        let entry =
            |id: &str| Value::Array(vec![bulk(id), Value::Array(vec![bulk("e"), bulk("{")])]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            bulk("events"),
            Value::Array(vec![entry("1-0"), entry("2-0")]),
        ])]);
        let resp3 = Value::Map(vec![(
            bulk("events"),
            Value::Array(vec![entry("1-0"), entry("2-0")]),
        )]);
        for reply in [resp2, resp3] {
            let read = read_reply(&reply).expect("entries");
            let ids: Vec<String> = read.iter().map(|entry| entry.id.to_string()).collect();
            assert_eq!(ids, ["1-0", "2-0"]);
            assert!(
                read.iter().all(|entry| entry.event.is_err()),
                "`{{` is no event"
            );
        }
        assert!(read_reply(&Value::Nil).expect("no entries").is_empty());
    }
}
