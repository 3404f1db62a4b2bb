//! Tasks, their steps, payloads, events and the database queue on both engines, expanded
//! per engine by [`task_queries!`]. Claiming from the queue differs per engine and lives in
//! `pg.rs` / `sqlite.rs`.

macro_rules! task_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// One transaction: reserve the cost, insert task + payload + steps, enqueue, and
            /// record the `queued` event. Either all of it happens or none.
            pub async fn task_submit(&self, new: &$crate::store::NewTask) -> Result<$crate::store::TaskRow, $crate::store::LedgerError> {
                use $crate::store::StoreError;
                let now = $crate::store::now();
                let mut tx = self.write_tx().await?;
                if new.cost > 0 {
                    Self::credits_reserve_on(&mut tx, new.user_id, &new.id.to_string(), new.cost).await?;
                }
                let task = sqlx::query_as::<_, $crate::store::TaskRow>(
                    "INSERT INTO tasks (id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, run_all_steps, created_at, updated_at)
                     VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $8)
                     RETURNING id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts, cancel_requested,
                               run_all_steps, created_at, updated_at, started_at, completed_at",
                )
                .bind(new.id)
                .bind(new.user_id)
                .bind(new.tool_id)
                .bind(new.cost)
                .bind(new.parent_task_id)
                .bind(new.steps.first())
                .bind(new.run_all_steps)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO task_payloads (id, task_id, input, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(new.id)
                    .bind(sqlx::types::Json(&new.input))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                for (i, step) in new.steps.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO task_steps (id, task_id, step_id, position, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(uuid::Uuid::now_v7())
                    .bind(new.id)
                    .bind(step)
                    .bind(i as i32)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                }
                sqlx::query("INSERT INTO task_queue (task_id, available_at, created_at) VALUES ($1, $2, $2)")
                    .bind(new.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                let position: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM task_queue WHERE lease_until IS NULL AND available_at <= $1 AND task_id <> $2",
                )
                .bind(now)
                .bind(new.id)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                sqlx::query("INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES ($1, 1, 'queued', $2, $3)")
                    .bind(new.id)
                    .bind(sqlx::types::Json(serde_json::json!({ "type": "queued", "position": position })))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(task)
            }

            pub async fn task_get(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::TaskRow>> {
                sqlx::query_as::<_, $crate::store::TaskRow>(
                    "SELECT id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts, cancel_requested,
                            run_all_steps, created_at, updated_at, started_at, completed_at
                     FROM tasks WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A user's tasks (or everyone's, for `None`), newest first.
            pub async fn task_list(
                &self,
                user_id: Option<uuid::Uuid>,
                status: Option<&str>,
                tool_id: Option<uuid::Uuid>,
                before: Option<uuid::Uuid>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::TaskRow>> {
                sqlx::query_as::<_, $crate::store::TaskRow>(
                    "SELECT id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts, cancel_requested,
                            run_all_steps, created_at, updated_at, started_at, completed_at
                     FROM tasks
                     WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR tool_id = $3)
                       AND ($4 IS NULL OR id < $4)
                     ORDER BY id DESC LIMIT $5",
                )
                .bind(user_id)
                .bind(status)
                .bind(tool_id)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn task_steps(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<Vec<$crate::store::TaskStepRow>> {
                sqlx::query_as::<_, $crate::store::TaskStepRow>(
                    "SELECT step_id, position, status, state, started_at, completed_at FROM task_steps WHERE task_id = $1 ORDER BY position",
                )
                .bind(task_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn task_payload(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::TaskPayloadRow>> {
                sqlx::query_as::<_, $crate::store::TaskPayloadRow>("SELECT input, output, error FROM task_payloads WHERE task_id = $1")
                    .bind(task_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// queued → running (first claim) ; true if this call started it.
            pub async fn task_start(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                let now = $crate::store::now();
                sqlx::query(
                    "UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, $2), updated_at = $2
                     WHERE id = $1 AND status IN ('queued', 'running')",
                )
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await
                .map(|r| r.rows_affected() == 1)
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn task_step_set(
                &self,
                task_id: uuid::Uuid,
                step_id: &str,
                status: &str,
                state: Option<&serde_json::Value>,
            ) -> $crate::store::StoreResult<()> {
                let now = $crate::store::now();
                sqlx::query(
                    "UPDATE task_steps SET status = $3, state = COALESCE($4, state),
                            started_at = CASE WHEN $3 = 'running' THEN COALESCE(started_at, $5) ELSE started_at END,
                            completed_at = CASE WHEN $3 IN ('completed', 'failed', 'cancelled', 'skipped') THEN $5 ELSE completed_at END,
                            updated_at = $5
                     WHERE task_id = $1 AND step_id = $2",
                )
                .bind(task_id)
                .bind(step_id)
                .bind(status)
                .bind(state.map(sqlx::types::Json))
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)?;
                sqlx::query("UPDATE tasks SET current_step_id = $2, updated_at = $3 WHERE id = $1")
                    .bind(task_id)
                    .bind(step_id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Ends a task once, atomically: status (any non-terminal → `status`), output or
            /// error, the credit settlement (`spend`: `None` spends the whole reservation,
            /// `Some(n)` spends n and releases the rest), the terminal event, and its queue row.
            /// A crash can never leave an ended task with a pending reservation or without its
            /// terminal event. Returns false (changing nothing but the queue row) if it had
            /// already ended.
            pub async fn task_finish(
                &self,
                id: uuid::Uuid,
                end: &$crate::store::TaskEnd<'_>,
            ) -> Result<bool, $crate::store::LedgerError> {
                use $crate::store::StoreError;
                let now = $crate::store::now();
                let mut tx = self.write_tx().await?;
                let ended = sqlx::query(
                    "UPDATE tasks SET status = $2, completed_at = $3, updated_at = $3
                     WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')",
                )
                .bind(id)
                .bind(end.status)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected()
                    == 1;
                if ended {
                    sqlx::query("UPDATE task_payloads SET output = $2, error = $3, updated_at = $4 WHERE task_id = $1")
                        .bind(id)
                        .bind(end.output.map(sqlx::types::Json))
                        .bind(end.error)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                    match Self::credits_resolve_on(&mut tx, &id.to_string(), end.spend).await {
                        Ok(_) | Err($crate::store::LedgerError::UnknownReservation) => {} // free tools reserve nothing
                        Err(e) => return Err(e),
                    }
                    let mut data = end.event.clone();
                    if data.is_null() {
                        data = serde_json::json!({});
                    }
                    data["type"] = end.status.into();
                    sqlx::query(
                        "INSERT INTO task_events (task_id, seq, type, data, created_at)
                         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM task_events WHERE task_id = $1",
                    )
                    .bind(id)
                    .bind(end.status)
                    .bind(sqlx::types::Json(&data))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                    if let Some(dl) = end.dead_letter {
                        sqlx::query(
                            "INSERT INTO task_dead_letters (task_id, user_id, reason, error, attempts, created_at)
                             SELECT id, user_id, $2, $3, $4, $5 FROM tasks WHERE id = $1",
                        )
                        .bind(id)
                        .bind(dl.reason)
                        .bind(&dl.error)
                        .bind(dl.attempts)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                    }
                }
                sqlx::query("DELETE FROM task_queue WHERE task_id = $1").bind(id).execute(&mut *tx).await.map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(ended)
            }

            /// Flags a task for cooperative cancellation; returns its status.
            pub async fn task_request_cancel(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<String>> {
                sqlx::query_scalar::<_, String>("UPDATE tasks SET cancel_requested = TRUE, updated_at = $2 WHERE id = $1 RETURNING status")
                    .bind(id)
                    .bind($crate::store::now())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Appends an event with the next sequence number; returns the number.
            pub async fn task_event_append(&self, task_id: uuid::Uuid, kind: &str, data: &serde_json::Value) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>(
                    "INSERT INTO task_events (task_id, seq, type, data, created_at)
                     SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM task_events WHERE task_id = $1
                     RETURNING seq",
                )
                .bind(task_id)
                .bind(kind)
                .bind(sqlx::types::Json(data))
                .bind($crate::store::now())
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn task_events_after(&self, task_id: uuid::Uuid, after: i64) -> $crate::store::StoreResult<Vec<$crate::store::TaskEventRow>> {
                sqlx::query_as::<_, $crate::store::TaskEventRow>(
                    "SELECT seq, type, data, created_at FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq",
                )
                .bind(task_id)
                .bind(after)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Puts a task back in the queue, due after `delay` (a retry).
            pub async fn queue_retry(&self, task_id: uuid::Uuid, delay: std::time::Duration) -> $crate::store::StoreResult<()> {
                let due = $crate::store::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1));
                sqlx::query("UPDATE task_queue SET available_at = $2, lease_until = NULL WHERE task_id = $1")
                    .bind(task_id)
                    .bind(due)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Drops a task's queue row (for a task that has already ended).
            pub async fn queue_remove(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<()> {
                sqlx::query("DELETE FROM task_queue WHERE task_id = $1")
                    .bind(task_id)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Extends a running task's lease (the worker's heartbeat).
            pub async fn queue_renew(&self, task_id: uuid::Uuid, lease: std::time::Duration) -> $crate::store::StoreResult<()> {
                let until = $crate::store::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                sqlx::query("UPDATE task_queue SET lease_until = $2 WHERE task_id = $1")
                    .bind(task_id)
                    .bind(until)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Leases a due task for `lease`: the oldest one whose user runs fewer than
            /// `per_user` tasks (0 = no limit), or, with `only`, that one task (the Redis
            /// queue delivers ids). The per-user count is taken again under a per-user lock
            /// (PostgreSQL advisory lock; SQLite has one writer), so the limit is exact.
            pub async fn queue_claim(
                &self,
                only: Option<uuid::Uuid>,
                lease: std::time::Duration,
                per_user: u32,
            ) -> $crate::store::StoreResult<$crate::store::Claim> {
                use $crate::store::{Claim, StoreError};
                let now = $crate::store::now();
                let mut tx = self.write_tx().await?;
                let row: Option<(uuid::Uuid, uuid::Uuid, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> =
                    sqlx::query_as(Self::CLAIM_CANDIDATE_SQL)
                        .bind(now)
                        .bind(i64::from(per_user))
                        .bind(only)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                let Some((task_id, user_id, available_at, lease_until)) = row else { return Ok(Claim::Empty) };
                if lease_until.is_some_and(|l| l >= now) {
                    return Ok(Claim::Busy);
                }
                if available_at > now {
                    return Ok(Claim::NotDue(available_at));
                }
                if per_user > 0 {
                    Self::lock_user_queue_on(&mut tx, user_id).await?;
                    let running: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM task_queue r JOIN tasks u ON u.id = r.task_id
                         WHERE u.user_id = $1 AND r.lease_until >= $2 AND r.task_id <> $3",
                    )
                    .bind(user_id)
                    .bind(now)
                    .bind(task_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                    if running >= i64::from(per_user) {
                        return Ok(Claim::UserAtLimit);
                    }
                }
                let attempts: i32 = sqlx::query_scalar(
                    "UPDATE task_queue SET lease_until = $2, attempts = attempts + 1 WHERE task_id = $1 RETURNING attempts",
                )
                .bind(task_id)
                .bind(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60)))
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                tx.commit().await.map_err(StoreError::from_sqlx)?;
                Ok(Claim::Claimed { task_id, user_id, attempts })
            }

            /// Due tasks nobody has taken for `older_than` (and not re-sent since): marks them
            /// re-sent now and returns them, oldest first, for the reconciler.
            pub async fn queue_stale(&self, older_than: std::time::Duration, limit: i64) -> $crate::store::StoreResult<Vec<uuid::Uuid>> {
                let now = $crate::store::now();
                let before = now - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::seconds(30));
                sqlx::query_scalar::<_, uuid::Uuid>(
                    "UPDATE task_queue SET enqueued_at = $1
                     WHERE task_id IN (SELECT task_id FROM task_queue
                                       WHERE available_at <= $2 AND (lease_until IS NULL OR lease_until < $1)
                                         AND (enqueued_at IS NULL OR enqueued_at <= $2)
                                       ORDER BY available_at LIMIT $3)
                     RETURNING task_id",
                )
                .bind(now)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A user's oldest due, unleased tasks (to send once one of theirs ends).
            pub async fn queue_next_for_user(&self, user_id: uuid::Uuid, limit: i64) -> $crate::store::StoreResult<Vec<uuid::Uuid>> {
                let now = $crate::store::now();
                sqlx::query_scalar::<_, uuid::Uuid>(
                    "SELECT q.task_id FROM task_queue q JOIN tasks t ON t.id = q.task_id
                     WHERE t.user_id = $1 AND q.available_at <= $2 AND (q.lease_until IS NULL OR q.lease_until < $2)
                     ORDER BY q.available_at LIMIT $3",
                )
                .bind(user_id)
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Queue depth: (waiting and due, running under a lease, waiting for a retry).
            pub async fn queue_depth(&self) -> $crate::store::StoreResult<(i64, i64, i64)> {
                let now = $crate::store::now();
                sqlx::query_as::<_, (i64, i64, i64)>(
                    "SELECT COALESCE(SUM(CASE WHEN (lease_until IS NULL OR lease_until < $1) AND available_at <= $1 THEN 1 ELSE 0 END), 0),
                            COALESCE(SUM(CASE WHEN lease_until >= $1 THEN 1 ELSE 0 END), 0),
                            COALESCE(SUM(CASE WHEN (lease_until IS NULL OR lease_until < $1) AND available_at > $1 THEN 1 ELSE 0 END), 0)
                     FROM task_queue",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// The dead-letter list, newest first, before `before` (a task id cursor).
            pub async fn dead_letters(&self, before: Option<uuid::Uuid>, limit: i64) -> $crate::store::StoreResult<Vec<$crate::store::DeadLetterRow>> {
                sqlx::query_as::<_, $crate::store::DeadLetterRow>(
                    "SELECT d.task_id, d.user_id, t.tool_id, d.reason, d.error, d.attempts, d.created_at
                     FROM task_dead_letters d JOIN tasks t ON t.id = d.task_id
                     WHERE $1 IS NULL OR d.created_at < (SELECT created_at FROM task_dead_letters WHERE task_id = $1)
                     ORDER BY d.created_at DESC, d.task_id DESC LIMIT $2",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// How many queued tasks are ahead of this one (0 = next).
            pub async fn queue_position(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<Option<i64>> {
                sqlx::query_scalar::<_, i64>(
                    "SELECT (SELECT COUNT(*) FROM task_queue o WHERE o.lease_until IS NULL AND o.available_at < q.available_at)
                     FROM task_queue q WHERE q.task_id = $1 AND q.lease_until IS NULL",
                )
                .bind(task_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use task_queries;
