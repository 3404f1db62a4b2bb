//! The SQL that both engines accept, as plain constants: one module per query file, one
//! constant per statement, each named after the store method that runs it. The query
//! files (`*_queries.rs`, expanded per engine by a macro because sqlx's pool types differ)
//! only bind and fetch. A test prepares every statement listed by [`all`] on PostgreSQL and
//! on SQLite, so a typo or a column that a migration dropped fails CI even where no other
//! test runs the statement.
//!
//! Not here: the few statements that splice in an engine's own fragment (the queue's next
//! sequence number, the claim, the step-name lookup); they live beside those fragments in
//! `pg.rs` and `sqlite.rs`.

/// `NAME = "SQL";` → `pub const NAME: &str` and an entry in the module's `ALL`.
macro_rules! statements {
    ($( $(#[$meta:meta])* $name:ident = $sql:expr; )*) => {
        $( $(#[$meta])* pub const $name: &str = $sql; )*

        /// Every statement of this module, with its name.
        pub const ALL: &[(&str, &str)] = &[$( (stringify!($name), $name) ),*];
    };
}

pub mod assets;
pub mod auth;
pub mod content;
pub mod ledger;
pub mod shared;
pub mod tasks;
pub mod tools;
pub mod webhooks;

/// Every shared statement as `(module, name, sql)`.
pub fn all() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    [
        ("assets", assets::ALL),
        ("auth", auth::ALL),
        ("content", content::ALL),
        ("ledger", ledger::ALL),
        ("shared", shared::ALL),
        ("tasks", tasks::ALL),
        ("tools", tools::ALL),
        ("webhooks", webhooks::ALL),
    ]
    .into_iter()
    .flat_map(|(module, statements)| statements.iter().map(move |(name, sql)| (module, *name, *sql)))
}
