// banned-phrase for the QuickJS backend (`JCO_BACKEND=quickjs`): the same
// guardrail as plugin.js, on the frozen contract sluice:plugin@0.1.0 (see
// ../ssn-redact/plugin.quickjs.js for why). In 0.1.0 the request is a
// record (`request.messages`, no `lastUserText()`), and there is no
// `validate-config`: a missing or empty phrase cannot refuse the plugin at
// load, so every call throws instead (the manifest's failure mode, closed
// here, answers) rather than letting everything through.
import { config, log } from 'sluice:plugin/host@0.1.0';

// ASCII-only lowering, like every other language's build of this example.
const lower = (text) => text.replace(/[A-Z]/g, (c) => c.toLowerCase());

function phrase() {
  const p = config('phrase');
  if (p == null) {
    throw new Error('config `phrase`: missing: set the phrase to refuse');
  }
  if (p.trim() === '') {
    throw new Error('config `phrase`: is empty: it would match every text');
  }
  return lower(p);
}

// The last user message's text, or null.
function lastUserText(request) {
  const m = request.messages.findLast((m) => m.role === 'user');
  return m === undefined ? null : m.content;
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
    const text = lastUserText(request);
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
