//! `StaticProbe`: a health probe whose answer tests set by hand.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use domain::ports::{HealthProbe, ProbeError};

/// Reported by a [`StaticProbe`] switched to "not ready".
#[derive(Debug, Clone, Copy)]
struct NotReady;

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("switched to not ready")
    }
}

impl std::error::Error for NotReady {}

/// A [`HealthProbe`] that answers what it was told: ready or not.
#[derive(Debug)]
pub struct StaticProbe {
    name: &'static str,
    ready: AtomicBool,
}

impl StaticProbe {
    /// A probe named `name` that reports ready.
    #[must_use]
    pub const fn ready(name: &'static str) -> Self {
        Self {
            name,
            ready: AtomicBool::new(true),
        }
    }

    /// A probe named `name` that reports not ready.
    #[must_use]
    pub const fn failing(name: &'static str) -> Self {
        Self {
            name,
            ready: AtomicBool::new(false),
        }
    }

    /// Changes the answer of later checks.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

#[async_trait]
impl HealthProbe for StaticProbe {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn check(&self) -> Result<(), ProbeError> {
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ProbeError {
                name: self.name,
                cause: Box::new(NotReady),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_answers_as_told() {
        let probe = StaticProbe::ready("database");
        assert_eq!(probe.name(), "database");
        assert!(probe.check().await.is_ok());
        probe.set_ready(false);
        let error = probe.check().await.expect_err("not ready");
        assert_eq!(error.name, "database");
        assert!(StaticProbe::failing("cache").check().await.is_err());
    }
}
