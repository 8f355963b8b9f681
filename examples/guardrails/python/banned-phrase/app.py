"""Rejects requests and answers containing the phrase set in the manifest's
`[config] phrase` (ASCII case-insensitive); see
examples/guardrails/cases.yaml.
"""
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import LogLevel, Rejection, Verdict_Pass, Verdict_Reject


def lower(text):
    # ASCII-only lowering, like every other language's build of this
    # example (str.lower() would also fold non-ASCII letters).
    return text.encode().lower()


def phrase():
    p = host.config("phrase")
    if not p:
        host.log(LogLevel.WARN, "no `phrase` in [config]: passing everything")
        return None
    return lower(p)


def reject(where):
    host.log(LogLevel.INFO, f"banned phrase in the {where}")
    return Verdict_Reject(Rejection(reason=f"the {where} contains a banned phrase", code="banned_phrase"))


class Guardrail(exports.Guardrail):
    def check_input(self, request):
        p = phrase()
        users = [m.content for m in request.messages if m.role == "user"]
        if p is not None and users and p in lower(users[-1]):
            return reject("request")
        return Verdict_Pass()

    def check_output(self, request, output, context):
        p = phrase()
        # A phrase split across stream windows is caught in the later one.
        if p is not None and p in lower(context.emitted + output):
            return reject("answer")
        return Verdict_Pass()
