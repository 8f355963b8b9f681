"""{{name}}: a Sluice cost policy in Python (componentize-py).

Denies a request whose worst-case cost would take its principal over
budget, and caps completions longer than `max-completion-tokens`
([config]); allows everything else.
"""
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Decision_Allow, Decision_CapTokens, Decision_Deny, LogLevel


class CostPolicy(exports.CostPolicy):
    def decide(self, request, estimate, spend):
        if spend.budget_usd is not None and spend.spent_usd + estimate.cost_usd > spend.budget_usd:
            host.log(LogLevel.INFO, f"{spend.scope} would exceed its budget")
            return Decision_Deny(f"over budget: {spend.spent_usd:.2f} of {spend.budget_usd:.2f} USD spent")
        cap = int(host.config("max-completion-tokens") or 0)
        if cap > 0 and estimate.max_completion_tokens > cap:
            return Decision_CapTokens(cap)
        return Decision_Allow()
