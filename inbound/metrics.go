package inbound

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts inbound events by type and outcome: at the receiver (accepted, unauthorized,
// invalid_event, unknown_event, body_too_large, unavailable) and after processing (replied,
// opted_out, own_message, sender_unknown, receipt, no_match, breaker_open, breaker_closed,
// status_ignored, duplicate, error).
type Metrics struct{ events *prometheus.CounterVec }

// NewMetrics registers sendworker_inbound_events_total{type,outcome} with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{events: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendworker_inbound_events_total",
		Help: "Inbound provider events by type and outcome (receiver answers and processing results).",
	}, []string{"type", "outcome"})}
	if reg != nil {
		reg.MustRegister(m.events)
	}
	return m
}

func (m *Metrics) count(kind, outcome string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(kind, outcome).Inc()
}

// Count returns the current count of one series (tests, benchmarks).
func (m *Metrics) Count(kind, outcome string) float64 {
	if m == nil {
		return 0
	}
	c, err := m.events.GetMetricWithLabelValues(kind, outcome)
	if err != nil {
		return 0
	}
	return counterValue(c)
}
