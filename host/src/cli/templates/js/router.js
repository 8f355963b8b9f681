// {{name}}: a Sluice router in JavaScript (jco componentize).
//
// Orders the candidate routes cheapest first (input + output price per
// million tokens); equal prices keep the configured order (the sort is
// stable). An empty list would mean "use the configured order".
import { log } from 'sluice:plugin/host@0.1.0';

const price = (c) => c.inputCostPerMtok + c.outputCostPerMtok;

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
