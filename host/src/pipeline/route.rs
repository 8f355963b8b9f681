//! Which routes a request is tried on, and whether it may spend money:
//! the router and cost-policy plugins (their failure modes are applied by
//! [`super::failure`]).

use std::sync::Arc;

use crate::config::{Config, ModelConfig, RouteConfig};
use crate::openai::ChatRequest;
use crate::plugin::{Candidate, Decision, Plugin, PluginSet, RequestInfo};

use super::cost::{self, SpendSource};
use super::{Error, Principal, failure};

fn find<'a>(list: &'a [Arc<Plugin>], name: &str) -> Result<&'a Arc<Plugin>, Error> {
    list.iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| Error::PluginUnavailable(name.to_string()))
}

/// The model's routes in try order: the router plugin's order when one is
/// configured (routes it names that are not configured are ignored; an empty
/// answer means the configured order), else the configured order.
pub(super) fn order(
    set: &PluginSet,
    model: &ModelConfig,
    info: &RequestInfo,
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
    let chosen = router
        .route(info, &candidates)
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
                provider = r.provider,
                model = r.model,
                "router named an unconfigured route; ignored"
            ),
        }
    }
    Ok(if routes.is_empty() {
        model.routes.clone()
    } else {
        routes
    })
}

/// Ask the model's cost policy about this request, estimated on its first
/// route. Returns the model whose routes to use (itself, or a downgrade);
/// a token cap lowers the request's completion limit in place.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_cost_policy<'a>(
    set: &PluginSet,
    name: &str,
    config: &'a Config,
    model: &'a ModelConfig,
    spend: &Arc<dyn SpendSource>,
    principal: &Principal,
    info: &RequestInfo,
    req: &mut ChatRequest,
) -> Result<&'a ModelConfig, Error> {
    let policy = find(set.cost_policies(), name)?;
    let Some(first) = model.routes.first() else {
        return Ok(model);
    };
    let estimate = cost::estimate(req, first);
    let spend = spend.spend(&principal.scope(info.user.as_deref()), principal.budget_usd);
    let decision = policy
        .decide(info, &estimate, &spend)
        .or_else(|f| failure::answer(policy, f, &info.id, Decision::Allow))
        .map_err(|failure| Error::PluginFailed {
            plugin: name.to_string(),
            failure,
        })?;
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
                    to = target,
                    "cost policy downgraded the model"
                );
                Ok(cheaper)
            }
            None => {
                tracing::warn!(
                    request_id = info.id,
                    plugin = name,
                    target,
                    "downgrade to an unknown model ignored"
                );
                Ok(model)
            }
        },
        Decision::CapTokens(cap) => {
            let capped = req.max_output_tokens().map_or(cap, |n| n.min(cap));
            if req.max_completion_tokens.is_some() {
                req.max_completion_tokens = Some(capped);
            } else {
                req.max_tokens = Some(capped);
            }
            Ok(model)
        }
    }
}
