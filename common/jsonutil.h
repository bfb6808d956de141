/*
 * jsonutil.h - typed field access for request validation; JSON text with
 * reals in their shortest exact form.
 *
 * Every getter: if the key is absent, leaves *out untouched and returns true
 * when !required, false (with err filled: "field 'x' is required") when
 * required; if present with the wrong type returns false with err filled
 * ("field 'x' must be a string"). Pointers returned are borrowed from obj.
 */
#ifndef TX_JSONUTIL_H
#define TX_JSONUTIL_H

#include <jansson.h>
#include "strbuf.h"
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
/* Every key of obj (an object, or NULL) is one of known (NULL-terminated):
 * a misspelt field ("comit") must not be ignored. false with err naming the
 * first unknown key otherwise. */
bool json_fields_known(json_t *obj, const char *const *known, char *err,
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
/* s[0..len) is UTF-8 as jansson accepts it (shortest forms, no surrogates,
 * at most U+10FFFF, no NUL byte). */
bool utf8_valid(const char *s, size_t len);
/* Cut an incomplete UTF-8 sequence off the end of s (in place): what
 * snprintf leaves when it truncates text in the middle of a character, so
 * that a truncated message stays valid instead of becoming all '?'. */
void utf8_trim_partial(char *s);

/* Serialization.
 * jansson prints every real with 17 significant digits ("%.17g"), so a
 * client's 19.99 came back, and went into PostgreSQL, as 19.989999999999998.
 * These print a real as the shortest of "%.15g", "%.16g", "%.17g" that reads
 * back as the same double: the decimal the client wrote whenever it had at
 * most 15 significant digits, and still exact for every double. */

/* d (finite) in the shortest such form, as text for PostgreSQL (no ".0"
 * added: "5" for 5.0, which an integer column accepts). Returns the length;
 * buf of JSON_REAL_BUF bytes. */
#define JSON_REAL_BUF 32
size_t json_real_format(double d, char buf[JSON_REAL_BUF]);
/* v as compact JSON text, like json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
 * (same escapes, keys in insertion order) but with reals printed by
 * json_real_format, plus ".0" where that has no '.' or exponent so that the
 * value stays a real. Caller frees. NULL for NULL v. */
char *json_dump_text(const json_t *v);
/* The same laid out like json_dumps(v, JSON_INDENT(indent) | JSON_ENCODE_ANY)
 * (indent 0 = compact), for people to read. Caller frees. */
char *json_dump_text_indent(const json_t *v, int indent);
/* JSON text as received (text[0..len)) laid out the same way, token by
 * token, without parsing it: numbers and strings are copied byte for byte,
 * so a jsonb number beyond a double or a 64-bit integer keeps every digit.
 * Whitespace outside strings is dropped; text is not validated. Caller
 * frees. */
char *json_text_reindent(const char *text, size_t len, int indent);

/* Writers that append JSON text to sb without building a tree (pg.c's rows):
 * the pieces json_dump_text is made of, so both write the same bytes. */
/* s[0..len) (valid UTF-8) as a JSON string: jansson's default escapes
 * (\\ \" \b \f \n \r \t, \u00XX for other control bytes), UTF-8 as is. */
void json_text_string(strbuf *sb, const char *s, size_t len);
/* The same for any bytes, made valid as json_string_lossy does ('?' for every
 * byte >= 0x80 when s is not valid UTF-8; a NUL ends it). */
void json_text_string_lossy(strbuf *sb, const char *s, size_t len);
/* d (finite) as a JSON real: json_real_format, plus ".0" when that looks
 * like an integer. */
void json_text_real(strbuf *sb, double d);
/* v as compact JSON text (json_dump_text), appended. */
void json_text_value(strbuf *sb, const json_t *v);

/* Build {"error":{"code":code,"message":message}}. New reference. */
json_t *json_error_body(const char *code, const char *message);

#endif
