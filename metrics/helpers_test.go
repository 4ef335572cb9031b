package metrics

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// The read-back helpers below go through Gather rather than
// prometheus/testutil: testutil needs a module (kylelemons/godebug) that
// go.sum does not have.

// sample is one series read back from a Gatherer.
type sample struct {
	value float64 // counter or gauge
	count uint64  // histogram sample count
	sum   float64 // histogram sum
}

// series returns the series of name whose labels are exactly labels, and
// whether it exists.
func series(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (sample, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if !maps.Equal(got, labels) {
				continue
			}
			return sample{
				value: m.GetCounter().GetValue() + m.GetGauge().GetValue(),
				count: m.GetHistogram().GetSampleCount(),
				sum:   m.GetHistogram().GetSampleSum(),
			}, true
		}
	}
	return sample{}, false
}

// mustSeries is series, failing the test when the series is missing.
func mustSeries(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) sample {
	t.Helper()
	s, ok := series(t, g, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return s
}

// labelValues returns every label value of every series g has.
func labelValues(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				out = append(out, lp.GetValue())
			}
		}
	}
	return out
}

// lbl builds a label set from name, value pairs.
func lbl(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// snapshotOf renders every series of g as "name{k=v,...}" (labels sorted) →
// value (counters, gauges) or sample count (histograms).
func snapshotOf(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, lp := range m.GetLabel() {
				pairs = append(pairs, lp.GetName()+"="+lp.GetValue())
			}
			slices.Sort(pairs)
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			out[mf.GetName()+"{"+strings.Join(pairs, ",")+"}"] = v
		}
	}
	return out
}

// collectCount is how many metrics c yields in one Collect.
func collectCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

// lint fails the test on every problem Prometheus' linter finds in g.
func lint(t *testing.T, g prometheus.Gatherer) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
