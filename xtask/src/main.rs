//! `cargo xtask`: project automation.
//!
//! - `cargo xtask codegen` writes `openapi/funmagic.json` from the server code and
//!   regenerates `sdk/src/generated.rs` from it with progenitor.
//! - `cargo xtask codegen --check` fails when either file is stale (CI, and a unit test).
//! - `cargo xtask bench` builds in release and prints the speed numbers (local provider
//!   algorithms on 1024×1024, queue pickup latency and throughput on both queues).
//! - `cargo xtask chaos [--seed N] [--minutes M]` runs the chaos suite
//!   (`api/tests/it/chaos/`): a real deployment under a seeded fault schedule, checked
//!   against the invariants; exits non-zero on a violation.
//! - `cargo xtask arch [--check]` reports the server crate's shape (module sizes and
//!   dependencies, cycles, stringly-typed domain values, longest functions).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod arch;
mod codegen;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "FunMagic project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Regenerate the OpenAPI spec and the SDK (or check they are current).
    Codegen {
        /// Do not write; fail if a generated file differs from what the code produces.
        #[arg(long)]
        check: bool,
    },
    /// Speed numbers in a release build (api/benches/bench.rs); tests never time things.
    Bench,
    /// The chaos suite: 2 API + 2 worker processes on their own PostgreSQL and Redis behind
    /// fault-injecting proxies, simulated users, faults drawn from the seed, invariants
    /// checked throughout; exits non-zero (printing the seed, the schedule and the first
    /// broken invariant) on a violation.
    Chaos {
        /// The seed of the fault schedule and of the users' choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long faults are injected (then the run waits for every task to end).
        #[arg(long, default_value_t = 3.0)]
        minutes: f64,
    },
    /// The server crate's shape: lines per module, module dependencies and cycles, domain
    /// values spelled as strings, the longest functions.
    Arch {
        /// Another checkout to measure (default: this workspace).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Fail when the top-level modules form a dependency cycle.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Codegen { check } => run_codegen(check),
        Command::Bench => run_bench(),
        Command::Arch { root, check } => run_arch(root, check),
        Command::Chaos { seed, minutes } => run_chaos(seed, minutes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_bench() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace_root())
        // --workspace (not -p): the same feature set as `cargo build --release`, so the bench
        // reuses its dependencies instead of rebuilding them (and the next build them back).
        .args(["bench", "--locked", "--workspace", "--bench", "bench"])
        .status()
        .context("running cargo bench")?;
    if !status.success() {
        bail!("the benchmark failed ({status})");
    }
    Ok(())
}

fn run_chaos(seed: u64, minutes: f64) -> Result<()> {
    if !minutes.is_finite() || minutes <= 0.0 {
        bail!("--minutes must be positive");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // --workspace: the feature set of `cargo test --workspace`, so nothing is rebuilt.
    let status = std::process::Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "test",
            "--locked",
            "--workspace",
            "--test",
            "it",
            "--",
            "--ignored",
            "--exact",
            "chaos::chaos",
            "--nocapture",
        ])
        .env("CHAOS_SEED", seed.to_string())
        .env("CHAOS_MINUTES", minutes.to_string())
        .status()
        .context("running the chaos suite")?;
    if !status.success() {
        bail!("the chaos suite failed for seed {seed} ({status})");
    }
    Ok(())
}

fn run_arch(root: Option<PathBuf>, check: bool) -> Result<()> {
    let report = arch::report(&root.unwrap_or_else(workspace_root))?;
    print!("{}", report.text);
    if check && !report.cycles.is_empty() {
        bail!("the server's modules form {} dependency cycle(s)", report.cycles.len());
    }
    Ok(())
}

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn run_codegen(check: bool) -> Result<()> {
    let root = workspace_root();
    let mut stale = Vec::new();
    for (path, content) in codegen::outputs()? {
        let full = root.join(path);
        let current = std::fs::read_to_string(&full).unwrap_or_default();
        if current == content {
            println!("up to date: {path}");
        } else if check {
            stale.push(path);
        } else {
            std::fs::write(&full, content).with_context(|| format!("writing {}", full.display()))?;
            println!("wrote {path}");
        }
    }
    if !stale.is_empty() {
        bail!("stale generated files: {} — run `cargo xtask codegen` and commit the result", stale.join(", "));
    }
    Ok(())
}
