"""{{name}}: a Sluice guardrail in Python (componentize-py).

Rejects a request or an answer that contains the `blocked` word of the
manifest's [config] (case-insensitive). Every call runs on a fresh
instance: nothing is kept between calls.
"""
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import LogLevel, Rejection, Verdict_Pass, Verdict_Reject


def blocked_in(text):
    word = host.config("blocked")
    return bool(word) and word.lower() in text.lower()


def reject(where):
    # print() and host.log both reach the gateway log, tagged with the
    # plugin's name.
    print(f"blocked word in the {where}")
    host.log(LogLevel.INFO, f"blocked word in the {where}")
    return Verdict_Reject(Rejection(reason=f"the {where} contains a blocked word", code="blocked"))


class Guardrail(exports.Guardrail):
    def check_input(self, request):
        users = [m.content for m in request.messages if m.role == "user"]
        if users and blocked_in(users[-1]):
            return reject("request")
        return Verdict_Pass()

    def check_output(self, request, output, context):
        # Streams arrive window by window; `context.emitted` is the text
        # already sent, so a word split across windows is still seen.
        if blocked_in(context.emitted + output):
            return reject("answer")
        return Verdict_Pass()
