"""{{name}}: a Sluice router in Python (componentize-py).

Orders the candidate routes cheapest first (input + output price per
million tokens); equal prices keep the configured order. An empty list
would mean "use the configured order". It takes no settings: any [config]
key refuses the plugin at load.
"""
from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import LogLevel, Route


class Lifecycle(exports.Lifecycle):
    def validate_config(self):
        keys = host.config_keys()
        if keys:
            raise Err(f"config `{keys[0]}`: unknown key: this plugin takes no settings")


class Router(exports.Router):
    def route(self, request, candidates):
        ordered = sorted(candidates, key=lambda c: c.input_cost_per_mtok + c.output_cost_per_mtok)
        routes = [Route(provider=c.provider, model=c.model) for c in ordered]
        if routes:
            host.log(LogLevel.DEBUG, f"first route: {routes[0].provider}/{routes[0].model}")
        return routes
