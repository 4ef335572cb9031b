package ratelimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

func (l *Limiter) initMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	l.reserves = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sendworker", Subsystem: "ratelimit", Name: "decisions_total",
		Help: "Rate-limit decisions: go (slot now or consumed), deferred (new future slot), held " +
			"(asked again before its slot), beyond_horizon, penalize, given_back (a consumed slot freed: nothing was sent).",
	}, []string{"decision"}))
	l.global = register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "sendworker", Subsystem: "ratelimit", Name: "global_wait_seconds",
		Help:    "Time a provider request waited for the global request rate.",
		Buckets: []float64{0, .01, .05, .1, .5, 1, 5, 10, 30},
	}))
}

// register registers c, or returns the collector already registered under its name (two
// Limiters in one process share their metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (l *Limiter) count(decision string) {
	if l.reserves != nil {
		l.reserves.WithLabelValues(decision).Inc()
	}
}
