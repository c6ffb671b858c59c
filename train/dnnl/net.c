//go:build cgo && linux && amd64 && dnnl

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "oneapi/dnnl/dnnl.h"
#include "check.h"
#include "net.h"

#define MAXL NET_MAXL

// A layer: its forward and backward-data primitives and its memories.
typedef struct {
	int is_conv;
	dnnl_primitive_desc_t fpd, bpd, wpd;  // forward, backward data, backward weights
	dnnl_primitive_desc_t epd, ebpd;      // Swish forward and backward (none for the head)
	dnnl_primitive_t fwd, bwd;          // conv/inner product forward, backward data
	dnnl_primitive_t act, act_bwd;      // Swish forward and backward (none for the head)
	dnnl_memory_t w_fwd, w_bwd, bias;   // weights in each primitive's layout
	dnnl_memory_t w_user;               // user weights (plain), reordered into w_fwd / w_bwd
	dnnl_primitive_t w_to_fwd, w_to_bwd; // NULL when layouts agree
	dnnl_memory_t src;                  // the layer's input (previous layer's Swish output; not owned)
	dnnl_memory_t pre, post;            // pre-activation, post-activation
	dnnl_memory_t d_post, d_pre, d_src; // gradients (d_src: the first layer's ∂x only)
	dnnl_primitive_t bww;               // backward weights
	dnnl_memory_t dw, dw_user, db;      // ∂W in the primitive's layout and plain, ∂b
	dnnl_primitive_t dw_to_user;        // NULL when layouts agree
	size_t w_size, b_size;
	// The second-order step (net_score_param_grad): the tangent of the
	// forward pass along v (ż, ȧ), the adjoints of the primal pass (z̄, ā),
	// a second weight gradient and a zero bias for the tangent's convolution.
	dnnl_memory_t tan_pre, tan_post, adj_pre, adj_post, dw2, db2, zero_b;
} layer;

struct net {
	dnnl_engine_t engine;
	dnnl_stream_t stream;
	int n, latent, nl;
	size_t x_size;  // values of a batch: n·c·h·w
	int igebm; // the head is one scalar energy (IGEBM), not (t1, s)
	int k;     // GMM-CEBM: mixture components (0: the CEBM's N(0, I) prior)
	double *lam1, *lam2, *prec, *mu; // GMM-CEBM prior, [k, latent]
	double *dl1, *dl2;               // ∂ of the weighted energies by λ1, λ2, [k, latent]
	double *score;                   // [k] scratch
	layer l[MAXL];
	dnnl_memory_t x_user, x_prim, dx_user, dx_prim;
	dnnl_primitive_t x_reorder, dx_reorder;
	dnnl_memory_t v_user, v_prim; // the second-order step's direction v, as x
	int threads;                  // OpenMP threads (0: the calling thread's setting)
	int after_energy_grad;        // the layers hold net_energy_grad's activations
};

// The number of threads of the calling thread's next parallel regions
// (libgomp, which Debian's oneDNN runs on). oneDNN plans each primitive
// for the count at its creation and runs it with that many threads
// (measured: a primitive created for 2 runs on 2 whatever the count at
// its execution); our own loops use the count at their execution. So it
// is set before the primitives are created and at every entry point: the
// setting belongs to the OS thread, and Go moves goroutines between them.
extern void omp_set_num_threads(int);
static void use_threads(net *nt) { if (nt->threads > 0) omp_set_num_threads(nt->threads); }

static const dnnl_memory_desc_t *qmd(dnnl_primitive_desc_t pd, dnnl_query_t q) {
	return dnnl_primitive_desc_query_md(pd, q, 0);
}

static void *handle(dnnl_memory_t m);

static dnnl_status_t mem(net *nt, dnnl_memory_t *m, const dnnl_memory_desc_t *md) {
	return dnnl_memory_create(m, md, nt->engine, DNNL_MEMORY_ALLOCATE);
}

static dnnl_status_t reorder_pd(net *nt, dnnl_primitive_t *p, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
	if (dnnl_memory_desc_equal(from, to)) { *p = NULL; return dnnl_success; }
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, from, nt->engine, to, nt->engine, NULL);
	if (s != dnnl_success) return s;
	s = dnnl_primitive_create(p, pd);
	dnnl_primitive_desc_destroy(pd);
	return s;
}

static int run_reorder(net *nt, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to, const char *what, char *err) {
	if (!p) return 0;
	dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
	TRY(dnnl_primitive_execute(p, nt->stream, 2, a), what);
	return 0;
}

// layer_free destroys what a layer holds and clears it.
static void layer_free(layer *L) {
	dnnl_primitive_t ps[] = {L->fwd, L->bwd, L->act, L->act_bwd, L->w_to_fwd, L->w_to_bwd, L->bww, L->dw_to_user};
	for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) if (ps[j]) dnnl_primitive_destroy(ps[j]);
	dnnl_memory_t ms[] = {L->w_fwd, L->w_bwd, L->bias, L->w_user, L->pre, L->post, L->d_post, L->d_pre, L->d_src, L->dw, L->dw_user, L->db,
		L->tan_pre, L->tan_post, L->adj_pre, L->adj_post, L->dw2, L->db2, L->zero_b};
	for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) if (ms[j]) dnnl_memory_destroy(ms[j]);
	dnnl_primitive_desc_t pds[] = {L->fpd, L->bpd, L->wpd, L->epd, L->ebpd};
	for (size_t j = 0; j < sizeof pds / sizeof pds[0]; j++) if (pds[j]) dnnl_primitive_desc_destroy(pds[j]);
	memset(L, 0, sizeof *L);
}

// shape is where construction stands: the next layer's input, its
// channels and spatial size, and its memory descriptor (the previous
// layer's output; for the first, any layout).
typedef struct {
	int ch, hh, ww;
	const dnnl_memory_desc_t *prev;
	const dnnl_memory_desc_t *any_x; // the input with any layout
} shape;

// build_conv makes layer i a convolution by cv = (out channels, kernel,
// stride, pad): its forward, backward-data and backward-weights
// descriptors and primitive, and its weight gradient.
static int build_conv(net *nt, int i, const int *cv, shape *sh, char *err) {
	layer *L = &nt->l[i];
	int out = cv[0], k = cv[1], s = cv[2], p = cv[3], n = nt->n;
	if (out < 1 || k < 1 || s < 1 || p < 0)
		return fail(err, "convolution %d: %d channels, kernel %d, stride %d, pad %d: want positive channels, kernel and stride, pad ≥ 0", i, out, k, s, p);
	if (k > sh->hh + 2 * p || k > sh->ww + 2 * p)
		return fail(err, "convolution %d: kernel %d on %d×%d with pad %d leaves no output", i, k, sh->hh, sh->ww, p);
	int oh = (sh->hh + 2 * p - k) / s + 1, ow = (sh->ww + 2 * p - k) / s + 1;
	dnnl_dims_t wd = {out, sh->ch, k, k}, bd = {out}, yd = {n, out, oh, ow};
	dnnl_dims_t st = {s, s}, pl = {p, p};
	dnnl_memory_desc_t wmd, bmd, dmd;
	TRY(dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any), "weight md");
	TRY(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x), "bias md");
	TRY(dnnl_memory_desc_init_by_tag(&dmd, 4, yd, dnnl_f32, dnnl_format_tag_any), "output md");
	dnnl_convolution_desc_t d, bd2, wd2;
	TRY(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, sh->prev, &wmd, &bmd, &dmd, st, pl, pl), "convolution desc");
	TRY(dnnl_primitive_desc_create(&L->fpd, &d, NULL, nt->engine, NULL), "convolution primitive desc");
	// The first layer's ∂x may take any layout (reordered to the caller's
	// after): forcing the forward's plain one leaves only oneDNN's
	// reference implementation for a one-channel input.
	TRY(dnnl_convolution_backward_data_desc_init(&bd2, dnnl_convolution_direct, i == 0 ? sh->any_x : qmd(L->fpd, dnnl_query_src_md), &wmd, qmd(L->fpd, dnnl_query_dst_md), st, pl, pl), "convolution backward desc");
	TRY(dnnl_primitive_desc_create(&L->bpd, &bd2, NULL, nt->engine, L->fpd), "convolution backward primitive desc");
	TRY(dnnl_convolution_backward_weights_desc_init(&wd2, dnnl_convolution_direct, qmd(L->fpd, dnnl_query_src_md), &wmd, &bmd, qmd(L->fpd, dnnl_query_dst_md), st, pl, pl), "convolution backward weights desc");
	TRY(dnnl_primitive_desc_create(&L->wpd, &wd2, NULL, nt->engine, L->fpd), "convolution backward weights primitive desc");
	TRY(dnnl_primitive_create(&L->bww, L->wpd), "convolution backward weights primitive");
	TRY(mem(nt, &L->dw, qmd(L->wpd, dnnl_query_diff_weights_md)), "weight gradient memory");
	L->is_conv = 1;
	L->w_size = (size_t)out * sh->ch * k * k;
	L->b_size = out;
	sh->ch = out; sh->hh = oh; sh->ww = ow;
	return 0;
}

// build_dense makes layer i an inner product to out values: a hidden layer
// or (last) the head, whose output stays plain for the head's own loops.
static int build_dense(net *nt, int i, int out, int last, shape *sh, char *err) {
	layer *L = &nt->l[i];
	if (out < 1) return fail(err, "dense layer %d: width %d, want at least 1", i, out);
	dnnl_dims_t bd = {out}, yd = {nt->n, out};
	dnnl_memory_desc_t wmd, bmd, dmd;
	if (sh->prev->ndims == 4) { // the first dense layer reads the convolutions' 4-D output
		dnnl_dims_t wd = {out, sh->ch, sh->hh, sh->ww};
		TRY(dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any), "weight md");
		L->w_size = (size_t)out * sh->ch * sh->hh * sh->ww;
	} else {
		dnnl_dims_t wd = {out, sh->ch};
		TRY(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_f32, dnnl_format_tag_any), "weight md");
		L->w_size = (size_t)out * sh->ch;
	}
	TRY(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x), "bias md");
	TRY(dnnl_memory_desc_init_by_tag(&dmd, 2, yd, dnnl_f32, last ? dnnl_nc : dnnl_format_tag_any), "output md");
	dnnl_inner_product_desc_t d, bd2, wd2;
	TRY(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_training, sh->prev, &wmd, &bmd, &dmd), "inner product desc");
	TRY(dnnl_primitive_desc_create(&L->fpd, &d, NULL, nt->engine, NULL), "inner product primitive desc");
	TRY(dnnl_inner_product_backward_data_desc_init(&bd2, qmd(L->fpd, dnnl_query_src_md), &wmd, qmd(L->fpd, dnnl_query_dst_md)), "inner product backward desc");
	TRY(dnnl_primitive_desc_create(&L->bpd, &bd2, NULL, nt->engine, L->fpd), "inner product backward primitive desc");
	TRY(dnnl_inner_product_backward_weights_desc_init(&wd2, qmd(L->fpd, dnnl_query_src_md), &wmd, &bmd, qmd(L->fpd, dnnl_query_dst_md)), "inner product backward weights desc");
	TRY(dnnl_primitive_desc_create(&L->wpd, &wd2, NULL, nt->engine, L->fpd), "inner product backward weights primitive desc");
	TRY(dnnl_primitive_create(&L->bww, L->wpd), "inner product backward weights primitive");
	TRY(mem(nt, &L->dw, qmd(L->wpd, dnnl_query_diff_weights_md)), "weight gradient memory");
	L->b_size = out;
	sh->ch = out; sh->hh = 1; sh->ww = 1;
	return 0;
}

// build_memories gives layer i, whose descriptors build_conv or
// build_dense made, its primitives, weights (plain for the caller, and in
// each primitive's layout), activations and gradients.
static int build_memories(net *nt, int i, char *err) {
	layer *L = &nt->l[i];
	TRY(dnnl_primitive_create(&L->fwd, L->fpd), "forward primitive");
	TRY(dnnl_primitive_create(&L->bwd, L->bpd), "backward primitive");
	// The user's weights are plain (OIHW or OI); the primitives may want others.
	dnnl_memory_desc_t wuser, bmd;
	dnnl_dims_t bd = {(dnnl_dim_t)L->b_size};
	const dnnl_memory_desc_t *wf = qmd(L->fpd, dnnl_query_weights_md), *wb = qmd(L->bpd, dnnl_query_weights_md);
	TRY(dnnl_memory_desc_init_by_tag(&wuser, wf->ndims, wf->dims, dnnl_f32, wf->ndims == 4 ? dnnl_oihw : dnnl_oi), "weight md");
	TRY(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x), "bias md");
	TRY(mem(nt, &L->w_user, &wuser), "weight memory");
	TRY(mem(nt, &L->w_fwd, wf), "forward weight memory");
	TRY(mem(nt, &L->w_bwd, wb), "backward weight memory");
	TRY(reorder_pd(nt, &L->w_to_fwd, &wuser, wf), "forward weight reorder");
	TRY(reorder_pd(nt, &L->w_to_bwd, &wuser, wb), "backward weight reorder");
	TRY(mem(nt, &L->dw_user, &wuser), "weight gradient memory");
	TRY(mem(nt, &L->db, &bmd), "bias gradient memory");
	const dnnl_memory_desc_t *dwmd;
	TRY(dnnl_memory_get_memory_desc(L->dw, &dwmd), "weight gradient md");
	TRY(reorder_pd(nt, &L->dw_to_user, dwmd, &wuser), "weight-gradient reorder");
	TRY(mem(nt, &L->bias, &bmd), "bias memory");
	TRY(mem(nt, &L->pre, qmd(L->fpd, dnnl_query_dst_md)), "activation memory");
	TRY(mem(nt, &L->d_pre, qmd(L->bpd, dnnl_query_diff_dst_md)), "activation gradient memory");
	TRY(mem(nt, &L->tan_pre, qmd(L->fpd, dnnl_query_dst_md)), "tangent memory");
	TRY(mem(nt, &L->adj_pre, qmd(L->fpd, dnnl_query_dst_md)), "adjoint memory");
	TRY(mem(nt, &L->db2, &bmd), "bias gradient memory");
	TRY(mem(nt, &L->zero_b, &bmd), "zero bias memory");
	memset(handle(L->zero_b), 0, L->b_size * sizeof(float));
	TRY(mem(nt, &L->dw2, dwmd), "weight gradient memory");
	if (i == 0) {
		TRY(mem(nt, &L->d_src, qmd(L->bpd, dnnl_query_diff_src_md)), "input gradient memory");
		TRY(mem(nt, &nt->x_prim, qmd(L->fpd, dnnl_query_src_md)), "input memory");
		L->src = nt->x_prim;
	} else {
		L->src = nt->l[i - 1].post;
	}
	return 0;
}

// build_swish adds Swish after layer i (every layer but the head); its
// output is the next layer's input.
static int build_swish(net *nt, int i, shape *sh, char *err) {
	layer *L = &nt->l[i];
	dnnl_eltwise_desc_t ed, ebd;
	const dnnl_memory_desc_t *md = qmd(L->fpd, dnnl_query_dst_md);
	TRY(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, dnnl_eltwise_swish, md, 1.f, 0.f), "swish desc");
	TRY(dnnl_primitive_desc_create(&L->epd, &ed, NULL, nt->engine, NULL), "swish primitive desc");
	TRY(dnnl_eltwise_backward_desc_init(&ebd, dnnl_eltwise_swish, md, md, 1.f, 0.f), "swish backward desc");
	TRY(dnnl_primitive_desc_create(&L->ebpd, &ebd, NULL, nt->engine, L->epd), "swish backward primitive desc");
	TRY(dnnl_primitive_create(&L->act, L->epd), "swish primitive");
	TRY(dnnl_primitive_create(&L->act_bwd, L->ebpd), "swish backward primitive");
	TRY(mem(nt, &L->post, md), "activation memory");
	TRY(mem(nt, &L->d_post, md), "activation gradient memory");
	TRY(mem(nt, &L->tan_post, md), "tangent memory");
	TRY(mem(nt, &L->adj_post, md), "adjoint memory");
	sh->prev = md;
	return 0;
}

// build_layer builds layer i (a convolution while i < nconv, then dense
// layers, the last the head of out values) and, when it fails, frees what
// it made of the layer.
static int build_layer(net *nt, int i, int nconv, const int *conv, int out, shape *sh, char *err) {
	int last = i == nt->nl - 1;
	if ((i < nconv ? build_conv(nt, i, conv + 4 * i, sh, err) : build_dense(nt, i, out, last, sh, err)) ||
	    build_memories(nt, i, err) || (!last && build_swish(nt, i, sh, err))) {
		layer_free(&nt->l[i]);
		if (i == 0 && nt->x_prim) { dnnl_memory_destroy(nt->x_prim); nt->x_prim = NULL; }
		return 1;
	}
	return 0;
}

// build_io makes the caller's plain NCHW input, ∂x and v, and the reorders
// between them and the first layer's layouts.
static int build_io(net *nt, const dnnl_dims_t xd, char *err) {
	dnnl_memory_desc_t xuser;
	TRY(dnnl_memory_desc_init_by_tag(&xuser, 4, xd, dnnl_f32, dnnl_nchw), "input md");
	TRY(mem(nt, &nt->x_user, &xuser), "input memory");
	TRY(mem(nt, &nt->dx_user, &xuser), "input gradient memory");
	TRY(mem(nt, &nt->v_user, &xuser), "direction memory");
	layer *F = &nt->l[0];
	TRY(reorder_pd(nt, &nt->x_reorder, &xuser, qmd(F->fpd, dnnl_query_src_md)), "input reorder");
	TRY(reorder_pd(nt, &nt->dx_reorder, qmd(F->bpd, dnnl_query_diff_src_md), &xuser), "input-gradient reorder");
	if (!nt->x_reorder) { dnnl_memory_destroy(nt->x_prim); nt->x_prim = nt->x_user; F->src = nt->x_user; }
	if (nt->x_reorder) TRY(mem(nt, &nt->v_prim, qmd(F->fpd, dnnl_query_src_md)), "direction memory");
	else nt->v_prim = nt->v_user;
	nt->dx_prim = F->d_src;
	return 0;
}

// build_prior allocates a GMM-CEBM's prior and its scratch.
static int build_prior(net *nt, char *err) {
	size_t kd = (size_t)nt->k * nt->latent;
	double **ps[] = {&nt->lam1, &nt->lam2, &nt->prec, &nt->mu, &nt->dl1, &nt->dl2};
	for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
		if (!(*ps[j] = calloc(kd, sizeof(double)))) return fail(err, "out of memory for the prior (%zu values)", kd);
	}
	if (!(nt->score = calloc(nt->k, sizeof(double)))) return fail(err, "out of memory for the prior");
	return 0;
}

net *net_new(int n, int c, int h, int w, int nconv, const int *conv, int nhidden, const int *hidden, int latent, int k, int threads, char *err) {
	if (n < 1 || c < 1 || h < 1 || w < 1) {
		fail(err, "batch %d of %d×%d×%d images: want positive sizes", n, c, h, w);
		return NULL;
	}
	if (nconv < 1 || nhidden < 1 || nconv + nhidden + 1 > MAXL) {
		fail(err, "%d convolutions and %d dense layers: want at least one of each, %d layers in all at most", nconv, nhidden, MAXL - 1);
		return NULL;
	}
	if (latent < 0 || k < 0 || (k > 0 && latent == 0)) {
		fail(err, "latent %d, %d prior components: want latent ≥ 0, components ≥ 0, and a latent space for components", latent, k);
		return NULL;
	}
	net *nt = calloc(1, sizeof(net));
	if (!nt) {
		fail(err, "out of memory");
		return NULL;
	}
	nt->threads = threads;
	use_threads(nt);
	nt->k = k;
	nt->n = n;
	nt->x_size = (size_t)n * c * h * w;
	nt->latent = latent;
	nt->igebm = latent == 0;
	nt->nl = nconv + nhidden + 1;
	if (k > 0 && build_prior(nt, err)) goto fail;
	dnnl_status_t s;
	if ((s = dnnl_engine_create(&nt->engine, dnnl_cpu, 0)) != dnnl_success) { fail(err, "oneDNN: engine failed (%s)", status_name(s)); goto fail; }
	if ((s = dnnl_stream_create(&nt->stream, nt->engine, dnnl_stream_default_flags)) != dnnl_success) { fail(err, "oneDNN: stream failed (%s)", status_name(s)); goto fail; }
	dnnl_memory_desc_t any_md;
	dnnl_dims_t xd = {n, c, h, w};
	if ((s = dnnl_memory_desc_init_by_tag(&any_md, 4, xd, dnnl_f32, dnnl_format_tag_any)) != dnnl_success) { fail(err, "oneDNN: input md failed (%s)", status_name(s)); goto fail; }
	shape sh = {c, h, w, &any_md, &any_md}; // the input's layout: the first convolution chooses
	for (int i = 0; i < nt->nl; i++) {
		int out = i == nt->nl - 1 ? (nt->igebm ? 1 : 2 * latent) : (i < nconv ? 0 : hidden[i - nconv]);
		if (build_layer(nt, i, nconv, conv, out, &sh, err)) goto fail;
	}
	if (build_io(nt, xd, err)) goto fail;
	return nt;
fail:
	net_free(nt);
	return NULL;
}

static void *handle(dnnl_memory_t m) {
	void *p = NULL;
	dnnl_memory_get_data_handle(m, &p);
	return p;
}

// NEED returns 1 with a message from the calling entry point unless cond.
#define NEED(cond, ...) do { if (!(cond)) return fail(err, __VA_ARGS__); } while (0)

// wait waits for the stream's primitives.
static int wait(net *nt, char *err) {
	TRY(dnnl_stream_wait(nt->stream), "waiting for the stream");
	return 0;
}

// exec runs primitive p of layer i.
static int exec(net *nt, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *a, const char *what, int i, char *err) {
	dnnl_status_t s = dnnl_primitive_execute(p, nt->stream, nargs, a);
	if (s != dnnl_success) return fail(err, "oneDNN: layer %d: %s failed (%s)", i, what, status_name(s));
	return 0;
}

int net_set_layer(net *nt, int i, const float *w, long nw, const float *b, long nb, char *err) {
	NEED(i >= 0 && i < nt->nl, "layer %d: the network has %d", i, nt->nl);
	layer *L = &nt->l[i];
	NEED(w && b && nw == (long)L->w_size && nb == (long)L->b_size,
		"layer %d: %ld weights and %ld biases, want %zu and %zu", i, nw, nb, L->w_size, L->b_size);
	use_threads(nt);
	nt->after_energy_grad = 0;
	memcpy(handle(L->w_user), w, L->w_size * sizeof(float));
	memcpy(handle(L->bias), b, L->b_size * sizeof(float));
	if (run_reorder(nt, L->w_to_fwd, L->w_user, L->w_fwd, "forward weight reorder", err) ||
	    run_reorder(nt, L->w_to_bwd, L->w_user, L->w_bwd, "backward weight reorder", err)) return 1;
	if (!L->w_to_fwd) memcpy(handle(L->w_fwd), w, L->w_size * sizeof(float));
	if (!L->w_to_bwd) memcpy(handle(L->w_bwd), w, L->w_size * sizeof(float));
	return wait(nt, err);
}

int net_layers(net *nt) { return nt->nl; }

int net_set_prior(net *nt, const float *mu, const float *log_sigma, long len, char *err) {
	NEED(nt->k > 0, "the network has no prior to set: not a GMM-CEBM");
	NEED(mu && log_sigma && len == (long)nt->k * nt->latent, "prior of %ld values, want %d", len, nt->k * nt->latent);
	nt->after_energy_grad = 0;
	for (int i = 0; i < nt->k * nt->latent; i++) {
		double p = exp(-2 * (double)log_sigma[i]);
		nt->mu[i] = mu[i];
		nt->prec[i] = p;
		nt->lam1[i] = mu[i] * p;
		nt->lam2[i] = -0.5 * p;
	}
	return 0;
}

// B(η1, η2) = −η1²/(4η2) − ½·log(−2η2) and its partial derivatives.
static double lognorm(double e1, double e2) { return -e1 * e1 / (4 * e2) - 0.5 * log(-2 * e2); }
static double dB1(double e1, double e2) { return -e1 / (2 * e2); }
static double dB2(double e1, double e2) { return e1 * e1 / (4 * e2 * e2) - 1 / (2 * e2); }

// gmm_head is the GMM-CEBM head: E = log K − logsumexp_k score_k with
// score_k = Σ_d B(λ_k + t) − B(λ_k); ∂E/∂(t1, s) scaled by w per image into
// g, and the weighted ∂E/∂λ accumulated into nt->dl1, nt->dl2.
static void gmm_head(net *nt, const float *o, float *g, float *energy, const float *wa, const float *wb) {
	int n = nt->n, d = nt->latent, k = nt->k;
	memset(nt->dl1, 0, sizeof(double) * k * d);
	memset(nt->dl2, 0, sizeof(double) * k * d);
	for (int b = 0; b < n; b++) {
		const float *t1 = o + b * 2 * d, *s = t1 + d;
		double mx = -INFINITY;
		for (int c = 0; c < k; c++) {
			double sc = 0;
			for (int j = 0; j < d; j++) {
				double l1 = nt->lam1[c * d + j], l2 = nt->lam2[c * d + j];
				sc += lognorm(l1 + t1[j], l2 - (double)s[j] * s[j]) - lognorm(l1, l2);
			}
			nt->score[c] = sc;
			if (sc > mx) mx = sc;
		}
		double z = 0;
		for (int c = 0; c < k; c++) z += exp(nt->score[c] - mx);
		double e = log((double)k) - (mx + log(z));
		energy[b] = (float)e;
		double w = wa ? wa[b] + wb[b] * (double)energy[b] : 1;
		for (int j = 0; j < d; j++) {
			double g1 = 0, g2 = 0;
			for (int c = 0; c < k; c++) {
				double p = exp(nt->score[c] - mx) / z;
				double l1 = nt->lam1[c * d + j], l2 = nt->lam2[c * d + j];
				double e1 = l1 + t1[j], e2 = l2 - (double)s[j] * s[j];
				double b1 = dB1(e1, e2), b2 = dB2(e1, e2);
				g1 += p * b1;
				g2 += p * b2;
				nt->dl1[c * d + j] += w * -p * (b1 - dB1(l1, l2));
				nt->dl2[c * d + j] += w * -p * (b2 - dB2(l1, l2));
			}
			g[b * 2 * d + j] = (float)(w * -g1);
			g[b * 2 * d + d + j] = (float)(w * -g2 * -2 * s[j]);
		}
	}
}

// prior_grads turns the ∂/∂λ in nt->dl1, nt->dl2 into a GMM-CEBM's ∂/∂μ and
// ∂/∂log σ: λ1 = μ/σ², λ2 = −1/(2σ²) with σ = exp(log σ), so ∂/∂μ =
// ∂/∂λ1·prec and ∂/∂log σ = ∂/∂λ1·(−2μ·prec) + ∂/∂λ2·prec.
static void prior_grads(net *nt, float *dmu, float *dlogsig) {
	for (int i = 0; nt->k > 0 && i < nt->k * nt->latent; i++) {
		dmu[i] = (float)(nt->dl1[i] * nt->prec[i]);
		dlogsig[i] = (float)(nt->dl1[i] * -2 * nt->mu[i] * nt->prec[i] + nt->dl2[i] * nt->prec[i]);
	}
}

// copy_grads waits for the stream and copies every layer's ∂W (plain
// layout) and ∂b, and a GMM-CEBM's prior gradients, to the caller.
static int copy_grads(net *nt, float **dw, float **db, float *dmu, float *dlogsig, char *err) {
	if (wait(nt, err)) return 1;
	for (int i = 0; i < nt->nl; i++) {
		layer *L = &nt->l[i];
		memcpy(dw[i], handle(L->dw_to_user ? L->dw_user : L->dw), L->w_size * sizeof(float));
		memcpy(db[i], handle(L->db), L->b_size * sizeof(float));
	}
	prior_grads(nt, dmu, dlogsig);
	return 0;
}

static int forward(net *nt, const float *x, char *err);
static void head(net *nt, float *energy, const float *wa, const float *wb);

int net_layer_sizes(net *nt, int i, long *w, long *b, char *err) {
	NEED(i >= 0 && i < nt->nl, "layer %d: the network has %d", i, nt->nl);
	*w = (long)nt->l[i].w_size;
	*b = (long)nt->l[i].b_size;
	return 0;
}

// need_grads checks the gradient outputs of net_param_grad and
// net_score_param_grad.
static int need_grads(net *nt, float **dw, float **db, float *dmu, float *dlogsig, char *err) {
	NEED(dw && db, "no gradient buffers");
	for (int i = 0; i < nt->nl; i++) NEED(dw[i] && db[i], "layer %d: no gradient buffer", i);
	NEED(nt->k == 0 || (dmu && dlogsig), "a GMM-CEBM needs the prior's gradient buffers");
	return 0;
}

int net_energy(net *nt, const float *x, long nx, float *energy, char *err) {
	NEED(x && energy && nx == (long)nt->x_size, "%ld input values, want %zu", nx, nt->x_size);
	use_threads(nt);
	nt->after_energy_grad = 0;
	if (forward(nt, x, err)) return 1;
	head(nt, energy, NULL, NULL);
	return 0;
}

int net_energy_grad(net *nt, const float *x, long nx, float *energy, float *dx, char *err) {
	NEED(x && energy && dx && nx == (long)nt->x_size, "%ld input values, want %zu", nx, nt->x_size);
	use_threads(nt);
	nt->after_energy_grad = 0;
	if (forward(nt, x, err)) return 1;
	head(nt, energy, NULL, NULL);
	for (int i = nt->nl - 1; i >= 0; i--) {
		layer *L = &nt->l[i];
		if (L->act_bwd) {
			dnnl_exec_arg_t e[3] = {{DNNL_ARG_SRC, L->pre}, {DNNL_ARG_DIFF_DST, L->d_post}, {DNNL_ARG_DIFF_SRC, L->d_pre}};
			if (exec(nt, L->act_bwd, 3, e, "swish backward", i, err)) return 1;
		}
		dnnl_memory_t d_src = i > 0 ? nt->l[i - 1].d_post : L->d_src;
		dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_WEIGHTS, L->w_bwd}, {DNNL_ARG_DIFF_SRC, d_src}};
		if (exec(nt, L->bwd, 3, a, "backward data", i, err)) return 1;
	}
	if (run_reorder(nt, nt->dx_reorder, nt->l[0].d_src, nt->dx_user, "input-gradient reorder", err)) return 1;
	if (wait(nt, err)) return 1;
	const dnnl_memory_desc_t *xmd;
	dnnl_memory_get_memory_desc(nt->x_user, &xmd);
	memcpy(dx, handle(nt->dx_reorder ? nt->dx_user : nt->l[0].d_src), dnnl_memory_desc_get_size(xmd));
	nt->after_energy_grad = 1;
	return 0;
}

// forward runs the layers on x and leaves the head's output in
// nt->l[last].pre.
static int forward(net *nt, const float *x, char *err) {
	const dnnl_memory_desc_t *xmd;
	dnnl_memory_get_memory_desc(nt->x_user, &xmd);
	memcpy(handle(nt->x_user), x, dnnl_memory_desc_get_size(xmd));
	if (run_reorder(nt, nt->x_reorder, nt->x_user, nt->x_prim, "input reorder", err)) return 1;
	for (int i = 0; i < nt->nl; i++) {
		layer *L = &nt->l[i];
		dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, L->src}, {DNNL_ARG_WEIGHTS, L->w_fwd}, {DNNL_ARG_BIAS, L->bias}, {DNNL_ARG_DST, L->pre}};
		if (exec(nt, L->fwd, 4, a, "forward", i, err)) return 1;
		if (L->act) {
			dnnl_exec_arg_t e[2] = {{DNNL_ARG_SRC, L->pre}, {DNNL_ARG_DST, L->post}};
			if (exec(nt, L->act, 2, e, "swish", i, err)) return 1;
		}
	}
	return wait(nt, err);
}

// head computes each image's energy and, scaled by w[b] (1 when w is
// NULL), its gradient with respect to the head's output.
static void head(net *nt, float *energy, const float *wa, const float *wb) {
	int n = nt->n, d = nt->latent;
	layer *H = &nt->l[nt->nl - 1];
	const float *o = handle(H->pre);
	float *g = handle(H->d_pre);
	if (nt->k > 0) {
		gmm_head(nt, o, g, energy, wa, wb);
		return;
	}
	if (nt->igebm) { // E is the head's output
		for (int b = 0; b < n; b++) {
			energy[b] = o[b];
			g[b] = wa ? (float)(wa[b] + wb[b] * (double)o[b]) : 1.f;
		}
		return;
	}
	for (int b = 0; b < n; b++) {
		double e = 0;
		for (int j = 0; j < d; j++) {
			double t1 = o[b * 2 * d + j], s = o[b * 2 * d + d + j], u = 1 + 2 * s * s;
			e += 0.5 * log(u) - t1 * t1 / (2 * u);
		}
		energy[b] = (float)e;
		double w = wa ? wa[b] + wb[b] * (double)energy[b] : 1;
		for (int j = 0; j < d; j++) {
			double t1 = o[b * 2 * d + j], s = o[b * 2 * d + d + j], u = 1 + 2 * s * s;
			g[b * 2 * d + j] = (float)(w * (-t1 / u));
			g[b * 2 * d + d + j] = (float)(w * (2 * s / u + 2 * s * t1 * t1 / (u * u)));
		}
	}
}

int net_param_grad(net *nt, const float *x, long nx, const float *wa, const float *wb, float *energy, float **dw, float **db, float *dmu, float *dlogsig, char *err) {
	NEED(x && wa && wb && energy && nx == (long)nt->x_size, "%ld input values, want %zu", nx, nt->x_size);
	if (need_grads(nt, dw, db, dmu, dlogsig, err)) return 1;
	use_threads(nt);
	nt->after_energy_grad = 0;
	if (forward(nt, x, err)) return 1;
	head(nt, energy, wa, wb);
	for (int i = nt->nl - 1; i >= 0; i--) {
		layer *L = &nt->l[i];
		if (L->act_bwd) {
			dnnl_exec_arg_t e[3] = {{DNNL_ARG_SRC, L->pre}, {DNNL_ARG_DIFF_DST, L->d_post}, {DNNL_ARG_DIFF_SRC, L->d_pre}};
			if (exec(nt, L->act_bwd, 3, e, "swish backward", i, err)) return 1;
		}
		dnnl_exec_arg_t w[4] = {{DNNL_ARG_SRC, L->src}, {DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_DIFF_WEIGHTS, L->dw}, {DNNL_ARG_DIFF_BIAS, L->db}};
		if (exec(nt, L->bww, 4, w, "backward weights", i, err)) return 1;
		if (run_reorder(nt, L->dw_to_user, L->dw, L->dw_user, "weight-gradient reorder", err)) return 1;
		if (i > 0) {
			dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_WEIGHTS, L->w_bwd}, {DNNL_ARG_DIFF_SRC, nt->l[i - 1].d_post}};
			if (exec(nt, L->bwd, 3, a, "backward data", i, err)) return 1;
		}
	}
	return copy_grads(nt, dw, db, dmu, dlogsig, err);
}

// The second-order step. D = Σ_b ⟨∂E_b/∂x, v_b⟩ is a function of θ through
// the forward pass (z_l = W_l·a_{l−1} + b_l, a_l = s(z_l), s = Swish, a_0 =
// x), the head's gradient δo = ∂E/∂o and the backward pass (δz_l = δa_l ⊙
// s′(z_l), δa_{l−1} = W_lᵀ·δz_l, δa_0 = ∂E/∂x). Reverse mode through that
// backward pass needs, per layer, the forward pass's tangent along v
// (ȧ_0 = v, ż_l = W_l·ȧ_{l−1}, ȧ_l = s′(z_l) ⊙ ż_l); then
//
//	∂D/∂W_l = ∂W(src ȧ_{l−1}, diff δz_l) + ∂W(src a_{l−1}, diff z̄_l)
//	∂D/∂b_l = Σ z̄_l
//	z̄_l     = ā_l ⊙ s′(z_l) + ż_l ⊙ δa_l ⊙ s″(z_l),  ā_{l−1} = W_lᵀ·z̄_l
//
// starting at the head with ō = (∂²E/∂o²)·ȯ. Three convolution passes per
// layer beyond the gradient step: the tangent's forward, two weight
// gradients and one data gradient.

// expf has vector versions in glibc's libmvec; declared so, the loops
// below vectorise (#pragma omp simd) at the baseline ISA of the build.
__attribute__((simd("notinbranch"))) float expf(float);

static inline float sigm(float z) { return 1.f / (1.f + expf(-z)); }

// tangent: ȧ = s′(z) ⊙ ż over n values.
static void swish_tangent(const float *z, const float *zd, float *ad, size_t n) {
#pragma omp parallel for simd schedule(static)
	for (size_t i = 0; i < n; i++) {
		float s = sigm(z[i]);
		ad[i] = s * (1.f + z[i] * (1.f - s)) * zd[i];
	}
}

// adjoint: z̄ = ā ⊙ s′(z) + ż ⊙ δa ⊙ s″(z) over n values.
static void swish_adjoint(const float *z, const float *abar, const float *zd, const float *da, float *zbar, size_t n) {
#pragma omp parallel for simd schedule(static)
	for (size_t i = 0; i < n; i++) {
		float s = sigm(z[i]), d1 = s * (1.f + z[i] * (1.f - s)), d2 = s * (1.f - s) * (2.f + z[i] * (1.f - 2.f * s));
		zbar[i] = abar[i] * d1 + zd[i] * da[i] * d2;
	}
}

// The log-normaliser's second partial derivatives (lognorm, dB1, dB2 above).
static double dB11(double e1, double e2) { (void)e1; return -1 / (2 * e2); }
static double dB12(double e1, double e2) { return e1 / (2 * e2 * e2); }
static double dB22(double e1, double e2) { return -e1 * e1 / (2 * e2 * e2 * e2) + 1 / (2 * e2 * e2); }

// head_hvp writes ō = (∂²E/∂o²)·ȯ per image into obar and, for a GMM-CEBM,
// accumulates ∂F/∂λ into nt->dl1, nt->dl2, where F = Σ_b ⟨∂E_b/∂o, ȯ_b⟩.
// With E = log K − logsumexp_k score_k, score_k = Σ_j B(λ_kj + η_j) − B(λ_kj),
// η = (t1, −s²), p = softmax(score) and ṡc_k = ⟨∂score_k/∂o, ȯ⟩:
// F = −Σ_k p_k·ṡc_k and ∂F = −Σ_k p_k·∂ṡc_k − Σ_k p_k·(ṡc_k − Σ_m p_m·ṡc_m)·∂score_k.
// The CEBM's N(0, I) prior is one component with λ = (0, −½).
static void head_hvp(net *nt, const float *o, const float *od, float *obar) {
	int n = nt->n, d = nt->latent, k = nt->k > 0 ? nt->k : 1;
	if (nt->igebm) { // E = o: its Hessian is 0
		memset(obar, 0, sizeof(float) * n);
		return;
	}
	if (nt->k > 0) {
		memset(nt->dl1, 0, sizeof(double) * k * d);
		memset(nt->dl2, 0, sizeof(double) * k * d);
	}
	double score[k], sdot[k], p[k];
	for (int b = 0; b < n; b++) {
		const float *t1 = o + b * 2 * d, *s = t1 + d, *t1d = od + b * 2 * d, *sd = t1d + d;
		float *g1 = obar + b * 2 * d, *gs = g1 + d;
		double mx = -INFINITY;
		for (int c = 0; c < k; c++) {
			double sc = 0, sdt = 0;
			for (int j = 0; j < d; j++) {
				double l1 = nt->k ? nt->lam1[c * d + j] : 0, l2 = nt->k ? nt->lam2[c * d + j] : -0.5;
				double e1 = l1 + t1[j], e2 = l2 - (double)s[j] * s[j];
				sc += lognorm(e1, e2) - lognorm(l1, l2);
				sdt += dB1(e1, e2) * t1d[j] - 2 * (double)s[j] * dB2(e1, e2) * sd[j];
			}
			score[c] = sc;
			sdot[c] = sdt;
			if (sc > mx) mx = sc;
		}
		double z = 0, mean = 0;
		for (int c = 0; c < k; c++) z += exp(score[c] - mx);
		for (int c = 0; c < k; c++) {
			p[c] = exp(score[c] - mx) / z;
			mean += p[c] * sdot[c];
		}
		for (int j = 0; j < d; j++) {
			double a1 = 0, as = 0;
			for (int c = 0; c < k; c++) {
				double l1 = nt->k ? nt->lam1[c * d + j] : 0, l2 = nt->k ? nt->lam2[c * d + j] : -0.5;
				double sj = s[j], e1 = l1 + t1[j], e2 = l2 - sj * sj;
				double b1 = dB1(e1, e2), b2 = dB2(e1, e2), b11 = dB11(e1, e2), b12 = dB12(e1, e2), b22 = dB22(e1, e2);
				double q = p[c] * (sdot[c] - mean);
				// ∂ṡc/∂η1, ∂ṡc/∂η2 (= ∂/∂λ1, ∂/∂λ2); ∂score/∂η1, ∂score/∂η2 = B1, B2.
				double h1 = b11 * t1d[j] - 2 * sj * b12 * sd[j];
				double h2 = b12 * t1d[j] - 2 * sj * b22 * sd[j];
				a1 += -p[c] * h1 - q * b1;
				// η2 = λ2 − s²: ∂/∂s = −2s·∂/∂η2, plus ṡc's own −2·B2·ṡ.
				as += -p[c] * (-2 * sj * h2 - 2 * b2 * sd[j]) - q * (-2 * sj * b2);
				if (nt->k > 0) {
					nt->dl1[c * d + j] += -p[c] * h1 - q * (b1 - dB1(l1, l2));
					nt->dl2[c * d + j] += -p[c] * h2 - q * (b2 - dB2(l1, l2));
				}
			}
			g1[j] = (float)a1;
			gs[j] = (float)as;
		}
	}
}

static size_t floats(dnnl_memory_t m) {
	const dnnl_memory_desc_t *md;
	dnnl_memory_get_memory_desc(m, &md);
	return dnnl_memory_desc_get_size(md) / sizeof(float);
}

int net_score_param_grad(net *nt, const float *v, long nv, float **dw, float **db, float *dmu, float *dlogsig, char *err) {
	NEED(v && nv == (long)nt->x_size, "%ld direction values, want %zu", nv, nt->x_size);
	NEED(nt->after_energy_grad, "the second-order step needs net_energy_grad at the same images just before it");
	if (need_grads(nt, dw, db, dmu, dlogsig, err)) return 1;
	use_threads(nt);
	memcpy(handle(nt->v_user), v, floats(nt->v_user) * sizeof(float));
	if (run_reorder(nt, nt->x_reorder, nt->v_user, nt->v_prim, "direction reorder", err)) return 1;
	// The tangent of the forward pass along v.
	for (int i = 0; i < nt->nl; i++) {
		layer *L = &nt->l[i];
		dnnl_memory_t src = i == 0 ? nt->v_prim : nt->l[i - 1].tan_post;
		dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, L->w_fwd}, {DNNL_ARG_BIAS, L->zero_b}, {DNNL_ARG_DST, L->tan_pre}};
		if (exec(nt, L->fwd, 4, a, "forward", i, err)) return 1;
		if (L->act) {
			if (wait(nt, err)) return 1;
			swish_tangent(handle(L->pre), handle(L->tan_pre), handle(L->tan_post), floats(L->pre));
		}
	}
	if (wait(nt, err)) return 1;
	layer *H = &nt->l[nt->nl - 1];
	head_hvp(nt, handle(H->pre), handle(H->tan_pre), handle(H->adj_pre));
	// Reverse mode through the forward and backward passes.
	for (int i = nt->nl - 1; i >= 0; i--) {
		layer *L = &nt->l[i];
		if (L->act) {
			if (wait(nt, err)) return 1;
			swish_adjoint(handle(L->pre), handle(L->adj_post), handle(L->tan_pre), handle(L->d_post), handle(L->adj_pre), floats(L->pre));
		}
		dnnl_memory_t tsrc = i == 0 ? nt->v_prim : nt->l[i - 1].tan_post;
		dnnl_exec_arg_t w1[4] = {{DNNL_ARG_SRC, L->src}, {DNNL_ARG_DIFF_DST, L->adj_pre}, {DNNL_ARG_DIFF_WEIGHTS, L->dw}, {DNNL_ARG_DIFF_BIAS, L->db}};
		dnnl_exec_arg_t w2[4] = {{DNNL_ARG_SRC, tsrc}, {DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_DIFF_WEIGHTS, L->dw2}, {DNNL_ARG_DIFF_BIAS, L->db2}};
		if (exec(nt, L->bww, 4, w1, "backward weights", i, err) || exec(nt, L->bww, 4, w2, "backward weights", i, err)) return 1;
		if (i > 0) {
			dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, L->adj_pre}, {DNNL_ARG_WEIGHTS, L->w_bwd}, {DNNL_ARG_DIFF_SRC, nt->l[i - 1].adj_post}};
			if (exec(nt, L->bwd, 3, a, "backward data", i, err)) return 1;
		}
		if (wait(nt, err)) return 1;
		float *g = handle(L->dw);
		const float *g2 = handle(L->dw2);
		size_t m = floats(L->dw);
		for (size_t j = 0; j < m; j++) g[j] += g2[j];
		if (run_reorder(nt, L->dw_to_user, L->dw, L->dw_user, "weight-gradient reorder", err)) return 1;
	}
	return copy_grads(nt, dw, db, dmu, dlogsig, err);
}

void net_free(net *nt) {
	if (!nt) return;
	for (int i = 0; i < MAXL; i++) layer_free(&nt->l[i]);
	if (nt->x_reorder) dnnl_primitive_destroy(nt->x_reorder);
	if (nt->dx_reorder) dnnl_primitive_destroy(nt->dx_reorder);
	if (nt->x_prim && nt->x_prim != nt->x_user) dnnl_memory_destroy(nt->x_prim);
	if (nt->x_user) dnnl_memory_destroy(nt->x_user);
	if (nt->dx_user) dnnl_memory_destroy(nt->dx_user);
	if (nt->v_prim && nt->v_prim != nt->v_user) dnnl_memory_destroy(nt->v_prim);
	if (nt->v_user) dnnl_memory_destroy(nt->v_user);
	free(nt->lam1); free(nt->lam2); free(nt->prec); free(nt->mu); free(nt->dl1); free(nt->dl2); free(nt->score);
	if (nt->stream) dnnl_stream_destroy(nt->stream);
	if (nt->engine) dnnl_engine_destroy(nt->engine);
	free(nt);
}
