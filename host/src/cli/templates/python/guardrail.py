"""{{name}}: a Sluice guardrail in Python (componentize-py).

Rejects a request or an answer that contains the `blocked` word of the
manifest's [config] (case-insensitive). The config is checked once at load
(validate-config): a missing or empty word, or an unknown key, refuses the
plugin. Every call runs on a fresh instance: nothing is kept between calls.
"""
import enum

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import LogLevel, Rejection, Verdict_Pass, Verdict_Reject

# The [config] keys this plugin reads.
KEYS = ["blocked"]


# componentize-py 0.25 names the contract's `flag` record `Flag`, which
# shadows enum.Flag in its generated types module, so the generated
# `Phases` is not a working flag set. Its lowering reads `.value` as the
# bit mask (input = 1, output = 2): an enum.Flag of our own gives it that.
class Phases(enum.Flag):
    INPUT = 1
    OUTPUT = 2


def config_error():
    """Why the [config] is unusable, or None."""
    for key in host.config_keys():
        if key not in KEYS:
            return f"config `{key}`: unknown key (known: {', '.join(KEYS)})"
    word = host.config("blocked")
    if word is None:
        return "config `blocked`: missing"
    if not word.strip():
        return "config `blocked`: is empty: it would match every text"
    return None


def blocked_in(text):
    word = host.config("blocked")
    # Validated at load; should it fail here anyway, raise: the manifest's
    # failure mode answers and the log says why.
    if not word or not word.strip():
        raise RuntimeError(config_error())
    return word.lower() in text.lower()


def reject(where):
    # print() and host.log both reach the gateway log, tagged with the
    # plugin's name.
    print(f"blocked word in the {where}")
    host.log(LogLevel.INFO, f"blocked word in the {where}")
    return Verdict_Reject(Rejection(reason=f"the {where} contains a blocked word", code="blocked"))


class Lifecycle(exports.Lifecycle):
    def validate_config(self):
        error = config_error()
        if error is not None:
            raise Err(error)


class Guardrail(exports.Guardrail):
    def phases(self):
        # Both checks; leave one out and the host never calls it.
        return Phases.INPUT | Phases.OUTPUT

    def check_input(self, request):
        # Each method on the request is one host call: ask for what you need.
        text = request.last_user_text()
        if text is not None and blocked_in(text):
            return reject("request")
        return Verdict_Pass()

    def check_output(self, request, output, context):
        # Streams arrive window by window; `context.emitted` is the text
        # already sent, so a word split across windows is still seen.
        if blocked_in(context.emitted + output):
            return reject("answer")
        return Verdict_Pass()
