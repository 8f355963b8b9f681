"""{{name}}: a Sluice cost policy in Python (componentize-py).

Denies a request whose worst-case cost would take any of its budgets (key,
user, feature; day and month) over, and caps completions longer than
`max-completion-tokens` ([config], a whole number; 0 = no cap); allows
everything else. The config is checked once at load.
"""
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import Decision_Allow, Decision_CapTokens, Decision_Deny, LogLevel

# The [config] keys this plugin reads.
KEYS = ["max-completion-tokens"]


def max_completion_tokens():
    """`max-completion-tokens`, 0 when absent; ValueError when malformed."""
    raw = host.config("max-completion-tokens")
    if raw is None:
        return 0
    try:
        cap = int(raw.strip())
    except ValueError:
        cap = -1
    if cap < 0:
        raise ValueError(f"config `max-completion-tokens`: {raw!r} is not a whole number")
    return cap


class Lifecycle(exports.Lifecycle):
    def validate_config(self):
        for key in host.config_keys():
            if key not in KEYS:
                raise Err(f"config `{key}`: unknown key (known: {', '.join(KEYS)})")
        try:
            max_completion_tokens()
        except ValueError as e:
            raise Err(str(e))


class CostPolicy(exports.CostPolicy):
    def decide(self, request, estimate, spends):
        # Requests in flight hold their worst case (`reserved_usd`) too.
        for s in spends:
            if s.budget_usd is not None and s.spent_usd + s.reserved_usd + estimate.cost_usd > s.budget_usd:
                host.log(LogLevel.INFO, f"{s.scope} ({s.label}) would exceed its budget")
                return Decision_Deny(
                    f"over budget: {s.spent_usd:.2f} of {s.budget_usd:.2f} USD spent ({s.scope} {s.label})"
                )
        cap = max_completion_tokens()
        if cap > 0 and estimate.max_completion_tokens > cap:
            return Decision_CapTokens(cap)
        return Decision_Allow()
