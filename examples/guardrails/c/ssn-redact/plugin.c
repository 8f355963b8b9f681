// Rewrites every US social security number in model output to "[SSN]".
// The rule (examples/guardrails/cases.yaml): three, two and four ASCII
// digits joined by '-', with no ASCII digit right before or after.
//
// Bindings: `wit-bindgen c` generates guardrail_plugin.{h,c} (build).
// Ownership follows them: arguments are ours to free, the returned verdict
// is freed by the generated post-return code.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guardrail_plugin.h"

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

// Whether an SSN starts at s[i] (length n).
static int ssn_at(const uint8_t *s, size_t n, size_t i) {
  static const char shape[] = "ddd-dd-dddd";
  const size_t len = sizeof shape - 1;
  if (i + len > n) return 0;
  for (size_t k = 0; k < len; k++) {
    if (shape[k] == 'd' ? !is_digit(s[i + k]) : s[i + k] != '-') return 0;
  }
  return (i == 0 || !is_digit(s[i - 1])) && (i + len == n || !is_digit(s[i + len]));
}

static void log_info(const char *text) {
  guardrail_plugin_string_t msg;
  guardrail_plugin_string_set(&msg, text);
  sluice_plugin_host_log(SLUICE_PLUGIN_TYPES_LOG_LEVEL_INFO, &msg);
}

void exports_sluice_plugin_guardrail_check_input(
    exports_sluice_plugin_guardrail_request_info_t *request,
    exports_sluice_plugin_guardrail_verdict_t *ret) {
  exports_sluice_plugin_guardrail_request_info_free(request);
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_PASS;
}

void exports_sluice_plugin_guardrail_check_output(
    exports_sluice_plugin_guardrail_request_info_t *request,
    guardrail_plugin_string_t *output,
    exports_sluice_plugin_guardrail_output_context_t *context,
    exports_sluice_plugin_guardrail_verdict_t *ret) {
  const uint8_t *s = output->ptr;
  const size_t n = output->len;
  // "[SSN]" (5 bytes) is shorter than an SSN (11), so n bytes suffice.
  uint8_t *out = malloc(n > 0 ? n : 1);
  size_t o = 0, count = 0;
  for (size_t i = 0; i < n;) {
    if (ssn_at(s, n, i)) {
      memcpy(out + o, "[SSN]", 5);
      o += 5;
      i += 11;
      count++;
    } else {
      out[o++] = s[i++];
    }
  }
  if (count == 0) {
    free(out);
    ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_PASS;
  } else {
    // Both reach the gateway log tagged with the plugin name: stderr
    // through the captured stdio, the other through host.log.
    fprintf(stderr, "redacted %zu SSN(s)\n", count);
    char line[64];
    snprintf(line, sizeof line, "redacted %zu SSN(s)", count);
    log_info(line);
    ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_TRANSFORM;
    ret->val.transform.ptr = out;
    ret->val.transform.len = o;
  }
  exports_sluice_plugin_guardrail_request_info_free(request);
  exports_sluice_plugin_guardrail_output_context_free(context);
  guardrail_plugin_string_free(output);
}
