package encoder

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cebm/cebm/train"
	"github.com/cebm/cebm/train/model"
)

// TestExportedMetadataRoundTrip: a freshly exported model of every kind
// loads with exactly the metadata train wrote into it.
func TestExportedMetadataRoundTrip(t *testing.T) {
	for _, kind := range []model.Kind{model.CEBM, model.GMMCEBM, model.IGEBM} {
		t.Run(string(kind), func(t *testing.T) {
			cfg := train.DefaultConfig()
			cfg.Model.Kind = kind
			m, err := train.ModelFor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			st := train.NewState(cfg, m)
			st.Step, st.Elapsed = 17, 95500*time.Millisecond
			classes := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
			want, err := train.Metadata(st, m, classes)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "model.onnx")
			if err := train.ExportModel(path, st, classes); err != nil {
				t.Fatal(err)
			}
			got, err := Load(path, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if !reflect.DeepEqual(got.Meta.Meta, want) {
				t.Errorf("loaded metadata\n%+v\nwritten\n%+v", got.Meta.Meta, want)
			}
			if got.Path != path || len(got.Digest) != 64 {
				t.Errorf("path %q, digest %q", got.Path, got.Digest)
			}
		})
	}
}
