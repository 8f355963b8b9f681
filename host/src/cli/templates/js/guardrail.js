// {{name}}: a Sluice guardrail in JavaScript (jco componentize).
//
// Rejects a request or an answer that contains the `blocked` word of the
// manifest's [config] (case-insensitive). Every call runs on a fresh
// instance: nothing is kept between calls.
import { config, log } from 'sluice:plugin/host@0.1.0';

// The QuickJS backend defines no `console`; there it goes to host.log.
// (StarlingMonkey's console writes to stdout, which the gateway logs too.)
globalThis.console ??= { log: (...args) => log('info', args.join(' ')) };

function blockedIn(text) {
  const word = config('blocked');
  return Boolean(word) && text.toLowerCase().includes(word.toLowerCase());
}

function reject(where) {
  // console.log and host.log both reach the gateway log, tagged with the
  // plugin's name.
  console.log(`blocked word in the ${where}`);
  log('info', `blocked word in the ${where}`);
  return { tag: 'reject', val: { reason: `the ${where} contains a blocked word`, code: 'blocked' } };
}

export const guardrail = {
  checkInput(request) {
    const users = request.messages.filter((m) => m.role === 'user');
    if (users.length > 0 && blockedIn(users[users.length - 1].content)) {
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
