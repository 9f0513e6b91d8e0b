//! Parsing the invalidation messages that [`crate::RedisCache`] publishes (format: crate docs).

/// What one message says changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// `key` now holds `version`.
    Stored { version: i64, key: &'a str },
    /// `key` was deleted.
    Deleted { key: &'a str },
    /// `namespace` is now at `generation`.
    Generation { generation: u64, namespace: &'a str },
    /// The epoch moved to `epoch`: every entry cached before is void.
    Flush { epoch: u64 },
}

/// One message: who changed what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalidation<'a> {
    pub(crate) origin: &'a str,
    pub(crate) change: Change<'a>,
}

impl<'a> Invalidation<'a> {
    /// The message in `text`; `None` when it is not one of the forms above.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        let (origin, rest) = text.split_once(' ')?;
        let (kind, rest) = rest.split_once(' ')?;
        let change = match kind {
            "e" => {
                let (version, key) = rest.split_once(' ')?;
                Change::Stored {
                    version: version.parse().ok()?,
                    key,
                }
            }
            "d" => Change::Deleted { key: rest },
            "g" => {
                let (generation, namespace) = rest.split_once(' ')?;
                Change::Generation {
                    generation: generation.parse().ok()?,
                    namespace,
                }
            }
            "flush" => Change::Flush {
                epoch: rest.parse().ok()?,
            },
            _ => return None,
        };
        (!origin.is_empty()).then_some(Self { origin, change })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<Invalidation<'_>> {
        Invalidation::parse(text)
    }

    #[test]
    fn every_form_parses_with_the_key_last() {
        assert_eq!(
            parsed("a1 e 42 markets:1"),
            Some(Invalidation {
                origin: "a1",
                change: Change::Stored {
                    version: 42,
                    key: "markets:1"
                }
            })
        );
        assert_eq!(
            parsed("a1 e -7 a key with spaces").map(|message| message.change),
            Some(Change::Stored {
                version: -7,
                key: "a key with spaces"
            })
        );
        assert_eq!(
            parsed("a1 d k  two").map(|message| message.change),
            Some(Change::Deleted { key: "k  two" })
        );
        assert_eq!(
            parsed("a1 g 3 markets:list").map(|message| message.change),
            Some(Change::Generation {
                generation: 3,
                namespace: "markets:list"
            })
        );
        assert_eq!(
            parsed("a1 flush 9").map(|message| message.change),
            Some(Change::Flush { epoch: 9 })
        );
        assert_eq!(
            parsed("a1 d ").map(|message| message.change),
            Some(Change::Deleted { key: "" })
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "a1",
            "a1 e",
            "a1 e 42",
            "a1 e x k",
            "a1 g -1 n",
            "a1 flush",
            "a1 flush x",
            "a1 x k",
            " e 1 k",
        ] {
            assert_eq!(parsed(text), None, "{text:?}");
        }
    }
}
