// Rejects requests and answers containing the phrase set in the manifest's
// `[config] phrase` (ASCII case-insensitive); see
// examples/guardrails/cases.yaml. The phrase is checked at load
// (validate-config): a missing or empty phrase, or any other key, refuses
// the plugin instead of letting everything through.
//
// Bindings: `wit-bindgen c` generates guardrail_plugin.{h,c} (build).
// Ownership follows them: owned arguments (strings, records) are ours to
// free, a borrowed request handle must be dropped before returning, and
// what we return is freed by the generated post-return code.
#include <stdio.h>
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

// Whether `s` is only ASCII whitespace (or empty).
static int blank(const guardrail_plugin_string_t *s) {
  for (size_t i = 0; i < s->len; i++) {
    if (!strchr(" \t\r\n\f\v", s->ptr[i])) return 0;
  }
  return 1;
}

// The configured phrase into *phrase (ours to free); 0 when missing or
// blank.
static int phrase(guardrail_plugin_string_t *phrase) {
  guardrail_plugin_string_t key;
  guardrail_plugin_string_set(&key, "phrase");
  if (!sluice_plugin_host_config(&key, phrase)) return 0;
  if (!blank(phrase)) return 1;
  guardrail_plugin_string_free(phrase);
  return 0;
}

// The phrase of a plugin that passed validate-config. Should the host not
// have validated, trap (the manifest's failure mode answers, and the log
// says why) rather than pass everything.
static void validated_phrase(guardrail_plugin_string_t *p) {
  if (!phrase(p)) {
    log_at(SLUICE_PLUGIN_TYPES_LOG_LEVEL_ERROR, "config `phrase`: missing or empty");
    abort();
  }
}

bool exports_sluice_plugin_lifecycle_validate_config(guardrail_plugin_string_t *err) {
  char why[256];
  why[0] = '\0';
  guardrail_plugin_list_string_t keys;
  sluice_plugin_host_config_keys(&keys);
  for (size_t i = 0; i < keys.len && !why[0]; i++) {
    const guardrail_plugin_string_t *k = &keys.ptr[i];
    if (k->len != 6 || memcmp(k->ptr, "phrase", 6) != 0) {
      snprintf(why, sizeof why, "config `%.*s`: unknown key (known: phrase)",
               (int)(k->len > 128 ? 128 : k->len), (const char *)k->ptr);
    }
  }
  guardrail_plugin_list_string_free(&keys);
  guardrail_plugin_string_t p;
  if (!why[0]) {
    guardrail_plugin_string_t key;
    guardrail_plugin_string_set(&key, "phrase");
    if (!sluice_plugin_host_config(&key, &p)) {
      strcpy(why, "config `phrase`: missing: set the phrase to refuse");
    } else {
      if (blank(&p)) strcpy(why, "config `phrase`: is empty: it would match every text");
      guardrail_plugin_string_free(&p);
    }
  }
  if (!why[0]) return true;
  guardrail_plugin_string_dup(err, why);
  return false;
}

exports_sluice_plugin_guardrail_wanted_phases_t exports_sluice_plugin_guardrail_phases(void) {
  return SLUICE_PLUGIN_TYPES_PHASES_INPUT | SLUICE_PLUGIN_TYPES_PHASES_OUTPUT;
}

static void reject(exports_sluice_plugin_guardrail_verdict_t *ret, const char *where) {
  char text[64];
  snprintf(text, sizeof text, "banned phrase in the %s", where);
  log_at(SLUICE_PLUGIN_TYPES_LOG_LEVEL_INFO, text);
  snprintf(text, sizeof text, "the %s contains a banned phrase", where);
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_REJECT;
  guardrail_plugin_string_dup(&ret->val.reject.reason, text);
  guardrail_plugin_string_dup(&ret->val.reject.code, "banned_phrase");
}

void exports_sluice_plugin_guardrail_check_input(
    exports_sluice_plugin_guardrail_borrow_request_t request,
    exports_sluice_plugin_guardrail_verdict_t *ret) {
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_PASS;
  guardrail_plugin_string_t text;
  if (sluice_plugin_types_method_request_last_user_text(request, &text)) {
    guardrail_plugin_string_t p;
    validated_phrase(&p);
    const guardrail_plugin_string_t empty = {0};
    if (contains(&empty, &text, &p)) reject(ret, "request");
    guardrail_plugin_string_free(&p);
    guardrail_plugin_string_free(&text);
  }
  sluice_plugin_types_request_drop_borrow(request);
}

void exports_sluice_plugin_guardrail_check_output(
    exports_sluice_plugin_guardrail_borrow_request_t request,
    guardrail_plugin_string_t *output,
    exports_sluice_plugin_guardrail_output_context_t *context,
    exports_sluice_plugin_guardrail_verdict_t *ret) {
  ret->tag = SLUICE_PLUGIN_TYPES_VERDICT_PASS;
  guardrail_plugin_string_t p;
  validated_phrase(&p);
  // A phrase split across stream windows is caught in the later one.
  if (contains(&context->emitted, output, &p)) reject(ret, "answer");
  guardrail_plugin_string_free(&p);
  sluice_plugin_types_request_drop_borrow(request);
  exports_sluice_plugin_guardrail_output_context_free(context);
  guardrail_plugin_string_free(output);
}
