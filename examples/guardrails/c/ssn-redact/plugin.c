// Rewrites every US social security number in model output to "[SSN]".
// The rule (examples/guardrails/cases.yaml): three, two and four ASCII
// digits joined by '-', with no ASCII digit right before or after. An
// output-only guardrail that takes no settings.
//
// Bindings: `wit-bindgen c` generates guardrail_plugin.{h,c} (build).
// Ownership follows them: owned arguments (strings, records) are ours to
// free, a borrowed request handle must be dropped before returning, and
// what we return is freed by the generated post-return code.
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

// Any [config] key is a mistake: this guardrail reads none.
bool exports_sluice_plugin_lifecycle_validate_config(guardrail_plugin_string_t *err) {
  guardrail_plugin_list_string_t keys;
  sluice_plugin_host_config_keys(&keys);
  const bool ok = keys.len == 0;
  if (!ok) {
    char why[256];
    const guardrail_plugin_string_t *k = &keys.ptr[0];
    snprintf(why, sizeof why, "config `%.*s`: unknown key: this plugin takes no settings",
             (int)(k->len > 128 ? 128 : k->len), (const char *)k->ptr);
    guardrail_plugin_string_dup(err, why);
  }
  guardrail_plugin_list_string_free(&keys);
  return ok;
}

// Only answers are checked: the host never calls check-input.
exports_sluice_plugin_guardrail_wanted_phases_t exports_sluice_plugin_guardrail_phases(void) {
  return SLUICE_PLUGIN_TYPES_PHASES_OUTPUT;
}

void exports_sluice_plugin_guardrail_check_input(
    exports_sluice_plugin_guardrail_borrow_request_t request,
    exports_sluice_plugin_guardrail_verdict_t *ret) {
  sluice_plugin_types_request_drop_borrow(request);
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_PASS;
}

void exports_sluice_plugin_guardrail_check_output(
    exports_sluice_plugin_guardrail_borrow_request_t request,
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
  sluice_plugin_types_request_drop_borrow(request);
  exports_sluice_plugin_guardrail_output_context_free(context);
  guardrail_plugin_string_free(output);
}
