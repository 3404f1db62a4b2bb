//! The line's bound: how many tasks may wait for a worker before new submissions are held.
//!
//! Without a bound, a burst of submissions is accepted faster than the workers run them
//! (a submit costs a fraction of a run) and the line grows without limit: every task behind
//! it waits longer, and the backlog outlives the burst by as long as the workers need to
//! work it off. With `tasks.max_waiting` (`FUNMAGIC_QUEUE_MAX_WAITING`), once that many
//! tasks wait, a submission waits here, after its request is checked and before anything is
//! fetched, reserved or written, until the workers make room: submissions are then accepted
//! at the rate tasks are taken, and the line stays about `max_waiting` long. One that finds
//! no room within `tasks.admit_wait_secs` is answered 503 `QUEUE_FULL` with `Retry-After`,
//! having made nothing (it still counts in its user's per-minute submit limit).
//!
//! What counts: due tasks that no worker holds, except those of a user who already runs
//! `tasks.max_running_per_user` (parked ones included): no worker could take those now, so
//! one user's backlog behind their own limit does not hold anyone else's submissions. A
//! user below the limit counts whole: while every worker is busy that is real work waiting.
//!
//! - Cheap while there is room: a count leaves `max_waiting − waiting − in flight` places
//!   (in flight: let in, not yet written, e.g. while an `imageUrl` is fetched; each holds
//!   a [`Ticket`] until its submission ends), which the submissions of the next
//!   [`ROOM_TTL`] take with one atomic operation each; only when they run out (or grow
//!   stale) is the line counted again.
//! - Otherwise the submissions line up (first come, first served: no one takes room while
//!   others are held) behind one that counts the line at most every [`POLL`] and lets in as
//!   many as there is room for; the others wait their turn without a query of their own. A
//!   count reads the queue's leased rows and up to `max_waiting` waiting ones (~1 ms for
//!   2,000 under load).
//! - Per API process: with several, each counts the same line and lets in up to the room it
//!   saw, so the line may overshoot the bound by what they let in between two counts; it is
//!   a soft bound.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::store::Store;

/// How often the line is counted while submissions are held. Every 10 ms the counts cost
/// ~4% of a drain's CPU, every 50 ms under 1%; the room a count finds is let in at once, so
/// the held submissions reach the database together, as one batch.
pub const POLL: Duration = Duration::from_millis(50);

/// How long the room a count found may be taken without counting again: the line moves
/// meanwhile (workers take tasks, other API processes add some).
pub const ROOM_TTL: Duration = Duration::from_secs(1);

/// The bound and the held submissions of one API process.
#[derive(Debug)]
pub struct Admission {
    /// Tasks waiting beyond which submissions are held (0: no bound).
    max_waiting: i64,
    /// `tasks.max_running_per_user`: a user's waiting tasks do not count while the user
    /// runs this many (0: no limit).
    per_user: i64,
    /// How long a held submission waits for room before it is refused.
    max_wait: Duration,
    /// Places left from the last count.
    room: AtomicI64,
    /// Until when (ms after `epoch`) `room` may be taken.
    room_until: AtomicU64,
    epoch: Instant,
    /// Submissions let in whose task is not written yet (their [`Ticket`]s).
    in_flight: AtomicI64,
    /// Submissions held right now: while there are any, newcomers line up behind them.
    held: AtomicUsize,
    /// When the line was last counted, held by the first submission in line.
    counted: tokio::sync::Mutex<Option<Instant>>,
}

/// A submission let in: counted as in flight (taking a place of the line) until dropped,
/// when its task is written or it failed.
#[derive(Debug)]
#[must_use = "the place is given back when the ticket is dropped"]
pub struct Ticket<'a>(Option<&'a Admission>);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(admission) = self.0 {
            admission.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One held submission, counted in [`Admission::held`] until dropped (however its wait ends,
/// including a client that goes away).
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn enter(held: &'a AtomicUsize) -> Self {
        held.fetch_add(1, Ordering::SeqCst);
        Self(held)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission {
    pub fn new(max_waiting: u64, per_user: u32, max_wait: Duration) -> Self {
        Self {
            max_waiting: i64::try_from(max_waiting).unwrap_or(i64::MAX),
            per_user: i64::from(per_user),
            max_wait,
            room: AtomicI64::new(0),
            room_until: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: AtomicI64::new(0),
            held: AtomicUsize::new(0),
            counted: tokio::sync::Mutex::new(None),
        }
    }

    /// A submission may go on at once (no bound, or room and nobody held before it).
    pub fn try_now(&self) -> Option<Ticket<'_>> {
        if self.max_waiting == 0 {
            return Some(Ticket(None));
        }
        (self.held.load(Ordering::SeqCst) == 0).then(|| self.take_room()).flatten()
    }

    /// Waits in line for room (after [`Self::try_now`] found none): returns once the workers
    /// have made some; 503 `QUEUE_FULL` if none comes within the wait.
    pub async fn wait(&self, store: &Store) -> AppResult<Ticket<'_>> {
        let _held = Held::enter(&self.held);
        let started = Instant::now();
        let deadline = started + self.max_wait;
        // First come, first served: tokio's mutex queues its waiters in order.
        let Ok(mut counted) = tokio::time::timeout_at(deadline, self.counted.lock()).await else {
            // The one ahead may have found room just now.
            return self.take_room().ok_or_else(|| self.refused());
        };
        let mut waited = false;
        let ticket = loop {
            // A count made while this one waited its turn may have left room.
            if let Some(ticket) = self.take_room() {
                break ticket;
            }
            let now = Instant::now();
            match *counted {
                Some(at) if now < at + POLL => {
                    if at + POLL >= deadline {
                        return Err(self.refused());
                    }
                    waited = true;
                    tokio::time::sleep_until(at + POLL).await;
                }
                _ => {
                    let count = store.queue_runnable(self.max_waiting, self.per_user);
                    let Ok(waiting) = tokio::time::timeout_at(deadline, count).await else {
                        return Err(self.refused());
                    };
                    let at = Instant::now();
                    *counted = Some(at);
                    let taken = waiting?.saturating_add(self.in_flight.load(Ordering::SeqCst));
                    self.room.store(self.max_waiting.saturating_sub(taken), Ordering::SeqCst);
                    let until = (at + ROOM_TTL).saturating_duration_since(self.epoch).as_millis();
                    self.room_until.store(u64::try_from(until).unwrap_or(u64::MAX), Ordering::SeqCst);
                }
            }
        };
        if waited || started.elapsed() >= POLL {
            count_held("admitted");
        }
        Ok(ticket)
    }

    /// Takes one place of the last count's room, unless it is used up or stale.
    fn take_room(&self) -> Option<Ticket<'_>> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let taken = now < self.room_until.load(Ordering::SeqCst)
            && self.room.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| (r > 0).then(|| r - 1)).is_ok();
        taken.then(|| {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            Ticket(Some(self))
        })
    }

    fn refused(&self) -> AppError {
        count_held("refused");
        let mut err = AppError::new(
            ErrorKind::Unavailable,
            ErrorCode::QueueFull,
            format!(
                "{} tasks are waiting for a worker and no room came within {} s; submit again later",
                self.max_waiting,
                self.max_wait.as_secs()
            ),
        );
        // Spread the retries of many refused clients over a few seconds.
        err.retry_after_secs = Some(2 + uuid::Uuid::new_v4().as_u128() as u64 % 4);
        err
    }
}

/// Counts a held submission by how its wait ended.
fn count_held(outcome: &'static str) {
    metrics::counter!("funmagic_task_submits_held_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_room(max_waiting: u64, room: i64) -> Admission {
        let a = Admission::new(max_waiting, 3, Duration::from_secs(1));
        a.room.store(room, Ordering::SeqCst);
        a.room_until.store(u64::MAX, Ordering::SeqCst);
        a
    }

    #[test]
    fn room_is_taken_once_per_place_and_tickets_count_in_flight() {
        let a = with_room(10, 2);
        let (one, two) = (a.try_now().expect("room"), a.try_now().expect("room"));
        assert!(a.try_now().is_none(), "a third place out of two");
        assert_eq!(a.in_flight.load(Ordering::SeqCst), 2);
        drop((one, two));
        assert_eq!(a.in_flight.load(Ordering::SeqCst), 0, "tickets give their place back");
    }

    #[test]
    fn newcomers_do_not_pass_held_submissions() {
        let a = with_room(10, 5);
        let held = Held::enter(&a.held);
        assert!(a.try_now().is_none(), "room taken past a held submission");
        drop(held);
        assert!(a.try_now().is_some());
    }

    #[test]
    fn stale_room_is_not_taken_and_no_bound_lets_everyone_in() {
        let a = with_room(10, 5);
        a.room_until.store(0, Ordering::SeqCst);
        assert!(a.try_now().is_none(), "room from an old count");
        let open = with_room(0, 0);
        let tickets: Vec<_> = (0..100).map(|_| open.try_now().expect("no bound")).collect();
        assert_eq!(open.in_flight.load(Ordering::SeqCst), 0, "no bound, nothing counted");
        drop(tickets);
    }
}
