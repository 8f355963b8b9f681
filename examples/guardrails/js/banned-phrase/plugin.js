// Rejects requests and answers containing the phrase set in the manifest's
// `[config] phrase` (ASCII case-insensitive); see
// examples/guardrails/cases.yaml.
import { config, log } from 'sluice:plugin/host@0.1.0';

// ASCII-only lowering, like every other language's build of this example
// (toLowerCase() would also fold non-ASCII letters).
const lower = (text) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());

function phrase() {
  const p = config('phrase');
  if (!p) {
    log('warn', 'no `phrase` in [config]: passing everything');
    return undefined;
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

export const guardrail = {
  checkInput(request) {
    const p = phrase();
    const users = request.messages.filter((m) => m.role === 'user');
    if (p !== undefined && users.length > 0 && lower(users[users.length - 1].content).includes(p)) {
      return reject('request');
    }
    return { tag: 'pass' };
  },
  checkOutput(_request, output, context) {
    const p = phrase();
    // A phrase split across stream windows is caught in the later one.
    if (p !== undefined && lower(context.emitted + output).includes(p)) {
      return reject('answer');
    }
    return { tag: 'pass' };
  },
};
