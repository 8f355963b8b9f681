// {{name}}: a Sluice router in JavaScript (jco componentize).
//
// Orders the candidate routes cheapest first (input + output price per
// million tokens); equal prices keep the configured order (the sort is
// stable). An empty list would mean "use the configured order". It takes
// no settings: any [config] key refuses the plugin at load.
import { configKeys, log } from 'sluice:plugin/host@0.2.0';

const price = (c) => c.inputCostPerMtok + c.outputCostPerMtok;

export const lifecycle = {
  validateConfig() {
    const keys = configKeys();
    // A thrown string is the `err` of `result<_, string>`.
    if (keys.length > 0) {
      throw `config \`${keys[0]}\`: unknown key: this plugin takes no settings`;
    }
  },
};

export const router = {
  route(_request, candidates) {
    const routes = [...candidates]
      .sort((a, b) => price(a) - price(b))
      .map((c) => ({ provider: c.provider, model: c.model }));
    if (routes.length > 0) {
      log('debug', `first route: ${routes[0].provider}/${routes[0].model}`);
    }
    return routes;
  },
};
