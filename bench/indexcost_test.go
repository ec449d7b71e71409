package main

import (
	"math"
	"testing"
)

func TestSetIndexerLoss(t *testing.T) {
	tests := []struct {
		name            string
		a, noIndex      *scenarioResult
		wantLoss, ratio float64
	}{
		{"slower with indexer", &scenarioResult{Rate: 900}, &scenarioResult{Rate: 1000}, 10, 0.9},
		{"no (a)", nil, &scenarioResult{Rate: 1000}, 0, 0},
		{"no-index rate zero", &scenarioResult{Rate: 900}, &scenarioResult{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setIndexerLoss(tt.a, tt.noIndex)
			if math.Abs(tt.noIndex.IndexerLossPct-tt.wantLoss) > 1e-9 || math.Abs(tt.noIndex.Ratio-tt.ratio) > 1e-9 {
				t.Fatalf("loss %.3f ratio %.3f, want %.3f %.3f", tt.noIndex.IndexerLossPct, tt.noIndex.Ratio, tt.wantLoss, tt.ratio)
			}
		})
	}
}
