//! PostgreSQL through PgBouncer in transaction mode (Debian's `pgbouncer`, started here on
//! a free port with fewer server connections than the processes' pools hold, so statements
//! of one client land on different server connections): two API processes and a worker
//! with `FUNMAGIC_DATABASE_POOLER=true` run the core of the suite — submits with and without
//! Idempotency-Key, the queue, SSE with replay, cancel, credits — and the ledger holds.
//! Migrations go directly to PostgreSQL; through the pooler they are refused, and a process
//! started on a schema that is behind says to run them.

use std::process::Stdio;
use std::time::Duration;

use funmagic_api::app::Migrations;
use funmagic_api::testing::{TempDir, TestDatabase, TestRedisPrefix};

use crate::scale::{command, echo_task, follow_kinds, start_api_with, submit_across, wait_completed};
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// A PgBouncer in transaction mode in front of `db`, stopped on drop.
struct Bouncer {
    child: std::process::Child,
    url: String,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_bouncer(dir: &TempDir, db: &TestDatabase) -> Option<Bouncer> {
    if !std::path::Path::new(PGBOUNCER).exists() {
        assert!(!funmagic_api::testing::in_ci(), "pgbouncer is not installed (.ci/run installs it)");
        eprintln!("SKIPPED pooler test: {PGBOUNCER} is missing (apt-get install pgbouncer)");
        return None;
    }
    let port = free_port();
    let admin = funmagic_api::testing::postgres_admin_url();
    let (host_port, user) = {
        let after = admin.split_once("://").unwrap().1;
        let (userinfo, rest) = after.split_once('@').unwrap_or(("postgres", after));
        (rest.split('/').next().unwrap().to_string(), userinfo.split(':').next().unwrap().to_string())
    };
    let (host, pg_port) = host_port.split_once(':').unwrap_or((&host_port, "5432"));
    let run = dir.path().join("pgbouncer");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
    let ini = format!(
        "[databases]\nfm = host={host} port={pg_port} dbname={db} user={user}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
         listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {auth}\npool_mode = transaction\n\
         max_client_conn = 500\ndefault_pool_size = 4\nmin_pool_size = 0\nreserve_pool_size = 0\n\
         ignore_startup_parameters = extra_float_digits,options\n\
         server_reset_query = DEALLOCATE ALL\nserver_reset_query_always = 1\nlogfile = {log}\n",
        db = db.name,
        auth = run.join("users.txt").display(),
        log = run.join("pgbouncer.log").display(),
    );
    std::fs::write(run.join("pgbouncer.ini"), ini).unwrap();
    // PgBouncer will not run as root: as root, it drops to the postgres user.
    let mut cmd = std::process::Command::new(PGBOUNCER);
    let root = std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        use std::os::unix::fs::PermissionsExt;
        for p in [dir.path().to_path_buf(), run.clone()] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        for f in ["users.txt", "pgbouncer.ini"] {
            std::fs::set_permissions(run.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        cmd.args(["-u", "postgres"]);
    }
    let child = cmd.arg(run.join("pgbouncer.ini")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let bouncer = Bouncer { child, url: format!("postgres://{user}@127.0.0.1:{port}/fm") };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pgbouncer did not start: {}",
            std::fs::read_to_string(run.join("pgbouncer.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(bouncer)
}

/// `scale::command`'s environment, with the database reached through the pooler.
fn through(bouncer: &Bouncer) -> impl Fn(&mut tokio::process::Command) + '_ {
    |cmd: &mut tokio::process::Command| {
        cmd.env("DATABASE_URL", &bouncer.url)
            .env("FUNMAGIC_DATABASE_POOLER", "true")
            .env("FUNMAGIC_DATABASE_MAX_CONNECTIONS", "8");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_runs_through_pgbouncer_in_transaction_mode() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let dir = TempDir::new("pooler");
    let Some(bouncer) = start_bouncer(&dir, &db).await else { return };

    // Through the pooler, a process on a schema that is behind refuses to start, and
    // `migrate` refuses to run: both name what to do.
    let pooled = through(&bouncer);
    let run = |args: &'static [&'static str]| {
        let mut cmd = command(&dir, &db, &redis, args);
        pooled(&mut cmd);
        cmd
    };
    let out = run(&["worker"]).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("funmagic-server migrate"), "{err}");
    let out = run(&["migrate"]).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("direct connection"), "{err}");

    // Migrations directly, as the guide says.
    let (state, user, token) =
        crate::scale::seeded_user(&dir, &db.url, Migrations::Apply, "pooled@example.com", 100).await;

    let (_api1, url1) = start_api_with(&dir, &db, &redis, &pooled).await;
    let (_api2, url2) = start_api_with(&dir, &db, &redis, &pooled).await;
    let _worker = run(&["worker", "--concurrency", "6"]).stderr(Stdio::null()).spawn().unwrap();
    let clients = [url1, url2].map(|u| funmagic_sdk::ClientBuilder::new(u).token(&token).build().unwrap());

    // Idempotency, then many submits at once across both APIs, while the worker drains.
    let ids = submit_across(&clients, "pooled-key-0001").await;

    // One more, waiting behind those (3 run at once per user): cancelled while queued; its
    // events replayed from the start on the other API.
    let waiting = clients[0].task_create(None, &echo_task(99, 0)).await.unwrap().into_inner().task;
    assert_eq!(waiting.status, funmagic_sdk::types::TaskStatus::Queued);
    clients[0].task_cancel(&waiting.id).await.unwrap();
    let kinds = follow_kinds(&clients[1], waiting.id).await;
    assert!(kinds.contains(&funmagic_sdk::types::EventKind::Queued), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&funmagic_sdk::types::EventKind::Cancelled), "{kinds:?}");

    // Every task completes; each cost 1 credit; nothing stays reserved.
    wait_completed(&clients[0], &ids).await;
    let balance = clients[1].credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (100 - ids.len() as i64, 0));
    assert!(state.store().credits_invariant_violations(user.id).await.unwrap().is_empty());
    assert!(state.store().credits_ledger_violations().await.unwrap().is_empty());
    state.store().close().await;
}
