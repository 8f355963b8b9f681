"""Drive a running Sluice gateway with the official `openai` SDK.

Usage: SLUICE_BASE_URL=http://127.0.0.1:PORT/v1 SLUICE_MODEL=chat python openai_sdk_check.py
(optional: SLUICE_API_KEY, SLUICE_REJECT_MODEL + SLUICE_REJECT_PROMPT for a mid-stream reject)
Each check prints `ok <name>`; any failure raises (non-zero exit), which the
Rust test (tests/all/openai_sdk.rs) reports with this script's output.
"""

import os

import openai

base = os.environ["SLUICE_BASE_URL"]
model = os.environ.get("SLUICE_MODEL", "chat")
client = openai.OpenAI(base_url=base, api_key=os.environ.get("SLUICE_API_KEY", "unused"), max_retries=0)

# Non-streaming; the raw response exposes the gateway's headers.
raw = client.chat.completions.with_raw_response.create(
    model=model,
    messages=[{"role": "user", "content": "Say hello to the SDK."}],
)
completion = raw.parse()
assert completion.choices[0].message.content, completion
assert completion.usage is not None and completion.usage.total_tokens > 0, completion
assert raw.headers.get("x-sluice-request-id", "").startswith("req_"), dict(raw.headers)
assert raw.headers.get("x-sluice-provider"), dict(raw.headers)
print("ok non-streaming")

# Streaming with usage.
text = []
usage = None
for chunk in client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Stream a few sentences to the SDK."}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            text.append(choice.delta.content)
assert "".join(text), "no streamed text"
assert usage is not None and usage.total_tokens > 0, usage
print("ok streaming")

# An error: unknown model -> 404 with OpenAI's shape.
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    raise AssertionError("expected NotFoundError")
except openai.NotFoundError as e:
    assert e.status_code == 404, e
    assert e.code == "model_not_found", e.body
print("ok error")

# A guardrail rejection mid-stream arrives as an error event: the SDK raises.
reject_prompt = os.environ.get("SLUICE_REJECT_PROMPT")
reject_model = os.environ.get("SLUICE_REJECT_MODEL", model)
if reject_prompt:
    got = []
    try:
        for chunk in client.chat.completions.create(
            model=reject_model, messages=[{"role": "user", "content": reject_prompt}], stream=True
        ):
            got.extend(c.delta.content or "" for c in chunk.choices)
        raise AssertionError(f"expected APIError, stream completed with {''.join(got)!r}")
    except openai.APIError as e:
        assert "guardrail" in str(e).lower(), repr(e)
    print("ok stream-reject")
