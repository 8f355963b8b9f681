// Rejects requests and answers containing the phrase set in the manifest's
// `[config] phrase` (ASCII case-insensitive); see
// examples/guardrails/cases.yaml.
//
// Bindings: `wit-bindgen c` generates guardrail_plugin.{h,c} (build).
// Ownership follows them: arguments are ours to free, the returned verdict
// is freed by the generated post-return code.
#include <stdlib.h>
#include <string.h>

#include "guardrail_plugin.h"

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static void log_at(sluice_plugin_host_log_level_t level, const char *text) {
  guardrail_plugin_string_t msg;
  guardrail_plugin_string_set(&msg, text);
  sluice_plugin_host_log(level, &msg);
}

// Whether `hay` (the two parts a then b, read as one text) contains
// `needle`, ASCII case-insensitively.
static int contains(const guardrail_plugin_string_t *a, const guardrail_plugin_string_t *b,
                    const guardrail_plugin_string_t *needle) {
  const size_t n = a->len + b->len, m = needle->len;
  if (m == 0 || m > n) return 0;
  for (size_t i = 0; i + m <= n; i++) {
    size_t k = 0;
    for (; k < m; k++) {
      size_t j = i + k;
      uint8_t c = j < a->len ? a->ptr[j] : b->ptr[j - a->len];
      if (lower(c) != lower(needle->ptr[k])) break;
    }
    if (k == m) return 1;
  }
  return 0;
}

// The configured phrase into *phrase; 0 (and a warning) when unset.
static int phrase(guardrail_plugin_string_t *phrase) {
  guardrail_plugin_string_t key;
  guardrail_plugin_string_set(&key, "phrase");
  if (sluice_plugin_host_config(&key, phrase)) {
    if (phrase->len > 0) return 1;
    guardrail_plugin_string_free(phrase);
  }
  log_at(SLUICE_PLUGIN_TYPES_LOG_LEVEL_WARN, "no `phrase` in [config]: passing everything");
  return 0;
}

static void reject(exports_sluice_plugin_guardrail_verdict_t *ret, const char *where) {
  char text[64];
  strcpy(text, "banned phrase in the ");
  strcat(text, where);
  log_at(SLUICE_PLUGIN_TYPES_LOG_LEVEL_INFO, text);
  strcpy(text, "the ");
  strcat(text, where);
  strcat(text, " contains a banned phrase");
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_REJECT;
  guardrail_plugin_string_dup(&ret->val.reject.reason, text);
  guardrail_plugin_string_dup(&ret->val.reject.code, "banned_phrase");
}

void exports_sluice_plugin_guardrail_check_input(
    exports_sluice_plugin_guardrail_request_info_t *request,
    exports_sluice_plugin_guardrail_verdict_t *ret) {
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_PASS;
  guardrail_plugin_string_t p;
  if (phrase(&p)) {
    const guardrail_plugin_string_t empty = {0};
    for (size_t i = request->messages.len; i > 0; i--) {
      sluice_plugin_types_message_t *m = &request->messages.ptr[i - 1];
      if (m->role.len == 4 && memcmp(m->role.ptr, "user", 4) == 0) {
        if (contains(&empty, &m->content, &p)) reject(ret, "request");
        break;
      }
    }
    guardrail_plugin_string_free(&p);
  }
  exports_sluice_plugin_guardrail_request_info_free(request);
}

void exports_sluice_plugin_guardrail_check_output(
    exports_sluice_plugin_guardrail_request_info_t *request,
    guardrail_plugin_string_t *output,
    exports_sluice_plugin_guardrail_output_context_t *context,
    exports_sluice_plugin_guardrail_verdict_t *ret) {
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_PASS;
  guardrail_plugin_string_t p;
  if (phrase(&p)) {
    // A phrase split across stream windows is caught in the later one.
    if (contains(&context->emitted, output, &p)) reject(ret, "answer");
    guardrail_plugin_string_free(&p);
  }
  exports_sluice_plugin_guardrail_request_info_free(request);
  exports_sluice_plugin_guardrail_output_context_free(context);
  guardrail_plugin_string_free(output);
}
