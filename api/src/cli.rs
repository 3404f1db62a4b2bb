//! Command-line interface of `funmagic-server`: global configuration flags shared by every
//! subcommand (so `migrate` and `admin …` work on the same database as `serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{DatabaseLayer, LogFormat, LogLayer, RedisLayer, SettingsLayer};

#[derive(Debug, Parser)]
#[command(name = "funmagic-server", version, about = "FunMagic API server and worker")]
#[command(after_help = "With no configuration, `serve` runs the embedded default: SQLite and files in \
./funmagic-data, an in-process queue and workers, the offline `local` provider.\n\
Set DATABASE_URL=postgres://…, REDIS_URL=redis://… and S3_ENDPOINT (+ S3_* keys) to scale out.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Configuration flags; they override the config file and the environment.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (see funmagic.example.toml).
    #[arg(long, global = true, env = "FUNMAGIC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded default (SQLite database and files).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Database URL (postgres://… or sqlite://…); overrides DATABASE_URL.
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL; overrides REDIS_URL.
    #[arg(long, global = true, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Log filter, e.g. `info` or `info,funmagic_api=debug`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

impl GlobalArgs {
    /// The flags as the top configuration layer.
    pub fn layer(&self) -> SettingsLayer {
        SettingsLayer {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database: DatabaseLayer { url: self.database_url.clone().map(Into::into), ..Default::default() },
            redis: RedisLayer { url: self.redis_url.clone().map(Into::into), ..Default::default() },
            log: LogLayer {
                level: self.log.clone(),
                format: self.log_format.as_deref().map(|f| if f == "json" { LogFormat::Json } else { LogFormat::Text }),
            },
            ..Default::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (and, in the embedded default, the workers).
    Serve {
        /// Task workers in this process [default: 4 in the embedded default, 0 with DATABASE_URL].
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Run task workers against the shared database and Redis (scale-out mode).
    Worker {
        /// Tasks run at once by this process.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI spec (JSON) and exit; needs no services.
    Openapi,
    /// Administration from the server's shell (works on the configured database).
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a super admin, or promote an existing account and set its password.
    CreateSuperAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Read the password from standard input (first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Re-encrypt every provider API key under a new master key (one transaction). Without
    /// --new-key-stdin a key is generated. With the key in <data_dir>/master.key the file
    /// is replaced; with FUNMAGIC_MASTER_KEY the new key is printed for you to deploy.
    /// Restart every API and worker process afterwards.
    RotateMasterKey {
        /// Read the new key (32 bytes as base64 or 64 hex digits) from standard input.
        #[arg(long)]
        new_key_stdin: bool,
    },
}
