//! One scenario, four ways: through `tower::ServiceExt::oneshot` and over a real socket
//! (axum::serve on 127.0.0.1:0, hyper's pooled keep-alive client), each in the
//! application mode (`PageCacheLayer::new()`) and the shared mode
//! (`PageCacheLayer::shared()`). The inner service answers what the test scripts and
//! counts its full renders and the conditional requests it answered `304`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::Request as AxumRequest;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use cachemacro_runtime::{CacheStats, PageCache, PageCacheLayer};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How a request reaches the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `tower::ServiceExt::oneshot` on the router: what the layer itself does.
    Oneshot,
    /// A real socket: what hyper adds or strips on the wire is part of the answer.
    Socket,
}

/// Which rules the cache applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Application,
    Shared,
}

pub const BOTH: &[Mode] = &[Mode::Application, Mode::Shared];
pub const APPLICATION: &[Mode] = &[Mode::Application];
pub const SHARED: &[Mode] = &[Mode::Shared];

/// One of the four ways a scenario runs; named in every failure.
#[derive(Clone, Copy, Debug)]
pub struct Way {
    pub transport: Transport,
    pub mode: Mode,
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match self.transport {
            Transport::Oneshot => "oneshot",
            Transport::Socket => "socket",
        };
        let mode = match self.mode {
            Mode::Application => "application mode",
            Mode::Shared => "shared mode",
        };
        write!(f, "[{transport}, {mode}]")
    }
}

impl Way {
    /// The layer of this way's mode, before the test's own settings.
    pub fn layer(&self) -> PageCacheLayer {
        match self.mode {
            Mode::Application => PageCacheLayer::new(),
            Mode::Shared => PageCacheLayer::shared(),
        }
    }

    /// A cache with this way's defaults in front of `script`.
    pub async fn start(&self, script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> App {
        self.start_with(|layer| layer, script).await
    }

    /// A cache with this way's layer changed by `configure` in front of `script`.
    pub async fn start_with(
        &self,
        configure: impl FnOnce(PageCacheLayer) -> PageCacheLayer,
        script: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> App {
        let inner = Arc::new(Inner {
            script: Box::new(script),
            seen: Mutex::new(Vec::new()),
            renders: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            conditional_gate: Mutex::new(None),
        });
        let handler = {
            let inner = Arc::clone(&inner);
            move |request: AxumRequest| {
                let inner = Arc::clone(&inner);
                async move { inner.answer(request).await }
            }
        };
        let layer = configure(self.layer());
        let cache = layer.cache().clone();
        let router = Router::new().fallback(handler).layer(layer);
        let (host, client) = match self.transport {
            Transport::Oneshot => ("cache.test".to_owned(), None),
            Transport::Socket => {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let address = listener.local_addr().unwrap();
                let served = router.clone();
                tokio::spawn(async move { axum::serve(listener, served).await.unwrap() });
                let client = Client::builder(TokioExecutor::new()).build_http();
                (address.to_string(), Some(client))
            }
        };
        App {
            router,
            cache,
            client,
            host,
            inner,
        }
    }
}

/// How long one way of a scenario may take: far over what any needs.
const WAY_LIMIT: Duration = Duration::from_secs(30);

/// Runs `test` once for each transport and each of `modes`, all four at once (so that
/// their sleeps overlap), and fails with every way that failed, named.
pub async fn each_way<F, Fut>(modes: &[Mode], test: F)
where
    F: Fn(Way) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    each_way_over(&[Transport::Oneshot, Transport::Socket], modes, test).await;
}

/// [`each_way`] over some transports only: for what hyper would do itself on a socket
/// (it dates every response), so that only `oneshot` can tell whether the cache did.
pub async fn each_way_over<F, Fut>(transports: &[Transport], modes: &[Mode], test: F)
where
    F: Fn(Way) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut runs = Vec::new();
    for &transport in transports {
        for &mode in modes {
            let way = Way { transport, mode };
            let run = test(way);
            runs.push((
                way,
                tokio::spawn(async move {
                    // A hang names its way too, rather than stalling the whole target.
                    if tokio::time::timeout(WAY_LIMIT, run).await.is_err() {
                        panic!("did not finish within {WAY_LIMIT:?}");
                    }
                }),
            ));
        }
    }
    let mut failures = Vec::new();
    for (way, run) in runs {
        if let Err(error) = run.await {
            let message = match error.try_into_panic() {
                Ok(panic) => match panic.downcast::<String>() {
                    Ok(text) => *text,
                    Err(panic) => match panic.downcast::<&'static str>() {
                        Ok(text) => (*text).to_owned(),
                        Err(_) => "a panic without a message".to_owned(),
                    },
                },
                Err(error) => error.to_string(),
            };
            failures.push(format!("{way} failed: {message}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What the inner service was asked.
#[derive(Clone, Debug)]
pub struct Seen {
    /// 1 for the first request that reached the inner service.
    pub call: usize,
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }
}

/// What the inner service answers: status, headers and body.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A `304` carrying `headers`, as an origin answers a matching conditional request.
    pub fn not_modified() -> Reply {
        Reply::status(304, "")
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// The scripted inner service and its counters.
pub struct Inner {
    script: Box<dyn Fn(&Seen) -> Reply + Send + Sync>,
    seen: Mutex<Vec<Seen>>,
    renders: AtomicUsize,
    not_modified: AtomicUsize,
    /// While set, conditional requests wait here for a permit before being answered.
    conditional_gate: Mutex<Option<Arc<Semaphore>>>,
}

impl Inner {
    async fn answer(&self, request: AxumRequest) -> Response {
        let (parts, _) = request.into_parts();
        let seen = {
            let mut all = self.seen.lock().unwrap();
            let seen = Seen {
                call: all.len() + 1,
                method: parts.method,
                target: parts
                    .uri
                    .path_and_query()
                    .map_or("/".to_owned(), |target| target.as_str().to_owned()),
                headers: parts.headers,
            };
            all.push(seen.clone());
            seen
        };
        let conditional = seen.headers.contains_key(header::IF_NONE_MATCH)
            || seen.headers.contains_key(header::IF_MODIFIED_SINCE);
        let gate = self.conditional_gate.lock().unwrap().clone();
        if let (true, Some(gate)) = (conditional, gate) {
            gate.acquire().await.unwrap().forget();
        }
        let reply = (self.script)(&seen);
        if reply.status == 304 {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
        } else {
            self.renders.fetch_add(1, Ordering::SeqCst);
        }
        let mut response = Response::new(Body::from(reply.body));
        *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
        for (name, value) in reply.headers {
            response.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::try_from(value).unwrap(),
            );
        }
        response
    }
}

/// A cache in front of a scripted inner service, reached one way.
pub struct App {
    router: Router,
    cache: PageCache,
    client: Option<Client<HttpConnector, Full<Bytes>>>,
    host: String,
    inner: Arc<Inner>,
}

impl App {
    /// The scheme and authority requests are sent to: `http://host[:port]`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The counters of the app's page cache.
    pub fn stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Full renders of the inner service (every answer that was not a `304`).
    pub fn renders(&self) -> usize {
        self.inner.renders.load(Ordering::SeqCst)
    }

    /// Conditional requests the inner service answered `304`.
    pub fn not_modified(&self) -> usize {
        self.inner.not_modified.load(Ordering::SeqCst)
    }

    /// Every request that reached the inner service, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// The last request that reached the inner service.
    pub fn last_seen(&self) -> Seen {
        self.seen()
            .pop()
            .expect("the inner service was called at least once")
    }

    /// From now on, conditional requests wait at the inner service for a permit of the
    /// returned semaphore.
    pub fn hold_conditionals(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.inner.conditional_gate.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }

    pub async fn get(&self, target: &str) -> Answer {
        self.send(Req::get(target)).await
    }

    /// Two requests for a stale page with a validator: the first revalidates it, and its
    /// conditional request is held at the inner service; once that request is upstream,
    /// the second is sent and given 500 ms (generous: a stale answer takes microseconds,
    /// a wait lasts until the hold ends). Returns the first answer, and the second, or
    /// `None` when it waited for the revalidation.
    pub async fn get_during_revalidation(&self, target: &str) -> (Answer, Option<Answer>) {
        let gate = self.hold_conditionals();
        let before = self.seen().len();
        let leader = self.get(target);
        let follower = async {
            let upstream = async {
                while self.seen().len() == before {
                    tokio::task::yield_now().await;
                }
            };
            if tokio::time::timeout(Duration::from_secs(5), upstream)
                .await
                .is_err()
            {
                gate.add_permits(1);
                panic!("the stale page was not revalidated upstream");
            }
            let answer = tokio::time::timeout(Duration::from_millis(500), self.get(target)).await;
            gate.add_permits(1);
            answer.ok()
        };
        tokio::join!(leader, follower)
    }

    pub async fn send(&self, req: Req) -> Answer {
        let has_host = req
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"));
        match &self.client {
            None => {
                let mut request = Request::builder().method(req.method).uri(&req.target);
                if !has_host {
                    request = request.header(header::HOST, &self.host);
                }
                for (name, value) in &req.headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                let request = request.body(Body::from(req.body)).unwrap();
                let response = self.router.clone().oneshot(request).await.unwrap();
                let (parts, body) = response.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                Answer::new(parts.status, parts.headers, body)
            }
            Some(client) => {
                let mut request = Request::builder().method(req.method).uri(format!(
                    "{}{}",
                    self.origin(),
                    req.target
                ));
                for (name, value) in &req.headers {
                    request = request.header(name.as_str(), value.as_str());
                }
                let request = request.body(Full::new(Bytes::from(req.body))).unwrap();
                let response = client.request(request).await.unwrap();
                let (parts, body) = response.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                Answer::new(parts.status, parts.headers, body)
            }
        }
    }
}

/// A request to send.
#[derive(Clone, Debug)]
pub struct Req {
    method: Method,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn get(target: &str) -> Req {
        Req::new("GET", target)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Req {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    fn new(status: StatusCode, headers: HeaderMap, body: Bytes) -> Answer {
        Answer {
            status: status.as_u16(),
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// `x-cache`, or `""` when the cache did not answer.
    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// The `Age` header in seconds.
    pub fn age(&self) -> Option<u64> {
        self.header("age").map(|age| {
            age.parse()
                .unwrap_or_else(|_| panic!("Age is whole seconds: {age:?}"))
        })
    }
}

/// A time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn imf_fixdate(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// A time in the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`).
pub fn rfc850_date(time: SystemTime) -> String {
    let imf = imf_fixdate(time);
    let (weekday, rest) = imf.split_once(", ").unwrap();
    let fields: Vec<&str> = rest.split(' ').collect();
    let (day, month, year, clock) = (fields[0], fields[1], fields[2], fields[3]);
    let weekday = match weekday {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    format!("{weekday}, {day}-{month}-{} {clock} GMT", &year[2..])
}

/// A time in C's asctime form (`Sun Nov  6 08:49:37 1994`).
pub fn asctime_date(time: SystemTime) -> String {
    let imf = imf_fixdate(time);
    let (weekday, rest) = imf.split_once(", ").unwrap();
    let fields: Vec<&str> = rest.split(' ').collect();
    let (day, month, year, clock) = (fields[0], fields[1], fields[2], fields[3]);
    let day: u32 = day.parse().unwrap();
    format!("{weekday} {month} {day:>2} {clock} {year}")
}

/// Now plus (or, negative, minus) `seconds`.
pub fn shifted(seconds: i64) -> SystemTime {
    let now = SystemTime::now();
    let by = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        now + by
    } else {
        now - by
    }
}

impl App {
    /// Sends `req` twice: `true` when the second was a hit on the first's render, `false`
    /// when both rendered.
    pub async fn stores(&self, req: Req) -> bool {
        let before = self.renders();
        let first = self.send(req.clone()).await;
        let again = self.send(req).await;
        assert_eq!(first.x_cache(), "MISS", "the first request renders");
        match self.renders() - before {
            1 => {
                assert_eq!(again.x_cache(), "HIT", "one render, so the second is a hit");
                assert_eq!(again.body, first.body, "a hit serves the stored body");
                true
            }
            2 => {
                assert_ne!(again.x_cache(), "HIT", "two renders are not a hit");
                false
            }
            other => panic!("{other} renders for two requests"),
        }
    }
}

/// A page that says `Cache-Control: <cache_control>` and, when `etag` is given, answers
/// a conditional request carrying it with a `304` that also says `<on_304>` (the
/// `ETag` is repeated on the `304`, as §15.4.5 of RFC 9110 asks).
/// `reply` with `Age: 60`: with `max-age=60`, stale on arrival, without sleeping (kept
/// when it has a validator).
pub fn aged(reply: Reply) -> Reply {
    if reply.status == 304 {
        reply
    } else {
        reply.header("age", "60")
    }
}

pub fn validated_page(
    cache_control: &'static str,
    etag: &'static str,
    on_304: &'static str,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |seen: &Seen| {
        if seen.header("if-none-match") == Some(etag) {
            Reply::not_modified()
                .header("etag", etag)
                .header("cache-control", on_304)
        } else {
            Reply::ok(format!("render {}", seen.call))
                .header("etag", etag)
                .header("cache-control", cache_control)
        }
    }
}
