//! Logging setup: a `RUST_LOG` filter and JSON lines (span fields flattened) or pretty output.
//!
//! Logs go to standard error, so that standard output stays clean for commands that print a
//! result (`server openapi > openapi.json`).
//!
//! In JSON each line is one object: `timestamp`, `level`, `target`, `span` (the innermost span's
//! name), then the fields of every enclosing span from the outermost in (so every line logged
//! while handling a request carries the `request_id` recorded on the request span), then the
//! event's own fields, including `message`. An inner field overrides an outer one of the same
//! name; an event field named like one of the four fixed keys is written as `field.<name>`.

use std::fmt;
use std::io::IsTerminal as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is unset or empty: `info`, with chatty dependencies at `warn`.
pub const DEFAULT_FILTER: &str =
    "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,hyper=warn,h2=warn,rustls=warn";

/// Why logging could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` does not parse.
    #[error("invalid configuration: RUST_LOG: {0}")]
    InvalidFilter(String),
    /// A global subscriber was already installed (for example by an earlier call).
    #[error("logging is already initialized")]
    AlreadyInitialized,
}

/// Installs the global subscriber: the `RUST_LOG` filter (or [`DEFAULT_FILTER`]) and `format`,
/// written to standard error. Calling it again returns [`TelemetryError::AlreadyInitialized`]
/// and changes nothing; tests that spawn the app many times can ignore that error.
///
/// # Errors
/// [`TelemetryError`] when `RUST_LOG` is invalid or a subscriber is already installed.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let rust_log = match std::env::var("RUST_LOG") {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(TelemetryError::InvalidFilter(
                "is not valid UTF-8".to_owned(),
            ));
        }
    };
    let filter = env_filter(rust_log.as_deref())?;
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry.with(json_layer(std::io::stderr)).try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(true),
            )
            .try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInitialized)
}

/// The filter for a `RUST_LOG` value: [`DEFAULT_FILTER`] when unset or blank, else the value,
/// which must parse completely.
///
/// # Errors
/// [`TelemetryError::InvalidFilter`] naming the problem.
pub fn env_filter(rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let directives = match rust_log.map(str::trim) {
        Some(value) if !value.is_empty() => value,
        _ => DEFAULT_FILTER,
    };
    EnvFilter::builder()
        .parse(directives)
        .map_err(|error| TelemetryError::InvalidFilter(error.to_string()))
}

/// The JSON formatting layer ([`FlatJson`]) writing to `writer`; exposed so tests can capture
/// log lines.
pub fn json_layer<S, W>(writer: W) -> tracing_subscriber::fmt::Layer<S, JsonFields, FlatJson, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(FlatJson)
        .with_writer(writer)
}

/// Event format: one JSON object per line with the fields of the enclosing spans flattened in
/// (see the module documentation). Span fields must be recorded with [`JsonFields`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

const FIXED_KEYS: [&str; 4] = ["timestamp", "level", "target", "span"];

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        let mut span_name = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                span_name = Some(span.name());
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(span_fields)) =
                        serde_json::from_str::<Value>(&formatted.fields)
                {
                    fields.extend(span_fields);
                }
            }
        }
        let mut visitor = FieldVisitor {
            fields: &mut fields,
            log_target: None,
        };
        event.record(&mut visitor);
        let log_target = visitor.log_target;

        let metadata = event.metadata();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let target = log_target.unwrap_or_else(|| metadata.target().to_owned());
        write!(
            writer,
            "{{\"timestamp\":{},\"level\":{},\"target\":{}",
            Value::from(timestamp),
            Value::from(metadata.level().as_str()),
            Value::from(target),
        )?;
        if let Some(name) = span_name {
            write!(writer, ",\"span\":{}", Value::from(name))?;
        }
        for (key, value) in fields {
            let key = if FIXED_KEYS.contains(&key.as_str()) {
                format!("field.{key}")
            } else {
                key
            };
            write!(writer, ",{}:{value}", Value::from(key))?;
        }
        writeln!(writer, "}}")
    }
}

/// Collects an event's fields as JSON values. Fields added by `tracing-log` (`log.*`) are
/// dropped, except `log.target` which becomes the line's target.
struct FieldVisitor<'a> {
    fields: &'a mut Map<String, Value>,
    log_target: Option<String>,
}

impl FieldVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if name == "log.target" {
            if let Value::String(target) = value {
                self.log_target = Some(target);
            }
        } else if !name.starts_with("log.") {
            self.fields.insert(name.to_owned(), value);
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut chain = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        self.insert(field, Value::from(chain));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// A `MakeWriter` collecting everything written into memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("buffer lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Self;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            let bytes = self.0.lock().expect("buffer lock").clone();
            String::from_utf8(bytes)
                .expect("utf-8 logs")
                .lines()
                .map(|line| serde_json::from_str(line).expect("each line is JSON"))
                .collect()
        }
    }

    fn capture(body: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(env_filter(Some("trace")).expect("valid filter"))
            .with(json_layer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, body);
        buffer.lines()
    }

    #[test]
    fn json_lines_carry_span_fields_flattened() {
        let lines = capture(|| {
            let request = tracing::info_span!("request", request_id = "req-1", method = "GET");
            let _entered = request.enter();
            tracing::info!(status = 200_u64, "finished");
            tracing::info_span!("query", table = "markets")
                .in_scope(|| tracing::warn!(elapsed_ms = 12.5, "slow"));
        });
        assert_eq!(lines.len(), 2, "{lines:?}");

        let first = &lines[0];
        assert_eq!(first["request_id"], "req-1");
        assert_eq!(first["method"], "GET");
        assert_eq!(first["status"], 200);
        assert_eq!(first["message"], "finished");
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["span"], "request");
        assert!(first["timestamp"].is_string());
        assert!(
            first["target"]
                .as_str()
                .expect("target")
                .contains("telemetry")
        );

        let second = &lines[1];
        assert_eq!(second["request_id"], "req-1", "outer span fields are kept");
        assert_eq!(second["table"], "markets");
        assert_eq!(second["span"], "query");
        assert_eq!(second["level"], "WARN");
        assert_eq!(second["elapsed_ms"], 12.5);
    }

    #[test]
    fn fields_recorded_later_on_the_span_are_included() {
        let lines = capture(|| {
            let request = tracing::info_span!(
                "request",
                request_id = tracing::field::Empty,
                user_id = tracing::field::Empty
            );
            let _entered = request.enter();
            request.record("request_id", "req-2");
            tracing::info!("one");
            request.record("user_id", 7_u64);
            tracing::info!("two");
        });
        assert_eq!(lines[0]["request_id"], "req-2");
        assert!(lines[0].get("user_id").is_none());
        assert_eq!(lines[1]["request_id"], "req-2");
        assert_eq!(lines[1]["user_id"], 7);
    }

    #[test]
    fn events_outside_spans_and_reserved_names() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);

        let lines = capture(|| {
            let error = Outer(io::Error::other("inner"));
            tracing::error!(
                level = "custom",
                error = &error as &dyn std::error::Error,
                "boom"
            );
        });
        let line = &lines[0];
        assert!(line.get("span").is_none());
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["field.level"], "custom");
        assert_eq!(line["error"], "outer: inner");
    }

    #[test]
    fn filter_defaults_and_errors_name_rust_log() {
        assert!(env_filter(None).is_ok());
        assert!(env_filter(Some("  ")).is_ok());
        assert!(env_filter(Some("debug,sqlx=warn")).is_ok());
        let error = env_filter(Some("sqlx=loud")).expect_err("bad level");
        assert!(
            error
                .to_string()
                .starts_with("invalid configuration: RUST_LOG: "),
            "{error}"
        );
        assert!(!error.to_string().contains('\n'));
    }

    #[test]
    fn init_twice_does_not_panic() {
        let first = init(LogFormat::Json);
        let second = init(LogFormat::Pretty);
        if first.is_ok() {
            assert_eq!(second, Err(TelemetryError::AlreadyInitialized));
        } else {
            assert!(second.is_err());
        }
    }
}
