// Package metrics is sendworker's Prometheus instrumentation: how sends end
// (operation, final state, reason), how long provider calls take, how long
// sends wait for approval and for limits, windows and accounts, which
// accounts are unhealthy, and how big the queues are (QueueCollector).
//
// It only observes. It never decides, retries or holds anything back, and no
// label ever carries a send, chat, message or attendee id or any text: label
// values come from closed sets (operations, states, reason codes, HTTP
// statuses, error classes), with one deliberate exception, the account id of
// account_breaker_open, whose series exists only while that account is
// unhealthy.
//
// Provider requests are observed by the provider client: ObserveProvider is
// its Observer, so every request of the process (the worker's, the admin
// API's and console's look-ups, the rate limiter's) is counted under the
// operation the client names.
//
// A nil *Metrics is valid and records nothing, so every part can take an
// optional one without checks at the call sites.
package metrics

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// namespace starts every metric name.
const namespace = "sendworker"

// other is the label value of anything outside a label's closed set, so a bug
// or a corrupted record can never create unbounded series.
const other = "other"

// Histogram buckets, in seconds.
var (
	// Provider calls: tens of milliseconds when healthy, up to the client
	// timeout (30 s by default) when not.
	providerBuckets = []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60}
	// Approval: a human decides within minutes to days (deadline default).
	approvalBuckets = []float64{30, 60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 24 * 3600, 48 * 3600, 7 * 24 * 3600}
	// Deferrals: a rate-limit slot is seconds to minutes away, a send window
	// or an unhealthy account hours.
	waitBuckets = []float64{1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600}
)

// Metrics holds sendworker's metrics. Build it with New; a nil *Metrics
// records nothing.
type Metrics struct {
	sendsFinished   *prometheus.CounterVec
	providerLatency *prometheus.HistogramVec
	approvalWait    prometheus.Histogram
	waits           *prometheus.HistogramVec
	breakerOpen     *prometheus.GaugeVec
	providerErrors  *prometheus.CounterVec
}

// New builds the metrics and registers them with reg (nil: not registered,
// e.g. in tests). Registering twice on one registry is fine: the second
// Metrics shares the collectors of the first. Any other registration
// conflict is a programming error and panics, like MustRegister.
func New(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		sendsFinished: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sends_finished_total",
			Help: "Sends that reached a final state, by operation, state and reason code (empty for sent).",
		}, []string{"operation", "state", "reason"})),
		providerLatency: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "provider_request_duration_seconds",
			Help: "Provider HTTP requests, from sending to the response headers, by operation and " +
				"status (HTTP status code, or error/timeout when no response came).",
			Buckets: providerBuckets,
		}, []string{"operation", "status"})),
		approvalWait: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "approval_wait_seconds",
			Help:    "Time from a send's creation to its approval.",
			Buckets: approvalBuckets,
		})),
		waits: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "wait_seconds",
			Help:    "Deferrals of sends (state waiting) by reason, observed with how long the send is set to wait.",
			Buckets: waitBuckets,
		}, []string{"reason"})),
		breakerOpen: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "account_breaker_open",
			Help: "1 while an account is unhealthy (its breaker is open); the series is removed when it " +
				"closes, so healthy accounts have none.",
		}, []string{"account_id"})),
		providerErrors: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "provider_errors_total",
			Help: "Failed provider requests by operation and class (permanent, transient, rate_limited, unknown_outcome).",
		}, []string{"operation", "class"})),
	}
}

// register registers c with reg, or returns the collector already registered
// in its place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// SendFinished counts a send that reached a final state. reason is empty for
// sent.
func (m *Metrics) SendFinished(op tasks.Operation, state tasks.State, reason tasks.Reason) {
	if m == nil {
		return
	}
	m.sendsFinished.WithLabelValues(operationLabel(op), stateLabel(state), reasonLabel(reason)).Inc()
}

// ApprovalWait observes the time from a send's creation to its approval.
func (m *Metrics) ApprovalWait(d time.Duration) {
	if m == nil {
		return
	}
	m.approvalWait.Observe(seconds(d))
}

// Deferred observes a send put in state waiting for reason (rate_limit,
// send_window, paused, account_unhealthy, provider_backoff, …), d being how
// long it is set to wait (until − now; 0 for a pause, which has no end).
func (m *Metrics) Deferred(reason tasks.Reason, d time.Duration) {
	if m == nil {
		return
	}
	m.waits.WithLabelValues(reasonLabel(reason)).Observe(seconds(d))
}

// SetBreaker records whether an account is unhealthy (open). Closing deletes
// the account's series, so only unhealthy accounts have one.
func (m *Metrics) SetBreaker(accountID string, open bool) {
	if m == nil {
		return
	}
	if open {
		m.breakerOpen.WithLabelValues(accountID).Set(1)
		return
	}
	m.breakerOpen.DeleteLabelValues(accountID)
}

func seconds(d time.Duration) float64 { return max(d, 0).Seconds() }

func operationLabel(op tasks.Operation) string {
	if op.Valid() {
		return string(op)
	}
	return other
}

func stateLabel(s tasks.State) string {
	if s.Valid() {
		return string(s)
	}
	return other
}

// reasonLabel keeps a reason that looks like a reason code (snake_case, at
// most 64 bytes) and turns anything else into "other". The set of codes is
// open (new ones may be added), so the shape is what bounds it.
func reasonLabel(r tasks.Reason) string {
	if len(r) > 64 {
		return other
	}
	for _, c := range []byte(r) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return other
		}
	}
	return string(r)
}

// providerOps are the 11 operations of the provider client.
var providerOps = map[string]bool{
	provider.OpAccountsGet: true, provider.OpAccountsSync: true,
	provider.OpChatsList: true, provider.OpChatsGet: true,
	provider.OpChatsMessagesList: true, provider.OpChatsAttendeesList: true,
	provider.OpChatsMessagesSend: true, provider.OpChatsCreate: true,
	provider.OpMessagesReaction: true, provider.OpMessagesEdit: true, provider.OpMessagesDelete: true,
}

// providerClasses are the names of the provider client's error classes.
var providerClasses = map[string]bool{
	provider.ClassPermanent.String(): true, provider.ClassTransient.String(): true,
	provider.ClassRateLimited.String(): true, provider.ClassUnknownOutcome.String(): true,
}
