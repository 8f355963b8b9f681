//! The shared backend: one Redis (a single primary; Redis Cluster is not
//! supported, the scripts touch several keys) for several gateways.
//!
//! Atomicity: every operation that checks and then writes several keys is
//! one Lua script (`lua/*.lua`, sent by `EVALSHA`, loaded on first use), so
//! two gateways can never interleave inside it; the gateway never reads a
//! value to write back a changed one. Single-key operations are single
//! commands (`SET NX PX`, `MGET`). Times inside scripts are the server's
//! (`TIME`), so gateways with skewed clocks agree on expiries and rates.
//!
//! Durability is Redis's own (`appendonly yes` + `appendfsync always` for
//! the guarantee `durability = "sync"` gives on sled); [`RedisStore::open`]
//! warns when the server is set up for less.
//!
//! Key layout under the configured prefix `P`: `P kv:NS:KEY` (strings),
//! `P log:NAME` (streams, `XADD *`), `P spend:SCOPE|PERIOD` (hash: `spent`,
//! `reserved`, `r:ID`) with `P spend:SCOPE|PERIOD:res` (zset of reservation
//! expiries), `P rate:KEY` (GCRA arrival time).

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::LEDGER_LOG;
use super::store::{
    CounterKey, CounterValue, LogPage, RateCheck, RateResult, Reserve, Reserved, Result, Settle,
    Store, StoreError, gcra_params, reset_when_allowed, reset_when_denied,
};

pub(crate) struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    reserve: Script,
    settle: Script,
    gcra: Script,
}

impl RedisStore {
    /// Connect (the manager reconnects on its own later) and check the
    /// server's persistence against the requested durability.
    pub(crate) async fn open(
        url: &str,
        prefix: &str,
        want_sync: bool,
        timeout: Duration,
    ) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout));
        let mut conn = client.get_connection_manager_with_config(config).await?;
        if want_sync {
            let fsync: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("appendfsync")
                .query_async(&mut conn)
                .await;
            // CONFIG may be disabled on managed servers: then say nothing.
            if let Ok(v) = fsync
                && v.get(1).is_some_and(|s| s != "always")
            {
                tracing::warn!(
                    appendfsync = v.get(1).map(String::as_str),
                    "state: durability = \"sync\" but Redis is not `appendfsync always`: \
                     Redis may lose recent ledger records on a crash"
                );
            }
        }
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            reserve: Script::new(include_str!("lua/reserve.lua")),
            settle: Script::new(include_str!("lua/settle.lua")),
            gcra: Script::new(include_str!("lua/gcra.lua")),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn kv(&self, ns: &str, key: &str) -> String {
        format!("{}kv:{ns}:{key}", self.prefix)
    }

    fn counter(&self, c: &CounterKey) -> String {
        format!("{}spend:{}|{}", self.prefix, c.scope, c.period)
    }

    fn log(&self, name: &str) -> String {
        format!("{}log:{name}", self.prefix)
    }
}

fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// Escape `SCAN MATCH` glob characters.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(redis::cmd("GET")
            .arg(self.kv(ns, key))
            .query_async(&mut self.conn())
            .await?)
    }

    async fn get_many(&self, keys: &[(&str, &str)]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for (ns, key) in keys {
            cmd.arg(self.kv(ns, key));
        }
        Ok(cmd.query_async(&mut self.conn()).await?)
    }

    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.kv(ns, key)).arg(value);
        if let Some(ms) = ttl_ms(ttl) {
            cmd.arg("PX").arg(ms);
        }
        let () = cmd.query_async(&mut self.conn()).await?;
        Ok(())
    }

    async fn put_if_absent(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.kv(ns, key)).arg(value).arg("NX");
        if let Some(ms) = ttl_ms(ttl) {
            cmd.arg("PX").arg(ms);
        }
        let set: Option<String> = cmd.query_async(&mut self.conn()).await?;
        Ok(set.is_some())
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<bool> {
        let n: i64 = redis::cmd("DEL")
            .arg(self.kv(ns, key))
            .query_async(&mut self.conn())
            .await?;
        Ok(n > 0)
    }

    async fn scan(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>> {
        let base = self.kv(ns, "");
        let pattern = format!("{}*", glob_escape(&self.kv(ns, prefix)));
        let mut conn = self.conn();
        let mut cursor = 0u64;
        let mut keys: Vec<String> = Vec::new();
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                break;
            }
        }
        keys.sort();
        keys.dedup(); // SCAN may return a key twice
        keys.truncate(limit);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(keys
            .into_iter()
            .zip(values)
            // Expired between SCAN and MGET: gone.
            .filter_map(|(k, v)| Some((k[base.len()..].to_string(), v?)))
            .collect())
    }

    async fn append(&self, log: &str, _time_ms: u64, record: &[u8]) -> Result<()> {
        // `*`: the server's clock orders the stream (explicit ids from
        // gateways with skewed clocks would be refused as out of order).
        let _id: String = redis::cmd("XADD")
            .arg(self.log(log))
            .arg("*")
            .arg("r")
            .arg(record)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn trim_log(&self, log: &str, before_ms: u64) -> Result<u64> {
        // Stream ids are the server's ms clock (`XADD *`): MINID drops
        // every entry older than `before_ms`.
        let trimmed: u64 = redis::cmd("XTRIM")
            .arg(self.log(log))
            .arg("MINID")
            .arg(before_ms)
            .query_async(&mut self.conn())
            .await?;
        Ok(trimmed)
    }

    async fn read_log(
        &self,
        log: &str,
        since_ms: u64,
        until_ms: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<LogPage> {
        if until_ms == 0 || until_ms <= since_ms {
            return Ok(LogPage::default());
        }
        let start = match after {
            Some(id) => format!("({}", String::from_utf8_lossy(id)),
            None => since_ms.to_string(),
        };
        // An id without a sequence number means its last one as an end.
        let end = (until_ms - 1).to_string();
        let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(self.log(log))
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn())
            .await?;
        let next = (entries.len() == limit)
            .then(|| entries.last().map(|(id, _)| id.clone().into_bytes()))
            .flatten();
        let records = entries
            .into_iter()
            .filter_map(|(_, mut fields)| (fields.len() == 2).then(|| fields.swap_remove(1)))
            .collect();
        Ok(LogPage { records, next })
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    async fn reserve(&self, req: &Reserve<'_>) -> Result<Reserved> {
        if req.lines.is_empty() {
            return Ok(Reserved::Ok(Vec::new()));
        }
        let mut inv = self.reserve.prepare_invoke();
        inv.arg(req.amount)
            .arg(req.id)
            .arg(u64::try_from(req.ttl.as_millis()).unwrap_or(u64::MAX / 2));
        for (key, limit) in req.lines {
            let h = self.counter(key);
            inv.key(&h).key(format!("{h}:res"));
            inv.arg(*limit).arg(key.expires_at);
        }
        let out: Vec<i64> = inv.invoke_async(&mut self.conn()).await?;
        let bad = || StoreError::Invalid(format!("reserve script returned {out:?}"));
        match out.first() {
            Some(0) => Ok(Reserved::Ok(
                out[1..]
                    .chunks(2)
                    .map(|c| CounterValue {
                        spent: c[0],
                        reserved: c.get(1).copied().unwrap_or(0),
                    })
                    .collect(),
            )),
            Some(&i) if i >= 1 && out.len() == 3 => Ok(Reserved::Denied {
                index: usize::try_from(i - 1).map_err(|_| bad())?,
                value: CounterValue {
                    spent: out[1],
                    reserved: out[2],
                },
            }),
            _ => Err(bad()),
        }
    }

    async fn settle(&self, req: &Settle<'_>) -> Result<Vec<CounterValue>> {
        if req.counters.is_empty() && req.record.is_none() {
            return Ok(Vec::new());
        }
        let mut inv = self.settle.prepare_invoke();
        let hashes: Vec<String> = req.counters.iter().map(|c| self.counter(c)).collect();
        for h in &hashes {
            inv.key(h);
        }
        for h in &hashes {
            inv.key(format!("{h}:res"));
        }
        inv.arg(req.counters.len()).arg(req.id).arg(req.cost);
        for c in req.counters {
            inv.arg(c.expires_at);
        }
        if let Some((_, record)) = req.record {
            inv.key(self.log(LEDGER_LOG)).arg(record);
        }
        let out: Vec<i64> = inv.invoke_async(&mut self.conn()).await?;
        Ok(out
            .chunks(2)
            .map(|c| CounterValue {
                spent: c[0],
                reserved: c.get(1).copied().unwrap_or(0),
            })
            .collect())
    }

    async fn counters(&self, keys: &[CounterKey]) -> Result<Vec<CounterValue>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("HMGET")
                .arg(self.counter(k))
                .arg("spent")
                .arg("reserved");
        }
        let rows: Vec<(Option<i64>, Option<i64>)> = pipe.query_async(&mut self.conn()).await?;
        Ok(rows
            .into_iter()
            .map(|(s, r)| CounterValue {
                spent: s.unwrap_or(0),
                reserved: r.unwrap_or(0),
            })
            .collect())
    }

    async fn rate(&self, checks: &[RateCheck]) -> Result<Vec<RateResult>> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.gcra.prepare_invoke();
        for c in checks {
            let (t, tau) = gcra_params(c.limit);
            inv.key(format!("{}rate:{}", self.prefix, c.key))
                .arg(t.as_nanos() as f64 / 1000.0)
                .arg(tau.as_nanos() as f64 / 1000.0)
                .arg(c.cost.max(1));
        }
        let rows: Vec<(i64, i64, i64)> = inv.invoke_async(&mut self.conn()).await?;
        Ok(rows
            .into_iter()
            .zip(checks)
            .map(|((allowed, remaining, retry_us), c)| {
                let remaining = u32::try_from(remaining.max(0)).unwrap_or(u32::MAX);
                match allowed {
                    1 => RateResult {
                        allowed: true,
                        too_large: false,
                        remaining,
                        reset: reset_when_allowed(c.limit, remaining),
                        retry_after: None,
                    },
                    0 => {
                        let retry = Duration::from_micros(u64::try_from(retry_us).unwrap_or(0));
                        RateResult {
                            allowed: false,
                            too_large: false,
                            remaining: 0,
                            reset: reset_when_denied(c.limit, c.cost, retry),
                            retry_after: Some(retry),
                        }
                    }
                    _ => RateResult {
                        allowed: false,
                        too_large: true,
                        remaining: 0,
                        reset: Duration::ZERO,
                        retry_after: None,
                    },
                }
            })
            .collect())
    }
}
