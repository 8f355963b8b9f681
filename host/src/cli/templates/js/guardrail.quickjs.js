// {{name}}: a Sluice guardrail in JavaScript for the QuickJS backend
// (`JCO_BACKEND=quickjs ./build`): plugin.js on the frozen contract
// sluice:plugin@0.1.0 (wit/frozen/0.1.0), which the gateway still loads.
//
// Why 0.1.0: componentize-qjs 0.4.5 (jco's QuickJS backend) releases the
// borrowed `request` a 0.2 export receives only after the call returned,
// which the component model forbids, so every 0.2 call traps. In 0.1.0 the
// request is a record passed by value (`request.messages`, `request.model`,
// ...), and there is no validate-config and no phases: a bad [config] fails
// each call (the manifest's failure mode answers) instead of the load, and
// the host calls both checks. Keep this file and plugin.js in step, or
// delete the one whose backend you do not use.
//
// Rejects a request or an answer that contains the `blocked` word of the
// manifest's [config] (case-insensitive). Every call runs on a fresh
// instance: nothing is kept between calls.
import { config, log } from 'sluice:plugin/host@0.1.0';

// componentize-qjs defines no `console`; here it goes to host.log.
globalThis.console ??= { log: (...args) => log('info', args.join(' ')) };

function blockedIn(text) {
  const word = config('blocked');
  // Not checked at load on 0.1.0: throw, the failure mode answers and the
  // log says why.
  if (word == null || word.trim() === '') {
    throw new Error('config `blocked`: missing or empty');
  }
  return text.toLowerCase().includes(word.toLowerCase());
}

function reject(where) {
  console.log(`blocked word in the ${where}`);
  return {
    tag: 'reject',
    val: { reason: `the ${where} contains a blocked word`, code: 'blocked' },
  };
}

export const guardrail = {
  checkInput(request) {
    // The request is a record: the last user message is in `messages`.
    const last = request.messages.findLast((m) => m.role === 'user');
    if (last !== undefined && blockedIn(last.content)) {
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
