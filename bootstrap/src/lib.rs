//! The composition root and the `server` binary's subcommands: configuration, wiring of adapters,
//! migrations, seeding and the OpenAPI printout.

pub mod app;
pub mod cli;
pub mod config;
pub mod events;
pub mod maintenance;
pub mod metrics;
pub mod seed;
pub mod telemetry;
pub mod worker;

pub use app::{Application, StartError};

use anyhow::Context as _;

use crate::cli::Command;
use crate::config::Config;

/// Runs one subcommand to completion on a new Tokio runtime (actix's system runtime for `serve`).
///
/// # Errors
/// Whatever stopped the subcommand, with its cause chain.
pub fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Openapi => {
            let document = adapter_http::openapi::document()
                .to_pretty_json()
                .context("cannot render the OpenAPI document")?;
            println!("{document}");
            Ok(())
        }
        Command::Serve(args) => actix_web::rt::System::new().block_on(async move {
            let application = Application::build(&config, !args.no_migrate).await?;
            application.run_until_stopped().await?;
            Ok(())
        }),
        Command::Migrate(args) => runtime()?.block_on(async move {
            let database = app::open_database(&config).await?;
            if args.status {
                let status = adapter_persistence::migration_status(&database).await?;
                for name in &status.applied {
                    println!("applied  {name}");
                }
                for name in &status.pending {
                    println!("pending  {name}");
                }
            } else {
                adapter_persistence::migrate_up(&database).await?;
                println!("migrations applied");
            }
            database.close().await.ok();
            Ok(())
        }),
        Command::Seed(args) => runtime()?.block_on(seed::run(&config, args)),
        Command::Reindex => runtime()?.block_on(app::reindex(&config)),
        Command::Worker => runtime()?.block_on(async move {
            app::run_workers_only(&config).await?;
            Ok(())
        }),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
