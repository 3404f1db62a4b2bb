//! The credits ledger on both engines: grants, reservations and their resolution, each one
//! database transaction that also books its `credit_transactions` row. Expanded per engine
//! by [`ledger_queries!`]; `$db` is the sqlx database type. Writers lock the user's
//! `credits` row first (PostgreSQL row lock; SQLite `BEGIN IMMEDIATE`), so concurrent
//! operations on one account serialize and the checks they make stay true until commit.

macro_rules! ledger_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Creates the user's credits row if missing.
            async fn credits_ensure_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<()> {
                let now = $crate::store::now();
                sqlx::query($crate::store::sql::ledger::CREDITS_ENSURE_ON)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            async fn credits_row_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<$crate::store::CreditsRow> {
                sqlx::query_as::<_, $crate::store::CreditsRow>($crate::store::sql::ledger::CREDITS_ROW_ON)
                    .bind(user_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map(Option::unwrap_or_default)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            #[allow(clippy::too_many_arguments)]
            async fn credits_book_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                user_id: uuid::Uuid,
                kind: $crate::store::TransactionType,
                amount: i64,
                reserved_delta: i64,
                after: $crate::store::CreditsRow,
                reference: Option<&str>,
                description: Option<&str>,
            ) -> $crate::store::StoreResult<$crate::store::CreditTxRow> {
                sqlx::query_as::<_, $crate::store::CreditTxRow>($crate::store::sql::ledger::CREDITS_BOOK_ON)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user_id)
                    .bind(kind.as_str())
                    .bind(amount)
                    .bind(after.balance)
                    .bind(reserved_delta)
                    .bind(after.reserved_balance)
                    .bind(reference)
                    .bind(description)
                    .bind($crate::store::now())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn credits_get(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<$crate::store::CreditsRow> {
                let mut conn = self.pool.acquire().await?;
                Self::credits_row_on(&mut conn, user_id).await
            }

            /// Adds (or, for `admin_adjust`, removes) credits; once per `(kind, reference)`.
            /// A removal may not take available credits below zero.
            pub async fn credits_grant(
                &self,
                user_id: uuid::Uuid,
                kind: $crate::store::TransactionType,
                amount: i64,
                reference: &str,
                description: Option<&str>,
            ) -> Result<$crate::store::Booked<$crate::store::CreditTxRow>, $crate::store::LedgerError> {
                use $crate::store::{Booked, LedgerError, StoreError};
                let mut tx = self.write_tx().await?;
                Self::credits_ensure_on(&mut tx, user_id).await?;
                let (earned, spent) = if amount >= 0 { (amount, 0) } else { (0, -amount) };
                let updated = sqlx::query_as::<_, $crate::store::CreditsRow>($crate::store::sql::ledger::CREDITS_GRANT)
                    .bind(user_id)
                    .bind(amount)
                    .bind(earned)
                    .bind(spent)
                    .bind($crate::store::now())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(after) = updated else {
                    let available = Self::credits_row_on(&mut tx, user_id).await?.available();
                    return Err(LedgerError::Insufficient { available });
                };
                match Self::credits_book_on(&mut tx, user_id, kind, amount, 0, after, Some(reference), description)
                    .await
                {
                    Ok(row) => {
                        tx.commit().await?;
                        Ok(Booked::Applied(row))
                    }
                    // Booked before under this reference: roll back, change nothing.
                    Err(StoreError::Conflict(_)) => Ok(Booked::Duplicate),
                    Err(e) => Err(e.into()),
                }
            }

            /// Moves `amount` from available to reserved for `reference` (a task id).
            pub async fn credits_reserve_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                user_id: uuid::Uuid,
                reference: &str,
                amount: i64,
            ) -> Result<$crate::store::Booked<$crate::store::CreditsRow>, $crate::store::LedgerError> {
                use $crate::store::{Booked, LedgerError};
                Self::credits_ensure_on(&mut *conn, user_id).await?;
                let existing: Option<(uuid::Uuid, i64)> =
                    sqlx::query_as($crate::store::sql::ledger::CREDITS_RESERVE_ON)
                        .bind(reference)
                        .fetch_optional(&mut *conn)
                        .await?;
                if let Some((owner, reserved)) = existing {
                    return if owner == user_id && reserved == amount {
                        Ok(Booked::Duplicate)
                    } else {
                        Err(LedgerError::ReservationMismatch)
                    };
                }
                Self::credits_reserve_new_on(&mut *conn, user_id, reference, amount).await.map(Booked::Applied)
            }

            /// [`Self::credits_reserve_on`] for a reference that cannot have been reserved
            /// before (a task id made for this submission): three statements, no look-ups.
            /// A user without a credits row has nothing available.
            pub async fn credits_reserve_new_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                user_id: uuid::Uuid,
                reference: &str,
                amount: i64,
            ) -> Result<$crate::store::CreditsRow, $crate::store::LedgerError> {
                use $crate::store::LedgerError;
                let now = $crate::store::now();
                let updated = sqlx::query_as::<_, $crate::store::CreditsRow>(
                    $crate::store::sql::ledger::CREDITS_RESERVE_NEW_ON_UPDATE_CREDITS,
                )
                .bind(user_id)
                .bind(amount)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await?;
                let Some(after) = updated else {
                    let available = Self::credits_row_on(&mut *conn, user_id).await?.available();
                    return Err(LedgerError::Insufficient { available });
                };
                sqlx::query($crate::store::sql::ledger::CREDITS_RESERVE_NEW_ON_INSERT_CREDIT_RESERVATIONS)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user_id)
                    .bind(reference)
                    .bind(amount)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                let description = format!("reserved for {reference}");
                Self::credits_book_on(
                    &mut *conn,
                    user_id,
                    $crate::store::TransactionType::Reserve,
                    0,
                    amount,
                    after,
                    Some(reference),
                    Some(&description),
                )
                .await?;
                Ok(after)
            }

            /// [`Self::credits_reserve_on`] in a transaction of its own.
            pub async fn credits_reserve(
                &self,
                user_id: uuid::Uuid,
                reference: &str,
                amount: i64,
            ) -> Result<$crate::store::Booked<$crate::store::CreditsRow>, $crate::store::LedgerError> {
                use $crate::store::{Booked, StoreError};
                let mut tx = self.write_tx().await?;
                match Self::credits_reserve_on(&mut tx, user_id, reference, amount).await {
                    Ok(Booked::Applied(row)) => {
                        tx.commit().await?;
                        Ok(Booked::Applied(row))
                    }
                    // A concurrent reserve of the same reference won the unique key.
                    Err($crate::store::LedgerError::Store(StoreError::Conflict(_))) => Ok(Booked::Duplicate),
                    other => other,
                }
            }

            /// Resolves a reservation exactly once: `spend` credits are spent, the rest of
            /// the reservation is released. A repeat returns how it was resolved the first time.
            pub async fn credits_resolve(
                &self,
                reference: &str,
                spend: Option<i64>,
            ) -> Result<$crate::store::Booked<$crate::store::Resolution>, $crate::store::LedgerError> {
                let mut tx = self.write_tx().await?;
                let booked = Self::credits_resolve_on(&mut tx, reference, spend).await?;
                if matches!(booked, $crate::store::Booked::Applied(_)) {
                    tx.commit().await?;
                }
                Ok(booked)
            }

            /// [`Self::credits_resolve`] inside the caller's transaction.
            pub async fn credits_resolve_on(
                tx: &mut <$db as sqlx::Database>::Connection,
                reference: &str,
                spend: Option<i64>,
            ) -> Result<$crate::store::Booked<$crate::store::Resolution>, $crate::store::LedgerError> {
                use $crate::store::{Booked, LedgerError, Resolution};
                let reservation: Option<(uuid::Uuid, i64, String, i64)> =
                    sqlx::query_as($crate::store::sql::ledger::CREDITS_RESOLVE_ON_SELECT_CREDIT_RESERVATIONS)
                        .bind(reference)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((user_id, amount, _, _)) = reservation else { return Err(LedgerError::UnknownReservation) };
                let spend = spend.unwrap_or(amount);
                if spend < 0 || spend > amount {
                    return Err(LedgerError::SpendExceedsReservation);
                }
                // Lock the account first (PostgreSQL), then claim the reservation.
                Self::lock_credits_on(&mut *tx, user_id).await?;
                let claimed = sqlx::query($crate::store::sql::ledger::CREDITS_RESOLVE_ON_UPDATE_CREDIT_RESERVATIONS)
                    .bind(reference)
                    .bind(spend)
                    .bind($crate::store::now())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if claimed == 0 {
                    return Ok(Booked::Duplicate);
                }
                let release = amount - spend;
                let after = sqlx::query_as::<_, $crate::store::CreditsRow>(
                    $crate::store::sql::ledger::CREDITS_RESOLVE_ON_UPDATE_CREDITS,
                )
                .bind(user_id)
                .bind(spend)
                .bind(amount)
                .bind($crate::store::now())
                .fetch_one(&mut *tx)
                .await?;
                if spend > 0 {
                    let mid = $crate::store::CreditsRow { reserved_balance: after.reserved_balance + release, ..after };
                    let description = format!("spent on {reference}");
                    Self::credits_book_on(
                        &mut *tx,
                        user_id,
                        $crate::store::TransactionType::Spend,
                        -spend,
                        -spend,
                        mid,
                        Some(reference),
                        Some(&description),
                    )
                    .await?;
                }
                if release > 0 {
                    let description = format!("released from {reference}");
                    Self::credits_book_on(
                        &mut *tx,
                        user_id,
                        $crate::store::TransactionType::Refund,
                        0,
                        -release,
                        after,
                        Some(reference),
                        Some(&description),
                    )
                    .await?;
                }
                Ok(Booked::Applied(Resolution { spent: spend, released: release }))
            }

            /// How a reservation stands: `(amount, resolved spent)`; `None` spent while pending.
            pub async fn credits_reservation(
                &self,
                reference: &str,
            ) -> $crate::store::StoreResult<Option<(i64, Option<i64>)>> {
                let row: Option<(i64, String, i64)> = sqlx::query_as($crate::store::sql::ledger::CREDITS_RESERVATION)
                    .bind(reference)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(amount, status, spent)| (amount, (status == "resolved").then_some(spent))))
            }

            /// A page of a user's transactions, newest first.
            pub async fn credits_transactions(
                &self,
                user_id: uuid::Uuid,
                kind: Option<$crate::store::TransactionType>,
                before: Option<uuid::Uuid>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::CreditTxRow>> {
                sqlx::query_as::<_, $crate::store::CreditTxRow>($crate::store::sql::ledger::CREDITS_TRANSACTIONS)
                    .bind(user_id)
                    .bind(kind.map(|k| k.as_str()))
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Every ledger invariant of one account; an empty list means all hold.
            /// The ledger's invariants over all accounts at once, from three aggregates (the
            /// metrics' periodic check; `credits_invariant_violations` names the account):
            /// accounts out of bounds, and balances or reservations that the transactions
            /// and pending reservations do not add up to.
            pub async fn credits_ledger_violations(&self) -> $crate::store::StoreResult<Vec<String>> {
                let (balance, reserved, bad_accounts, amounts, reserved_deltas, pending): (i64, i64, i64, i64, i64, i64) =
                    sqlx::query_as($crate::store::sql::ledger::CREDITS_LEDGER_SNAPSHOT).fetch_one(&self.pool).await?;
                let mut v = Vec::new();
                if bad_accounts > 0 {
                    v.push(format!("{bad_accounts} account(s) with a balance or reservation out of bounds"));
                }
                if amounts != balance {
                    v.push(format!("transaction amounts add up to {amounts}, balances to {balance}"));
                }
                if reserved_deltas != reserved {
                    v.push(format!("reserved deltas add up to {reserved_deltas}, reservations held to {reserved}"));
                }
                if pending != reserved {
                    v.push(format!("pending reservations add up to {pending}, reservations held to {reserved}"));
                }
                Ok(v)
            }

            pub async fn credits_invariant_violations(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<String>> {
                type Snapshot = (
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                    Option<i64>,
                );
                let (balance, reserved, earned, spent, sum_amount, sum_reserved, pending, last_balance, last_reserved): Snapshot =
                    sqlx::query_as($crate::store::sql::ledger::CREDITS_INVARIANT_SNAPSHOT)
                        .bind(user_id)
                        .fetch_one(&self.pool)
                        .await?;
                let c = $crate::store::CreditsRow {
                    balance: balance.unwrap_or(0),
                    reserved_balance: reserved.unwrap_or(0),
                    lifetime_earned: earned.unwrap_or(0),
                    lifetime_spent: spent.unwrap_or(0),
                };
                let last = last_balance.zip(last_reserved);
                let mut v = Vec::new();
                if c.balance < 0 {
                    v.push(format!("balance {} < 0", c.balance));
                }
                if c.reserved_balance < 0 || c.reserved_balance > c.balance {
                    v.push(format!("reserved {} outside 0..={}", c.reserved_balance, c.balance));
                }
                if c.lifetime_earned - c.lifetime_spent != c.balance {
                    v.push(format!(
                        "earned {} - spent {} != balance {}",
                        c.lifetime_earned, c.lifetime_spent, c.balance
                    ));
                }
                if sum_amount.unwrap_or(0) != c.balance {
                    v.push(format!("sum of transaction amounts {} != balance {}", sum_amount.unwrap_or(0), c.balance));
                }
                if sum_reserved.unwrap_or(0) != c.reserved_balance {
                    v.push(format!(
                        "sum of reserved deltas {} != reserved {}",
                        sum_reserved.unwrap_or(0),
                        c.reserved_balance
                    ));
                }
                if pending.unwrap_or(0) != c.reserved_balance {
                    v.push(format!("pending reservations {} != reserved {}", pending.unwrap_or(0), c.reserved_balance));
                }
                if let Some((balance_after, reserved_after)) = last
                    && (balance_after != c.balance || reserved_after != c.reserved_balance)
                {
                    v.push(format!(
                        "last row says {balance_after}/{reserved_after}, account says {}/{}",
                        c.balance, c.reserved_balance
                    ));
                }
                Ok(v)
            }

            pub async fn credit_package_list(
                &self,
                active_only: bool,
            ) -> $crate::store::StoreResult<Vec<$crate::store::CreditPackageRow>> {
                sqlx::query_as::<_, $crate::store::CreditPackageRow>($crate::store::sql::ledger::CREDIT_PACKAGE_LIST)
                    .bind(active_only)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn credit_package_get(
                &self,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::CreditPackageRow>> {
                sqlx::query_as::<_, $crate::store::CreditPackageRow>($crate::store::sql::ledger::CREDIT_PACKAGE_GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Inserts (`id` new) or replaces a package.
            pub async fn credit_package_upsert(
                &self,
                p: &$crate::store::CreditPackageRow,
            ) -> $crate::store::StoreResult<$crate::store::CreditPackageRow> {
                sqlx::query_as::<_, $crate::store::CreditPackageRow>($crate::store::sql::ledger::CREDIT_PACKAGE_UPSERT)
                    .bind(p.id)
                    .bind(&p.name)
                    .bind(p.credits)
                    .bind(p.price)
                    .bind(&p.currency)
                    .bind(&p.stripe_price_id)
                    .bind(p.is_active)
                    .bind(p.sort_order)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deletes a package never used by a checkout; true if deleted.
            pub async fn credit_package_delete(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::ledger::CREDIT_PACKAGE_DELETE)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn checkout_create(&self, c: &$crate::store::CheckoutRow) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::ledger::CHECKOUT_CREATE)
                    .bind(&c.id)
                    .bind(c.user_id)
                    .bind(c.package_id)
                    .bind(c.credits)
                    .bind(c.amount)
                    .bind(&c.currency)
                    .bind(&c.url)
                    .bind(&c.status)
                    .bind(c.created_at)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn checkout_get(
                &self,
                id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::CheckoutRow>> {
                sqlx::query_as::<_, $crate::store::CheckoutRow>($crate::store::sql::ledger::CHECKOUT_GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// open → expired, open/expired → completed (paid money wins); completed is final.
            pub async fn checkout_set_status(
                &self,
                id: &str,
                status: $crate::store::CheckoutStatus,
            ) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::ledger::CHECKOUT_SET_STATUS)
                    .bind(id)
                    .bind(status)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Records a webhook event id; false if it was seen before.
            pub async fn stripe_event_record(&self, id: &str, kind: &str) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::ledger::STRIPE_EVENT_RECORD)
                    .bind(id)
                    .bind(kind)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn stripe_event_forget(&self, id: &str) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::ledger::STRIPE_EVENT_FORGET)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Claims an idempotency key for a request, or reports what happened to it.
            pub async fn idempotency_begin(
                &self,
                user_id: uuid::Uuid,
                key: &str,
                operation: &str,
                request_hash: &str,
            ) -> $crate::store::StoreResult<$crate::store::IdempotencyState> {
                use $crate::store::IdempotencyState;
                let inserted = sqlx::query($crate::store::sql::ledger::IDEMPOTENCY_BEGIN_INSERT_IDEMPOTENCY_KEYS)
                    .bind(user_id)
                    .bind(key)
                    .bind(operation)
                    .bind(request_hash)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if inserted == 1 {
                    return Ok(IdempotencyState::Claimed);
                }
                // The same request still in flight after IDEMPOTENCY_IN_FLIGHT died on the way
                // (no answer was stored): this retry takes the key over.
                let cutoff = $crate::store::now()
                    - chrono::Duration::from_std($crate::store::IDEMPOTENCY_IN_FLIGHT)
                        .unwrap_or(chrono::Duration::seconds(60));
                let taken = sqlx::query($crate::store::sql::ledger::IDEMPOTENCY_BEGIN_UPDATE_IDEMPOTENCY_KEYS)
                    .bind(user_id)
                    .bind(key)
                    .bind(operation)
                    .bind(request_hash)
                    .bind($crate::store::now())
                    .bind(cutoff)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if taken == 1 {
                    return Ok(IdempotencyState::Claimed);
                }
                let row: Option<(String, String, Option<i32>, Option<String>)> =
                    sqlx::query_as($crate::store::sql::ledger::IDEMPOTENCY_BEGIN_SELECT_IDEMPOTENCY_KEYS)
                        .bind(user_id)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(match row {
                    None => IdempotencyState::InProgress,
                    Some((op, hash, _, _)) if op != operation || hash != request_hash => IdempotencyState::Mismatch,
                    Some((_, _, Some(status), Some(body))) => IdempotencyState::Replay { status: status as u16, body },
                    Some(_) => IdempotencyState::InProgress,
                })
            }

            /// Stores the answer for replays, or (`None`) releases the key for a retry.
            pub async fn idempotency_finish(
                &self,
                user_id: uuid::Uuid,
                key: &str,
                response: Option<(u16, &str)>,
            ) -> $crate::store::StoreResult<()> {
                let result = match response {
                    Some((status, body)) => {
                        sqlx::query($crate::store::sql::ledger::IDEMPOTENCY_FINISH_UPDATE_IDEMPOTENCY_KEYS)
                            .bind(user_id)
                            .bind(key)
                            .bind(i32::from(status))
                            .bind(body)
                            .execute(&self.pool)
                            .await
                    }
                    None => {
                        sqlx::query($crate::store::sql::ledger::IDEMPOTENCY_FINISH_DELETE_IDEMPOTENCY_KEYS)
                            .bind(user_id)
                            .bind(key)
                            .execute(&self.pool)
                            .await
                    }
                };
                result.map(|_| ()).map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use ledger_queries;
