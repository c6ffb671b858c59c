//go:build cgo && linux && amd64 && dnnl

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "oneapi/dnnl/dnnl.h"
#include "net.h"

#define MAXL 8

// A layer: its forward and backward-data primitives and its memories.
typedef struct {
	int is_conv;
	dnnl_primitive_t fwd, bwd;          // conv/inner product forward, backward data
	dnnl_primitive_t act, act_bwd;      // Swish forward and backward (none for the head)
	dnnl_memory_t w_fwd, w_bwd, bias;   // weights in each primitive's layout
	dnnl_memory_t w_user;               // user weights (plain), reordered into w_fwd / w_bwd
	dnnl_primitive_t w_to_fwd, w_to_bwd; // NULL when layouts agree
	dnnl_memory_t src;                  // the layer's input (previous layer's Swish output)
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
	int igebm; // the head is one scalar energy (IGEBM), not (t1, s)
	int k;     // GMM-CEBM: mixture components (0: the CEBM's N(0, I) prior)
	double *lam1, *lam2, *prec, *mu; // GMM-CEBM prior, [k, latent]
	double *dl1, *dl2;               // ∂ of the weighted energies by λ1, λ2, [k, latent]
	double *score;                   // [k] scratch
	layer l[MAXL];
	dnnl_memory_t x_user, x_prim, dx_user, dx_prim;
	dnnl_primitive_t x_reorder, dx_reorder;
	dnnl_primitive_desc_t pds[6 * MAXL];
	dnnl_primitive_desc_t first_fwd, first_bwd; // the first layer's: the input's layouts
	int npd;
	dnnl_memory_t v_user, v_prim; // the second-order step's direction v, as x
	int threads;                  // OpenMP threads (0: the calling thread's setting)
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

#define CHECK(call, what) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
	snprintf(err, 256, "oneDNN: %s failed (status %d)", what, (int)s_); goto fail; } } while (0)

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

static int run_reorder(net *nt, dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to) {
	if (!p) return 0;
	dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
	return dnnl_primitive_execute(p, nt->stream, 2, a) != dnnl_success;
}

net *net_new(int n, int c, int h, int w, int nconv, const int *conv, int nhidden, const int *hidden, int latent, int k, int threads, char *err) {
	net *nt = calloc(1, sizeof(net));
	nt->threads = threads;
	use_threads(nt);
	if (getenv("CEBM_PLAN")) omp_set_num_threads(atoi(getenv("CEBM_PLAN")));
	nt->k = k;
	if (k > 0) {
		size_t kd = (size_t)k * latent;
		nt->lam1 = calloc(kd, sizeof(double)); nt->lam2 = calloc(kd, sizeof(double));
		nt->prec = calloc(kd, sizeof(double)); nt->mu = calloc(kd, sizeof(double));
		nt->dl1 = calloc(kd, sizeof(double)); nt->dl2 = calloc(kd, sizeof(double));
		nt->score = calloc(k, sizeof(double));
	}
	nt->n = n;
	nt->latent = latent;
	nt->igebm = latent == 0;
	nt->nl = nconv + nhidden + 1;
	if (nt->nl > MAXL) { snprintf(err, 256, "too many layers"); goto fail; }
	CHECK(dnnl_engine_create(&nt->engine, dnnl_cpu, 0), "engine");
	CHECK(dnnl_stream_create(&nt->stream, nt->engine, dnnl_stream_default_flags), "stream");
	dnnl_memory_desc_t src_md, any_md;
	dnnl_dims_t xd = {n, c, h, w};
	CHECK(dnnl_memory_desc_init_by_tag(&any_md, 4, xd, dnnl_f32, dnnl_format_tag_any), "md");
	const dnnl_memory_desc_t *prev = &any_md; // the input's layout: the first convolution chooses
	int ch = c, hh = h, ww = w;
	for (int i = 0; i < nt->nl; i++) {
		layer *L = &nt->l[i];
		dnnl_primitive_desc_t fpd, bpd;
		dnnl_memory_desc_t wmd, bmd, dmd;
		int out;
		if (i < nconv) {
			const int *cv = conv + 4 * i;
			out = cv[0];
			int k = cv[1], s = cv[2], p = cv[3];
			int oh = (hh + 2 * p - k) / s + 1, ow = (ww + 2 * p - k) / s + 1;
			dnnl_dims_t wd = {out, ch, k, k}, bd = {out}, yd = {n, out, oh, ow};
			dnnl_dims_t st = {s, s}, pl = {p, p};
			CHECK(dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any), "md");
			CHECK(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x), "md");
			CHECK(dnnl_memory_desc_init_by_tag(&dmd, 4, yd, dnnl_f32, dnnl_format_tag_any), "md");
			dnnl_convolution_desc_t d, bd2;
			CHECK(dnnl_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, prev, &wmd, &bmd, &dmd, st, pl, pl), "conv desc");
			CHECK(dnnl_primitive_desc_create(&fpd, &d, NULL, nt->engine, NULL), "conv pd");
			// The first layer's ∂x may take any layout (reordered to the caller's
			// after): forcing the forward's plain one leaves only oneDNN's
			// reference implementation for a one-channel input.
			CHECK(dnnl_convolution_backward_data_desc_init(&bd2, dnnl_convolution_direct, i == 0 ? &any_md : qmd(fpd, dnnl_query_src_md), &wmd, qmd(fpd, dnnl_query_dst_md), st, pl, pl), "conv bwd desc");
			CHECK(dnnl_primitive_desc_create(&bpd, &bd2, NULL, nt->engine, fpd), "conv bwd pd");
			dnnl_convolution_desc_t wd2;
			dnnl_primitive_desc_t wpd;
			CHECK(dnnl_convolution_backward_weights_desc_init(&wd2, dnnl_convolution_direct, qmd(fpd, dnnl_query_src_md), &wmd, &bmd, qmd(fpd, dnnl_query_dst_md), st, pl, pl), "conv bwd weights desc");
			CHECK(dnnl_primitive_desc_create(&wpd, &wd2, NULL, nt->engine, fpd), "conv bwd weights pd");
			nt->pds[nt->npd++] = wpd;
			CHECK(dnnl_primitive_create(&L->bww, wpd), "primitive");
			CHECK(mem(nt, &L->dw, qmd(wpd, dnnl_query_diff_weights_md)), "memory");
			L->is_conv = 1;
			L->w_size = (size_t)out * ch * k * k;
			ch = out; hh = oh; ww = ow;
		} else {
			out = i == nt->nl - 1 ? (nt->igebm ? 1 : 2 * latent) : hidden[i - nconv];
			int in_dims = 2, last = i == nt->nl - 1;
			dnnl_dims_t bd = {out}, yd = {n, out};
			if (i == nconv) { // the first dense layer reads the convolutions' 4-D output
				dnnl_dims_t wd = {out, ch, hh, ww};
				CHECK(dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_format_tag_any), "md");
				L->w_size = (size_t)out * ch * hh * ww;
			} else {
				dnnl_dims_t wd = {out, ch};
				CHECK(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, dnnl_f32, dnnl_format_tag_any), "md");
				L->w_size = (size_t)out * ch;
			}
			(void)in_dims;
			CHECK(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x), "md");
			CHECK(dnnl_memory_desc_init_by_tag(&dmd, 2, yd, dnnl_f32, last ? dnnl_nc : dnnl_format_tag_any), "md");
			dnnl_inner_product_desc_t d, bd2;
			CHECK(dnnl_inner_product_forward_desc_init(&d, dnnl_forward_training, prev, &wmd, &bmd, &dmd), "ip desc");
			CHECK(dnnl_primitive_desc_create(&fpd, &d, NULL, nt->engine, NULL), "ip pd");
			CHECK(dnnl_inner_product_backward_data_desc_init(&bd2, qmd(fpd, dnnl_query_src_md), &wmd, qmd(fpd, dnnl_query_dst_md)), "ip bwd desc");
			CHECK(dnnl_primitive_desc_create(&bpd, &bd2, NULL, nt->engine, fpd), "ip bwd pd");
			dnnl_inner_product_desc_t wd2;
			dnnl_primitive_desc_t wpd;
			CHECK(dnnl_inner_product_backward_weights_desc_init(&wd2, qmd(fpd, dnnl_query_src_md), &wmd, &bmd, qmd(fpd, dnnl_query_dst_md)), "ip bwd weights desc");
			CHECK(dnnl_primitive_desc_create(&wpd, &wd2, NULL, nt->engine, fpd), "ip bwd weights pd");
			nt->pds[nt->npd++] = wpd;
			CHECK(dnnl_primitive_create(&L->bww, wpd), "primitive");
			CHECK(mem(nt, &L->dw, qmd(wpd, dnnl_query_diff_weights_md)), "memory");
			ch = out; hh = 1; ww = 1;
		}
		nt->pds[nt->npd++] = fpd;
		nt->pds[nt->npd++] = bpd;
		if (i == 0) {
			nt->first_fwd = fpd;
			nt->first_bwd = bpd;
		}
		L->b_size = out;
		CHECK(dnnl_primitive_create(&L->fwd, fpd), "primitive");
		CHECK(dnnl_primitive_create(&L->bwd, bpd), "primitive");
		// The user's weights are plain (OIHW or OI); the primitives may want others.
		dnnl_memory_desc_t wuser;
		const dnnl_memory_desc_t *wf = qmd(fpd, dnnl_query_weights_md), *wb = qmd(bpd, dnnl_query_weights_md);
		CHECK(dnnl_memory_desc_init_by_tag(&wuser, wf->ndims, wf->dims, dnnl_f32, wf->ndims == 4 ? dnnl_oihw : dnnl_oi), "md");
		CHECK(mem(nt, &L->w_user, &wuser), "memory");
		CHECK(mem(nt, &L->w_fwd, wf), "memory");
		CHECK(mem(nt, &L->w_bwd, wb), "memory");
		CHECK(reorder_pd(nt, &L->w_to_fwd, &wuser, wf), "forward weight reorder");
		CHECK(reorder_pd(nt, &L->w_to_bwd, &wuser, wb), "backward weight reorder");
		CHECK(mem(nt, &L->dw_user, &wuser), "memory");
		CHECK(mem(nt, &L->db, &bmd), "memory");
		{
			const dnnl_memory_desc_t *dwmd;
			dnnl_memory_get_memory_desc(L->dw, &dwmd);
			CHECK(reorder_pd(nt, &L->dw_to_user, dwmd, &wuser), "weight-gradient reorder");
		}
		CHECK(mem(nt, &L->bias, &bmd), "memory");
		CHECK(mem(nt, &L->pre, qmd(fpd, dnnl_query_dst_md)), "memory");
		CHECK(mem(nt, &L->d_pre, qmd(bpd, dnnl_query_diff_dst_md)), "memory");
		CHECK(mem(nt, &L->tan_pre, qmd(fpd, dnnl_query_dst_md)), "memory");
		CHECK(mem(nt, &L->adj_pre, qmd(fpd, dnnl_query_dst_md)), "memory");
		CHECK(mem(nt, &L->db2, &bmd), "memory");
		CHECK(mem(nt, &L->zero_b, &bmd), "memory");
		memset(handle(L->zero_b), 0, (size_t)out * sizeof(float));
		{
			const dnnl_memory_desc_t *dwmd;
			dnnl_memory_get_memory_desc(L->dw, &dwmd);
			CHECK(mem(nt, &L->dw2, dwmd), "memory");
		}
		if (i == 0) {
			CHECK(mem(nt, &L->d_src, qmd(bpd, dnnl_query_diff_src_md)), "memory");
			CHECK(mem(nt, &nt->x_prim, qmd(fpd, dnnl_query_src_md)), "memory");
			L->src = nt->x_prim;
		} else {
			L->src = nt->l[i - 1].post;
		}
		if (i < nt->nl - 1) { // Swish
			dnnl_eltwise_desc_t ed, ebd;
			dnnl_primitive_desc_t epd, ebpd;
			const dnnl_memory_desc_t *md = qmd(fpd, dnnl_query_dst_md);
			CHECK(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, dnnl_eltwise_swish, md, 1.f, 0.f), "swish desc");
			CHECK(dnnl_primitive_desc_create(&epd, &ed, NULL, nt->engine, NULL), "swish pd");
			CHECK(dnnl_eltwise_backward_desc_init(&ebd, dnnl_eltwise_swish, md, md, 1.f, 0.f), "swish bwd desc");
			CHECK(dnnl_primitive_desc_create(&ebpd, &ebd, NULL, nt->engine, epd), "swish bwd pd");
			nt->pds[nt->npd++] = epd;
			nt->pds[nt->npd++] = ebpd;
			CHECK(dnnl_primitive_create(&L->act, epd), "primitive");
			CHECK(dnnl_primitive_create(&L->act_bwd, ebpd), "primitive");
			CHECK(mem(nt, &L->post, md), "memory");
			CHECK(mem(nt, &L->d_post, md), "memory");
			CHECK(mem(nt, &L->tan_post, md), "memory");
			CHECK(mem(nt, &L->adj_post, md), "memory");
			prev = md;
		}
	}
	// The input and ∂x in plain NCHW on the caller's side.
	dnnl_memory_desc_t xuser;
	CHECK(dnnl_memory_desc_init_by_tag(&xuser, 4, xd, dnnl_f32, dnnl_nchw), "md");
	CHECK(mem(nt, &nt->x_user, &xuser), "memory");
	CHECK(mem(nt, &nt->dx_user, &xuser), "memory");
	CHECK(mem(nt, &nt->v_user, &xuser), "memory");
	CHECK(reorder_pd(nt, &nt->x_reorder, &xuser, qmd(nt->first_fwd, dnnl_query_src_md)), "input reorder");
	CHECK(reorder_pd(nt, &nt->dx_reorder, qmd(nt->first_bwd, dnnl_query_diff_src_md), &xuser), "input-gradient reorder");
	if (!nt->x_reorder) { dnnl_memory_destroy(nt->x_prim); nt->x_prim = nt->x_user; nt->l[0].src = nt->x_user; }
	if (nt->x_reorder) CHECK(mem(nt, &nt->v_prim, qmd(nt->first_fwd, dnnl_query_src_md)), "memory");
	else nt->v_prim = nt->v_user;
	nt->dx_prim = nt->l[0].d_src;
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

int net_set_layer(net *nt, int i, const float *w, const float *b) {
	if (i < 0 || i >= nt->nl) return 1;
	layer *L = &nt->l[i];
	use_threads(nt);
	memcpy(handle(L->w_user), w, L->w_size * sizeof(float));
	memcpy(handle(L->bias), b, L->b_size * sizeof(float));
	if (run_reorder(nt, L->w_to_fwd, L->w_user, L->w_fwd) || run_reorder(nt, L->w_to_bwd, L->w_user, L->w_bwd)) return 1;
	if (!L->w_to_fwd) memcpy(handle(L->w_fwd), w, L->w_size * sizeof(float));
	if (!L->w_to_bwd) memcpy(handle(L->w_bwd), w, L->w_size * sizeof(float));
	return dnnl_stream_wait(nt->stream) != dnnl_success;
}

int net_layers(net *nt) { return nt->nl; }

int net_set_prior(net *nt, const float *mu, const float *log_sigma) {
	if (nt->k == 0) return 1;
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
static int copy_grads(net *nt, float **dw, float **db, float *dmu, float *dlogsig) {
	if (dnnl_stream_wait(nt->stream) != dnnl_success) return 1;
	for (int i = 0; i < nt->nl; i++) {
		layer *L = &nt->l[i];
		memcpy(dw[i], handle(L->dw_to_user ? L->dw_user : L->dw), L->w_size * sizeof(float));
		memcpy(db[i], handle(L->db), L->b_size * sizeof(float));
	}
	prior_grads(nt, dmu, dlogsig);
	return 0;
}

static int exec(net *nt, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *a) {
	return dnnl_primitive_execute(p, nt->stream, nargs, a) != dnnl_success;
}

static int forward(net *nt, const float *x);
static void head(net *nt, float *energy, const float *wa, const float *wb);

int net_layer_sizes(net *nt, int i, long *w, long *b) {
	if (i < 0 || i >= nt->nl) return 1;
	*w = (long)nt->l[i].w_size;
	*b = (long)nt->l[i].b_size;
	return 0;
}

int net_energy(net *nt, const float *x, float *energy) {
	use_threads(nt);
	if (forward(nt, x)) return 1;
	head(nt, energy, NULL, NULL);
	return 0;
}

int net_energy_grad(net *nt, const float *x, float *energy, float *dx) {
	use_threads(nt);
	if (forward(nt, x)) return 1;
	head(nt, energy, NULL, NULL);
	for (int i = nt->nl - 1; i >= 0; i--) {
		layer *L = &nt->l[i];
		if (L->act_bwd) {
			dnnl_exec_arg_t e[3] = {{DNNL_ARG_SRC, L->pre}, {DNNL_ARG_DIFF_DST, L->d_post}, {DNNL_ARG_DIFF_SRC, L->d_pre}};
			if (exec(nt, L->act_bwd, 3, e)) return 1;
		}
		dnnl_memory_t d_src = i > 0 ? nt->l[i - 1].d_post : L->d_src;
		dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_WEIGHTS, L->w_bwd}, {DNNL_ARG_DIFF_SRC, d_src}};
		if (exec(nt, L->bwd, 3, a)) return 1;
	}
	if (run_reorder(nt, nt->dx_reorder, nt->l[0].d_src, nt->dx_user)) return 1;
	if (dnnl_stream_wait(nt->stream) != dnnl_success) return 1;
	const dnnl_memory_desc_t *xmd;
	dnnl_memory_get_memory_desc(nt->x_user, &xmd);
	memcpy(dx, handle(nt->dx_reorder ? nt->dx_user : nt->l[0].d_src), dnnl_memory_desc_get_size(xmd));
	return 0;
}

// forward runs the layers on x and leaves the head's output in
// nt->l[last].pre.
static int forward(net *nt, const float *x) {
	const dnnl_memory_desc_t *xmd;
	dnnl_memory_get_memory_desc(nt->x_user, &xmd);
	memcpy(handle(nt->x_user), x, dnnl_memory_desc_get_size(xmd));
	if (run_reorder(nt, nt->x_reorder, nt->x_user, nt->x_prim)) return 1;
	for (int i = 0; i < nt->nl; i++) {
		layer *L = &nt->l[i];
		dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, L->src}, {DNNL_ARG_WEIGHTS, L->w_fwd}, {DNNL_ARG_BIAS, L->bias}, {DNNL_ARG_DST, L->pre}};
		if (exec(nt, L->fwd, 4, a)) return 1;
		if (L->act) {
			dnnl_exec_arg_t e[2] = {{DNNL_ARG_SRC, L->pre}, {DNNL_ARG_DST, L->post}};
			if (exec(nt, L->act, 2, e)) return 1;
		}
	}
	return dnnl_stream_wait(nt->stream) != dnnl_success;
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

int net_param_grad(net *nt, const float *x, const float *wa, const float *wb, float *energy, float **dw, float **db, float *dmu, float *dlogsig) {
	use_threads(nt);
	if (forward(nt, x)) return 1;
	head(nt, energy, wa, wb);
	for (int i = nt->nl - 1; i >= 0; i--) {
		layer *L = &nt->l[i];
		if (L->act_bwd) {
			dnnl_exec_arg_t e[3] = {{DNNL_ARG_SRC, L->pre}, {DNNL_ARG_DIFF_DST, L->d_post}, {DNNL_ARG_DIFF_SRC, L->d_pre}};
			if (exec(nt, L->act_bwd, 3, e)) return 1;
		}
		dnnl_exec_arg_t w[4] = {{DNNL_ARG_SRC, L->src}, {DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_DIFF_WEIGHTS, L->dw}, {DNNL_ARG_DIFF_BIAS, L->db}};
		if (exec(nt, L->bww, 4, w)) return 1;
		if (run_reorder(nt, L->dw_to_user, L->dw, L->dw_user)) return 1;
		if (i > 0) {
			dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_WEIGHTS, L->w_bwd}, {DNNL_ARG_DIFF_SRC, nt->l[i - 1].d_post}};
			if (exec(nt, L->bwd, 3, a)) return 1;
		}
	}
	return copy_grads(nt, dw, db, dmu, dlogsig);
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

int net_score_param_grad(net *nt, const float *v, float **dw, float **db, float *dmu, float *dlogsig) {
	use_threads(nt);
	memcpy(handle(nt->v_user), v, floats(nt->v_user) * sizeof(float));
	if (run_reorder(nt, nt->x_reorder, nt->v_user, nt->v_prim)) return 1;
	// The tangent of the forward pass along v.
	for (int i = 0; i < nt->nl; i++) {
		layer *L = &nt->l[i];
		dnnl_memory_t src = i == 0 ? nt->v_prim : nt->l[i - 1].tan_post;
		dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, L->w_fwd}, {DNNL_ARG_BIAS, L->zero_b}, {DNNL_ARG_DST, L->tan_pre}};
		if (exec(nt, L->fwd, 4, a)) return 1;
		if (L->act) {
			if (dnnl_stream_wait(nt->stream) != dnnl_success) return 1;
			swish_tangent(handle(L->pre), handle(L->tan_pre), handle(L->tan_post), floats(L->pre));
		}
	}
	if (dnnl_stream_wait(nt->stream) != dnnl_success) return 1;
	layer *H = &nt->l[nt->nl - 1];
	head_hvp(nt, handle(H->pre), handle(H->tan_pre), handle(H->adj_pre));
	// Reverse mode through the forward and backward passes.
	for (int i = nt->nl - 1; i >= 0; i--) {
		layer *L = &nt->l[i];
		if (L->act) {
			if (dnnl_stream_wait(nt->stream) != dnnl_success) return 1;
			swish_adjoint(handle(L->pre), handle(L->adj_post), handle(L->tan_pre), handle(L->d_post), handle(L->adj_pre), floats(L->pre));
		}
		dnnl_memory_t tsrc = i == 0 ? nt->v_prim : nt->l[i - 1].tan_post;
		dnnl_exec_arg_t w1[4] = {{DNNL_ARG_SRC, L->src}, {DNNL_ARG_DIFF_DST, L->adj_pre}, {DNNL_ARG_DIFF_WEIGHTS, L->dw}, {DNNL_ARG_DIFF_BIAS, L->db}};
		dnnl_exec_arg_t w2[4] = {{DNNL_ARG_SRC, tsrc}, {DNNL_ARG_DIFF_DST, L->d_pre}, {DNNL_ARG_DIFF_WEIGHTS, L->dw2}, {DNNL_ARG_DIFF_BIAS, L->db2}};
		if (exec(nt, L->bww, 4, w1) || exec(nt, L->bww, 4, w2)) return 1;
		if (i > 0) {
			dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, L->adj_pre}, {DNNL_ARG_WEIGHTS, L->w_bwd}, {DNNL_ARG_DIFF_SRC, nt->l[i - 1].adj_post}};
			if (exec(nt, L->bwd, 3, a)) return 1;
		}
		if (dnnl_stream_wait(nt->stream) != dnnl_success) return 1;
		float *g = handle(L->dw);
		const float *g2 = handle(L->dw2);
		size_t m = floats(L->dw);
		for (size_t j = 0; j < m; j++) g[j] += g2[j];
		if (run_reorder(nt, L->dw_to_user, L->dw, L->dw_user)) return 1;
	}
	return copy_grads(nt, dw, db, dmu, dlogsig);
}

void net_free(net *nt) {
	if (!nt) return;
	for (int i = 0; i < MAXL; i++) {
		layer *L = &nt->l[i];
		dnnl_primitive_t ps[] = {L->fwd, L->bwd, L->act, L->act_bwd, L->w_to_fwd, L->w_to_bwd, L->bww, L->dw_to_user};
		for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) if (ps[j]) dnnl_primitive_destroy(ps[j]);
		dnnl_memory_t ms[] = {L->w_fwd, L->w_bwd, L->bias, L->w_user, L->pre, L->post, L->d_post, L->d_pre, L->d_src, L->dw, L->dw_user, L->db,
			L->tan_pre, L->tan_post, L->adj_pre, L->adj_post, L->dw2, L->db2, L->zero_b};
		for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) if (ms[j]) dnnl_memory_destroy(ms[j]);
	}
	if (nt->x_reorder) dnnl_primitive_destroy(nt->x_reorder);
	if (nt->dx_reorder) dnnl_primitive_destroy(nt->dx_reorder);
	if (nt->x_prim && nt->x_prim != nt->x_user) dnnl_memory_destroy(nt->x_prim);
	if (nt->x_user) dnnl_memory_destroy(nt->x_user);
	if (nt->dx_user) dnnl_memory_destroy(nt->dx_user);
	if (nt->v_prim && nt->v_prim != nt->v_user) dnnl_memory_destroy(nt->v_prim);
	if (nt->v_user) dnnl_memory_destroy(nt->v_user);
	for (int i = 0; i < nt->npd; i++) dnnl_primitive_desc_destroy(nt->pds[i]);
	free(nt->lam1); free(nt->lam2); free(nt->prec); free(nt->mu); free(nt->dl1); free(nt->dl2); free(nt->score);
	if (nt->stream) dnnl_stream_destroy(nt->stream);
	if (nt->engine) dnnl_engine_destroy(nt->engine);
	free(nt);
}
