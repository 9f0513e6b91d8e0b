//! Read replicas against a real streaming replica: the harness starts its own PostgreSQL primary
//! and a hot standby fed by streaming replication (initdb, pg_basebackup), points the app at both,
//! and pauses WAL replay on the standby so that the test can tell which server answered.
//!
//! Needs the PostgreSQL server binaries (`/usr/lib/postgresql/<version>/bin`) and, when run as
//! root, a `postgres` system user. Without them the test says so and is skipped, or fails when
//! `REQUIRE_SERVICES=1` (CI).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use secrecy::SecretString;
use tests::{Backend, TestApp, TestDatabase, test_config};

/// A throwaway primary + hot standby pair, stopped and deleted on drop.
struct ReplicatedCluster {
    bin: PathBuf,
    folder: PathBuf,
    primary_port: u16,
    replica_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl ReplicatedCluster {
    /// Runs a PostgreSQL program as the `postgres` user when we are root (the server refuses
    /// root).
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn start() -> Result<Self, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no PostgreSQL server binaries: {e}"))?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("initdb").exists())
            .ok_or("no initdb under /usr/lib/postgresql")?;
        let folder = std::env::temp_dir().join(format!("markets-replica-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&folder).map_err(|e| e.to_string())?;
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&folder)
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("chown to postgres failed".into());
            }
        }
        let cluster = Self {
            bin,
            folder,
            primary_port: free_port(),
            replica_port: free_port(),
        };
        let primary = cluster.data("primary");
        let replica = cluster.data("replica");
        let socket_dir = cluster.folder.display().to_string();
        cluster.run(
            "initdb",
            &["-D", &primary, "-A", "trust", "-U", "postgres", "--no-sync"],
        )?;
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &primary,
                "-l",
                &format!("{primary}.log"),
                "-w",
                "-o",
                &format!(
                    "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} \
                     -c fsync=off -c wal_level=replica -c max_wal_senders=4",
                    cluster.primary_port
                ),
                "start",
            ],
        )?;
        cluster.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &replica,
                "-R",
                "-X",
                "stream",
            ],
        )?;
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &replica,
                "-l",
                &format!("{replica}.log"),
                "-w",
                "-o",
                &format!(
                    "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={socket_dir} \
                     -c hot_standby=on",
                    cluster.replica_port
                ),
                "start",
            ],
        )?;
        Ok(cluster)
    }

    fn data(&self, name: &str) -> String {
        self.folder.join(name).display().to_string()
    }

    fn url(port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        for name in ["replica", "primary"] {
            let data = self.data(name);
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
        }
        let _ = std::fs::remove_dir_all(Path::new(&self.folder));
    }
}

async fn on(url: &str, sql: &str) {
    use sea_orm::ConnectionTrait as _;
    let connection = sea_orm::Database::connect(url).await.expect("connect");
    connection.execute_unprepared(sql).await.expect(sql);
    connection.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_replica_serves_lists_while_writers_read_their_own_writes() {
    let cluster = match tokio::task::spawn_blocking(ReplicatedCluster::start)
        .await
        .expect("the setup ran")
    {
        Ok(cluster) => cluster,
        Err(reason) => {
            assert!(
                std::env::var("REQUIRE_SERVICES").as_deref() != Ok("1"),
                "a streaming replica is required (REQUIRE_SERVICES=1) but: {reason}"
            );
            eprintln!("\n!!! SKIPPED: the streaming replica test: {reason}\n");
            return;
        }
    };
    let primary_url = ReplicatedCluster::url(cluster.primary_port);
    let replica_url = ReplicatedCluster::url(cluster.replica_port);

    // The app owns the primary's `postgres` database; the harness must not drop it.
    let database = TestDatabase::existing(&primary_url);
    let replica_for_config = replica_url.clone();
    let app = TestApp::spawn_with(Backend::Postgres, database, move |url| {
        let mut config = test_config(url);
        config.database.read_url = Some(SecretString::from(replica_for_config));
        config.database.read_your_writes_ms = 60_000;
        // Replica routing is what lists do with caching off; with it on, shared pages come from
        // the primary (ADR 0010, `api_read_replica.rs`).
        config.cache.enabled = false;
        config
    })
    .await;
    // `None` while the standby does not answer yet (a 503).
    let total = |reply: &tests::Reply| reply.body["meta"]["total"].as_u64();

    let (_, writer) = app.signed_in_user().await;
    // Replication works: the writer's market reaches the standby.
    app.create_market(&writer, "Replicated", "test").await;
    let mut replicated = false;
    for _ in 0..100 {
        if total(&app.get("/api/v1/markets").await) == Some(1) {
            replicated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replicated, "the standby caught up with the primary");

    // Freeze the standby: from now on it lags behind the primary.
    on(&replica_url, "SELECT pg_wal_replay_pause()").await;
    app.create_market(&writer, "Written during the pause", "test")
        .await;
    assert_eq!(
        total(&app.get("/api/v1/markets").await),
        Some(1),
        "an anonymous list reads the paused standby"
    );
    assert_eq!(
        total(&app.get_as(&writer, "/api/v1/markets").await),
        Some(2),
        "the writer reads its own write from the primary"
    );
    on(&replica_url, "SELECT pg_wal_replay_resume()").await;
    let mut caught_up = false;
    for _ in 0..100 {
        if total(&app.get("/api/v1/markets").await) == Some(2) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "after resuming, the standby shows the write");
    drop(app);
    drop(cluster);
}
