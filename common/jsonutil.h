/*
 * jsonutil.h - typed field access for request validation.
 *
 * Every getter: if the key is absent, leaves *out untouched and returns true
 * when !required, false (with err filled: "field 'x' is required") when
 * required; if present with the wrong type returns false with err filled
 * ("field 'x' must be a string"). Pointers returned are borrowed from obj.
 */
#ifndef TX_JSONUTIL_H
#define TX_JSONUTIL_H

#include <jansson.h>
#include "util.h"

#define JSON_ERR_LEN 256

bool json_field_string(json_t *obj, const char *key, bool required, const char **out,
                       char *err, size_t errlen) MUSTCHECK;
bool json_field_int(json_t *obj, const char *key, bool required, long long min, long long max,
                    long long *out, char *err, size_t errlen) MUSTCHECK;
bool json_field_bool(json_t *obj, const char *key, bool required, bool *out, char *err,
                     size_t errlen) MUSTCHECK;
/* Array (borrowed). */
bool json_field_array(json_t *obj, const char *key, bool required, json_t **out, char *err,
                      size_t errlen) MUSTCHECK;
/* Object (borrowed). */
bool json_field_object(json_t *obj, const char *key, bool required, json_t **out, char *err,
                       size_t errlen) MUSTCHECK;

/* A JSON string from arbitrary text (e.g. a server error message): bytes that
 * are not valid UTF-8 become '?'. Never NULL for a non-NULL s. New reference. */
json_t *json_string_lossy(const char *s);
/* s itself if it is valid UTF-8, else with every byte >= 0x80 made '?' (the
 * rule of json_string_lossy). Caller frees. */
char *utf8_lossy_dup(const char *s);

/* Build {"error":{"code":code,"message":message}}. New reference. */
json_t *json_error_body(const char *code, const char *message);

#endif
