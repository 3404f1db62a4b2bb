//! Loopback fakes of the paid providers' HTTP APIs (OpenAI, fal.ai, Tripo), scripted per
//! route: each `METHOD /path` has a queue of replies (the last one repeats), and every
//! request is recorded. The real provider clients talk to them over real HTTP.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Body, EndpointExt, IntoResponse, Response, handler, web::Data};

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string().into_bytes(),
            content_type: "application/json",
            headers: vec![],
            delay: Duration::ZERO,
        }
    }

    pub fn bytes(content_type: &'static str, body: Vec<u8>) -> Self {
        Self { status: 200, body, content_type, headers: vec![], delay: Duration::ZERO }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.as_bytes().to_vec(),
            content_type: "text/plain",
            headers: vec![],
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Hit {
    pub route: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The W3C trace context the caller sent, if any.
    pub traceparent: Option<String>,
    pub body: Vec<u8>,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
struct State {
    scripts: HashMap<String, VecDeque<Reply>>,
    hits: Vec<Hit>,
}

#[derive(Debug, Clone, Default)]
pub struct Fake {
    state: Arc<Mutex<State>>,
    pub base: String,
}

impl Fake {
    /// Replies to `route` (`"POST /v1/images/generations"`), in order; the last repeats.
    pub fn script(&self, route: &str, replies: Vec<Reply>) {
        self.state.lock().unwrap().scripts.insert(route.to_string(), replies.into());
    }

    pub fn hits(&self, route: &str) -> Vec<Hit> {
        self.state.lock().unwrap().hits.iter().filter(|h| h.route == route).cloned().collect()
    }

    pub fn clear_hits(&self) {
        self.state.lock().unwrap().hits.clear();
    }
}

#[handler]
async fn any(req: &poem::Request, body: Body, fake: Data<&Fake>) -> Response {
    let route = format!("{} {}", req.method(), req.uri().path());
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let hit = Hit {
        route: route.clone(),
        authorization: header("authorization"),
        traceparent: header("traceparent"),
        content_type: header("content-type"),
        body: body.into_vec().await.unwrap_or_default(),
    };
    let reply = {
        let mut state = fake.state.lock().unwrap();
        state.hits.push(hit);
        match state.scripts.get_mut(&route) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
    };
    let Some(reply) = reply else {
        return Response::builder().status(poem::http::StatusCode::NOT_FOUND).body(format!("no script for {route}"));
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = Response::builder()
        .status(poem::http::StatusCode::from_u16(reply.status).unwrap())
        .content_type(reply.content_type);
    for (name, value) in &reply.headers {
        resp = resp.header(*name, value.as_str());
    }
    resp.body(reply.body).into_response()
}

/// Starts a fake on a loopback port.
pub async fn start() -> Fake {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let fake = Fake { base: format!("http://{addr}"), ..Default::default() };
    let app = poem::Route::new().at("/*path", any).data(fake.clone());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    fake
}
