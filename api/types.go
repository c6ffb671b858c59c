package api

import (
	"github.com/cebm/cebm/api/wire"
	"github.com/cebm/cebm/encoder"
)

// The JSON answers of the endpoints are defined in package wire, which the
// Go client shares.
type (
	EncodeResponse   = wire.EncodeResponse
	Posterior        = wire.Posterior
	OOD              = wire.OOD
	Component        = wire.Component
	NaturalParams    = wire.NaturalParams
	ClassifyResponse = wire.ClassifyResponse
	Classification   = wire.Classification
	Vote             = wire.Vote
	Neighbor         = wire.Neighbor
	AddItemsResponse = wire.AddItemsResponse
	IndexItem        = wire.IndexItem
	ModelsResponse   = wire.ModelsResponse
	ModelInfo        = wire.ModelInfo
	Health           = wire.Health
)

// posteriorJSON is the answer for one encoded image.
func posteriorJSON(r *encoder.Result) Posterior {
	p := Posterior{ID: r.ID, Energy: r.Energy, Mean: r.Latent, Inverted: r.Inverted}
	if r.Posterior.Eta1 != nil {
		p.NaturalParams = &NaturalParams{Eta1: r.Posterior.Eta1, Eta2: r.Posterior.Eta2}
		p.Variance = r.Posterior.Variance
	}
	if len(r.Components) > 0 {
		p.Responsibilities = r.Responsibilities
		for k, c := range r.Components {
			p.Components = append(p.Components, Component{
				Responsibility: r.Responsibilities[k],
				NaturalParams:  NaturalParams{Eta1: c.Eta1, Eta2: c.Eta2},
				Mean:           c.Mean, Variance: c.Variance,
			})
		}
	}
	return p
}
