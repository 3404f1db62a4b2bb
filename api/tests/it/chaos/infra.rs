//! The chaos run's own engines and processes: a PostgreSQL cluster (initdb into the run's
//! directory, restarted as after a crash), a Redis server that keeps nothing (restarted
//! empty), and the FunMagic API and worker processes (SIGKILL, SIGSTOP/SIGCONT, restart).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A free loopback port (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

/// Whether the `postgres` user can enter `dir` (every directory above it included).
fn reachable_by_postgres(dir: &Path) -> bool {
    std::process::Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) struct Postgres {
    pub(crate) port: u16,
    bin: PathBuf,
    data: PathBuf,
    root: bool,
    /// A data directory outside the run's (see `start`), removed when the cluster stops.
    own_dir: Option<PathBuf>,
}

impl Postgres {
    /// initdb into `dir/pg` and start on a free port (trust auth, user `postgres`).
    pub(crate) fn start(dir: &Path) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (Debian's postgresql package)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb");
        let root = is_root();
        // As root, the cluster runs as `postgres`, which must reach its data directory: a
        // checkout in a private directory (`mktemp -d` makes it 0700) keeps it out, so the
        // data then goes to a directory of its own under the system's temp dir (removed on drop).
        let (data, own_dir) = if root && !reachable_by_postgres(dir) {
            let own = std::env::temp_dir().join(format!("funmagic-chaos-pg-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&own);
            eprintln!(
                "chaos: {} is out of the postgres user's reach; the cluster's data go to {}",
                dir.display(),
                own.display()
            );
            (own.join("pg"), Some(own))
        } else {
            (dir.join("pg"), None)
        };
        std::fs::create_dir_all(&data).unwrap();
        if root {
            run(std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data));
        }
        let pg = Postgres { port: free_port(), bin, data, root, own_dir };
        run(pg.cmd("initdb").args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"]).arg(&pg.data));
        pg.up();
        pg
    }

    fn cmd(&self, tool: &str) -> std::process::Command {
        let path = self.bin.join(tool);
        if self.root {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            std::process::Command::new(path)
        }
    }

    pub(crate) fn url(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    pub(crate) fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.data.display()
        );
        run(self
            .cmd("pg_ctl")
            .args(["-w", "-t", "60", "-l"])
            .arg(self.data.join("log"))
            .args(["-o", &opts, "-D"])
            .arg(&self.data)
            .arg("start"));
    }

    /// Stops at once, as a crash would (no checkpoint; recovery on the next start).
    pub(crate) fn crash(&self) {
        run(self.cmd("pg_ctl").args(["-w", "-m", "immediate", "-D"]).arg(&self.data).arg("stop"));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.cmd("pg_ctl").args(["-m", "immediate", "-D"]).arg(&self.data).arg("stop").output();
        if let Some(own) = &self.own_dir {
            let _ = std::fs::remove_dir_all(own);
        }
    }
}

/// A Redis server that keeps nothing on disk.
pub(crate) struct Redis {
    pub(crate) port: u16,
    child: Option<std::process::Child>,
}

impl Redis {
    pub(crate) fn start() -> Redis {
        let mut redis = Redis { port: free_port(), child: None };
        redis.up();
        redis
    }

    pub(crate) fn up(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on {}", self.port);
    }

    /// SIGKILL: everything it held is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One FunMagic process of the deployment.
pub(crate) struct Proc {
    pub(crate) name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
    pub(crate) stopped: bool,
}

impl Proc {
    pub(crate) fn new(name: &str, args: Vec<String>, env: Vec<(String, String)>, dir: &Path) -> Proc {
        Proc { name: name.into(), args, env, log: dir.join(format!("{name}.log")), child: None, stopped: false }
    }

    pub(crate) fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic-server"))
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.stopped = false;
    }

    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.stopped = false;
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            let _ = std::process::Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    pub(crate) fn pause(&mut self) {
        self.signal("-STOP");
        self.stopped = true;
    }

    pub(crate) fn resume(&mut self) {
        self.signal("-CONT");
        self.stopped = false;
    }

    /// The exit status if it has exited (`None`: running, or not started).
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}
