//! `PrivateRedis`: a `redis-server` of a test's own, on a free port, that it can kill and restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting Redis may take to answer.
const STARTUP: Duration = Duration::from_secs(5);

/// A `redis-server --port <free port> --bind 127.0.0.1 --save "" --appendonly no` child process
/// (nothing on disk: a restart starts empty); killed when dropped.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// A new Redis on a free port, answering `PING`; `None` (after a loud message) when
    /// `redis-server` cannot be run and services are not required.
    ///
    /// # Panics
    /// When it starts but does not answer within 5 seconds, or cannot be run and
    /// `REQUIRE_SERVICES=1`.
    pub async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free local port");
        let mut redis = Self { port, child: None };
        if redis.spawn().await {
            return Some(redis);
        }
        assert!(
            std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
            "redis-server is required (REQUIRE_SERVICES=1) but cannot be run"
        );
        eprintln!(
            "\n!!! SKIPPED: a test needing its own redis-server, which cannot be run.\n\
             !!! Install Redis; CI sets REQUIRE_SERVICES=1 and fails instead.\n"
        );
        None
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>`.
    #[must_use]
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL (no shutdown, connections drop) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts a new, empty one on the same port.
    ///
    /// # Panics
    /// When it cannot start again within 5 seconds.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + STARTUP;
        // The port may linger for a moment after the kill.
        while !self.spawn().await {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the server and waits until it answers; false when it cannot run or exits at once.
    async fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP;
        loop {
            if self.answers().await {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
            if exited {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} does not answer",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn answers(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)));
        let Ok(mut connection) = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .is_ok_and(|pong| pong == "PONG")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
