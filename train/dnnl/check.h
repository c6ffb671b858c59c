// Errors of the C side: every entry point returns 0 on success, or
// non-zero with a message of at most ERRLEN bytes (NUL included) in the
// caller's err buffer.
#ifndef CEBM_DNNL_CHECK_H
#define CEBM_DNNL_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include "oneapi/dnnl/dnnl.h"

enum { ERRLEN = 256 };

// status_name names a oneDNN status.
static inline const char *status_name(dnnl_status_t s) {
	switch (s) {
	case dnnl_success: return "success";
	case dnnl_out_of_memory: return "out of memory";
	case dnnl_invalid_arguments: return "invalid arguments";
	case dnnl_unimplemented: return "unimplemented";
	case dnnl_iterator_ends: return "no implementation";
	case dnnl_runtime_error: return "runtime error";
	case dnnl_not_required: return "not required";
	}
	return "unknown status";
}

// fail writes the message into err and returns 1.
static inline int fail(char *err, const char *format, ...) __attribute__((format(printf, 2, 3)));
static inline int fail(char *err, const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	vsnprintf(err, ERRLEN, format, ap);
	va_end(ap);
	return 1;
}

// TRY returns 1 from the calling function, with a message naming what
// failed and oneDNN's status, when call does not succeed; it needs an err
// buffer in scope.
#define TRY(call, what) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) \
	return fail(err, "oneDNN: %s failed (%s)", what, status_name(s_)); } while (0)

#endif
