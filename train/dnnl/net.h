// E(x), ∂E/∂x and ∂E/∂θ of an encoder on oneDNN: convolutions, then dense
// layers, Swish after each, then the head: (t1, s) and the energy of a CEBM
// with the N(0, I) prior, or (IGEBM) the energy itself. Activations stay in
// the layouts oneDNN prefers from the first layer to the last.
#ifndef CEBM_DNNL_NET_H
#define CEBM_DNNL_NET_H

typedef struct net net;

// net_new builds the network for batch n of c×h×w images; conv holds 4
// numbers per convolution (out channels, kernel, stride, pad), hidden the
// dense layers' widths; latent 0 makes an IGEBM head. NULL and a message in
// err (256 bytes) on failure.
// k > 0 makes a GMM-CEBM head with k components (net_set_prior). threads
// is the OpenMP threads of every step (0: the calling thread's setting).
net *net_new(int n, int c, int h, int w, int nconv, const int *conv, int nhidden, const int *hidden, int latent, int k, int threads, char *err);
// net_set_prior sets a GMM-CEBM's prior: μ and log σ, [k, latent]. 0 on success.
int net_set_prior(net *nt, const float *mu, const float *log_sigma);
// net_set_layer sets layer i's weights and bias, in the trainer's plain
// layouts: OIHW for convolutions, [out, in] for dense layers. 0 on success.
int net_set_layer(net *nt, int i, const float *w, const float *b);
// net_layers is the number of layers (convolutions, hidden, head).
int net_layers(net *nt);
// net_layer_sizes gives layer i's weight and bias sizes. 0 on success.
int net_layer_sizes(net *nt, int i, long *w, long *b);
// net_energy_grad computes E(x) for each image and ∂(ΣE)/∂x. 0 on success.
int net_energy_grad(net *nt, const float *x, float *energy, float *dx);
// net_param_grad computes E(x) for each image and, for every layer,
// Σ_b (wa[b] + wb[b]·E_b)·∂E_b/∂W and ∂E_b/∂bias into dw[i], db[i] (plain
// layouts, as net_set_layer takes them). 0 on success.
// For a GMM-CEBM dmu and dlogsig ([k, latent]) receive the prior's; else
// they are not touched (may be NULL).
int net_param_grad(net *nt, const float *x, const float *wa, const float *wb, float *energy, float **dw, float **db, float *dmu, float *dlogsig);
// net_energy computes E(x) for each image. 0 on success.
int net_energy(net *nt, const float *x, float *energy);
// net_score_param_grad computes ∂/∂θ of Σ_b ⟨∂E_b/∂x, v_b⟩ (v the size of
// x) at the x of the last net_energy_grad, whose activations and gradients
// it reuses: the second-order step of denoising score matching. Outputs as
// net_param_grad's. 0 on success.
int net_score_param_grad(net *nt, const float *v, float **dw, float **db, float *dmu, float *dlogsig);
void net_free(net *nt);

#endif
