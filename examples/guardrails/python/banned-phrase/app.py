"""Rejects requests and answers containing the phrase set in the manifest's
`[config] phrase` (ASCII case-insensitive); see
examples/guardrails/cases.yaml. The phrase is checked at load
(validate-config): a missing or empty phrase, or any other key, refuses the
plugin instead of letting everything through.
"""
import enum

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import LogLevel, Rejection, Verdict_Pass, Verdict_Reject


# componentize-py 0.25 names the contract's `flag` record `Flag`, which
# shadows enum.Flag in its generated types module, so the generated
# `Phases` is not a working flag set. Its lowering reads `.value` as the
# bit mask (input = 1, output = 2): an enum.Flag of our own gives it that.
class Phases(enum.Flag):
    INPUT = 1
    OUTPUT = 2


def lower(text):
    # ASCII-only lowering, like every other language's build of this
    # example (str.lower() would also fold non-ASCII letters).
    return text.encode().lower()


def config_error():
    """Why the [config] is unusable, or None."""
    for key in host.config_keys():
        if key != "phrase":
            return f"config `{key}`: unknown key (known: phrase)"
    p = host.config("phrase")
    if p is None:
        return "config `phrase`: missing: set the phrase to refuse"
    if not p.strip():
        return "config `phrase`: is empty: it would match every text"
    return None


def phrase():
    # Validated at load; should the host not have, fail the call (the
    # manifest's failure mode answers) rather than pass everything.
    p = host.config("phrase")
    if not p or not p.strip():
        raise RuntimeError(config_error())
    return lower(p)


def reject(where):
    host.log(LogLevel.INFO, f"banned phrase in the {where}")
    return Verdict_Reject(Rejection(reason=f"the {where} contains a banned phrase", code="banned_phrase"))


class Lifecycle(exports.Lifecycle):
    def validate_config(self):
        error = config_error()
        if error is not None:
            raise Err(error)


class Guardrail(exports.Guardrail):
    def phases(self):
        return Phases.INPUT | Phases.OUTPUT

    def check_input(self, request):
        text = request.last_user_text()
        if text is not None and phrase() in lower(text):
            return reject("request")
        return Verdict_Pass()

    def check_output(self, request, output, context):
        # A phrase split across stream windows is caught in the later one.
        if phrase() in lower(context.emitted + output):
            return reject("answer")
        return Verdict_Pass()
