//! The one bridge between the two call modes.
//!
//! A blocking backend serves async callers on tokio's blocking pool
//! ([`on_blocking_pool`]), so a file commit or a synchronous client never stalls an
//! executor thread. An async backend serves sync callers through a runtime of its own
//! ([`OwnRuntime`]), so a sync caller inside or outside any runtime, even a
//! `current_thread` one, can never deadlock on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, OnceLock};
use std::task::{Context, Poll};

use super::backend::{Backend, Op, Reply};
use crate::StoreError;

/// Runs `backend.execute(op)` where it cannot block an executor: on tokio's blocking pool
/// when called from a tokio runtime, inline otherwise (no runtime, so nothing to block).
///
/// ```
/// use cachemacro_runtime::backend::{on_blocking_pool, Backend, Op, Reply};
/// use cachemacro_runtime::StoreError;
///
/// #[derive(Clone)]
/// struct Slow;
///
/// impl Backend for Slow {
///     fn execute(&self, _: Op) -> Result<Reply, StoreError> {
///         std::thread::sleep(std::time::Duration::from_millis(5));
///         Ok(Reply::Value(None))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let reply = on_blocking_pool(Slow, Op::Get { key: b"k".to_vec() }).await;
/// assert_eq!(reply.unwrap(), Reply::Value(None));
/// # }
/// ```
pub async fn on_blocking_pool<B: Backend>(backend: B, op: Op) -> Result<Reply, StoreError> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(move || backend.execute(op))
            .await
            .unwrap_or_else(|error| {
                Err(StoreError::Other(
                    format!("a store call on the blocking pool failed: {error}").into(),
                ))
            }),
        Err(_) => backend.execute(op),
    }
}

/// A tokio runtime that belongs to one backend: one worker thread named after the
/// backend, started on first use and stopped when the backend drops.
///
/// Connections of async clients (sqlx, for one) belong to the runtime that opened them;
/// one that opened them on a caller's runtime breaks when that runtime shuts down. With
/// every connection on the backend's own runtime:
///
/// * [`run`](OwnRuntime::run) serves async callers: the work is a task there, awaited
///   from any executor; dropping the future cancels it;
/// * [`block_on`](OwnRuntime::block_on) serves sync callers: outside any runtime it drives
///   the work on the calling thread (no thread hop); inside one, where `block_on` is
///   forbidden, it hands the work over and blocks the calling thread until it is done.
///
/// ```
/// use cachemacro_runtime::backend::OwnRuntime;
///
/// let runtime = OwnRuntime::new("cachemacro-doc");
/// assert_eq!(runtime.block_on(async { 6 * 7 }).unwrap(), 42);
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// assert_eq!(runtime.run(async { 6 * 7 }).await.unwrap(), 42);
/// # });
/// ```
pub struct OwnRuntime {
    name: &'static str,
    runtime: OnceLock<Result<tokio::runtime::Runtime, String>>,
}

impl OwnRuntime {
    /// A runtime whose worker thread is called `name`, started on first use.
    pub const fn new(name: &'static str) -> OwnRuntime {
        OwnRuntime {
            name,
            runtime: OnceLock::new(),
        }
    }

    /// The runtime, started on first call.
    pub fn handle(&self) -> Result<&tokio::runtime::Runtime, StoreError> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(self.name)
                    .enable_all()
                    .build()
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|error| StoreError::Other(format!("{}: {error}", self.name).into()))
    }

    /// Runs `work` on this runtime, blocking the calling thread until it is done.
    pub fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let runtime = self.handle()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(runtime.block_on(work));
        }
        let (answer, answered) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = answer.send(work.await);
        });
        answered
            .recv()
            .map_err(|_| StoreError::Other(format!("the {} runtime stopped", self.name).into()))
    }

    /// Runs `work` as a task of this runtime and awaits it from any executor; dropping the
    /// returned future cancels the task.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static {
        let name = self.name;
        let task = self
            .handle()
            .map(|runtime| CancelOnDrop(runtime.spawn(work)));
        async move {
            task?
                .await
                .map_err(|error| StoreError::Other(format!("{name}: {error}").into()))
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        // `Runtime`'s own drop blocks, which panics when the backend is dropped inside an
        // async context; nothing needs waiting for (work in flight is cancelled).
        if let Some(Ok(runtime)) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for OwnRuntime {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OwnRuntime")
            .field("name", &self.name)
            .field("started", &self.runtime.get().is_some())
            .finish()
    }
}

/// A task handle that aborts the task when the awaiting future is dropped.
struct CancelOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for CancelOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(context)
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
