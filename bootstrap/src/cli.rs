//! Command line of the `server` binary: its subcommands and their options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Shown under every `--help`: where configuration comes from.
const CONFIG_HELP: &str = "\
Configuration: built-in defaults < the TOML file given with --config < environment.
Main environment variables:
  APP_ENV            local | test | production (default: local)
  HOST, PORT         listen address (default: 127.0.0.1:8080; PORT=0 picks a free port)
  DATABASE_URL       sqlite:... or postgres://... (default: sqlite://data/markets.db?mode=rwc)
  DATABASE_READ_URL  optional read replica
  REDIS_URL          optional; unset means in-process cache, rate limits and events
  JWT_SECRET         at least 32 bytes; required in production
  LOG_FORMAT         json | pretty (default: pretty in local, json otherwise)
  RUST_LOG           log filter, e.g. info,sqlx=warn
Every other key is APP_<SECTION>__<KEY>, e.g. APP_HTTP__JSON_LIMIT_BYTES=1048576.";

/// The `server` command line.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "server",
    version,
    about = "Prediction markets API server",
    long_about = "Prediction markets API server.\n\n\
        Serves the REST and WebSocket API. With nothing configured it runs self-contained on a \
        SQLite file under ./data/ with in-process cache, rate limits and jobs; point DATABASE_URL \
        at PostgreSQL and set REDIS_URL to run several instances side by side.\n\n\
        Without a subcommand, `server` is `server serve`.",
    after_help = CONFIG_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// TOML configuration file; its keys override the defaults, the environment overrides it.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The subcommand, or `serve` with its defaults when none was given.
    #[must_use]
    pub fn command_or_default(&self) -> Command {
        self.command
            .clone()
            .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    }
}

/// The subcommands of `server`.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the API (the default).
    #[command(
        long_about = "Apply pending database migrations (unless --no-migrate), then serve the \
            HTTP API until SIGINT or SIGTERM, finishing in-flight requests within \
            http.shutdown_timeout_secs.\n\n\
            The bound address is logged; with PORT=0 a free port is picked.",
        after_help = CONFIG_HELP
    )]
    Serve(ServeArgs),

    /// Apply pending database migrations, or list them with --status.
    #[command(
        long_about = "Apply every pending database migration to DATABASE_URL and exit.\n\n\
            With --status, change nothing and list each migration as applied or pending.",
        after_help = CONFIG_HELP
    )]
    Migrate(MigrateArgs),

    /// Print the OpenAPI document (JSON) on standard output.
    #[command(
        long_about = "Print the OpenAPI document of the HTTP API as JSON on standard output and \
            exit, without touching the database. Logs go to standard error, so \
            `server openapi > openapi.json` gives a clean file."
    )]
    Openapi,

    /// Insert realistic demo users and markets.
    #[command(
        long_about = "Insert realistic demo data into DATABASE_URL: an admin account (its \
            credentials are printed) and plain users, and markets across categories. Applies \
            pending migrations first. Idempotent: rows from an earlier run are skipped. Refused \
            with APP_ENV=production.",
        after_help = CONFIG_HELP
    )]
    Seed(SeedArgs),

    /// Rebuild the market search indexes.
    #[command(
        long_about = "Rebuild the keyword index of market search from the markets table (SQLite's \
            FTS5 table; PostgreSQL's search column is generated and always current) and embed \
            every market again, printing how many are indexed. The schema must be current. Every \
            `server serve` also rebuilds its in-process vector index when it starts.",
        after_help = CONFIG_HELP
    )]
    Reindex,

    /// Run background job workers only (no HTTP) until SIGINT or SIGTERM.
    #[command(
        long_about = "Run background job workers on DATABASE_URL, without serving HTTP, until \
            SIGINT or SIGTERM. The schema must be current (run `server migrate` first).\n\n\
            Up to jobs.concurrency jobs run at once; on a signal the worker stops fetching, lets \
            running jobs finish for up to jobs.grace_secs, then releases the rest to other \
            workers. `server serve` runs workers too unless jobs.enabled_in_serve is false.",
        after_help = CONFIG_HELP
    )]
    Worker,
}

/// Options of `server serve`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub struct ServeArgs {
    /// Do not apply pending migrations before serving (the schema must already be current).
    #[arg(long)]
    pub no_migrate: bool,
}

/// Options of `server migrate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub struct MigrateArgs {
    /// List applied and pending migrations instead of applying them.
    #[arg(long)]
    pub status: bool,
}

/// Options of `server seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct SeedArgs {
    /// Number of users to create (0 to 100000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = SeedArgs::DEFAULT_USERS,
        value_parser = clap::value_parser!(u32).range(0..=100_000)
    )]
    pub users: u32,

    /// Number of markets to create (0 to 1000000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = SeedArgs::DEFAULT_MARKETS,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000)
    )]
    pub markets: u32,
}

impl SeedArgs {
    /// Default of `--users`.
    pub const DEFAULT_USERS: u32 = 100;
    /// Default of `--markets`.
    pub const DEFAULT_MARKETS: u32 = 1_000;
}

impl Default for SeedArgs {
    fn default() -> Self {
        Self {
            users: Self::DEFAULT_USERS,
            markets: Self::DEFAULT_MARKETS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = parse(&[]).expect("parses");
        assert_eq!(cli.command, None);
        assert_eq!(cli.config, None);
        assert_eq!(
            cli.command_or_default(),
            Command::Serve(ServeArgs::default())
        );
        assert_eq!(
            cli.command_or_default(),
            Command::Serve(ServeArgs { no_migrate: false })
        );
    }

    #[test]
    fn serve_and_migrate_flags() {
        let cli = parse(&["serve", "--no-migrate"]).expect("parses");
        assert_eq!(
            cli.command_or_default(),
            Command::Serve(ServeArgs { no_migrate: true })
        );
        let cli = parse(&["migrate", "--status"]).expect("parses");
        assert_eq!(
            cli.command,
            Some(Command::Migrate(MigrateArgs { status: true }))
        );
        let cli = parse(&["migrate"]).expect("parses");
        assert_eq!(
            cli.command,
            Some(Command::Migrate(MigrateArgs { status: false }))
        );
        let cli = parse(&["openapi"]).expect("parses");
        assert_eq!(cli.command, Some(Command::Openapi));
        let cli = parse(&["worker"]).expect("parses");
        assert_eq!(cli.command, Some(Command::Worker));
    }

    #[test]
    fn config_is_global() {
        for args in [
            &["--config", "app.toml", "migrate"][..],
            &["migrate", "--config", "app.toml"][..],
        ] {
            let cli = parse(args).expect("parses");
            assert_eq!(cli.config, Some(PathBuf::from("app.toml")));
        }
    }

    #[test]
    fn seed_defaults_and_bounds() {
        let cli = parse(&["seed"]).expect("parses");
        assert_eq!(
            cli.command,
            Some(Command::Seed(SeedArgs {
                users: 100,
                markets: 1_000
            }))
        );
        assert_eq!(
            SeedArgs::default(),
            SeedArgs {
                users: 100,
                markets: 1_000
            }
        );

        let cli = parse(&["seed", "--users", "0", "--markets", "1000000"]).expect("parses");
        assert_eq!(
            cli.command,
            Some(Command::Seed(SeedArgs {
                users: 0,
                markets: 1_000_000
            }))
        );

        for args in [
            &["seed", "--users", "100001"][..],
            &["seed", "--markets", "1000001"][..],
            &["seed", "--users", "-1"][..],
            &["seed", "--users", "many"][..],
        ] {
            let error = parse(args).expect_err("out of bounds");
            assert!(
                matches!(
                    error.kind(),
                    ErrorKind::ValueValidation | ErrorKind::UnknownArgument
                ),
                "{args:?}: {error}"
            );
        }
    }

    #[test]
    fn unknown_subcommand_is_an_error() {
        let error = parse(&["serv"]).expect_err("typo");
        assert_eq!(error.kind(), ErrorKind::InvalidSubcommand);
    }

    #[test]
    fn help_mentions_the_environment() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("DATABASE_URL"), "{help}");
        assert!(help.contains("seed"), "{help}");
    }
}
