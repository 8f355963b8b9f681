// {{name}}: a Sluice cost policy in JavaScript (jco componentize).
//
// Denies a request whose worst-case cost would take any of its budgets
// (key, user, feature; day and month) over, and caps completions longer
// than `max-completion-tokens` ([config], a whole number; 0 = no cap);
// allows everything else. The config is checked once at load.
import { config, configKeys, log } from 'sluice:plugin/host@0.2.0';

// The [config] keys this plugin reads.
const KEYS = ['max-completion-tokens'];

// `max-completion-tokens`, 0 when absent; throws an Error when malformed.
// (An absent option is null on QuickJS, undefined on StarlingMonkey.)
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

export const lifecycle = {
  validateConfig() {
    const unknown = configKeys().find((k) => !KEYS.includes(k));
    // A thrown string is the `err` of `result<_, string>`.
    if (unknown !== undefined) {
      throw `config \`${unknown}\`: unknown key (known: ${KEYS.join(', ')})`;
    }
    try {
      maxCompletionTokens();
    } catch (e) {
      throw e.message;
    }
  },
};

export const costPolicy = {
  decide(_request, estimate, spends) {
    // Requests in flight hold their worst case (`reservedUsd`) too.
    for (const s of spends) {
      const budget = s.budgetUsd;
      if (budget != null && s.spentUsd + s.reservedUsd + estimate.costUsd > budget) {
        log('info', `${s.scope} (${s.label}) would exceed its budget`);
        return {
          tag: 'deny',
          val: `over budget: ${s.spentUsd.toFixed(2)} of ${budget.toFixed(2)} USD spent (${s.scope} ${s.label})`,
        };
      }
    }
    const cap = maxCompletionTokens();
    if (cap > 0 && estimate.maxCompletionTokens > cap) {
      return { tag: 'cap-tokens', val: cap };
    }
    return { tag: 'allow' };
  },
};
