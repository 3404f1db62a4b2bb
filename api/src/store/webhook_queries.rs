//! Webhook endpoints, deliveries and their attempts on both engines, expanded per engine by
//! [`webhook_queries!`]. Deliveries are made by a trigger on `task_events` (see
//! `migrations/*/0014_webhooks.sql`); here they are leased, recorded and listed.

macro_rules! endpoint_columns {
    () => {
        "id, user_id, url, description, events, secret, secret_key_id, previous_secret, previous_key_id, previous_until, enabled, disabled_reason, failing_since, created_at, updated_at, relay, relay_seen_at"
    };
}
pub(crate) use endpoint_columns;

macro_rules! delivery_columns {
    () => {
        "id, endpoint_id, user_id, url, event_type, task_id, seq, data, status, attempts, next_attempt_at, lease_until, last_status, last_error, created_at, updated_at"
    };
}
pub(crate) use delivery_columns;

macro_rules! webhook_queries {
    ($store:ty) => {
        impl $store {
            pub async fn webhook_endpoint_insert(
                &self,
                new: &$crate::store::NewWebhookEndpoint,
            ) -> $crate::store::StoreResult<$crate::store::WebhookEndpointRow> {
                sqlx::query_as::<_, $crate::store::WebhookEndpointRow>(
                    $crate::store::sql::webhooks::WEBHOOK_ENDPOINT_INSERT,
                )
                .bind(new.id)
                .bind(new.user_id)
                .bind(&new.url)
                .bind(&new.description)
                .bind(&new.events)
                .bind(&new.secret)
                .bind(&new.secret_key_id)
                .bind($crate::store::now())
                .bind(new.relay)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn webhook_endpoints_of_user(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookEndpointRow>> {
                sqlx::query_as::<_, $crate::store::WebhookEndpointRow>(
                    $crate::store::sql::webhooks::WEBHOOK_ENDPOINTS_OF_USER,
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn webhook_endpoints_all(
                &self,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookEndpointRow>> {
                sqlx::query_as::<_, $crate::store::WebhookEndpointRow>(
                    $crate::store::sql::webhooks::WEBHOOK_ENDPOINTS_ALL,
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn webhook_endpoint_get(
                &self,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::WebhookEndpointRow>> {
                sqlx::query_as::<_, $crate::store::WebhookEndpointRow>(
                    $crate::store::sql::webhooks::WEBHOOK_ENDPOINT_GET,
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Writes the mutable settings of `row` (url, description, events, enabled, disabled
            /// reason, failing since).
            pub async fn webhook_endpoint_update(
                &self,
                row: &$crate::store::WebhookEndpointRow,
            ) -> $crate::store::StoreResult<Option<$crate::store::WebhookEndpointRow>> {
                sqlx::query_as::<_, $crate::store::WebhookEndpointRow>(
                    $crate::store::sql::webhooks::WEBHOOK_ENDPOINT_UPDATE,
                )
                .bind(row.id)
                .bind(&row.url)
                .bind(&row.description)
                .bind(&row.events)
                .bind(row.enabled)
                .bind(&row.disabled_reason)
                .bind(row.failing_since)
                .bind($crate::store::now())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A new signing secret; the current one becomes the previous, signing until `until`.
            pub async fn webhook_endpoint_rotate(
                &self,
                id: uuid::Uuid,
                secret: &str,
                key_id: &str,
                until: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<$crate::store::WebhookEndpointRow>> {
                sqlx::query_as::<_, $crate::store::WebhookEndpointRow>(
                    $crate::store::sql::webhooks::WEBHOOK_ENDPOINT_ROTATE,
                )
                .bind(id)
                .bind(secret)
                .bind(key_id)
                .bind(until)
                .bind($crate::store::now())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Re-sealed secrets after a master key rotation.
            pub async fn webhook_secrets_replace(
                &self,
                sealed: &[$crate::store::SealedSecrets],
            ) -> $crate::store::StoreResult<u64> {
                let mut n = 0;
                for s in sealed {
                    n += sqlx::query($crate::store::sql::webhooks::WEBHOOK_SECRETS_REPLACE)
                        .bind(s.id)
                        .bind(&s.secret)
                        .bind(&s.key_id)
                        .bind(&s.previous)
                        .bind(&s.previous_key_id)
                        .execute(&self.pool)
                        .await
                        .map_err($crate::store::StoreError::from_sqlx)?
                        .rows_affected();
                }
                Ok(n)
            }

            pub async fn webhook_endpoint_delete(
                &self,
                id: uuid::Uuid,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_ENDPOINT_DELETE)
                    .bind(id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Marks an endpoint failing since `at` (kept if it already was); `ok` clears it.
            pub async fn webhook_endpoint_health(
                &self,
                id: uuid::Uuid,
                ok: bool,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                let q = if ok {
                    sqlx::query($crate::store::sql::webhooks::WEBHOOK_ENDPOINT_SUCCEEDED).bind(id)
                } else {
                    sqlx::query($crate::store::sql::webhooks::WEBHOOK_ENDPOINT_FAILED).bind(id).bind(at)
                };
                q.execute(&self.pool).await.map(|_| ()).map_err($crate::store::StoreError::from_sqlx)
            }

            /// Disables an enabled endpoint with `reason`; false if it was not enabled.
            pub async fn webhook_endpoint_disable(
                &self,
                id: uuid::Uuid,
                reason: &str,
            ) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_ENDPOINT_DISABLE)
                    .bind(id)
                    .bind(reason)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Endpoints failing or disabled, the longest failing first (the admin dashboard).
            pub async fn webhook_endpoints_failing(
                &self,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookEndpointRow>> {
                sqlx::query_as::<_, $crate::store::WebhookEndpointRow>(
                    $crate::store::sql::webhooks::WEBHOOK_ENDPOINTS_FAILING,
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A delivery of a message that is not a task's event (a `ping`), due at `at`.
            pub async fn webhook_delivery_insert(
                &self,
                id: uuid::Uuid,
                endpoint_id: uuid::Uuid,
                user_id: uuid::Uuid,
                event_type: &str,
                data: &serde_json::Value,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::WebhookDeliveryRow> {
                sqlx::query_as::<_, $crate::store::WebhookDeliveryRow>(
                    $crate::store::sql::webhooks::WEBHOOK_DELIVERY_INSERT,
                )
                .bind(id)
                .bind(endpoint_id)
                .bind(user_id)
                .bind(event_type)
                .bind(sqlx::types::Json(data))
                .bind(at)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// An endpoint's deliveries, newest first, created before `before`.
            pub async fn webhook_deliveries_of_endpoint(
                &self,
                endpoint_id: uuid::Uuid,
                before: Option<chrono::DateTime<chrono::Utc>>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookDeliveryRow>> {
                sqlx::query_as::<_, $crate::store::WebhookDeliveryRow>(
                    $crate::store::sql::webhooks::WEBHOOK_DELIVERIES_OF_ENDPOINT,
                )
                .bind(endpoint_id)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn webhook_delivery_get(
                &self,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::WebhookDeliveryRow>> {
                sqlx::query_as::<_, $crate::store::WebhookDeliveryRow>(
                    $crate::store::sql::webhooks::WEBHOOK_DELIVERY_GET,
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Sends a delivery again (the same message, so the same `webhook-id`) at `at`;
            /// false while an attempt of it is under way.
            pub async fn webhook_delivery_replay(
                &self,
                id: uuid::Uuid,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_DELIVERY_REPLAY)
                    .bind(id)
                    .bind(at)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Leases up to `limit` due deliveries until `lease_until`, counting an attempt each.
            pub async fn webhook_deliveries_claim(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookDeliveryRow>> {
                sqlx::query_as::<_, $crate::store::WebhookDeliveryRow>(
                    $crate::store::sql::webhooks::WEBHOOK_DELIVERIES_CLAIM,
                )
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Marks relay endpoint `endpoint_id` as pulled at `now`.
            pub async fn webhook_relay_seen(
                &self,
                endpoint_id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_RELAY_SEEN)
                    .bind(endpoint_id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Leases up to `limit` due deliveries of relay endpoint `endpoint_id` until
            /// `lease_until`, counting an attempt each.
            pub async fn webhook_relay_claim(
                &self,
                endpoint_id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookDeliveryRow>> {
                sqlx::query_as::<_, $crate::store::WebhookDeliveryRow>(
                    $crate::store::sql::webhooks::WEBHOOK_RELAY_CLAIM,
                )
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .bind(endpoint_id)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deletes relay endpoints (with their deliveries) last pulled before `before`.
            pub async fn webhook_relays_sweep(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_RELAYS_SWEEP)
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Records an attempt and the delivery's new state, in one transaction.
            pub async fn webhook_delivery_record(
                &self,
                id: uuid::Uuid,
                outcome: &$crate::store::WebhookOutcome,
            ) -> $crate::store::StoreResult<()> {
                let now = $crate::store::now();
                let mut tx = self.pool.begin().await.map_err($crate::store::StoreError::from_sqlx)?;
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_ATTEMPT_INSERT)
                    .bind(uuid::Uuid::now_v7())
                    .bind(id)
                    .bind(outcome.attempt)
                    .bind(outcome.status_code)
                    .bind(&outcome.error)
                    .bind(outcome.latency_ms)
                    .bind(&outcome.response_excerpt)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_DELIVERY_RECORD)
                    .bind(id)
                    .bind(outcome.status)
                    .bind(outcome.next_attempt_at)
                    .bind(outcome.status_code)
                    .bind(&outcome.error)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)?;
                tx.commit().await.map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn webhook_attempts_of(
                &self,
                delivery_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<$crate::store::WebhookAttemptRow>> {
                sqlx::query_as::<_, $crate::store::WebhookAttemptRow>($crate::store::sql::webhooks::WEBHOOK_ATTEMPTS_OF)
                    .bind(delivery_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deletes ended deliveries (and their attempts) created before `before`.
            pub async fn webhook_deliveries_sweep(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_DELIVERIES_SWEEP)
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A user's `credits.low` threshold.
            pub async fn webhook_settings_get(&self, user_id: uuid::Uuid) -> $crate::store::StoreResult<Option<i64>> {
                sqlx::query_scalar::<_, Option<i64>>($crate::store::sql::webhooks::WEBHOOK_SETTINGS_GET)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map(Option::flatten)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn webhook_settings_put(
                &self,
                user_id: uuid::Uuid,
                threshold: Option<i64>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::webhooks::WEBHOOK_SETTINGS_PUT)
                    .bind(user_id)
                    .bind(threshold)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deliveries still pending that were due before `before` (stuck).
            pub async fn webhook_deliveries_stuck(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>($crate::store::sql::webhooks::WEBHOOK_DELIVERIES_STUCK)
                    .bind(before)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}
pub(crate) use webhook_queries;
