// Package train trains conjugate energy-based models (CEBM, GMM-CEBM) and
// the IGEBM baseline by contrastive divergence with persistent Langevin
// chains, and exports their encoders to ONNX.
//
// The pieces, in the order a run uses them:
//
//   - [Config] is the recipe (defaults from the authors' code) and
//     [ModelFor] the [Model] it names: an [Arch] plus the energy of its
//     [Kind]. Model.Build writes the network and the energy as graph nodes
//     (package train/graph).
//   - [Engine] runs the training graphs on ONNX Runtime: the energy, its
//     input gradient for the Langevin steps, and the parameter gradient of
//     the contrastive loss.
//   - [State] holds everything a run needs to continue (parameters,
//     optimiser moments, replay buffer, random state); [Trainer] advances it
//     one update at a time ([Trainer.Step]).
//   - [Run] is `cebm train`: it steps until its duration ends or ctx is
//     cancelled, writing checkpoints ([SaveCheckpoint], [LoadCheckpoint]),
//     metrics.jsonl and pictures into the run folder.
//   - [ExportModel] writes the deployable encoder x → t1, t2, energy (or
//     feature, energy) with the parameters baked in and the metadata of
//     package internal/modelfile, which package encoder reads.
package train
