// {{name}}: a Sluice cost policy in JavaScript for the QuickJS backend
// (`JCO_BACKEND=quickjs ./build`): plugin.js on the frozen contract
// sluice:plugin@0.1.0 (wit/frozen/0.1.0; guardrail template and build say
// why: componentize-qjs 0.4.5 traps on every 0.2 call). In 0.1.0 a policy
// sees one spend (the tightest monthly budget, reserved spend included in
// `spentUsd`) instead of every budget, and there is no validate-config: a
// malformed [config] fails each call (the failure mode answers).
//
// Denies a request whose worst-case cost would take that budget over, and
// caps completions longer than `max-completion-tokens` ([config], a whole
// number; 0 = no cap); allows everything else.
import { config, log } from 'sluice:plugin/host@0.1.0';

// `max-completion-tokens`, 0 when absent; throws an Error when malformed.
function maxCompletionTokens() {
  const raw = config('max-completion-tokens');
  if (raw == null) {
    return 0;
  }
  if (!/^\s*[0-9]+\s*$/.test(raw)) {
    throw new Error(`config \`max-completion-tokens\`: ${JSON.stringify(raw)} is not a whole number`);
  }
  return Number(raw);
}

export const costPolicy = {
  decide(_request, estimate, spend) {
    const budget = spend.budgetUsd;
    if (budget != null && spend.spentUsd + estimate.costUsd > budget) {
      log('info', `${spend.scope} would exceed its budget`);
      return {
        tag: 'deny',
        val: `over budget: ${spend.spentUsd.toFixed(2)} of ${budget.toFixed(2)} USD spent (${spend.scope} ${spend.period})`,
      };
    }
    const cap = maxCompletionTokens();
    if (cap > 0 && estimate.maxCompletionTokens > cap) {
      return { tag: 'cap-tokens', val: cap };
    }
    return { tag: 'allow' };
  },
};
