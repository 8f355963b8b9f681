// ssn-redact for the QuickJS backend (`JCO_BACKEND=quickjs`): the same
// guardrail as plugin.js, on the frozen contract sluice:plugin@0.1.0.
//
// Why 0.1.0: componentize-qjs 0.4.5 (jco's QuickJS backend, the newest on
// npm) releases the borrowed `request` a 0.2 export receives only after the
// call has returned, which the component model forbids, so every 0.2 call
// of a QuickJS build traps (docs/plugins.md, "JavaScript"). In 0.1.0 the
// request is a record passed by value: nothing is borrowed. The gateway
// loads 0.1.0 plugins as they are; 0.1.0 has no `validate-config` and no
// `phases` (the host calls checkInput too, which passes).
//
// The rule (examples/guardrails/cases.yaml): three, two and four ASCII
// digits joined by "-", with no ASCII digit right before or after, become
// "[SSN]" in answers.
import { log } from 'sluice:plugin/host@0.1.0';

// componentize-qjs defines no `console`; here it goes to host.log.
globalThis.console ??= { log: (...args) => log('info', args.join(' ')) };

const SSN = /(?<![0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9])/g;

export const guardrail = {
  checkInput(_request) {
    return { tag: 'pass' };
  },
  checkOutput(_request, output, _context) {
    let count = 0;
    const redacted = output.replace(SSN, () => {
      count += 1;
      return '[SSN]';
    });
    if (count === 0) {
      return { tag: 'pass' };
    }
    // Reaches the gateway log tagged with the plugin name.
    console.log(`redacted ${count} SSN(s)`);
    return { tag: 'transform', val: redacted };
  },
};
