"""Rewrites every US social security number in model output to "[SSN]".

The rule (see examples/guardrails/cases.yaml): three, two and four ASCII
digits joined by "-", with no ASCII digit right before or after. An
output-only guardrail that takes no settings.
"""
import enum
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import LogLevel, Verdict_Pass, Verdict_Transform


# componentize-py 0.25 names the contract's `flag` record `Flag`, which
# shadows enum.Flag in its generated types module, so the generated
# `Phases` is not a working flag set. Its lowering reads `.value` as the
# bit mask (input = 1, output = 2): an enum.Flag of our own gives it that.
class Phases(enum.Flag):
    INPUT = 1
    OUTPUT = 2


SSN = re.compile(r"(?<![0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9])")


class Lifecycle(exports.Lifecycle):
    def validate_config(self):
        # Any [config] key is a mistake: this guardrail reads none.
        keys = host.config_keys()
        if keys:
            raise Err(f"config `{keys[0]}`: unknown key: this plugin takes no settings")


class Guardrail(exports.Guardrail):
    def phases(self):
        # Only answers are checked: the host never calls check_input.
        return Phases.OUTPUT

    def check_input(self, request):
        return Verdict_Pass()

    def check_output(self, request, output, context):
        redacted, count = SSN.subn("[SSN]", output)
        if count == 0:
            return Verdict_Pass()
        # Both reach the gateway log tagged with the plugin name: print()
        # through the captured stdout, the other through host.log.
        print(f"redacted {count} SSN(s)")
        host.log(LogLevel.INFO, f"redacted {count} SSN(s)")
        return Verdict_Transform(redacted)
