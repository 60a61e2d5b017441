//! [`EncodedStore`]: the one typed adapter over every byte-level backend.
//!
//! Redis, memcached, the disk store and the SQL table are [`Backend`]s: they take rendered
//! keys and encoded values and answer with bytes. This adapter turns any of them into a
//! [`Store`] and a [`CacheApi`], every call in both modes, and is the one place where keys
//! are rendered ([`key_space`]), values encoded ([`codec`]), namespaces and versions
//! applied, unreachable servers skipped ([`breaker`]) and faults logged. Sync and async
//! callers share each call's encoding and decoding; only the transport differs, and the
//! backend's native mode serves the other through [`bridge`].

pub(crate) mod backend;
pub(crate) mod breaker;
pub(crate) mod bridge;
pub(crate) mod builder;
pub(crate) mod codec;
pub(crate) mod key_space;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use self::backend::{Backend, Op, Reply};
use self::breaker::{Admission, Breakers};
use self::codec::{decode_value, encode_value, Codec, MessagePack};
use self::key_space::KeySpace;
use crate::store::api::{CacheApi, CasToken};
use crate::store::{Store, StoreError, StoreStats};

/// A [`Store`] and [`CacheApi`] over a byte-level [`Backend`], with values encoded by a
/// [`Codec`]. `RedisStore`, `MemcachedStore`, `DiskStore` and `SqlStore` are this type
/// over the crate's backends; wrap a backend of your own with
/// [`StoreBuilder::over`](builder::StoreBuilder::over) (see [`Backend`] for a complete example).
///
/// Clones share the backend, its connections and its fail-fast state.
///
/// ```
/// use cachemacro_runtime::backend::{Backend, Op, Reply};
/// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
/// # #[derive(Clone)] struct Nowhere;
/// # impl Backend for Nowhere {
/// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
/// # }
/// use cachemacro_runtime::Store;
///
/// let store: EncodedStore<Nowhere> = StoreBuilder::over(Nowhere).build()?;
/// // A fault of the backend is the store's error; a memoized function would compute.
/// let read: Result<Option<u32>, _> = store.get(&7u32);
/// assert!(matches!(read, Err(StoreError::Unsupported("get"))));
/// # Ok::<(), StoreError>(())
/// ```
pub struct EncodedStore<B, C = MessagePack> {
    backend: B,
    codec: Arc<C>,
    keys: KeySpace,
    ttl: Option<Duration>,
    breakers: Arc<Breakers>,
}

/// A value read with its compare-and-set token.
type Versioned<V> = (V, CasToken);

/// An operation, and how to read its reply into the typed answer: built once for each
/// `CacheApi` call and run by either mode.
struct Call<Read> {
    op: Result<Op, StoreError>,
    read: Read,
}

impl<B: Backend, C: Codec> EncodedStore<B, C> {
    pub(crate) fn from_parts(
        backend: B,
        codec: C,
        keys: KeySpace,
        ttl: Option<Duration>,
        breakers: Arc<Breakers>,
    ) -> Self {
        EncodedStore {
            backend,
            codec: Arc::new(codec),
            keys,
            ttl,
            breakers,
        }
    }

    /// The backend under this store.
    ///
    /// ```
    /// use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// use cachemacro_runtime::{EncodedStore, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    ///
    /// let store: EncodedStore<Nowhere> = StoreBuilder::over(Nowhere).build()?;
    /// let _backend: &Nowhere = store.backend();
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The same store (same backend, connections and settings) in namespace `namespace`.
    ///
    /// ```
    /// # use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// # use cachemacro_runtime::{StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    /// let books = StoreBuilder::over(Nowhere).namespace("books").build()?;
    /// let authors = books.in_namespace("authors");
    /// # let _ = authors;
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn in_namespace(&self, namespace: impl Into<String>) -> Self {
        EncodedStore {
            keys: self.keys.in_namespace(namespace.into()),
            ..self.clone()
        }
    }

    /// How many calls reached each server (in the backend's order); calls skipped because
    /// the server was marked down are not counted. What the outage tests and benchmarks
    /// read.
    ///
    /// ```
    /// # use cachemacro_runtime::backend::{Backend, Op, Reply};
    /// # use cachemacro_runtime::{Store, StoreBuilder, StoreError};
    /// # #[derive(Clone)] struct Nowhere;
    /// # impl Backend for Nowhere {
    /// #     fn execute(&self, op: Op) -> Result<Reply, StoreError> { Err(StoreError::Unsupported(op.name())) }
    /// # }
    /// let store = StoreBuilder::over(Nowhere).build()?;
    /// let _ = Store::<u32, u32>::get(&store, &1);
    /// assert_eq!(store.server_calls(), vec![1]);
    /// # Ok::<(), StoreError>(())
    /// ```
    pub fn server_calls(&self) -> Vec<u64> {
        self.breakers.attempts()
    }

    /// Where this store's keys live; memcached routes by it.
    #[cfg_attr(not(feature = "memcached"), allow(dead_code))]
    pub(crate) fn key_space(&self) -> &KeySpace {
        &self.keys
    }

    /// The servers `op` reaches, each admitted by its breaker; the first server marked
    /// down fails the call at once.
    fn admit(&self, op: &Op) -> Result<Vec<(usize, Admission)>, StoreError> {
        if self.backend.servers() == 1 {
            // Every call reaches the one server: no keys to route.
            let admission = self.breakers.admit(0, || self.backend.describe(0))?;
            return Ok(vec![(0, admission)]);
        }
        let mut servers: Vec<usize> = match op {
            Op::Clear { namespace } => self.backend.clear_route(namespace),
            _ => op
                .keys()
                .into_iter()
                .map(|key| self.backend.route(key))
                .collect(),
        };
        servers.sort_unstable();
        servers.dedup();
        let mut admitted = Vec::with_capacity(servers.len());
        for server in servers {
            match self
                .breakers
                .admit(server, || self.backend.describe(server))
            {
                Ok(admission) => admitted.push((server, admission)),
                Err(error) => {
                    for (probed, admission) in admitted {
                        self.breakers.release(probed, admission);
                    }
                    return Err(error);
                }
            }
        }
        Ok(admitted)
    }

    fn record(
        &self,
        op: &'static str,
        admitted: &[(usize, Admission)],
        outcome: &Result<Reply, StoreError>,
    ) {
        if let Err(error) = outcome {
            tracing::debug!(operation = op, %error, "cache backend call failed");
        }
        for &(server, admission) in admitted {
            self.breakers
                .record(server, admission, outcome, || self.backend.describe(server));
        }
    }

    fn execute(&self, op: Op) -> Result<Reply, StoreError> {
        let (name, admitted) = (op.name(), self.admit(&op)?);
        let outcome = self.backend.execute(op);
        self.record(name, &admitted, &outcome);
        outcome
    }

    async fn execute_async(&self, op: Op) -> Result<Reply, StoreError> {
        let (name, admitted) = (op.name(), self.admit(&op)?);
        let outcome = self.backend.execute_async(op).await;
        self.record(name, &admitted, &outcome);
        outcome
    }

    fn run<T>(
        &self,
        call: Call<impl FnOnce(Reply) -> Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        (call.read)(self.execute(call.op?)?)
    }

    async fn run_async<T>(
        &self,
        call: Call<impl FnOnce(Reply) -> Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        (call.read)(self.execute_async(call.op?).await?)
    }

    fn key<K: Serialize + ?Sized>(&self, key: &K) -> Result<Vec<u8>, StoreError> {
        self.keys.key(key)
    }

    fn keys<K: Serialize>(&self, keys: &[K]) -> Result<Vec<Vec<u8>>, StoreError> {
        keys.iter().map(|key| self.key(key)).collect()
    }

    fn value<V: Serialize + ?Sized>(&self, value: &V) -> Result<Vec<u8>, StoreError> {
        encode_value(&*self.codec, value)
    }

    fn decode<V: DeserializeOwned>(&self, found: Option<Vec<u8>>) -> Result<Option<V>, StoreError> {
        found
            .map(|bytes| decode_value(&*self.codec, &bytes))
            .transpose()
    }

    fn ttl_or_default(&self, ttl: Option<Duration>) -> Option<Duration> {
        ttl.or(self.ttl)
    }
}

/// The calls, built once for both modes.
impl<B: Backend, C: Codec> EncodedStore<B, C> {
    fn get_call<K: Serialize, V: DeserializeOwned>(
        &self,
        key: &K,
    ) -> Call<impl FnOnce(Reply) -> Result<Option<V>, StoreError> + '_> {
        Call {
            op: self.key(key).map(|key| Op::Get { key }),
            read: |reply| self.decode(expect::value(reply)?),
        }
    }

    fn set_call<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        ttl: Option<Duration>,
    ) -> Call<impl FnOnce(Reply) -> Result<(), StoreError>> {
        let ttl = self.ttl_or_default(ttl);
        Call {
            op: self.key(key).and_then(|key| {
                Ok(Op::Set {
                    key,
                    value: self.value(value)?,
                    ttl,
                })
            }),
            read: expect::done,
        }
    }

    fn delete_call<K: Serialize>(
        &self,
        key: &K,
    ) -> Call<impl FnOnce(Reply) -> Result<bool, StoreError>> {
        Call {
            op: self.key(key).map(|key| Op::Delete { key }),
            read: expect::applied,
        }
    }

    fn clear_call(&self) -> Call<impl FnOnce(Reply) -> Result<(), StoreError>> {
        Call {
            op: Ok(Op::Clear {
                namespace: self.keys.namespace_str().as_bytes().to_vec(),
            }),
            read: expect::done,
        }
    }

    fn add_call<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        ttl: Option<Duration>,
    ) -> Call<impl FnOnce(Reply) -> Result<bool, StoreError>> {
        let ttl = self.ttl_or_default(ttl);
        Call {
            op: self.key(key).and_then(|key| {
                Ok(Op::Add {
                    key,
                    value: self.value(value)?,
                    ttl,
                })
            }),
            read: expect::applied,
        }
    }

    fn touch_call<K: Serialize>(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> Call<impl FnOnce(Reply) -> Result<bool, StoreError>> {
        Call {
            op: self.key(key).map(|key| Op::Touch { key, ttl }),
            read: expect::applied,
        }
    }

    fn incr_call<K: Serialize>(
        &self,
        key: &K,
        delta: i64,
        create: bool,
    ) -> Call<impl FnOnce(Reply) -> Result<Option<i64>, StoreError>> {
        Call {
            op: self.key(key).map(|key| Op::Incr { key, delta, create }),
            read: expect::counter,
        }
    }

    // A reader's type is written out, as in every other call; an alias would hide it.
    #[allow(clippy::type_complexity)]
    fn gets_call<K: Serialize, V: DeserializeOwned>(
        &self,
        key: &K,
    ) -> Call<impl FnOnce(Reply) -> Result<Option<Versioned<V>>, StoreError> + '_> {
        Call {
            op: self.key(key).map(|key| Op::Gets { key }),
            read: |reply| {
                expect::versioned(reply)?
                    .map(|(bytes, token)| Ok((decode_value(&*self.codec, &bytes)?, token)))
                    .transpose()
            },
        }
    }

    fn cas_call<K: Serialize, V: Serialize>(
        &self,
        key: &K,
        value: &V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Call<impl FnOnce(Reply) -> Result<bool, StoreError>> {
        let ttl = self.ttl_or_default(ttl);
        let op = self.key(key).and_then(|key| {
            Ok(Op::Cas {
                key,
                value: self.value(value)?,
                token: token.clone(),
                ttl,
            })
        });
        Call {
            op,
            read: expect::applied,
        }
    }

    fn get_many_call<K: Serialize, V: DeserializeOwned>(
        &self,
        keys: &[K],
    ) -> Call<impl FnOnce(Reply) -> Result<Vec<Option<V>>, StoreError> + '_> {
        Call {
            op: self.keys(keys).map(|keys| Op::GetMany { keys }),
            read: |reply| {
                expect::values(reply)?
                    .into_iter()
                    .map(|found| self.decode(found))
                    .collect()
            },
        }
    }

    fn set_many_call<K: Serialize, V: Serialize>(
        &self,
        entries: &[(K, V)],
        ttl: Option<Duration>,
    ) -> Call<impl FnOnce(Reply) -> Result<(), StoreError>> {
        let ttl = self.ttl_or_default(ttl);
        let entries = entries
            .iter()
            .map(|(key, value)| Ok((self.key(key)?, self.value(value)?)))
            .collect::<Result<Vec<_>, StoreError>>();
        Call {
            op: entries.map(|entries| Op::SetMany { entries, ttl }),
            read: expect::done,
        }
    }

    fn delete_many_call<K: Serialize>(
        &self,
        keys: &[K],
    ) -> Call<impl FnOnce(Reply) -> Result<usize, StoreError>> {
        Call {
            op: self.keys(keys).map(|keys| Op::DeleteMany { keys }),
            read: expect::count,
        }
    }

    fn move_version_call<K: Serialize>(
        &self,
        key: &K,
        delta: i64,
    ) -> Call<impl FnOnce(Reply) -> Result<Option<u64>, StoreError>> {
        let moved = self.keys.shifted_version(delta).and_then(|version| {
            let op = Op::Move {
                from: self.key(key)?,
                to: self.keys.key_at_version(version, key)?,
            };
            Ok((op, version))
        });
        let version = moved.as_ref().map_or(0, |(_, version)| *version);
        Call {
            op: moved.map(|(op, _)| op),
            read: move |reply| Ok(expect::applied(reply)?.then_some(version)),
        }
    }
}

/// Readers of the reply each operation answers with; anything else is a backend bug,
/// reported as an error rather than a panic.
mod expect {
    use super::{CasToken, Reply, StoreError};

    fn mismatch(wanted: &str, reply: &Reply) -> StoreError {
        StoreError::Other(format!("the backend answered {reply:?} where {wanted} was due").into())
    }

    pub(super) fn done(reply: Reply) -> Result<(), StoreError> {
        match reply {
            Reply::Done => Ok(()),
            other => Err(mismatch("Done", &other)),
        }
    }

    pub(super) fn applied(reply: Reply) -> Result<bool, StoreError> {
        match reply {
            Reply::Applied(applied) => Ok(applied),
            other => Err(mismatch("Applied", &other)),
        }
    }

    pub(super) fn count(reply: Reply) -> Result<usize, StoreError> {
        match reply {
            Reply::Count(count) => Ok(count),
            other => Err(mismatch("Count", &other)),
        }
    }

    pub(super) fn value(reply: Reply) -> Result<Option<Vec<u8>>, StoreError> {
        match reply {
            Reply::Value(found) => Ok(found),
            other => Err(mismatch("Value", &other)),
        }
    }

    pub(super) fn values(reply: Reply) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        match reply {
            Reply::Values(found) => Ok(found),
            other => Err(mismatch("Values", &other)),
        }
    }

    pub(super) fn counter(reply: Reply) -> Result<Option<i64>, StoreError> {
        match reply {
            Reply::Counter(counter) => Ok(counter),
            other => Err(mismatch("Counter", &other)),
        }
    }

    pub(super) fn versioned(reply: Reply) -> Result<Option<(Vec<u8>, CasToken)>, StoreError> {
        match reply {
            Reply::Versioned(found) => Ok(found),
            other => Err(mismatch("Versioned", &other)),
        }
    }
}

/// A counter that is created on its first increment must exist afterwards.
fn created(counter: Option<i64>) -> Result<i64, StoreError> {
    counter.ok_or_else(|| StoreError::Other("the backend did not create the counter".into()))
}

impl<K, V, B, C> Store<K, V> for EncodedStore<B, C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
    B: Backend,
    C: Codec,
{
    fn get(&self, key: &K) -> Result<Option<V>, StoreError> {
        self.run(self.get_call(key))
    }

    fn insert(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.run(self.set_call(&key, &value, ttl))
    }

    fn remove(&self, key: &K) -> Result<bool, StoreError> {
        self.run(self.delete_call(key))
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.run(self.clear_call())
    }

    fn with_namespace(mut self, namespace: &'static str) -> Self {
        self.keys.adopt_namespace(namespace);
        self
    }

    fn stats(&self) -> StoreStats {
        self.backend.stats(self.keys.namespace_str().as_bytes())
    }

    fn get_async(&self, key: &K) -> impl Future<Output = Result<Option<V>, StoreError>> + Send
    where
        V: Send,
    {
        self.run_async(self.get_call(key))
    }

    fn insert_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.run_async(self.set_call(&key, &value, ttl))
    }

    fn remove_async(&self, key: &K) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.run_async(self.delete_call(key))
    }

    fn clear_async(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.run_async(self.clear_call())
    }
}

/// Empty batches send nothing: a backend's multi-key command may need at least one key.
impl<K, V, B, C> CacheApi<K, V> for EncodedStore<B, C>
where
    K: Serialize + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
    B: Backend,
    C: Codec,
{
    fn add(&self, key: K, value: V, ttl: Option<Duration>) -> Result<bool, StoreError> {
        self.run(self.add_call(&key, &value, ttl))
    }

    fn touch(&self, key: &K, ttl: Option<Duration>) -> Result<bool, StoreError> {
        self.run(self.touch_call(key, ttl))
    }

    fn incr(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        created(self.run(self.incr_call(key, delta, true))?)
    }

    fn incr_existing(&self, key: &K, delta: i64) -> Result<Option<i64>, StoreError> {
        self.run(self.incr_call(key, delta, false))
    }

    fn gets(&self, key: &K) -> Result<Option<(V, CasToken)>, StoreError> {
        self.run(self.gets_call(key))
    }

    fn cas(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.run(self.cas_call(&key, &value, token, ttl))
    }

    fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run(self.get_many_call(keys))
    }

    fn set_many(&self, entries: Vec<(K, V)>, ttl: Option<Duration>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.run(self.set_many_call(&entries, ttl))
    }

    fn delete_many(&self, keys: &[K]) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.run(self.delete_many_call(keys))
    }

    fn incr_version(&self, key: &K, delta: i64) -> Result<Option<u64>, StoreError> {
        self.run(self.move_version_call(key, delta))
    }

    fn add_async(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.run_async(self.add_call(&key, &value, ttl))
    }

    fn touch_async(
        &self,
        key: &K,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.run_async(self.touch_call(key, ttl))
    }

    async fn incr_async(&self, key: &K, delta: i64) -> Result<i64, StoreError> {
        created(self.run_async(self.incr_call(key, delta, true)).await?)
    }

    fn incr_existing_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send {
        self.run_async(self.incr_call(key, delta, false))
    }

    fn gets_async(
        &self,
        key: &K,
    ) -> impl Future<Output = Result<Option<(V, CasToken)>, StoreError>> + Send
    where
        V: Send,
    {
        self.run_async(self.gets_call(key))
    }

    fn cas_async(
        &self,
        key: K,
        value: V,
        token: &CasToken,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.run_async(self.cas_call(&key, &value, token, ttl))
    }

    async fn get_many_async(&self, keys: &[K]) -> Result<Vec<Option<V>>, StoreError>
    where
        V: Send,
    {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.run_async(self.get_many_call(keys)).await
    }

    async fn set_many_async(
        &self,
        entries: Vec<(K, V)>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.run_async(self.set_many_call(&entries, ttl)).await
    }

    async fn delete_many_async(&self, keys: &[K]) -> Result<usize, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.run_async(self.delete_many_call(keys)).await
    }

    fn incr_version_async(
        &self,
        key: &K,
        delta: i64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.run_async(self.move_version_call(key, delta))
    }
}

impl<B: Clone, C> Clone for EncodedStore<B, C> {
    fn clone(&self) -> Self {
        EncodedStore {
            backend: self.backend.clone(),
            codec: Arc::clone(&self.codec),
            keys: self.keys.clone(),
            ttl: self.ttl,
            breakers: Arc::clone(&self.breakers),
        }
    }
}

impl<B: fmt::Debug, C> fmt::Debug for EncodedStore<B, C> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EncodedStore")
            .field("backend", &self.backend)
            .field("keys", &self.keys.as_str())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}
