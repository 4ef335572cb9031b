package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// Defaults of the queue collector.
const (
	// scrapeTimeout bounds one Collect: a slow or unreachable Redis costs a
	// scrape 2 s and a sendworker_scrape_error, never a hung /metrics.
	scrapeTimeout = 2 * time.Second
	// maxGathers bounds the reads in flight: asynq's Inspector takes no
	// context, so a read cut by the timeout runs on until Redis answers or its
	// client times out. Concurrent scrapes (two Prometheus servers) share the
	// slots; when all are held by hung reads, a scrape reports an error
	// instead of starting another one.
	maxGathers = 4
)

// asynqStates are the task states reported per queue, in asynq's order.
var asynqStates = []string{"pending", "active", "scheduled", "retry", "archived", "completed"}

var (
	queueSizeDesc = prometheus.NewDesc(namespace+"_asynq_queue_size",
		"Tasks in the asynq queue by state.", []string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc(namespace+"_asynq_queue_latency_seconds",
		"Age of the oldest pending task of the asynq queue (0 when none is pending).", []string{"queue"}, nil)
	sendsDesc = prometheus.NewDesc(namespace+"_sends",
		"Send records in the ledger by state (final records count until retention trims them).", []string{"state"}, nil)
	outboxDesc = prometheus.NewDesc(namespace+"_outbox_size",
		"Sends in the outbox, due or not, waiting to be handed to asynq.", nil, nil)
	watchingDesc = prometheus.NewDesc(namespace+"_watchdog_watching",
		"Sends the watchdog guards: approved, waiting or sending and not held.", nil, nil)
	scrapeErrorDesc = prometheus.NewDesc(namespace+"_scrape_error",
		"1 if the last scrape of the queue and ledger sizes failed or timed out (some of those series are then missing), else 0.", nil, nil)
)

// queueCollector reads the queue and ledger sizes at each scrape.
type queueCollector struct {
	inspector *asynq.Inspector // nil: no asynq series
	queue     string
	ledger    *ledger.Ledger // nil: no ledger series
	timeout   time.Duration
	slots     chan struct{}
}

// NewQueueCollector returns a collector that, at each scrape, reports the
// asynq queue's task counts by state (Inspector.GetQueueInfo) and the
// oldest pending task's age, the ledger's records by state (Counts), its
// outbox size and the watchdog's watch size. A failure or a scrape slower
// than 2 s is reported as sendworker_scrape_error 1 (with whatever was
// read), never as a failed scrape. A queue asynq has not seen yet (nothing
// ever enqueued) reports zeros. inspector or l may be nil to leave their
// series out.
func NewQueueCollector(inspector *asynq.Inspector, queue string, l *ledger.Ledger) prometheus.Collector {
	return &queueCollector{
		inspector: inspector, queue: queue, ledger: l,
		timeout: scrapeTimeout, slots: make(chan struct{}, maxGathers),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueSizeDesc, queueLatencyDesc, sendsDesc, outboxDesc, watchingDesc, scrapeErrorDesc} {
		ch <- d
	}
}

// snapshot is what one scrape read. A nil field was not read (error or not
// configured).
type snapshot struct {
	queue    *asynq.QueueInfo
	counts   map[tasks.State]int64
	outbox   *int64
	watching *int64
	err      error
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		ch <- scrapeError(true)
		return
	}
	done := make(chan snapshot, 1)
	go func() {
		defer func() { <-c.slots }()
		done <- c.gather(ctx)
	}()
	select {
	case s := <-done:
		c.emit(ch, s)
	case <-ctx.Done():
		ch <- scrapeError(true)
	}
}

// gather reads everything, carrying on past errors so one failing source
// does not hide the others.
func (c *queueCollector) gather(ctx context.Context) snapshot {
	var s snapshot
	var errs []error
	if c.inspector != nil {
		info, err := c.queueInfo()
		if err != nil {
			errs = append(errs, err)
		}
		s.queue = info
	}
	if c.ledger != nil {
		counts, err := c.ledger.Counts(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		s.counts = counts
		if n, err := c.ledger.OutboxSize(ctx); err != nil {
			errs = append(errs, err)
		} else {
			s.outbox = &n
		}
		if n, err := c.ledger.Watching(ctx); err != nil {
			errs = append(errs, err)
		} else {
			s.watching = &n
		}
	}
	s.err = errors.Join(errs...)
	return s
}

// queueInfo is GetQueueInfo, with a queue asynq does not know yet (nothing
// was ever enqueued in it) reported as empty rather than as an error.
func (c *queueCollector) queueInfo() (*asynq.QueueInfo, error) {
	info, err := c.inspector.GetQueueInfo(c.queue)
	if err == nil {
		return info, nil
	}
	// GetQueueInfo does not export its "queue not found" error: ask asynq's
	// list of queues (one SMEMBERS) only when it failed.
	queues, qerr := c.inspector.Queues()
	if qerr == nil && !slices.Contains(queues, c.queue) {
		return &asynq.QueueInfo{Queue: c.queue}, nil
	}
	return nil, fmt.Errorf("metrics: asynq queue %q: %w", c.queue, err)
}

func (c *queueCollector) emit(ch chan<- prometheus.Metric, s snapshot) {
	if q := s.queue; q != nil {
		sizes := []int{q.Pending, q.Active, q.Scheduled, q.Retry, q.Archived, q.Completed}
		for i, state := range asynqStates {
			ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(sizes[i]), c.queue, state)
		}
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, q.Latency.Seconds(), c.queue)
	}
	if s.counts != nil {
		for _, state := range tasks.States {
			ch <- prometheus.MustNewConstMetric(sendsDesc, prometheus.GaugeValue, float64(s.counts[state]), string(state))
		}
	}
	if s.outbox != nil {
		ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(*s.outbox))
	}
	if s.watching != nil {
		ch <- prometheus.MustNewConstMetric(watchingDesc, prometheus.GaugeValue, float64(*s.watching))
	}
	ch <- scrapeError(s.err != nil)
}

func scrapeError(failed bool) prometheus.Metric {
	v := 0.0
	if failed {
		v = 1
	}
	return prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, v)
}
