//! Which routes a request is tried on, and whether it may spend money:
//! the router and cost-policy plugins (their failure modes are applied by
//! [`super::failure`]).

use std::sync::Arc;

use crate::config::{Config, ModelConfig, RouteConfig};
use crate::openai::ChatRequest;
use crate::plugin::log::escaped;
use crate::plugin::{Candidate, Decision, Estimate, Plugin, PluginSet, RequestInfo, Spend};
use crate::telemetry;
use tracing::Instrument as _;

use super::{Error, failure};

fn find<'a>(list: &'a [Arc<Plugin>], name: &str) -> Result<&'a Arc<Plugin>, Error> {
    list.iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| Error::PluginUnavailable(name.to_string()))
}

/// The model's routes in try order: the router plugin's order when one is
/// configured (routes it names that are not configured are ignored; an empty
/// answer means the configured order), else the configured order.
pub(super) async fn order(
    set: &PluginSet,
    model: &ModelConfig,
    info: &Arc<RequestInfo>,
) -> Result<Vec<RouteConfig>, Error> {
    let Some(name) = &model.router else {
        return Ok(model.routes.clone());
    };
    let router = find(set.routers(), name)?;
    let candidates: Vec<Candidate> = model
        .routes
        .iter()
        .map(|r| Candidate {
            provider: r.provider.clone(),
            model: r.model.clone(),
            tier: r.tier.clone(),
            input_cost_per_mtok: r.input_cost_per_mtok.unwrap_or(0.0),
            output_cost_per_mtok: r.output_cost_per_mtok.unwrap_or(0.0),
            context_window: r.context_window,
        })
        .collect();
    // An empty answer means the configured order: that is also what an
    // `open` failure falls back to.
    let span = telemetry::spans::router(name);
    let chosen = router
        .route(info, &candidates)
        .instrument(span.clone())
        .await
        .or_else(|f| failure::answer(router, f, &info.id, Vec::new()))
        .map_err(|failure| Error::PluginFailed {
            plugin: name.clone(),
            failure,
        })?;
    let mut routes: Vec<RouteConfig> = Vec::new();
    for r in chosen {
        let known = model
            .routes
            .iter()
            .find(|c| c.provider == r.provider && c.model == r.model);
        match known {
            Some(c)
                if !routes
                    .iter()
                    .any(|x| x.provider == c.provider && x.model == c.model) =>
            {
                routes.push(c.clone())
            }
            Some(_) => {}
            None => tracing::debug!(
                router = name,
                provider = %escaped(&r.provider),
                model = %escaped(&r.model),
                "router named an unconfigured route; ignored"
            ),
        }
    }
    let routes = if routes.is_empty() {
        model.routes.clone()
    } else {
        routes
    };
    span.record("sluice.routes", routes.len());
    Ok(routes)
}

/// Ask the model's cost policy about this request (`estimate`: on the
/// model's first route; `spends`: every budget that applies, from
/// [`super::cost::policy_spends`]). Returns the model whose routes to use
/// (itself, or a downgrade); a token cap lowers the request's completion limit in place.
///
/// Edge values: `cap-tokens(0)` is a deny (no completion is possible; the
/// client would otherwise get an empty answer it could not have asked
/// for); a cap at or above the effective limit (the client's `max_tokens`,
/// else the smallest context window of the model's routes) leaves the
/// request as it is, so a cap never raises a limit or sends a value the
/// upstream would refuse; a downgrade to a model the gateway does not have
/// is an invalid answer and follows the plugin's failure mode (`open`: the
/// request goes on as if allowed).
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply_cost_policy<'a>(
    set: &PluginSet,
    name: &str,
    config: &'a Config,
    model: &'a ModelConfig,
    estimate: &Estimate,
    spends: &[Spend],
    info: &Arc<RequestInfo>,
    req: &mut ChatRequest,
) -> Result<&'a ModelConfig, Error> {
    let policy = find(set.cost_policies(), name)?;
    let failed = |failure| Error::PluginFailed {
        plugin: name.to_string(),
        failure,
    };
    let span = telemetry::spans::cost_policy(name);
    let decision = policy
        .decide(info, estimate, spends)
        .instrument(span.clone())
        .await
        .or_else(|f| failure::answer(policy, f, &info.id, Decision::Allow))
        .map_err(failed)?;
    span.record(
        "sluice.decision",
        match &decision {
            Decision::Allow => "allow",
            Decision::Deny(_) => "deny",
            Decision::Downgrade(_) => "downgrade",
            Decision::CapTokens(_) => "cap_tokens",
        },
    );
    match decision {
        Decision::Allow => Ok(model),
        Decision::Deny(reason) => Err(Error::CostDenied {
            plugin: name.to_string(),
            reason,
        }),
        Decision::Downgrade(target) => match config.models.get(&target) {
            Some(cheaper) => {
                tracing::info!(
                    request_id = info.id,
                    from = info.model,
                    to = %escaped(&target),
                    "cost policy downgraded the model"
                );
                Ok(cheaper)
            }
            None => {
                let why = format!("downgrade to `{target}`, which is not a configured model");
                failure::answer(policy, policy.invalid_answer(why), &info.id, model).map_err(failed)
            }
        },
        Decision::CapTokens(0) => Err(Error::CostDenied {
            plugin: name.to_string(),
            reason: "the cost policy capped the completion at 0 tokens".into(),
        }),
        Decision::CapTokens(cap) => {
            let window = model.routes.iter().map(|r| r.context_window).min();
            let limit = req.max_output_tokens().or(window);
            if limit.is_none_or(|l| cap < l) {
                if req.max_completion_tokens.is_some() {
                    req.max_completion_tokens = Some(cap);
                } else {
                    req.max_tokens = Some(cap);
                }
            }
            Ok(model)
        }
    }
}
