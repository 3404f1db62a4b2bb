//! The SQL of `store/task_queries.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `task_submit_tx`
    TASK_SUBMIT_TX_INSERT_TASKS = "INSERT INTO tasks (id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, run_all_steps,
    event_seq, created_at, updated_at, trace_parent, webhook_url)
    VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, 1, $8, $8, $9, $10)
    RETURNING id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts, cancel_requested,
    run_all_steps, created_at, updated_at, started_at, completed_at, trace_parent";
    /// `task_submit_tx`
    TASK_SUBMIT_TX_INSERT_TASK_PAYLOADS = "INSERT INTO task_payloads (id, task_id, input, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)";
    /// `task_submit_tx`
    TASK_SUBMIT_TX_INSERT_TASK_STEPS = "INSERT INTO task_steps (id, task_id, step_id, position, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)";
    /// `task_submit_tx`
    TASK_SUBMIT_TX_INSERT_TASK_EVENTS = "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES ($1, 1, 'queued', $2, $3)";
    /// `queue_head_on`
    QUEUE_HEAD_ON = "SELECT MIN(seq) FROM task_queue WHERE lease_until IS NULL";
    /// `task_get`, `claim_on`
    TASK_GET = "SELECT id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts, cancel_requested,
    run_all_steps, created_at, updated_at, started_at, completed_at, trace_parent
    FROM tasks WHERE id = $1";
    /// `task_list`
    TASK_LIST = "SELECT id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts, cancel_requested,
    run_all_steps, created_at, updated_at, started_at, completed_at
    FROM tasks
    WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR tool_id = $3)
    AND ($4 IS NULL OR id < $4)
    ORDER BY id DESC LIMIT $5";
    /// `task_steps`, `claim_on`
    TASK_STEPS = "SELECT step_id, position, status, state, started_at, completed_at FROM task_steps WHERE task_id = $1 ORDER BY position";
    /// `task_payload`
    TASK_PAYLOAD = "SELECT input, output, error FROM task_payloads WHERE task_id = $1";
    /// `events_record_on`
    EVENTS_RECORD_ON = "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES ($1, $2, $3, $4, $5)";
    /// `step_begin_on`
    STEP_BEGIN_ON = "UPDATE task_steps SET status = 'running', started_at = COALESCE(started_at, $3), updated_at = $3
    WHERE task_id = $1 AND step_id = $2";
    /// `task_step_retry`
    TASK_STEP_RETRY = "UPDATE task_queue SET available_at = $2, lease_until = NULL WHERE task_id = $1";
    /// `task_step_save`
    TASK_STEP_SAVE = "UPDATE task_steps SET state = $3, updated_at = $4 WHERE task_id = $1 AND step_id = $2";
    /// `task_step_fail`
    TASK_STEP_FAIL = "UPDATE task_steps SET status = 'failed', state = $3, completed_at = $4, updated_at = $4
    WHERE task_id = $1 AND step_id = $2";
    /// `task_finish_tx`
    TASK_FINISH_TX_DELETE_TASK_QUEUE = "DELETE FROM task_queue WHERE task_id = $1 RETURNING user_id";
    /// `task_finish_tx`
    TASK_FINISH_TX_UPDATE_TASK_PAYLOADS = "UPDATE task_payloads SET output = $2, error = $3, updated_at = $4 WHERE task_id = $1";
    /// `task_finish_tx`
    TASK_FINISH_TX_INSERT_TASK_DEAD_LETTERS = "INSERT INTO task_dead_letters (task_id, user_id, reason, error, attempts, created_at)
    SELECT id, user_id, $2, $3, $4, $5 FROM tasks WHERE id = $1";
    /// `task_finish_tx`
    TASK_FINISH_TX_UPDATE_TASK_QUEUE = "UPDATE task_queue SET parked = FALSE
    WHERE task_id IN (SELECT task_id FROM task_queue WHERE user_id = $1 AND parked ORDER BY seq LIMIT $2)
    RETURNING task_id";
    /// `task_request_cancel`
    TASK_REQUEST_CANCEL = "UPDATE tasks SET cancel_requested = TRUE, updated_at = $2 WHERE id = $1 RETURNING status";
    /// `task_events_after`
    TASK_EVENTS_AFTER = "SELECT seq, type, data, created_at FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq";
    /// `queue_remove`
    QUEUE_REMOVE = "DELETE FROM task_queue WHERE task_id = $1";
    /// `queue_renew`
    QUEUE_RENEW = "UPDATE task_queue SET lease_until = $2 WHERE task_id = $1 AND lease_until IS NOT NULL";
    /// `claim_on`
    CLAIM_RUNNING_OF_USER = "SELECT COUNT(*) FROM task_queue WHERE user_id = $1 AND lease_until >= $2 AND task_id <> $3";
    /// `claim_on`
    CLAIM_PARK = "UPDATE task_queue SET parked = TRUE WHERE task_id = $1";
    /// `claim_on`
    CLAIM_LEASE = "UPDATE task_queue SET lease_until = $2, attempts = attempts + 1, parked = FALSE WHERE task_id = $1 RETURNING attempts";
    /// `claim_on`
    CLAIM_INPUT_AND_TOOL_VERSION = "SELECT p.input, t.updated_at FROM task_payloads p JOIN tools t ON t.id = $2 WHERE p.task_id = $1";
    /// `queue_stale`
    QUEUE_STALE = "UPDATE task_queue SET enqueued_at = $1
    WHERE task_id IN (SELECT task_id FROM task_queue
    WHERE available_at <= $2 AND (lease_until IS NULL OR lease_until < $1)
    AND (enqueued_at IS NULL OR enqueued_at <= $2)
    ORDER BY available_at LIMIT $3)
    RETURNING task_id";
    /// `queue_runnable`
    QUEUE_RUNNABLE = "SELECT COUNT(*) FROM (SELECT 1 FROM task_queue w
    WHERE w.lease_until IS NULL AND NOT w.parked AND w.available_at <= $3
    AND ($2 = 0 OR w.user_id NOT IN (SELECT r.user_id FROM task_queue r
        WHERE r.lease_until >= $3 AND r.user_id IS NOT NULL GROUP BY r.user_id HAVING COUNT(*) >= $2))
    LIMIT $1) x";
    /// `dead_letter_count`
    DEAD_LETTER_COUNT = "SELECT COUNT(*) FROM task_dead_letters";
    /// `dead_letters`
    DEAD_LETTERS = "SELECT d.task_id, d.user_id, t.tool_id, d.reason, d.error, d.attempts, d.created_at
    FROM task_dead_letters d JOIN tasks t ON t.id = d.task_id
    WHERE $1 IS NULL OR d.created_at < (SELECT created_at FROM task_dead_letters WHERE task_id = $1)
    ORDER BY d.created_at DESC, d.task_id DESC LIMIT $2";
    /// `queue_seq`
    QUEUE_SEQ = "SELECT seq FROM task_queue WHERE task_id = $1 AND lease_until IS NULL";
    /// `queue_position`
    QUEUE_POSITION = "SELECT q.seq - COALESCE((SELECT MIN(seq) FROM task_queue WHERE lease_until IS NULL), q.seq)
    FROM task_queue q WHERE q.task_id = $1 AND q.lease_until IS NULL";
}
