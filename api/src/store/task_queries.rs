//! Tasks, their steps, payloads, events and the database queue on both engines, expanded
//! per engine by [`task_queries!`]. Claiming from the queue differs per engine and lives in
//! `pg.rs` / `sqlite.rs`.

macro_rules! task_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// One transaction: reserve the cost, insert task + payload + steps, enqueue, and
            /// record the `queued` event (with the queue position, from the row's place in line:
            /// nothing here grows with the queue). Either all of it happens or none.
            pub async fn task_submit_tx(
                &self,
                new: &$crate::store::NewTask,
            ) -> Result<($crate::store::TaskRow, $crate::store::Recorded), $crate::store::LedgerError> {
                let new = new.clone();
                self.write(move |c| Box::pin(async move {
                    let now = $crate::store::now();
                    if new.cost > 0 {
                        Self::credits_reserve_new_on(&mut *c, new.user_id, &new.id.to_string(), new.cost).await?;
                    }
                    let task = sqlx::query_as::<_, $crate::store::TaskRow>($crate::store::sql::tasks::TASK_SUBMIT_TX_INSERT_TASKS)
                    .bind(new.id)
                    .bind(new.user_id)
                    .bind(new.tool_id)
                    .bind(new.cost)
                    .bind(new.parent_task_id)
                    .bind(new.steps.first())
                    .bind(new.run_all_steps)
                    .bind(now)
                    .bind(&new.trace_parent)
                    .bind(&new.webhook_url)
                    .fetch_one(&mut *c)
                    .await?;
                    sqlx::query($crate::store::sql::tasks::TASK_SUBMIT_TX_INSERT_TASK_PAYLOADS)
                        .bind(uuid::Uuid::now_v7())
                        .bind(new.id)
                        .bind(sqlx::types::Json(&new.input))
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                    for (i, step) in new.steps.iter().enumerate() {
                        sqlx::query($crate::store::sql::tasks::TASK_SUBMIT_TX_INSERT_TASK_STEPS)
                        .bind(uuid::Uuid::now_v7())
                        .bind(new.id)
                        .bind(step)
                        .bind(i as i32)
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                    }
                    let seq: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO task_queue (task_id, user_id, available_at, created_at, seq) VALUES ($1, $2, $3, $3, {}) RETURNING seq",
                        Self::QUEUE_NEXT_SEQ
                    )))
                    .bind(new.id)
                    .bind(new.user_id)
                    .bind(now)
                    .fetch_one(&mut *c)
                    .await?;
                    let position = seq - Self::queue_head_on(&mut *c).await?.unwrap_or(seq);
                    let data = serde_json::json!({ "type": $crate::store::EventKind::Queued, "position": position.max(0) });
                    sqlx::query($crate::store::sql::tasks::TASK_SUBMIT_TX_INSERT_TASK_EVENTS)
                        .bind(new.id)
                        .bind(sqlx::types::Json(&data))
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                    Ok((task, $crate::store::Recorded { seq: 1, kind: $crate::store::EventKind::Queued, data }))
                }))
                .await
            }

            /// The place in line of the first waiting task (`None`: nobody waits).
            async fn queue_head_on(c: &mut <$db as sqlx::Database>::Connection) -> $crate::store::StoreResult<Option<i64>> {
                sqlx::query_scalar::<_, Option<i64>>($crate::store::sql::tasks::QUEUE_HEAD_ON)
                    .fetch_one(&mut *c)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// The place in line of the first waiting task.
            pub async fn queue_head(&self) -> $crate::store::StoreResult<Option<i64>> {
                let mut conn = self.pool.acquire().await?;
                Self::queue_head_on(&mut conn).await
            }

            pub async fn task_get(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::TaskRow>> {
                sqlx::query_as::<_, $crate::store::TaskRow>($crate::store::sql::tasks::TASK_GET)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A user's tasks (or everyone's, for `None`), newest first.
            pub async fn task_list(
                &self,
                user_id: Option<uuid::Uuid>,
                status: Option<$crate::store::TaskStatus>,
                tool_id: Option<uuid::Uuid>,
                before: Option<uuid::Uuid>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::TaskRow>> {
                sqlx::query_as::<_, $crate::store::TaskRow>($crate::store::sql::tasks::TASK_LIST)
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
                sqlx::query_as::<_, $crate::store::TaskStepRow>($crate::store::sql::tasks::TASK_STEPS)
                .bind(task_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn task_payload(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::TaskPayloadRow>> {
                sqlx::query_as::<_, $crate::store::TaskPayloadRow>($crate::store::sql::tasks::TASK_PAYLOAD)
                    .bind(task_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Bumps the task's event counter by `n` (unless `guard` excludes the task) and
            /// records `events` with the numbers it reserved; returns them as recorded.
            async fn events_record_on(
                c: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
                events: &[($crate::store::EventKind, serde_json::Value)],
                set: &str,
                cond: &str,
                p4: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<Vec<$crate::store::Recorded>>> {
                let last: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "UPDATE tasks SET event_seq = event_seq + $2, updated_at = $3, {set} WHERE id = $1 AND {cond} RETURNING event_seq"
                )))
                .bind(id)
                .bind(events.len() as i64)
                .bind(now)
                .bind(p4)
                .fetch_optional(&mut *c)
                .await?;
                let Some(last) = last else { return Ok(None) };
                let mut recorded = Vec::with_capacity(events.len());
                for (i, (kind, data)) in events.iter().enumerate() {
                    let seq = last - events.len() as i64 + 1 + i as i64;
                    let data = $crate::store::event_data(*kind, data.clone());
                    sqlx::query($crate::store::sql::tasks::EVENTS_RECORD_ON)
                        .bind(id)
                        .bind(seq)
                        .bind(*kind)
                        .bind(sqlx::types::Json(&data))
                        .bind(now)
                        .execute(&mut *c)
                        .await?;
                    recorded.push($crate::store::Recorded { seq, kind: *kind, data });
                }
                Ok(Some(recorded))
            }

            /// Marks a step completed with its output merged into its state, recording
            /// `step_completed` in the same transaction.
            pub async fn task_step_done(
                &self,
                task_id: uuid::Uuid,
                step_id: &str,
                output: &serde_json::Value,
                event: serde_json::Value,
            ) -> $crate::store::StoreResult<Option<$crate::store::Recorded>> {
                let step_id = step_id.to_string();
                let patch = serde_json::json!({ "output": output });
                self.write(move |c| Box::pin(async move {
                    let now = $crate::store::now();
                    let Some(mut recorded) = Self::events_record_on(
                        &mut *c, task_id, &[($crate::store::EventKind::StepCompleted, event)], "current_step_id = $4", "status = 'running'", &step_id, now,
                    )
                    .await?
                    else {
                        return Ok(None);
                    };
                    Self::step_complete_on(&mut *c, task_id, &step_id, &patch, now).await?;
                    Ok(recorded.pop())
                }))
                .await
            }

            async fn step_complete_on(
                c: &mut <$db as sqlx::Database>::Connection,
                task_id: uuid::Uuid,
                step_id: &str,
                patch: &serde_json::Value,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE task_steps SET status = 'completed', state = {}, completed_at = $4, updated_at = $4
                     WHERE task_id = $1 AND step_id = $2",
                    Self::STATE_MERGE
                )))
                .bind(task_id)
                .bind(step_id)
                .bind(sqlx::types::Json(patch))
                .bind(now)
                .execute(&mut *c)
                .await
                .map(|_| ())
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A transient failure: the step goes back to pending with `patch` merged into its
            /// state (what the run saved is kept, so the retry resumes it), the task waits in
            /// the queue for `delay`, and `event` (a `progress` notice) is recorded.
            pub async fn task_step_retry(
                &self,
                task_id: uuid::Uuid,
                step_id: &str,
                patch: serde_json::Value,
                delay: std::time::Duration,
                event: serde_json::Value,
            ) -> $crate::store::StoreResult<Option<$crate::store::Recorded>> {
                let step_id = step_id.to_string();
                self.write(move |c| Box::pin(async move {
                    let now = $crate::store::now();
                    let due = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1));
                    let Some(mut recorded) = Self::events_record_on(
                        &mut *c, task_id, &[($crate::store::EventKind::Progress, event)], "current_step_id = $4", "status = 'running'", &step_id, now,
                    )
                    .await?
                    else {
                        return Ok(None);
                    };
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE task_steps SET status = 'pending', state = {}, updated_at = $4 WHERE task_id = $1 AND step_id = $2",
                        Self::STATE_MERGE
                    )))
                    .bind(task_id)
                    .bind(&step_id)
                    .bind(sqlx::types::Json(&patch))
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query($crate::store::sql::tasks::TASK_STEP_RETRY)
                        .bind(task_id)
                        .bind(due)
                        .execute(&mut *c)
                        .await?;
                    Ok(recorded.pop())
                }))
                .await
            }

            /// Saves a running step's state (a provider job id, before waiting on it).
            pub async fn task_step_save(
                &self,
                task_id: uuid::Uuid,
                step_id: &str,
                state: &serde_json::Value,
            ) -> $crate::store::StoreResult<()> {
                let (step_id, state) = (step_id.to_string(), state.clone());
                self.write(move |c| Box::pin(async move {
                    sqlx::query($crate::store::sql::tasks::TASK_STEP_SAVE)
                        .bind(task_id)
                        .bind(&step_id)
                        .bind(sqlx::types::Json(&state))
                        .bind($crate::store::now())
                        .execute(&mut *c)
                        .await
                        .map(|_| ())
                        .map_err($crate::store::StoreError::from_sqlx)
                }))
                .await
            }

            /// Marks a step failed (its task ends right after).
            pub async fn task_step_fail(&self, task_id: uuid::Uuid, step_id: &str, error: &str) -> $crate::store::StoreResult<()> {
                let (step_id, state) = (step_id.to_string(), serde_json::json!({ "error": error }));
                self.write(move |c| Box::pin(async move {
                    let now = $crate::store::now();
                    sqlx::query($crate::store::sql::tasks::TASK_STEP_FAIL)
                    .bind(task_id)
                    .bind(&step_id)
                    .bind(sqlx::types::Json(&state))
                    .bind(now)
                    .execute(&mut *c)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
                }))
                .await
            }

            /// Flags a task for cooperative cancellation; returns its status.
            pub async fn task_request_cancel(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::TaskStatus>> {
                sqlx::query_scalar::<_, $crate::store::TaskStatus>($crate::store::sql::tasks::TASK_REQUEST_CANCEL)
                    .bind(id)
                    .bind($crate::store::now())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// The event counters of these tasks (for the event hub's safety sweep).
            pub async fn task_event_seqs(&self, ids: &[uuid::Uuid]) -> $crate::store::StoreResult<Vec<(uuid::Uuid, i64)>> {
                if ids.is_empty() {
                    return Ok(vec![]);
                }
                let list = (1..=ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let sql = format!("SELECT id, event_seq FROM tasks WHERE id IN ({list})");
                let mut query = sqlx::query_as::<_, (uuid::Uuid, i64)>(sqlx::AssertSqlSafe(sql));
                for id in ids {
                    query = query.bind(*id);
                }
                query.fetch_all(&self.pool).await.map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn task_events_after(&self, task_id: uuid::Uuid, after: i64) -> $crate::store::StoreResult<Vec<$crate::store::TaskEventRow>> {
                sqlx::query_as::<_, $crate::store::TaskEventRow>($crate::store::sql::tasks::TASK_EVENTS_AFTER)
                .bind(task_id)
                .bind(after)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Drops a task's queue row (for a task that has already ended).
            pub async fn queue_remove(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<()> {
                self.write(move |c| Box::pin(async move {
                    sqlx::query($crate::store::sql::tasks::QUEUE_REMOVE)
                        .bind(task_id)
                        .execute(&mut *c)
                        .await
                        .map(|_| ())
                        .map_err($crate::store::StoreError::from_sqlx)
                }))
                .await
            }

            /// Extends a running task's lease (the worker's heartbeat).
            pub async fn queue_renew(&self, task_id: uuid::Uuid, lease: std::time::Duration) -> $crate::store::StoreResult<()> {
                let until = $crate::store::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                self.write(move |c| Box::pin(async move {
                    sqlx::query($crate::store::sql::tasks::QUEUE_RENEW)
                        .bind(task_id)
                        .bind(until)
                        .execute(&mut *c)
                        .await
                        .map(|_| ())
                        .map_err($crate::store::StoreError::from_sqlx)
                }))
                .await
            }

            /// Due tasks nobody has taken for `older_than` (and not re-sent since): marks them
            /// re-sent now and returns them, oldest first, for the reconciler.
            pub async fn queue_stale(&self, older_than: std::time::Duration, limit: i64) -> $crate::store::StoreResult<Vec<uuid::Uuid>> {
                let now = $crate::store::now();
                let before = now - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::seconds(30));
                sqlx::query_scalar::<_, uuid::Uuid>($crate::store::sql::tasks::QUEUE_STALE)
                .bind(now)
                .bind(before)
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

            /// Tasks waiting that a worker could take now (the line `tasks.max_waiting`
            /// bounds), counted up to `upto`: due, not leased, and neither parked nor of a
            /// user who already runs `per_user` tasks (0: no limit). Reads the leased rows
            /// and up to `upto` waiting ones.
            pub async fn queue_runnable(&self, upto: i64, per_user: i64) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>($crate::store::sql::tasks::QUEUE_RUNNABLE)
                    .bind(upto)
                    .bind(per_user)
                    .bind($crate::store::now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// How many tasks failed for good.
            pub async fn dead_letter_count(&self) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>($crate::store::sql::tasks::DEAD_LETTER_COUNT)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// The dead-letter list, newest first, before `before` (a task id cursor).
            pub async fn dead_letters(&self, before: Option<uuid::Uuid>, limit: i64) -> $crate::store::StoreResult<Vec<$crate::store::DeadLetterRow>> {
                sqlx::query_as::<_, $crate::store::DeadLetterRow>($crate::store::sql::tasks::DEAD_LETTERS)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A waiting task's place in line (`None` once a worker holds it); its position
            /// is this minus [`Self::queue_head`].
            pub async fn queue_seq(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<Option<i64>> {
                sqlx::query_scalar::<_, i64>($crate::store::sql::tasks::QUEUE_SEQ)
                    .bind(task_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// How many waiting tasks are ahead of this one (0 = next), from places in line:
            /// no count that grows with the queue (tasks ahead that were skipped for their
            /// user's running limit still count).
            pub async fn queue_position(&self, task_id: uuid::Uuid) -> $crate::store::StoreResult<Option<i64>> {
                sqlx::query_scalar::<_, i64>($crate::store::sql::tasks::QUEUE_POSITION)
                .bind(task_id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use task_queries;
