//go:build cgo && linux && amd64 && dnnl && dnnlconv

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "oneapi/dnnl/dnnl.h"
#include "check.h"
#include "conv.h"

// A tensor the caller holds in a plain layout and the primitive may want
// in another: user memory, primitive memory and the reorder between them.
typedef struct {
	dnnl_memory_t user, prim;
	dnnl_primitive_t reorder; // NULL when the layouts agree
	int to_user;              // reorder direction: primitive → user (an output)
} tensor;

struct conv {
	dnnl_engine_t engine;
	dnnl_stream_t stream;
	dnnl_primitive_desc_t pd;
	dnnl_primitive_t prim;
	tensor t[3]; // the op's two inputs, then its output
	int args[3]; // their DNNL_ARG_* names
};

#define CHECK(call, what) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
	fail(err, "oneDNN: %s failed (%s)", what, status_name(s_)); goto fail; } } while (0)

static dnnl_status_t make_tensor(conv *cv, tensor *t, const dnnl_memory_desc_t *user_md,
                                 const dnnl_memory_desc_t *prim_md, float *data, int output) {
	dnnl_status_t s = dnnl_memory_create(&t->user, user_md, cv->engine, data);
	if (s != dnnl_success) return s;
	t->to_user = output;
	if (dnnl_memory_desc_equal(user_md, prim_md)) {
		t->prim = t->user;
		return dnnl_success;
	}
	s = dnnl_memory_create(&t->prim, prim_md, cv->engine, DNNL_MEMORY_ALLOCATE);
	if (s != dnnl_success) return s;
	dnnl_primitive_desc_t rpd;
	s = output ? dnnl_reorder_primitive_desc_create(&rpd, prim_md, cv->engine, user_md, cv->engine, NULL)
	           : dnnl_reorder_primitive_desc_create(&rpd, user_md, cv->engine, prim_md, cv->engine, NULL);
	if (s != dnnl_success) return s;
	s = dnnl_primitive_create(&t->reorder, rpd);
	dnnl_primitive_desc_destroy(rpd);
	return s;
}

conv *conv_new(int op, int n, int c, int h, int w, int o, int k, int stride, int pad,
               float *a, float *b, float *out, char *err) {
	conv *cv = calloc(1, sizeof(conv));
	if (!cv) {
		fail(err, "out of memory");
		return NULL;
	}
	int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
	dnnl_dims_t xd = {n, c, h, w}, wd = {o, c, k, k}, yd = {n, o, oh, ow};
	dnnl_dims_t st = {stride, stride}, pl = {pad, pad}, pr = {pad, pad};
	dnnl_memory_desc_t x_any, w_any, y_any, x_user, w_user, y_user;
	dnnl_convolution_desc_t fwd, cd;
	dnnl_primitive_desc_t fwd_pd = NULL;
	CHECK(dnnl_engine_create(&cv->engine, dnnl_cpu, 0), "engine");
	CHECK(dnnl_stream_create(&cv->stream, cv->engine, dnnl_stream_default_flags), "stream");
	CHECK(dnnl_memory_desc_init_by_tag(&x_any, 4, xd, dnnl_f32, dnnl_format_tag_any), "md");
	CHECK(dnnl_memory_desc_init_by_tag(&w_any, 4, wd, dnnl_f32, dnnl_format_tag_any), "md");
	CHECK(dnnl_memory_desc_init_by_tag(&y_any, 4, yd, dnnl_f32, dnnl_format_tag_any), "md");
	CHECK(dnnl_memory_desc_init_by_tag(&x_user, 4, xd, dnnl_f32, dnnl_nchw), "md");
	CHECK(dnnl_memory_desc_init_by_tag(&w_user, 4, wd, dnnl_f32, dnnl_oihw), "md");
	CHECK(dnnl_memory_desc_init_by_tag(&y_user, 4, yd, dnnl_f32, dnnl_nchw), "md");
	// Backward primitives need the forward one as a hint.
	CHECK(dnnl_convolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_convolution_direct,
		&x_any, &w_any, NULL, &y_any, st, pl, pr), "forward desc");
	CHECK(dnnl_primitive_desc_create(&fwd_pd, &fwd, NULL, cv->engine, NULL), "forward primitive desc");
	const dnnl_memory_desc_t *user[3];
	dnnl_query_t q[3];
	switch (op) {
	case CONV_FORWARD:
		cv->pd = fwd_pd; fwd_pd = NULL;
		user[0] = &x_user; user[1] = &w_user; user[2] = &y_user;
		q[0] = dnnl_query_src_md; q[1] = dnnl_query_weights_md; q[2] = dnnl_query_dst_md;
		cv->args[0] = DNNL_ARG_SRC; cv->args[1] = DNNL_ARG_WEIGHTS; cv->args[2] = DNNL_ARG_DST;
		break;
	case CONV_BACKWARD_DATA:
		CHECK(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &x_any, &w_any, &y_any, st, pl, pr), "backward data desc");
		CHECK(dnnl_primitive_desc_create(&cv->pd, &cd, NULL, cv->engine, fwd_pd), "backward data primitive desc");
		user[0] = &y_user; user[1] = &w_user; user[2] = &x_user;
		q[0] = dnnl_query_diff_dst_md; q[1] = dnnl_query_weights_md; q[2] = dnnl_query_diff_src_md;
		cv->args[0] = DNNL_ARG_DIFF_DST; cv->args[1] = DNNL_ARG_WEIGHTS; cv->args[2] = DNNL_ARG_DIFF_SRC;
		break;
	case CONV_BACKWARD_WEIGHTS:
		CHECK(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &x_any, &w_any, NULL, &y_any, st, pl, pr), "backward weights desc");
		CHECK(dnnl_primitive_desc_create(&cv->pd, &cd, NULL, cv->engine, fwd_pd), "backward weights primitive desc");
		user[0] = &x_user; user[1] = &y_user; user[2] = &w_user;
		q[0] = dnnl_query_src_md; q[1] = dnnl_query_diff_dst_md; q[2] = dnnl_query_diff_weights_md;
		cv->args[0] = DNNL_ARG_SRC; cv->args[1] = DNNL_ARG_DIFF_DST; cv->args[2] = DNNL_ARG_DIFF_WEIGHTS;
		break;
	default:
		fail(err, "unknown op %d", op);
		goto fail;
	}
	float *data[3] = {a, b, out};
	for (int i = 0; i < 3; i++) {
		CHECK(make_tensor(cv, &cv->t[i], user[i], dnnl_primitive_desc_query_md(cv->pd, q[i], 0), data[i], i == 2), "tensor");
	}
	CHECK(dnnl_primitive_create(&cv->prim, cv->pd), "primitive");
	if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
	return cv;
fail:
	if (fwd_pd) dnnl_primitive_desc_destroy(fwd_pd);
	conv_free(cv);
	return NULL;
}

static int reorder(conv *cv, tensor *t, char *err) {
	if (!t->reorder) return 0;
	dnnl_exec_arg_t args[2] = {
		{DNNL_ARG_FROM, t->to_user ? t->prim : t->user},
		{DNNL_ARG_TO, t->to_user ? t->user : t->prim},
	};
	TRY(dnnl_primitive_execute(t->reorder, cv->stream, 2, args), "reorder");
	return 0;
}

int conv_run(conv *cv, char *err) {
	if (reorder(cv, &cv->t[0], err) || reorder(cv, &cv->t[1], err)) return 1;
	dnnl_exec_arg_t args[3];
	for (int i = 0; i < 3; i++) {
		args[i].arg = cv->args[i];
		args[i].memory = cv->t[i].prim;
	}
	TRY(dnnl_primitive_execute(cv->prim, cv->stream, 3, args), "convolution");
	if (reorder(cv, &cv->t[2], err)) return 1;
	TRY(dnnl_stream_wait(cv->stream), "waiting for the stream");
	return 0;
}

void conv_free(conv *cv) {
	if (!cv) return;
	for (int i = 0; i < 3; i++) {
		if (cv->t[i].reorder) dnnl_primitive_destroy(cv->t[i].reorder);
		if (cv->t[i].prim && cv->t[i].prim != cv->t[i].user) dnnl_memory_destroy(cv->t[i].prim);
		if (cv->t[i].user) dnnl_memory_destroy(cv->t[i].user);
	}
	if (cv->prim) dnnl_primitive_destroy(cv->prim);
	if (cv->pd) dnnl_primitive_desc_destroy(cv->pd);
	if (cv->stream) dnnl_stream_destroy(cv->stream);
	if (cv->engine) dnnl_engine_destroy(cv->engine);
	free(cv);
}
