//! List operations as async streams over every page (boxed, so they can be used with
//! `.next().await` directly): each follows `nextCursor` until the last page, fetching a page
//! only when the previous one is used up.
//!
//! ```no_run
//! # async fn demo(client: funmagic_sdk::Client) -> Result<(), funmagic_sdk::Error<funmagic_sdk::types::ApiError>> {
//! use futures::TryStreamExt;
//! let images: Vec<_> = funmagic_sdk::pages::assets(&client, None)
//!     .try_filter(|a| std::future::ready(a.mime_type.starts_with("image/")))
//!     .try_collect()
//!     .await?;
//! println!("{} images", images.len());
//! # Ok(()) }
//! ```

use std::future::Future;

use futures::Stream;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::{Client, Error, types};

/// Page size the streams ask for (the API's largest).
pub const PAGE: u32 = 200;

type PageResult<T> = Result<(Vec<T>, Option<uuid::Uuid>), Error<types::ApiError>>;

/// Turns a page fetcher (`cursor` → items and the next cursor) into a stream of items.
pub fn paginate<T, F, Fut>(fetch: F) -> impl Stream<Item = Result<T, Error<types::ApiError>>>
where
    F: FnMut(Option<uuid::Uuid>) -> Fut,
    Fut: Future<Output = PageResult<T>>,
{
    // State: the fetcher, and the next cursor (`None` once the last page came).
    stream::try_unfold((fetch, Some(None::<uuid::Uuid>)), |(mut fetch, next)| async move {
        let Some(cursor) = next else { return Ok::<_, Error<types::ApiError>>(None) };
        let (items, next_cursor) = fetch(cursor).await?;
        let next = next_cursor.map(Some);
        Ok(Some((stream::iter(items.into_iter().map(Ok)), (fetch, next))))
    })
    .try_flatten()
}

fn page() -> Option<std::num::NonZeroU32> {
    std::num::NonZeroU32::new(PAGE)
}

/// Your files (of one module when given), newest first.
pub fn assets<'a>(
    client: &'a Client,
    module: Option<&'a types::Module>,
) -> BoxStream<'a, Result<types::Asset, Error<types::ApiError>>> {
    paginate(move |cursor| async move {
        let list = client.asset_list(cursor.as_ref(), page(), module).await?.into_inner();
        Ok((list.assets, list.next_cursor))
    })
    .boxed()
}

/// Your tasks, newest first, filtered by status and tool.
pub fn tasks<'a>(
    client: &'a Client,
    status: Option<types::TaskStatus>,
    tool: Option<&'a types::Slug60>,
) -> BoxStream<'a, Result<types::Task, Error<types::ApiError>>> {
    paginate(move |cursor| async move {
        let list = client.task_list(cursor.as_ref(), page(), status, tool).await?.into_inner();
        Ok((list.tasks, list.next_cursor))
    })
    .boxed()
}

/// Your credit history, newest first.
pub fn transactions(
    client: &Client,
    kind: Option<types::TransactionType>,
) -> BoxStream<'_, Result<types::CreditTransaction, Error<types::ApiError>>> {
    paginate(move |cursor| async move {
        let list = client.credits_transaction_list(cursor.as_ref(), page(), kind).await?.into_inner();
        Ok((list.transactions, list.next_cursor))
    })
    .boxed()
}

/// Every user matching `query` (email or name), newest first (admins).
pub fn users<'a>(
    client: &'a Client,
    query: Option<&'a types::Prose200>,
) -> BoxStream<'a, Result<types::User, Error<types::ApiError>>> {
    paginate(move |cursor| async move {
        let list = client.admin_user_list(cursor.as_ref(), page(), query).await?.into_inner();
        Ok((list.users, list.next_cursor))
    })
    .boxed()
}

/// Every user's tasks, filtered (admins).
pub fn all_tasks<'a>(
    client: &'a Client,
    status: Option<types::TaskStatus>,
    tool: Option<&'a types::Slug60>,
    user: Option<&'a uuid::Uuid>,
) -> BoxStream<'a, Result<types::Task, Error<types::ApiError>>> {
    paginate(move |cursor| async move {
        let list = client.admin_task_list(cursor.as_ref(), page(), status, tool, user).await?.into_inner();
        Ok((list.tasks, list.next_cursor))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_follows_every_cursor_and_stops_after_the_last_page() {
        let ids: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::new_v4()).collect();
        let calls = std::sync::Mutex::new(Vec::new());
        let items: Vec<u32> = paginate(|cursor| {
            calls.lock().unwrap().push(cursor);
            let page = match cursor {
                None => (vec![1, 2], Some(ids[0])),
                Some(c) if c == ids[0] => (vec![3], Some(ids[1])),
                Some(c) if c == ids[1] => (vec![], Some(ids[2])),
                Some(_) => (vec![4, 5], None),
            };
            async move { Ok(page) }
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(items, [1, 2, 3, 4, 5], "an empty page in the middle does not end the stream");
        assert_eq!(*calls.lock().unwrap(), [None, Some(ids[0]), Some(ids[1]), Some(ids[2])]);
    }
}
