/* The generic option parser, validator, describe and help over a method's declared options
 * (pb_method_option, methods/method.h, version 2). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/status.h"
#include "methods/method.h"

#define LIST_SEPS ",+|;: "

static int nvalues(const pb_method_option *o) {
  int k = 0;
  while (o->values && o->values[k]) k++;
  return k;
}

/* "a, b, c" */
static void join_values(const pb_method_option *o, const char *sep, char *buf, size_t n) {
  size_t w = 0;
  if (n) buf[0] = 0;
  for (int k = 0; o->values && o->values[k] && w < n; k++)
    w += (size_t)snprintf(buf + w, n - w, "%s%s", k ? sep : "", o->values[k]);
}

static const char *opt_name_list(const pb_method *m, char *buf, size_t n) {
  size_t w = 0;
  if (n) buf[0] = 0;
  for (int i = 0; i < m->n_options && w < n; i++)
    w += (size_t)snprintf(buf + w, n - w, "%s%s", i ? ", " : "", m->options[i].name);
  return buf;
}

const pb_method_option *pb_method_option_find(const pb_method *m, const char *key) {
  if (!m || m->version < 2 || !m->options) return NULL;
  for (int i = 0; i < m->n_options; i++) {
    const pb_method_option *o = &m->options[i];
    if (strcmp(o->name, key) == 0 || (o->alias && strcmp(o->alias, key) == 0)) return o;
  }
  return NULL;
}

int pb_method_option_set(const pb_method *m, void *ctx, const pb_method_option *o, const char *value) {
  char *field = (char *)ctx + o->offset;
  char vals[512];
  switch (o->type) {
    case PB_OPT_INT: {
      char *end = NULL;
      errno = 0;
      long x = strtol(value, &end, 10);
      if (!*value || errno || !end || *end || (double)x < o->min || (double)x > o->max)
        return pb_set_error(PB_ERR_ARG, "%s: %s=%s must be an integer in %.0f..%.0f", m->name, o->name, value, o->min,
                            o->max);
      *(int *)field = (int)x;
      return PB_OK;
    }
    case PB_OPT_FLOAT: {
      char *end = NULL;
      double x = strtod(value, &end);
      if (!*value || !end || *end || !isfinite(x) || x < o->min || (o->max_open ? x >= o->max : x > o->max))
        return pb_set_error(PB_ERR_ARG, "%s: %s=%s is not a number in [%g, %g%s", m->name, o->name, value, o->min,
                            o->max, o->max_open ? ")" : "]");
      *(float *)field = (float)x;
      return PB_OK;
    }
    case PB_OPT_ENUM:
      for (int k = 0; o->values && o->values[k]; k++)
        if (strcmp(value, o->values[k]) == 0) {
          *(int *)field = k;
          return PB_OK;
        }
      join_values(o, ", ", vals, sizeof vals);
      return pb_set_error(PB_ERR_ARG, "%s: %s=%s (valid: %s)", m->name, o->name, value, vals);
    case PB_OPT_LIST: {
      unsigned bits = 0;
      const int nv = nvalues(o);
      for (const char *p = value; *p;) {
        size_t len = strcspn(p, LIST_SEPS);
        if (len > 0) {
          int found = 0;
          if (len == 3 && strncmp(p, "all", 3) == 0) {
            bits |= nv >= 32 ? ~0u : (1u << nv) - 1;
            found = 1;
          }
          for (int k = 0; k < nv && !found; k++)
            if (strlen(o->values[k]) == len && strncmp(p, o->values[k], len) == 0) {
              bits |= 1u << k;
              found = 1;
            }
          if (!found) {
            join_values(o, ",", vals, sizeof vals);
            return pb_set_error(PB_ERR_ARG, "%s: unknown %s value '%.*s' in '%s' (valid: %s,all)", m->name, o->name,
                                (int)len, p, value, vals);
          }
          p += len;
        }
        if (*p) p++;
      }
      if (!bits) {
        join_values(o, ",", vals, sizeof vals);
        return pb_set_error(PB_ERR_ARG, "%s: %s='%s' names no value (valid: %s,all)", m->name, o->name, value, vals);
      }
      *(unsigned *)field = bits;
      return PB_OK;
    }
  }
  return pb_set_error(PB_ERR_ARG, "%s: option %s has an unknown type %d", m->name, o->name, (int)o->type);
}

int pb_method_set_option(const pb_method *m, void *ctx, const char *key, const char *value) {
  const pb_method_option *o = pb_method_option_find(m, key);
  if (!o) {
    char names[512];
    return pb_set_error(PB_ERR_ARG, "%s: unknown option '%s' (valid: %s)", m->name, key,
                        opt_name_list(m, names, sizeof names));
  }
  return pb_method_option_set(m, ctx, o, value);
}

/* one option's value as text into buf+*w */
static void format_value(const pb_method_option *o, const void *ctx, char *buf, size_t n, size_t *w) {
  const char *field = (const char *)ctx + o->offset;
  size_t room = *w < n ? n - *w : 0;
  switch (o->type) {
    case PB_OPT_INT: *w += (size_t)snprintf(buf + *w, room, "%d", *(const int *)field); break;
    case PB_OPT_FLOAT: *w += (size_t)snprintf(buf + *w, room, "%g", (double)*(const float *)field); break;
    case PB_OPT_ENUM: {
      int k = *(const int *)field;
      *w += (size_t)snprintf(buf + *w, room, "%s", k >= 0 && k < nvalues(o) ? o->values[k] : "?");
      break;
    }
    case PB_OPT_LIST: {
      unsigned bits = *(const unsigned *)field;
      int first = 1;
      for (int k = 0; k < nvalues(o) && k < 32; k++)
        if (bits & (1u << k)) {
          room = *w < n ? n - *w : 0;
          *w += (size_t)snprintf(buf + *w, room, "%s%s", first ? "" : "+", o->values[k]);
          first = 0;
        }
      break;
    }
  }
}

int pb_method_describe_options(const pb_method *m, const void *ctx, char *buf, size_t n) {
  size_t w = 0;
  if (n) buf[0] = 0;
  for (int i = 0; m->version >= 2 && m->options && i < m->n_options; i++) {
    const pb_method_option *o = &m->options[i];
    w += (size_t)snprintf(buf + w, w < n ? n - w : 0, "%s%s=", i ? "," : "", o->name);
    format_value(o, ctx, buf, n, &w);
  }
  if (w >= n) return pb_set_error(PB_ERR_ARG, "%s: describe buffer of %zu bytes too small", m->name, n);
  return PB_OK;
}

int pb_method_describe_defaults(const pb_method *m, char *buf, size_t n) {
  size_t w = 0;
  if (n) buf[0] = 0;
  for (int i = 0; m->version >= 2 && m->options && i < m->n_options; i++)
    w += (size_t)snprintf(buf + w, w < n ? n - w : 0, "%s%s=%s", i ? "," : "", m->options[i].name,
                          m->options[i].def ? m->options[i].def : "");
  if (w >= n) return pb_set_error(PB_ERR_ARG, "%s: describe buffer of %zu bytes too small", m->name, n);
  return PB_OK;
}

/* "INT 1..65536" / "FLOAT [0, 1)" / "pfeiffer|houlsby" / "LIST of a,b,c or all" */
static void format_type(const pb_method_option *o, char *buf, size_t n) {
  char vals[512];
  switch (o->type) {
    case PB_OPT_INT: snprintf(buf, n, "INT %.0f..%.0f", o->min, o->max); break;
    case PB_OPT_FLOAT: snprintf(buf, n, "FLOAT [%g, %g%s", o->min, o->max, o->max_open ? ")" : "]"); break;
    case PB_OPT_ENUM: join_values(o, "|", buf, n); break;
    case PB_OPT_LIST:
      join_values(o, ",", vals, sizeof vals);
      snprintf(buf, n, "LIST of %s or all", vals);
      break;
  }
}

void pb_method_options_help(const pb_method *m, char *buf, size_t n) {
  if (n) buf[0] = 0;
  if (m->version < 2 || !m->options || m->n_options == 0) {
    snprintf(buf, n, "%s", m->options_help && *m->options_help ? m->options_help : "none");
    return;
  }
  size_t w = 0;
  for (int i = 0; i < m->n_options && w < n; i++) {
    char t[600];
    format_type(&m->options[i], t, sizeof t);
    w += (size_t)snprintf(buf + w, n - w, "%s%s=%s (%s)", i ? "  " : "", m->options[i].name, t,
                          m->options[i].def ? m->options[i].def : "");
  }
}

void pb_method_option_line(const pb_method_option *o, char *buf, size_t n) {
  char t[600];
  format_type(o, t, sizeof t);
  size_t w = (size_t)snprintf(buf, n, "%s=%s, default %s", o->name, t, o->def ? o->def : "");
  if (o->alias && w < n) w += (size_t)snprintf(buf + w, n - w, " (also %s=)", o->alias);
  if (o->help && *o->help && w < n) snprintf(buf + w, n - w, ": %s", o->help);
}

int pb_method_rank(const char *name) {
  const pb_method *m = name ? pb_method_find(name) : NULL;
  if (m && m->version >= 2 && m->order > 0) return m->order;
  return name && strchr(name, '+') ? INT_MAX : INT_MAX - 1; /* compositions after every single method */
}

int pb_method_is_reference(const char *name) {
  const pb_method *m = name ? pb_method_find(name) : NULL;
  return m && m->version >= 2 && m->reference;
}
