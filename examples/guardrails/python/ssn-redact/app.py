"""Rewrites every US social security number in model output to "[SSN]".

The rule (see examples/guardrails/cases.yaml): three, two and four ASCII
digits joined by "-", with no ASCII digit right before or after.
"""
import re

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import LogLevel, Verdict_Pass, Verdict_Transform

SSN = re.compile(r"(?<![0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9])")


class Guardrail(exports.Guardrail):
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
