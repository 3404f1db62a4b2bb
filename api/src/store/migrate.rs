//! Migrations, embedded in the binary from `migrations/{postgres,sqlite}/NNNN_name.sql`.
//!
//! Both engines carry the same numbered list; a unit test fails when a file on disk is not
//! listed here or the two lists differ.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::Engine;

/// `(version, description, postgres sql, sqlite sql)`.
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "auth",
        include_str!("../../../migrations/postgres/0002_auth.sql"),
        include_str!("../../../migrations/sqlite/0002_auth.sql"),
    ),
    (
        3,
        "credits",
        include_str!("../../../migrations/postgres/0003_credits.sql"),
        include_str!("../../../migrations/sqlite/0003_credits.sql"),
    ),
    (
        4,
        "storage",
        include_str!("../../../migrations/postgres/0004_storage.sql"),
        include_str!("../../../migrations/sqlite/0004_storage.sql"),
    ),
    (
        5,
        "tasks",
        include_str!("../../../migrations/postgres/0005_tasks.sql"),
        include_str!("../../../migrations/sqlite/0005_tasks.sql"),
    ),
    (
        6,
        "queue",
        include_str!("../../../migrations/postgres/0006_queue.sql"),
        include_str!("../../../migrations/sqlite/0006_queue.sql"),
    ),
    (
        7,
        "providers",
        include_str!("../../../migrations/postgres/0007_providers.sql"),
        include_str!("../../../migrations/sqlite/0007_providers.sql"),
    ),
    (
        8,
        "hot_path",
        include_str!("../../../migrations/postgres/0008_hot_path.sql"),
        include_str!("../../../migrations/sqlite/0008_hot_path.sql"),
    ),
    (
        9,
        "upload_keys",
        include_str!("../../../migrations/postgres/0009_upload_keys.sql"),
        include_str!("../../../migrations/sqlite/0009_upload_keys.sql"),
    ),
    (
        10,
        "account_deletion",
        include_str!("../../../migrations/postgres/0010_account_deletion.sql"),
        include_str!("../../../migrations/sqlite/0010_account_deletion.sql"),
    ),
    (
        11,
        "featured_tools",
        include_str!("../../../migrations/postgres/0011_featured_tools.sql"),
        include_str!("../../../migrations/sqlite/0011_featured_tools.sql"),
    ),
    (
        12,
        "asset_thumbnails",
        include_str!("../../../migrations/postgres/0012_asset_thumbnails.sql"),
        include_str!("../../../migrations/sqlite/0012_asset_thumbnails.sql"),
    ),
    (
        13,
        "task_context",
        include_str!("../../../migrations/postgres/0013_task_context.sql"),
        include_str!("../../../migrations/sqlite/0013_task_context.sql"),
    ),
    (
        14,
        "webhooks",
        include_str!("../../../migrations/postgres/0014_webhooks.sql"),
        include_str!("../../../migrations/sqlite/0014_webhooks.sql"),
    ),
    (
        15,
        "webhook_relays",
        include_str!("../../../migrations/postgres/0015_webhook_relays.sql"),
        include_str!("../../../migrations/sqlite/0015_webhook_relays.sql"),
    ),
    (
        16,
        "write_diet",
        include_str!("../../../migrations/postgres/0016_write_diet.sql"),
        include_str!("../../../migrations/sqlite/0016_write_diet.sql"),
    ),
    (
        17,
        "set_based_batches",
        include_str!("../../../migrations/postgres/0017_set_based_batches.sql"),
        include_str!("../../../migrations/sqlite/0017_set_based_batches.sql"),
    ),
    (
        18,
        "generic_batch_plans",
        include_str!("../../../migrations/postgres/0018_generic_batch_plans.sql"),
        include_str!("../../../migrations/sqlite/0018_generic_batch_plans.sql"),
    ),
    (
        19,
        "statement_webhook_triggers",
        include_str!("../../../migrations/postgres/0019_statement_webhook_triggers.sql"),
        include_str!("../../../migrations/sqlite/0019_statement_webhook_triggers.sql"),
    ),
    (
        20,
        "reservation_lookup",
        include_str!("../../../migrations/postgres/0020_reservation_lookup.sql"),
        include_str!("../../../migrations/sqlite/0020_reservation_lookup.sql"),
    ),
    (
        21,
        "parked_lookup",
        include_str!("../../../migrations/postgres/0021_parked_lookup.sql"),
        include_str!("../../../migrations/sqlite/0021_parked_lookup.sql"),
    ),
    (
        22,
        "generic_read_plans",
        include_str!("../../../migrations/postgres/0022_generic_read_plans.sql"),
        include_str!("../../../migrations/sqlite/0022_generic_read_plans.sql"),
    ),
];

/// The migrator for one engine.
pub(crate) fn migrator(engine: Engine) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, pg, lite)| {
            let sql = match engine {
                Engine::Postgres => pg,
                Engine::Sqlite => lite,
            };
            Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    // During a rolling deploy the new release migrates first; a process of the previous
    // release that (re)starts then finds a migration it does not know. The migrations are
    // written to be safe for it (docs/deploy.md lists the exceptions), so it starts.
    migrator.set_ignore_missing(true);
    migrator
}

/// Versions known to this binary, ascending.
pub(crate) fn versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|m| m.0).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn files(engine: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(engine);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_migration_file_is_embedded_for_both_engines() {
        let expected: Vec<String> = MIGRATIONS.iter().map(|(v, d, _, _)| format!("{v:04}_{d}.sql")).collect();
        assert_eq!(files("postgres"), expected);
        assert_eq!(files("sqlite"), expected);
    }
}
