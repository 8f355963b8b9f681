//! Budgets per key, user and feature (and optionally the whole gateway),
//! per UTC day and month, in USD.
//!
//! Before the call the worst-case cost is reserved against every budget
//! that applies, all or nothing ([`State::reserve`]); after it the
//! reservation is settled to the real cost together with the ledger record
//! ([`State::finish`]). Accepted reservations never sum past a budget, so
//! concurrent requests overspend only by what a request costs beyond its own
//! worst case (a tokenizer underestimate): at most one request's cost. A
//! reservation that is never settled (a crash) expires after
//! `[state] reservation-ttl-ms`; one dropped unsettled in a live process (a
//! cancelled request) is released at once.
//!
//! Spend is counted for every scope a request has (key, user, feature;
//! day and month), budgeted or not, so the cost policy sees all of them.

use serde::Serialize;

use super::keys::VirtualKey;
use super::period::Periods;
use super::store::{CounterKey, CounterValue, Nanos, Reserve, Reserved, Settle, to_nanos, to_usd};
use super::{State, StateError, UsageRecord, now_ms};

/// Who a request is accounted to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub key: Option<&'a VirtualKey>,
    pub user: Option<&'a str>,
    pub feature: Option<&'a str>,
}

/// One scope's spend in one period, for the cost policy and reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendSnapshot {
    /// `key:ID`, `user:NAME`, `feature:NAME` or `global`.
    pub scope: String,
    /// `YYYY-MM` or `day:YYYY-MM-DD`.
    pub period: String,
    /// Settled spend.
    pub spent_usd: f64,
    /// Worst cases of requests in flight.
    pub reserved_usd: f64,
    pub budget_usd: Option<f64>,
}

impl SpendSnapshot {
    /// The plugin contract's record (`day:YYYY-MM-DD` becomes a day
    /// period labelled `YYYY-MM-DD`); settled and reserved spend stay apart.
    pub fn to_plugin(&self) -> crate::plugin::Spend {
        use crate::plugin::BudgetPeriod;
        let (period, label) = match self.period.strip_prefix("day:") {
            Some(day) => (BudgetPeriod::Day, day.to_owned()),
            None => (BudgetPeriod::Month, self.period.clone()),
        };
        crate::plugin::Spend {
            scope: self.scope.clone(),
            period,
            label,
            spent_usd: self.spent_usd,
            reserved_usd: self.reserved_usd,
            budget_usd: self.budget_usd,
        }
    }
}

/// A budget without room for the request.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error(
    "budget exceeded for {scope} in {period}: ${spent_usd:.4} spent and ${reserved_usd:.4} in flight of ${budget_usd:.4}, request needs up to ${requested_usd:.4}"
)]
pub struct BudgetExceeded {
    pub scope: String,
    pub period: String,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    pub budget_usd: f64,
    pub requested_usd: f64,
}

impl BudgetExceeded {
    /// The period's budget is used up by settled spend alone: waiting for
    /// in-flight requests will not help (answer 429 without `Retry-After`).
    pub fn period_spent(&self) -> bool {
        self.spent_usd >= self.budget_usd
    }

    /// Whether the request would fit once the requests in flight settle
    /// (at best they cost nothing): only then is retrying later any use.
    pub fn waiting_helps(&self) -> bool {
        !self.period_spent() && self.spent_usd + self.requested_usd <= self.budget_usd
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Exceeded(#[from] BudgetExceeded),
    #[error(transparent)]
    State(#[from] StateError),
}

/// One counter a request touches and its limit, if budgeted.
#[derive(Debug, Clone)]
struct Line {
    counter: CounterKey,
    limit: Option<Nanos>,
}

/// A reservation held for one request. Settle it with [`State::finish`]
/// or give it back with [`State::release`]; dropping it unsettled releases
/// it in the background.
#[must_use = "settle with State::finish or State::release"]
pub struct Reservation {
    state: State,
    id: String,
    lines: Vec<Line>,
    amount: Nanos,
    open: bool,
}

impl Reservation {
    /// The worst case reserved, in USD.
    pub fn amount_usd(&self) -> f64 {
        to_usd(self.amount)
    }

    fn counters(&self) -> Vec<CounterKey> {
        self.lines.iter().map(|l| l.counter.clone()).collect()
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("id", &self.id)
            .field("amount_usd", &self.amount_usd())
            .finish_non_exhaustive()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.open || !self.lines.iter().any(|l| l.limit.is_some()) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // expiry frees it
        };
        let (state, id, counters) = (
            self.state.clone(),
            std::mem::take(&mut self.id),
            self.counters(),
        );
        rt.spawn(async move {
            let settle = Settle {
                counters: &counters,
                id: &id,
                cost: 0,
                record: None,
            };
            if let Err(e) = state.store.settle(&settle).await {
                tracing::warn!(error = %e, "releasing a dropped budget reservation; it expires on its own");
            }
        });
    }
}

impl State {
    fn lines(&self, who: &Subject<'_>, at_ms: u64) -> Vec<Line> {
        let p = Periods::at(at_ms);
        let budgets = &self.config.budgets;
        let mut scopes = Vec::with_capacity(4);
        if let Some(k) = who.key {
            let b = if k.budget.is_empty() {
                budgets.default_key
            } else {
                k.budget
            };
            scopes.push((format!("key:{}", k.id), b));
        }
        if let Some(u) = who.user {
            scopes.push((format!("user:{u}"), self.config.user_budget(u)));
        }
        if let Some(f) = who.feature {
            let b = budgets.features.get(f).copied().unwrap_or_default();
            scopes.push((format!("feature:{f}"), b));
        }
        // Only when budgeted: an unbudgeted global counter would be one hot
        // key written by every request for nothing the ledger lacks.
        if !budgets.global.is_empty() {
            scopes.push(("global".to_owned(), budgets.global));
        }
        let mut lines = Vec::with_capacity(scopes.len() * 2);
        for (scope, b) in scopes {
            lines.push(Line {
                counter: CounterKey {
                    scope: scope.clone(),
                    period: p.day.clone(),
                    expires_at: p.day_expires,
                },
                limit: b.day_usd.map(to_nanos),
            });
            lines.push(Line {
                counter: CounterKey {
                    scope,
                    period: p.month.clone(),
                    expires_at: p.month_expires,
                },
                limit: b.month_usd.map(to_nanos),
            });
        }
        lines
    }

    /// Whether any budget applies to `who` (config and key only, no store
    /// call): without one a reservation costs nothing, so callers can skip
    /// computing a worst case.
    pub fn budgeted(&self, who: &Subject<'_>) -> bool {
        let b = &self.config.budgets;
        let key = who
            .key
            .is_some_and(|k| !k.budget.is_empty() || !b.default_key.is_empty());
        let user = who
            .user
            .is_some_and(|u| !self.config.user_budget(u).is_empty());
        let feature = who
            .feature
            .is_some_and(|f| b.features.get(f).is_some_and(|x| !x.is_empty()));
        key || user || feature || !b.global.is_empty()
    }

    /// Spend of every scope `who` has, day and month (for the cost policy).
    pub async fn spend(&self, who: &Subject<'_>) -> Result<Vec<SpendSnapshot>, StateError> {
        let lines = self.lines(who, now_ms());
        let keys: Vec<CounterKey> = lines.iter().map(|l| l.counter.clone()).collect();
        let values = self.store.counters(&keys).await?;
        Ok(snapshots(&lines, &values))
    }

    /// Reserve `worst_case_usd` against every budget `who` has. With no
    /// budget anywhere this costs no store call.
    pub async fn reserve(
        &self,
        who: &Subject<'_>,
        request_id: &str,
        worst_case_usd: f64,
    ) -> Result<Reservation, ReserveError> {
        let lines = self.lines(who, now_ms());
        let amount = to_nanos(worst_case_usd);
        let id = format!("{request_id}.{:016x}", rand::random::<u64>());
        let limited: Vec<(CounterKey, Nanos)> = lines
            .iter()
            .filter_map(|l| Some((l.counter.clone(), l.limit?)))
            .collect();
        if !limited.is_empty() {
            let req = Reserve {
                lines: &limited,
                amount,
                id: &id,
                ttl: self.config.reservation_ttl(),
            };
            if let Reserved::Denied { index, value } =
                self.store.reserve(&req).await.map_err(StateError::from)?
            {
                let (counter, limit) = &limited[index];
                return Err(BudgetExceeded {
                    scope: counter.scope.clone(),
                    period: counter.period.clone(),
                    spent_usd: to_usd(value.spent),
                    reserved_usd: to_usd(value.reserved),
                    budget_usd: to_usd(*limit),
                    requested_usd: to_usd(amount),
                }
                .into());
            }
        }
        Ok(Reservation {
            state: self.clone(),
            id,
            lines,
            amount,
            open: true,
        })
    }

    /// Settle `reservation` to `record.cost_usd` and append `record` to the
    /// ledger, as one atomic store operation (durable before returning when
    /// `durability = "sync"`). Fires budget alerts. Returns the spend after.
    pub async fn finish(
        &self,
        mut reservation: Reservation,
        record: &UsageRecord,
    ) -> Result<Vec<SpendSnapshot>, StateError> {
        reservation.open = false;
        let bytes = serde_json::to_vec(record).expect("a usage record serialises");
        let counters = reservation.counters();
        let settle = Settle {
            counters: &counters,
            id: &reservation.id,
            cost: to_nanos(record.cost_usd),
            record: Some((record.time_ms, &bytes)),
        };
        let values = self.store.settle(&settle).await?;
        for (line, value) in reservation.lines.iter().zip(&values) {
            if let Some(limit) = line.limit {
                self.alerts
                    .check(self.store.as_ref(), &line.counter, limit, *value)
                    .await?;
            }
        }
        Ok(snapshots(&reservation.lines, &values))
    }

    /// Give a reservation back without spending (the request never reached
    /// an upstream).
    pub async fn release(&self, mut reservation: Reservation) -> Result<(), StateError> {
        reservation.open = false;
        if !reservation.lines.iter().any(|l| l.limit.is_some()) {
            return Ok(());
        }
        let counters = reservation.counters();
        let settle = Settle {
            counters: &counters,
            id: &reservation.id,
            cost: 0,
            record: None,
        };
        self.store.settle(&settle).await?;
        Ok(())
    }
}

fn snapshots(lines: &[Line], values: &[CounterValue]) -> Vec<SpendSnapshot> {
    lines
        .iter()
        .zip(values)
        .map(|(l, v)| SpendSnapshot {
            scope: l.counter.scope.clone(),
            period: l.counter.period.clone(),
            spent_usd: to_usd(v.spent),
            reserved_usd: to_usd(v.reserved),
            budget_usd: l.limit.map(to_usd),
        })
        .collect()
}
