// One 2-D convolution step on oneDNN (forward, backward data or backward
// weights) with plain NCHW / OIHW buffers on the caller's side; the
// primitive works in whatever layout oneDNN prefers, and the reorders to
// and from it are part of each run.
#ifndef CEBM_DNNL_CONV_H
#define CEBM_DNNL_CONV_H

enum { CONV_FORWARD = 0, CONV_BACKWARD_DATA = 1, CONV_BACKWARD_WEIGHTS = 2 };
enum { CONV_ERRLEN = 256 };

typedef struct conv conv;

// conv_new prepares op for input [n, c, h, w], weights [o, c, k, k], the
// given stride and symmetric padding. a, b are the op's two inputs and out
// its output, in plain layouts: forward x, w → y; backward data dy, w → dx;
// backward weights x, dy → dw. It returns NULL and a message in err (256
// bytes) on failure. Built for tests and benchmarks only (-tags dnnlconv).
conv *conv_new(int op, int n, int c, int h, int w, int o, int k, int stride, int pad,
               float *a, float *b, float *out, char *err);
// conv_run runs the op once; 0 on success, else non-zero and a message in
// err (CONV_ERRLEN bytes).
int conv_run(conv *cv, char *err);
void conv_free(conv *cv);

#endif
