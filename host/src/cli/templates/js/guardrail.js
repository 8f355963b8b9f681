// {{name}}: a Sluice guardrail in JavaScript (jco componentize).
//
// Rejects a request or an answer that contains the `blocked` word of the
// manifest's [config] (case-insensitive). The config is checked once at
// load (validate-config): a missing or empty word, or an unknown key,
// refuses the plugin. Every call runs on a fresh instance: nothing is kept
// between calls.
import { config, configKeys, log } from 'sluice:plugin/host@0.2.0';

// The QuickJS backend defines no `console`; there it goes to host.log.
// (StarlingMonkey's console writes to stdout, which the gateway logs too.)
globalThis.console ??= { log: (...args) => log('info', args.join(' ')) };

// The [config] keys this plugin reads.
const KEYS = ['blocked'];

// Why the [config] is unusable, or null. (Absent options are null in
// QuickJS and undefined in StarlingMonkey: `== null` covers both.)
function configError() {
  const unknown = configKeys().find((k) => !KEYS.includes(k));
  if (unknown !== undefined) {
    return `config \`${unknown}\`: unknown key (known: ${KEYS.join(', ')})`;
  }
  const word = config('blocked');
  if (word == null) {
    return 'config `blocked`: missing';
  }
  if (word.trim() === '') {
    return 'config `blocked`: is empty: it would match every text';
  }
  return null;
}

function blockedIn(text) {
  const word = config('blocked');
  // Validated at load; should it fail here anyway, throw: the manifest's
  // failure mode answers and the log says why.
  if (word == null || word.trim() === '') {
    throw new Error(configError());
  }
  return text.toLowerCase().includes(word.toLowerCase());
}

function reject(where) {
  // console.log and host.log both reach the gateway log, tagged with the
  // plugin's name.
  console.log(`blocked word in the ${where}`);
  log('info', `blocked word in the ${where}`);
  return {
    tag: 'reject',
    val: { reason: `the ${where} contains a blocked word`, code: 'blocked' },
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
    // Both checks; leave one out and the host never calls it.
    return { input: true, output: true };
  },
  checkInput(request) {
    // Each method on the request is one host call: ask for what you need.
    const text = request.lastUserText();
    if (text != null && blockedIn(text)) {
      return reject('request');
    }
    return { tag: 'pass' };
  },
  checkOutput(_request, output, context) {
    // Streams arrive window by window; `context.emitted` is the text
    // already sent, so a word split across windows is still seen.
    if (blockedIn(context.emitted + output)) {
      return reject('answer');
    }
    return { tag: 'pass' };
  },
};
