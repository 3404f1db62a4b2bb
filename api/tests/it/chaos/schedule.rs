//! The fault schedule: drawn from the seed alone, so a seed names a schedule.

use std::time::Duration;

use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Engine {
    Postgres,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ProviderFault {
    /// 500 with an OpenAI error body.
    ServerError,
    /// 429 with `Retry-After`.
    RateLimited,
    /// Never answers (the request times out).
    Hang,
    /// Answers, but only after the step's timeout.
    Late,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Fault {
    /// SIGKILL an API process (index), restarted when the window ends.
    KillApi(usize),
    /// SIGKILL a worker process, restarted when the window ends.
    KillWorker(usize),
    /// SIGSTOP a worker for longer than its lease, then SIGCONT: a zombie that wakes up.
    StopWorker(usize),
    /// Redis killed; it comes back empty when the window ends.
    RedisRestartEmpty,
    /// PostgreSQL stopped as by a crash; started (and recovered) when the window ends.
    PostgresRestart,
    /// The proxy in front of the engine delays every chunk by this many milliseconds.
    Latency(Engine, u64),
    /// Every connection to the engine is reset; new ones are refused while it lasts.
    Reset(Engine),
    /// The engine's bytes are held; at the end the connections resume (`false`) or are cut.
    Blackhole(Engine, bool),
    /// The image provider misbehaves.
    Provider(ProviderFault),
    /// The webhook receivers answer 500 (`false`) or never answer (`true`).
    WebhookReceiver(bool),
}

impl Fault {
    /// Whether a dependency of the API is down meanwhile (503s are then allowed).
    pub(crate) fn takes_a_dependency_down(&self) -> bool {
        matches!(self, Fault::RedisRestartEmpty | Fault::PostgresRestart | Fault::Reset(_) | Fault::Blackhole(..))
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Fault::KillApi(_) => "SIGKILL + restart of an API process",
            Fault::KillWorker(_) => "SIGKILL + restart of a worker process",
            Fault::StopWorker(_) => "SIGSTOP of a worker past its lease, then SIGCONT",
            Fault::RedisRestartEmpty => "Redis restarted empty",
            Fault::PostgresRestart => "PostgreSQL crash (immediate stop) + restart",
            Fault::Latency(..) => "proxy latency (PostgreSQL or Redis)",
            Fault::Reset(_) => "proxy connection resets (PostgreSQL or Redis)",
            Fault::Blackhole(..) => "proxy black hole (PostgreSQL or Redis)",
            Fault::Provider(ProviderFault::ServerError) => "provider answers 500",
            Fault::Provider(ProviderFault::RateLimited) => "provider answers 429 with Retry-After",
            Fault::Provider(ProviderFault::Hang) => "provider hangs",
            Fault::Provider(ProviderFault::Late) => "provider answers after the step timed out",
            Fault::WebhookReceiver(false) => "webhook receivers answer 500",
            Fault::WebhookReceiver(true) => "webhook receivers hang",
        }
    }
}

/// One fault: starts `at` after the run starts and lasts `lasts`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned {
    pub(crate) at: Duration,
    pub(crate) lasts: Duration,
    pub(crate) fault: Fault,
}

/// The schedule of a run of `length` for `seed`: a fault every 4–10 s, each lasting
/// 1–8 s (a stopped worker: lease + 1–4 s), some overlapping the next. The last 10 s
/// are left quiet.
pub(crate) fn draw(seed: u64, length: Duration, lease: Duration) -> Vec<Planned> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut at = Duration::from_secs(rng.random_range(3..6));
    let mut plan = Vec::new();
    let engine = |rng: &mut rand::rngs::StdRng| if rng.random_bool(0.5) { Engine::Postgres } else { Engine::Redis };
    while at + Duration::from_secs(10) < length {
        let fault = match rng.random_range(0..14) {
            0 => Fault::KillApi(rng.random_range(0..2)),
            1 | 2 => Fault::KillWorker(rng.random_range(0..2)),
            3 => Fault::StopWorker(rng.random_range(0..2)),
            4 => Fault::RedisRestartEmpty,
            5 => Fault::PostgresRestart,
            6 => Fault::Latency(engine(&mut rng), rng.random_range(5..120)),
            7 => Fault::Reset(engine(&mut rng)),
            8 => Fault::Blackhole(engine(&mut rng), rng.random_bool(0.5)),
            9 => Fault::Provider(ProviderFault::ServerError),
            10 => Fault::Provider(ProviderFault::RateLimited),
            11 => Fault::Provider(if rng.random_bool(0.5) { ProviderFault::Hang } else { ProviderFault::Late }),
            _ => Fault::WebhookReceiver(rng.random_bool(0.3)),
        };
        let lasts = match fault {
            Fault::StopWorker(_) => lease + Duration::from_millis(rng.random_range(1000..4000)),
            Fault::Reset(_) => Duration::from_millis(rng.random_range(200..2000)),
            Fault::Blackhole(..) => Duration::from_millis(rng.random_range(1000..5000)),
            _ => Duration::from_millis(rng.random_range(1000..8000)),
        };
        let lasts = lasts.min(length.saturating_sub(at + Duration::from_secs(10)));
        plan.push(Planned { at, lasts, fault });
        at += Duration::from_millis(rng.random_range(4000..10_000));
    }
    plan
}

#[test]
fn the_same_seed_draws_the_same_schedule() {
    let lease = Duration::from_secs(3);
    let a = draw(7, Duration::from_secs(300), lease);
    let b = draw(7, Duration::from_secs(300), lease);
    let c = draw(8, Duration::from_secs(300), lease);
    let key = |p: &[Planned]| p.iter().map(|p| (p.at, p.lasts, p.fault)).collect::<Vec<_>>();
    assert_eq!(key(&a), key(&b));
    assert_ne!(key(&a), key(&c));
    assert!(a.len() > 20, "{} faults in 5 minutes", a.len());
    assert!(a.iter().all(|p| p.at + p.lasts + Duration::from_secs(10) <= Duration::from_secs(300)));
}
