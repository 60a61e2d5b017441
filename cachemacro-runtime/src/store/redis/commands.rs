//! Each backend operation as Redis commands, written once for both transports.
//!
//! On a cluster a multi-key command must stay within one hash slot, so the batched
//! operations send one command per key in a (non-atomic) pipeline, which the cluster
//! client routes node by node.

use std::time::Duration;

use redis::{Cmd, RedisResult};

use super::transport::{Request, Transport};
use crate::store::encoded::backend::{Op, Reply};
use crate::CasToken;

/// Compare-and-set: write only if the key still holds the bytes the caller read (`''` for
/// "nothing"). One script, so the check and the write are one atomic step on the server.
const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  end
  return 1
end
return 0
";

/// `INCRBY` only if the key exists (no `INCRBY` option says so).
const INCR_EXISTING_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
";

/// `touch` with no ttl: `PERSIST` alone cannot tell "missing" from "already persistent".
const PERSIST_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PERSIST', KEYS[1])
  return 1
end
return 0
";

/// Moves an entry with its remaining time to live, in one atomic step (one server).
const MOVE_SCRIPT: &str = r"
local value = redis.call('GET', KEYS[1])
if value == false then
  return 0
end
local remaining = redis.call('PTTL', KEYS[1])
if remaining > 0 then
  redis.call('SET', KEYS[2], value, 'PX', remaining)
else
  redis.call('SET', KEYS[2], value)
end
redis.call('DEL', KEYS[1])
return 1
";

/// Runs `op` on `transport`. `cluster` says whether keys may live on different nodes.
/// `Op::Clear` is not handled here: it scans nodes, see the backend.
pub(super) async fn perform(
    transport: &mut impl Transport,
    cluster: bool,
    op: Op,
) -> RedisResult<Reply> {
    Ok(match op {
        Op::Get { key } => Reply::Value(transport.send(get(key).into()).await?),
        Op::GetMany { keys } if cluster => {
            let mut pipeline = redis::pipe();
            keys.into_iter().for_each(|key| {
                pipeline.add_command(get(key));
            });
            Reply::Values(transport.send(pipeline.into()).await?)
        }
        Op::GetMany { keys } => Reply::Values(
            transport
                .send(redis::cmd("MGET").arg(keys).clone().into())
                .await?,
        ),
        Op::Set { key, value, ttl } => {
            transport.send::<()>(set(key, value, ttl).into()).await?;
            Reply::Done
        }
        Op::SetMany { entries, ttl } => {
            let mut pipeline = redis::pipe();
            for (key, value) in entries {
                pipeline.add_command(set(key, value, ttl)).ignore();
            }
            transport.send::<()>(pipeline.into()).await?;
            Reply::Done
        }
        Op::Add { key, value, ttl } => {
            let mut command = set(key, value, ttl);
            command.arg("NX");
            Reply::Applied(
                transport
                    .send::<Option<String>>(command.into())
                    .await?
                    .is_some(),
            )
        }
        Op::Delete { key } => Reply::Applied(transport.send::<u64>(delete(vec![key])).await? > 0),
        Op::DeleteMany { keys } if cluster => {
            let mut pipeline = redis::pipe();
            keys.into_iter().for_each(|key| {
                pipeline.add_command(redis::cmd("DEL").arg(key).clone());
            });
            let removed: Vec<u64> = transport.send(pipeline.into()).await?;
            Reply::Count(removed.into_iter().sum::<u64>() as usize)
        }
        Op::DeleteMany { keys } => {
            Reply::Count(transport.send::<u64>(delete(keys)).await? as usize)
        }
        Op::Touch { key, ttl } => {
            let command = match ttl {
                Some(_) => redis::cmd("PEXPIRE").arg(key).arg(ttl_millis(ttl)).clone(),
                None => script(PERSIST_SCRIPT, &[key]),
            };
            Reply::Applied(transport.send::<i64>(command.into()).await? == 1)
        }
        Op::Incr {
            key,
            delta,
            create: true,
        } => {
            let command = redis::cmd("INCRBY").arg(key).arg(delta).clone();
            Reply::Counter(Some(transport.send(command.into()).await?))
        }
        Op::Incr {
            key,
            delta,
            create: false,
        } => {
            let mut command = script(INCR_EXISTING_SCRIPT, &[key]);
            command.arg(delta);
            Reply::Counter(transport.send(command.into()).await?)
        }
        Op::Gets { key } => {
            let found: Option<Vec<u8>> = transport.send(get(key).into()).await?;
            Reply::Versioned(found.map(|bytes| (bytes.clone(), CasToken::from_bytes(bytes))))
        }
        Op::Cas {
            key,
            value,
            token,
            ttl,
        } => {
            // The backend refuses other stores' tokens before sending anything.
            let expected = token.as_bytes().unwrap_or_default();
            let mut command = script(CAS_SCRIPT, &[key]);
            command.arg(expected).arg(value).arg(ttl_millis(ttl));
            Reply::Applied(transport.send::<i64>(command.into()).await? == 1)
        }
        Op::Move { from, to } if cluster => {
            // The two keys may live on different nodes: no script can span them.
            let mut read = redis::pipe();
            read.get(&from).cmd("PTTL").arg(&from);
            let (value, remaining): (Option<Vec<u8>>, i64) = transport.send(read.into()).await?;
            let Some(value) = value else {
                return Ok(Reply::Applied(false));
            };
            let ttl = u64::try_from(remaining).ok().map(Duration::from_millis);
            transport.send::<()>(set(to, value, ttl).into()).await?;
            transport.send::<u64>(delete(vec![from])).await?;
            Reply::Applied(true)
        }
        Op::Move { from, to } => Reply::Applied(
            transport
                .send::<i64>(script(MOVE_SCRIPT, &[from, to]).into())
                .await?
                == 1,
        ),
        Op::Clear { .. } => unreachable!("the backend scans nodes for Clear"),
    })
}

fn get(key: Vec<u8>) -> Cmd {
    redis::cmd("GET").arg(key).clone()
}

fn set(key: Vec<u8>, value: Vec<u8>, ttl: Option<Duration>) -> Cmd {
    let mut command = redis::cmd("SET");
    command.arg(key).arg(value);
    if let Some(ttl) = ttl {
        command.arg("PX").arg(ttl.as_millis().max(1) as u64);
    }
    command
}

pub(super) fn delete(keys: Vec<Vec<u8>>) -> Request {
    redis::cmd("DEL").arg(keys).clone().into()
}

fn script(source: &str, keys: &[Vec<u8>]) -> Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(source).arg(keys.len());
    for key in keys {
        command.arg(key.as_slice());
    }
    command
}

fn ttl_millis(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |ttl| ttl.as_millis().max(1) as u64)
}
