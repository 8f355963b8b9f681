// Rewrites every US social security number in model output to "[SSN]".
// The rule (examples/guardrails/cases.yaml): three, two and four ASCII
// digits joined by "-", with no ASCII digit right before or after. An
// output-only guardrail that takes no settings.
import { configKeys, log } from 'sluice:plugin/host@0.2.0';

// componentize-qjs (`jco componentize --backend quickjs`) defines no
// `console`; there it goes to host.log. StarlingMonkey's console writes to
// stdout, which the gateway logs as well.
globalThis.console ??= { log: (...args) => log('info', args.join(' ')) };

const SSN = /(?<![0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9])/g;

export const lifecycle = {
  validateConfig() {
    // Any [config] key is a mistake: this guardrail reads none. A thrown
    // string is the `err` of `result<_, string>`.
    const keys = configKeys();
    if (keys.length > 0) {
      throw `config \`${keys[0]}\`: unknown key: this plugin takes no settings`;
    }
  },
};

export const guardrail = {
  // Only answers are checked: the host never calls checkInput.
  phases() {
    return { input: false, output: true };
  },
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
    // Both reach the gateway log tagged with the plugin name: console.log
    // through the captured stdout, the other through host.log.
    console.log(`redacted ${count} SSN(s)`);
    log('info', `redacted ${count} SSN(s)`);
    return { tag: 'transform', val: redacted };
  },
};
