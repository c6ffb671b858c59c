// Package train runs the training of a conjugate energy-based model
// (CEBM, GMM-CEBM) or the IGEBM baseline: the settings, the loop, the
// optimiser, checkpoints, metrics, pictures and the exported encoder. What
// it trains and how live in the packages beneath it, each importing only
// those below it:
//
//	train        the run: Config, State, Trainer, Run, checkpoints, export
//	objective    the loss: contrastive divergence (chains, replay buffer,
//	             pixel mixture), denoising score matching
//	engine       E, ∂E/∂x and the parameter gradients, on ONNX Runtime
//	             (the reference) or on oneDNN (dnnl)
//	export       the deployable encoder file
//	plots        the training curves
//	model        architectures, kinds, energies, initialisation, whitening
//	dnnl, graph  oneDNN's network (cgo, -tags dnnl, checked at the C
//	             boundary); ONNX graphs, autodiff and ONNX Runtime sessions
//
// The pieces, in the order a run uses them:
//
//   - [Config] is the recipe (defaults from the authors' code), one
//     section per concern: model.Config, objective.Config, [Optimiser],
//     [RunConfig] and the engine's name. [ModelFor] builds the model.Model
//     it names.
//   - [NewState] draws the initial parameters and the objective's state
//     (the replay buffer) from the run's seed; [State] holds everything a
//     run needs to continue (parameters, optimiser moments, moving
//     average, objective state, random state).
//   - [Trainer] advances it one update at a time ([Trainer.Step]): the
//     objective (objective.Objective) draws its batch from the run's
//     random stream and returns the gradients, which the trainer checks
//     and applies with Adam and the moving average.
//   - [Run] is `cebm train` (and each increment of package experiment): it
//     loads nothing itself ([LoadImages] reads a data set), steps until its
//     steps or duration end or ctx is cancelled, writing checkpoints
//     ([SaveCheckpoint], [LoadCheckpoint]), metrics.jsonl and pictures into
//     the run folder, then exports the encoder there (model.onnx, and
//     model-last.onnx beside a moving average) and to RunOptions.Export.
//   - [ExportModel] writes the deployable encoder (package train/export)
//     with the parameters [State.ExportParams] gives and the metadata of
//     package internal/modelfile, which package encoder reads;
//     [ExportCheckpoint] does so from a run folder's checkpoint
//     (`cebm train --export-only`).
//   - The engine a run uses (engine.Name) must be in the binary:
//     engine.Compiled lists them (`cebm version`); oneDNN needs -tags dnnl.
package train
