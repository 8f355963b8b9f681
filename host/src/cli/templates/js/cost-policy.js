// {{name}}: a Sluice cost policy in JavaScript (jco componentize).
//
// Denies a request whose worst-case cost would take its principal over
// budget, and caps completions longer than `max-completion-tokens`
// ([config]); allows everything else.
import { config, log } from 'sluice:plugin/host@0.1.0';

export const costPolicy = {
  decide(_request, estimate, spend) {
    // An absent option is null on QuickJS: `!= null` is true for values only.
    const budget = spend.budgetUsd;
    if (budget != null && spend.spentUsd + estimate.costUsd > budget) {
      log('info', `${spend.scope} would exceed its budget`);
      return {
        tag: 'deny',
        val: `over budget: ${spend.spentUsd.toFixed(2)} of ${budget.toFixed(2)} USD spent`,
      };
    }
    const cap = Number(config('max-completion-tokens') ?? 0);
    if (cap > 0 && estimate.maxCompletionTokens > cap) {
      return { tag: 'cap-tokens', val: cap };
    }
    return { tag: 'allow' };
  },
};
