//! Request and response bodies: the API's own types, separate from the domain's, validated with
//! `garde` on the way in (the rules themselves are the domain's `parse` functions).

pub mod jobs;
pub mod markets;
pub mod positions;
pub mod users;

use std::fmt::Display;

/// A `garde` rule that accepts what a domain `parse` function accepts, with its message.
pub(crate) fn parses<T, E: Display>(
    parse: fn(&str) -> Result<T, E>,
) -> impl FnOnce(&str, &()) -> garde::Result {
    move |value, ()| {
        parse(value)
            .map(|_| ())
            .map_err(|error| garde::Error::new(error.to_string()))
    }
}

/// The same for an optional field: absent is fine.
pub(crate) fn parses_if_present<T, E: Display>(
    parse: fn(&str) -> Result<T, E>,
) -> impl FnOnce(&Option<String>, &()) -> garde::Result {
    move |value, ()| match value {
        Some(text) => parses(parse)(text, &()),
        None => Ok(()),
    }
}

/// A field that may be left out but, when given, is not `null` (as the document says): for
/// `#[serde(default, deserialize_with = "present")]` on `Option` fields of PATCH bodies.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
