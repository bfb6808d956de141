/*
 * jsonutil.c - typed, validated field access on jansson objects.
 *
 * Invariants: getters never touch *out on failure or absence; every failure
 * fills err with one human-readable sentence naming the field; returned
 * pointers are borrowed from obj (no reference taken).
 */
#include "jsonutil.h"

#include <stdio.h>
#include <stdlib.h>

/*
 * Look up key and check its type. Returns false (err filled) when required and
 * absent or present with the wrong type; true otherwise, with *v NULL when absent.
 */
static bool field_get(json_t *obj, const char *key, bool required, json_type type,
                      const char *what, json_t **v, char *err, size_t errlen)
{
    *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (*v == NULL) {
        if (required && err && errlen)
            snprintf(err, errlen, "field '%s' is required", key);
        return !required;
    }
    bool ok = json_typeof(*v) == type ||
              (type == JSON_TRUE && json_typeof(*v) == JSON_FALSE); /* JSON_TRUE = boolean */
    if (!ok && err && errlen)
        snprintf(err, errlen, "field '%s' must be %s", key, what);
    return ok;
}

bool json_field_string(json_t *obj, const char *key, bool required, const char **out,
                       char *err, size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_STRING, "a string", &v, err, errlen))
        return false;
    if (v)
        *out = json_string_value(v);
    return true;
}

bool json_field_int(json_t *obj, const char *key, bool required, long long min, long long max,
                    long long *out, char *err, size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_INTEGER, "an integer", &v, err, errlen))
        return false;
    if (!v)
        return true;
    long long x = (long long)json_integer_value(v);
    if (x < min || x > max) {
        if (err && errlen)
            snprintf(err, errlen, "field '%s' must be between %lld and %lld", key, min, max);
        return false;
    }
    *out = x;
    return true;
}

bool json_field_bool(json_t *obj, const char *key, bool required, bool *out, char *err,
                     size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_TRUE, "a boolean", &v, err, errlen))
        return false;
    if (v)
        *out = json_is_true(v);
    return true;
}

bool json_field_array(json_t *obj, const char *key, bool required, json_t **out, char *err,
                      size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_ARRAY, "an array", &v, err, errlen))
        return false;
    if (v)
        *out = v;
    return true;
}

bool json_field_object(json_t *obj, const char *key, bool required, json_t **out, char *err,
                       size_t errlen)
{
    json_t *v;
    if (!field_get(obj, key, required, JSON_OBJECT, "an object", &v, err, errlen))
        return false;
    if (v)
        *out = v;
    return true;
}

char *utf8_lossy_dup(const char *s)
{
    json_t *probe = json_string(s); /* jansson's own UTF-8 check */
    char *copy = xstrdup(s);
    if (probe) {
        json_decref(probe);
        return copy;
    }
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    return copy;
}

json_t *json_string_lossy(const char *s)
{
    json_t *v = json_string(s);
    if (v)
        return v;
    char *copy = utf8_lossy_dup(s);
    v = json_string(copy);
    free(copy);
    return v;
}

json_t *json_error_body(const char *code, const char *message)
{
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string_lossy(code ? code : "internal"));
    json_object_set_new(err, "message", json_string_lossy(message ? message : ""));
    json_t *body = json_object();
    json_object_set_new(body, "error", err);
    return body;
}
