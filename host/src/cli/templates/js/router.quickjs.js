// {{name}}: a Sluice router in JavaScript for the QuickJS backend
// (`JCO_BACKEND=quickjs ./build`): plugin.js on the frozen contract
// sluice:plugin@0.1.0 (wit/frozen/0.1.0; guardrail template and build say
// why: componentize-qjs 0.4.5 traps on every 0.2 call). In 0.1.0 the
// request is a record and there is no validate-config.
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
