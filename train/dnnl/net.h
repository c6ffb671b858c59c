// E(x), ∂E/∂x and ∂E/∂θ of an encoder on oneDNN: convolutions, then dense
// layers, Swish after each, then the head: (t1, s) and the energy of a CEBM
// with the N(0, I) prior, or (IGEBM) the energy itself. Activations stay in
// the layouts oneDNN prefers from the first layer to the last.
//
// Every entry point checks its arguments (sizes included) and returns 0
// on success, or non-zero with a message in err (NET_ERRLEN bytes) naming
// what failed: the argument, or the layer, the step and oneDNN's status.
#ifndef CEBM_DNNL_NET_H
#define CEBM_DNNL_NET_H

enum { NET_ERRLEN = 256, NET_MAXL = 8 };

typedef struct net net;

// net_new builds the network for batch n of c×h×w images; conv holds 4
// numbers per convolution (out channels, kernel, stride, pad), hidden the
// dense layers' widths (NET_MAXL − 1 layers in all at most); latent 0
// makes an IGEBM head, k > 0 a GMM-CEBM head with k components
// (net_set_prior). threads is the OpenMP threads of every step (0: the
// calling thread's setting). Construction goes layer by layer; a failure
// frees everything made so far and returns NULL with the message in err.
net *net_new(int n, int c, int h, int w, int nconv, const int *conv, int nhidden, const int *hidden, int latent, int k, int threads, char *err);
// net_set_prior sets a GMM-CEBM's prior: μ and log σ, [k, latent] (len
// values each).
int net_set_prior(net *nt, const float *mu, const float *log_sigma, long len, char *err);
// net_set_layer sets layer i's weights (nw values) and bias (nb), in the
// trainer's plain layouts: OIHW for convolutions, [out, in] for dense
// layers; the sizes must be net_layer_sizes'.
int net_set_layer(net *nt, int i, const float *w, long nw, const float *b, long nb, char *err);
// net_layers is the number of layers (convolutions, hidden, head).
int net_layers(net *nt);
// net_layer_sizes gives layer i's weight and bias sizes.
int net_layer_sizes(net *nt, int i, long *w, long *b, char *err);
// net_energy_grad computes E(x) for each image and ∂(ΣE)/∂x; x and dx
// hold nx = n·c·h·w values.
int net_energy_grad(net *nt, const float *x, long nx, float *energy, float *dx, char *err);
// net_param_grad computes E(x) for each image and, for every layer,
// Σ_b (wa[b] + wb[b]·E_b)·∂E_b/∂W and ∂E_b/∂bias into dw[i], db[i] (plain
// layouts, as net_set_layer takes them). For a GMM-CEBM dmu and dlogsig
// ([k, latent]) receive the prior's; else they are not touched (may be
// NULL).
int net_param_grad(net *nt, const float *x, long nx, const float *wa, const float *wb, float *energy, float **dw, float **db, float *dmu, float *dlogsig, char *err);
// net_energy computes E(x) for each image.
int net_energy(net *nt, const float *x, long nx, float *energy, char *err);
// net_score_param_grad computes ∂/∂θ of Σ_b ⟨∂E_b/∂x, v_b⟩ (v the size of
// x) at the x of net_energy_grad, which must be the network's last call
// (it reuses its activations and gradients): the second-order step of
// denoising score matching. Outputs as net_param_grad's.
int net_score_param_grad(net *nt, const float *v, long nv, float **dw, float **db, float *dmu, float *dlogsig, char *err);
void net_free(net *nt);

#endif
