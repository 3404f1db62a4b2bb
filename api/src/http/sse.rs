//! A lean Server-Sent Events response: the OpenAPI view of poem-openapi's `EventStream`
//! (the spec is the same), with a body that holds no buffer of its own between events.
//!
//! poem's SSE body turns the event stream into an `AsyncRead` and reads it back through
//! a `ReaderStream`, whose 4 KiB buffer stays allocated for as long as the stream is
//! open; with 10,000 streams open on waiting tasks that alone was ~40 MiB. Here each event
//! is formatted into a buffer of its own size and handed to the connection as one frame,
//! so an idle stream holds its follower, its keep-alive timer and nothing else.

use std::fmt::Write as _;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};

/// One event as it goes on the wire.
pub struct SseEvent {
    /// `id:` (omitted when `None`): what a client sends back as `Last-Event-ID`.
    pub id: Option<i64>,
    /// `event:` (the event's type).
    pub event: &'static str,
    /// `data:` (one line per line).
    pub data: String,
}

impl SseEvent {
    /// The event in the `text/event-stream` format, in a buffer of exactly its size.
    fn encode(&self) -> Bytes {
        let lines = self.data.split('\n').count().max(1);
        let mut out = String::with_capacity(32 + self.event.len() + self.data.len() + lines * 7);
        if let Some(id) = self.id {
            let _ = writeln!(out, "id: {id}");
        }
        if !self.event.is_empty() {
            let _ = writeln!(out, "event: {}", self.event);
        }
        for line in self.data.lines() {
            let _ = writeln!(out, "data: {line}");
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// An event stream of `E` (what the spec documents), sent as `SseEvent`s with a comment
/// line every `keep_alive` (so proxies and idle timeouts keep the connection).
pub struct EventStream<E> {
    events: BoxStream<'static, E>,
    to_event: fn(E) -> SseEvent,
    keep_alive: Duration,
}

impl<E: Send + 'static> EventStream<E> {
    pub fn new(events: BoxStream<'static, E>, to_event: fn(E) -> SseEvent, keep_alive: Duration) -> Self {
        Self { events, to_event, keep_alive }
    }
}

impl<E: Type + ToJSON + Send + 'static> Payload for EventStream<E> {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(E::schema_ref())),
            ..MetaSchema::new_with_format("array", "event-stream")
        }))
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }
}

impl<E: Type + ToJSON + Send + 'static> ApiResponse for EventStream<E> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType { content_type: Self::CONTENT_TYPE, schema: Self::schema_ref() }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }
}

impl<E: Send + 'static> IntoResponse for EventStream<E> {
    fn into_response(self) -> Response {
        let Self { mut events, to_event, keep_alive } = self;
        let start = tokio::time::Instant::now() + keep_alive;
        let mut tick = tokio::time::interval_at(start, keep_alive);
        // A client that stopped reading for a while gets one keep-alive when it reads
        // again, not one for every period it missed.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let body = futures::stream::poll_fn(move |cx| {
            if let Poll::Ready(next) = events.poll_next_unpin(cx) {
                return Poll::Ready(next.map(|e| Ok::<_, std::io::Error>(to_event(e).encode())));
            }
            tick.poll_tick(cx).map(|_| Some(Ok(Bytes::from_static(b":\n\n"))))
        });
        Response::builder()
            .content_type("text/event-stream")
            .header("X-Accel-Buffering", "no")
            .header("Cache-Control", "no-cache")
            .body(Body::from_bytes_stream(body))
    }
}

#[cfg(test)]
mod tests {
    use super::SseEvent;

    #[test]
    fn events_are_formatted_as_the_sse_format_says() {
        let with_id = SseEvent { id: Some(7), event: "completed", data: r#"{"a":1}"#.into() };
        assert_eq!(&with_id.encode()[..], b"id: 7\nevent: completed\ndata: {\"a\":1}\n\n");
        let progress = SseEvent { id: None, event: "progress", data: "one\ntwo".into() };
        assert_eq!(&progress.encode()[..], b"event: progress\ndata: one\ndata: two\n\n");
    }
}
