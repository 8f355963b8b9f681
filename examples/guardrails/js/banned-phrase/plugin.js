// Rejects requests and answers containing the phrase set in the manifest's
// `[config] phrase` (ASCII case-insensitive); see
// examples/guardrails/cases.yaml. The phrase is checked at load
// (validate-config): a missing or empty phrase, or any other key, refuses
// the plugin instead of letting everything through.
import { config, configKeys, log } from 'sluice:plugin/host@0.2.0';

// ASCII-only lowering, like every other language's build of this example
// (toLowerCase() would also fold non-ASCII letters).
const lower = (text) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());

// Why the [config] is unusable, or null. (Absent options are null in
// QuickJS and undefined in StarlingMonkey: `== null` covers both.)
function configError() {
  const unknown = configKeys().find((k) => k !== 'phrase');
  if (unknown !== undefined) {
    return `config \`${unknown}\`: unknown key (known: phrase)`;
  }
  const p = config('phrase');
  if (p == null) {
    return 'config `phrase`: missing: set the phrase to refuse';
  }
  if (p.trim() === '') {
    return 'config `phrase`: is empty: it would match every text';
  }
  return null;
}

function phrase() {
  const p = config('phrase');
  // Validated at load; should the host not have, fail the call (the
  // manifest's failure mode answers) rather than pass everything.
  if (p == null || p.trim() === '') {
    throw new Error(configError());
  }
  return lower(p);
}

function reject(where) {
  log('info', `banned phrase in the ${where}`);
  return {
    tag: 'reject',
    val: { reason: `the ${where} contains a banned phrase`, code: 'banned_phrase' },
  };
}

export const lifecycle = {
  validateConfig() {
    const error = configError();
    // A thrown string is the `err` of `result<_, string>`.
    if (error !== null) {
      throw error;
    }
  },
};

export const guardrail = {
  phases() {
    return { input: true, output: true };
  },
  checkInput(request) {
    const text = request.lastUserText();
    if (text != null && lower(text).includes(phrase())) {
      return reject('request');
    }
    return { tag: 'pass' };
  },
  checkOutput(_request, output, context) {
    // A phrase split across stream windows is caught in the later one.
    if (lower(context.emitted + output).includes(phrase())) {
      return reject('answer');
    }
    return { tag: 'pass' };
  },
};
