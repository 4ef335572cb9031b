// Package webhook POSTs every send result to a configured URL: signed with
// HMAC-SHA256, retried with backoff, dead-lettered when the receiver refuses
// it or never takes it. The operational events of the results stream (an
// account's breaker opening or closing) are POSTed the same way, with their
// own X-Sendworker-Event (EventHeader) and a results.Event as body.
//
// The dispatcher (Start, Stop) is one more consumer group (default
// "sendworker-webhook") on the results stream the ledger writes. It never blocks the send path: the
// worker only appends to the stream and never waits for, or knows about, the
// webhook; a receiver that is down only makes the group's pending list grow.
//
// Delivery is at least once, per result, in no particular order:
//   - An entry is acked only after a 2xx (or after it was dead-lettered), so
//     a crash between read and ack delivers it again: to the same consumer
//     when it restarts under the same name, or to any consumer of the group
//     once the entry has been idle for ClaimMinIdle.
//   - Entries are delivered concurrently and retried independently, so a
//     slow or failing delivery never holds up the others, and a retried
//     result can arrive after later ones.
//
// Receivers therefore dedupe on the X-Sendworker-Delivery header (the stream
// entry id, the same on every attempt), order by the body's finished_at, and
// authenticate with Verify.
//
// The dispatcher never logs the secret, the URL (it may hold a token) or
// request bodies.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/internal/logthrottle"
	"github.com/sendworker/sendworker/internal/service"
	"github.com/sendworker/sendworker/results"
)

// Options configures a Dispatcher. Zero values take the defaults in the
// comments.
type Options struct {
	// URL receives the POSTs (http or https). Required.
	URL string
	// Secret is the HMAC-SHA256 key, at least 16 bytes. Required.
	Secret []byte
	// Stream is the results stream; default results.DefaultStream.
	Stream string
	// Group is the consumer group; default "sendworker-webhook".
	Group string
	// Consumer names this dispatcher in the group; default hostname-pid. A
	// stable name lets a restarted dispatcher take its unacked entries back
	// at once instead of after ClaimMinIdle.
	Consumer string
	// StartID is where a group created by this dispatcher starts: "$"
	// (default: results written from now on, so turning the webhook on does
	// not replay the stream's history) or "0" (every result in the stream).
	StartID string
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
	// MaxAttempts is the number of attempts before a result is
	// dead-lettered; default 10.
	MaxAttempts int
	// Backoff is the wait after failed attempt n (1-based); default
	// DefaultBackoff.
	Backoff func(attempt int) time.Duration
	// Concurrency is how many POSTs may be in flight at once; default 4.
	Concurrency int
	// MaxPending is how many results the dispatcher holds at once,
	// including those waiting for a retry; when full it reads no more.
	// Default 256.
	MaxPending int
	// ClaimMinIdle is how long an entry of another consumer must go
	// untouched before this one takes it over (the other is presumed dead).
	// Entries a live dispatcher is working on are touched every
	// ClaimMinIdle/4. Default 2m; keep it well above Timeout.
	ClaimMinIdle time.Duration
	// PollInterval is how long one read waits for new results; it also
	// bounds how long Stop waits for the reading to end. Default 1s.
	PollInterval time.Duration
	// DeadLetterMaxLen trims the dead-letter stream approximately; default
	// 100000.
	DeadLetterMaxLen int64
	// HTTPClient makes the requests; default a client that does not follow
	// redirects (a redirected POST would lose its body).
	HTTPClient *http.Client
	// Logger; default none.
	Logger *zap.Logger
	// Now is the clock of the signature timestamps, of the dead letters'
	// times and of the takeover cadence (every ClaimMinIdle/2); default
	// time.Now.
	Now func() time.Time
	// Registerer receives the deliveries counter; nil registers nothing.
	Registerer prometheus.Registerer
}

// Defaults of Options.
const (
	DefaultGroup            = "sendworker-webhook"
	DefaultTimeout          = 10 * time.Second
	DefaultMaxAttempts      = 10
	DefaultConcurrency      = 4
	DefaultMaxPending       = 256
	DefaultClaimMinIdle     = 2 * time.Minute
	DefaultPollInterval     = time.Second
	DefaultDeadLetterMaxLen = 100_000

	minSecretLen = 16
	// attemptsTTL keeps an attempt counter long after any retry schedule
	// could need it, and removes it if the final DEL was lost in a crash.
	attemptsTTL = 7 * 24 * time.Hour
	// maxRetryAfter caps a receiver's Retry-After.
	maxRetryAfter = 5 * time.Minute
	// bookkeepingTimeout bounds the Redis writes after an outcome is known;
	// they run even when Stop is ending the run, so a 2xx is not delivered twice.
	bookkeepingTimeout = 5 * time.Second
	// readBatch is the most entries one read asks for.
	readBatch = 32
)

// DefaultBackoff waits exponentially longer after each failed attempt, from
// about 1s after the first to 5 minutes, with random jitter (between half and
// all of the step) so retries of many results spread out.
func DefaultBackoff(attempt int) time.Duration {
	const base, ceiling = time.Second, 5 * time.Minute
	d := ceiling
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 10 {
		d = min(base<<(attempt-1), ceiling)
	}
	return d/2 + rand.N(d/2+1)
}

// Fields of a dead-letter entry in "<stream>:webhook-dead".
const (
	DeadFieldDelivery = "delivery_id" // the results stream entry id
	DeadFieldSendID   = "send_id"
	DeadFieldGroup    = "group"
	DeadFieldReason   = "reason" // one of the Dead* reasons
	DeadFieldStatus   = "status" // last HTTP status, 0 when there was none
	DeadFieldAttempts = "attempts"
	DeadFieldError    = "error" // last transport error, if any
	DeadFieldAt       = "dead_at"
	DeadFieldResult   = "result" // the body that was POSTed, to replay by hand
)

// Reasons of a dead-letter entry.
const (
	DeadRejected    = "rejected"     // a 4xx other than 408 and 429
	DeadMaxAttempts = "max_attempts" // every attempt failed
	DeadUndecodable = "undecodable"  // the stream entry is not a result
)

// outcome is how one attempt ended; its string is the metric label.
type outcome string

const (
	outcomeOK    outcome = "ok"
	outcomeRetry outcome = "retry"
	outcomeDead  outcome = "dead"
)

// classify is the one place that maps an attempt to what happens next: 2xx
// is done, a 4xx other than 408 (timeout) and 429 (rate limited) will never
// succeed, anything else (transport error, 5xx, 3xx) may succeed later.
func classify(status int, err error) outcome {
	switch {
	case err != nil:
		return outcomeRetry
	case status >= 200 && status < 300:
		return outcomeOK
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return outcomeRetry
	case status >= 400 && status < 500:
		return outcomeDead
	default:
		return outcomeRetry
	}
}

// Dispatcher delivers the results stream to the webhook URL. Start runs it
// in the background, Stop ends it.
type Dispatcher struct {
	rdb        redis.UniversalClient
	opts       Options
	reader     *results.Reader
	client     *http.Client
	log        *zap.Logger
	deliveries *prometheus.CounterVec
	deadStream string

	runner service.Loop // the run of Start
	// pending bounds the results held (MaxPending); posts bounds the
	// requests in flight (Concurrency).
	pending chan struct{}
	posts   chan struct{}

	mu sync.Mutex
	// active holds the entries being delivered by the run of Start, with the
	// cancel of each delivery (used when another consumer took it over).
	active map[string]context.CancelFunc
	// ended holds, while a claim's entries are being taken on (nil otherwise),
	// the entries whose delivery ended meanwhile: the claim may have read one
	// of them as pending just before its delivery acked it, and must not
	// deliver it again.
	ended map[string]struct{}

	// logs holds back the read failures repeated every poll while Redis is down.
	logs *logthrottle.Throttle
}

// New checks opts, fills in the defaults and returns a Dispatcher. It does no
// I/O.
func New(rdb redis.UniversalClient, opts Options) (*Dispatcher, error) {
	if err := opts.validate(rdb); err != nil {
		return nil, err
	}
	opts.setDefaults()
	deliveries, err := newDeliveriesCounter(opts.Registerer)
	if err != nil {
		return nil, err
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Dispatcher{
		rdb:        rdb,
		opts:       opts,
		reader:     results.NewReader(rdb, opts.Stream, opts.Group, opts.Consumer),
		client:     client,
		log:        log.With(zap.String("component", "webhook"), zap.String("group", opts.Group), zap.String("consumer", opts.Consumer)),
		deliveries: deliveries,
		deadStream: DeadLetterStream(opts.Stream),
		pending:    make(chan struct{}, opts.MaxPending),
		posts:      make(chan struct{}, opts.Concurrency),
		active:     make(map[string]context.CancelFunc),
		logs:       logthrottle.New(0, opts.Now),
	}, nil
}

// DeadLetterStream names the stream of results the webhook gave up on.
func DeadLetterStream(stream string) string { return stream + ":webhook-dead" }

// attemptsKey names the counter of attempts of one entry for one group. It
// lives in Redis, not in memory, so MaxAttempts holds across restarts and
// takeovers.
func attemptsKey(stream, group, id string) string {
	return stream + ":webhook-attempts:" + group + ":" + id
}

func (o *Options) validate(rdb redis.UniversalClient) error {
	var errs []error
	if rdb == nil {
		errs = append(errs, errors.New("redis client is nil"))
	}
	if o.URL == "" {
		errs = append(errs, errors.New("URL: required"))
	} else if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is not repeated: it may hold a token.
		errs = append(errs, errors.New("URL: must be an absolute http or https URL"))
	}
	if len(o.Secret) < minSecretLen {
		errs = append(errs, fmt.Errorf("Secret: must be at least %d bytes", minSecretLen))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Timeout", o.Timeout}, {"ClaimMinIdle", o.ClaimMinIdle}, {"PollInterval", o.PollInterval}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative", d.name))
		}
	}
	for _, n := range []struct {
		name string
		v    int64
	}{
		{"MaxAttempts", int64(o.MaxAttempts)}, {"Concurrency", int64(o.Concurrency)},
		{"MaxPending", int64(o.MaxPending)}, {"DeadLetterMaxLen", o.DeadLetterMaxLen},
	} {
		if n.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative", n.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("webhook: invalid options: %w", err)
	}
	return nil
}

func (o *Options) setDefaults() {
	o.Secret = bytes.Clone(o.Secret)
	if o.Stream == "" {
		o.Stream = results.DefaultStream
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.Consumer == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "sendworker"
		}
		o.Consumer = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.StartID == "" {
		o.StartID = "$"
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.ClaimMinIdle == 0 {
		o.ClaimMinIdle = DefaultClaimMinIdle
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.DeadLetterMaxLen == 0 {
		o.DeadLetterMaxLen = DefaultDeadLetterMaxLen
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func newDeliveriesCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sendworker",
		Subsystem: "webhook",
		Name:      "deliveries_total",
		Help:      "Webhook delivery attempts by outcome: ok (2xx), retry (will be tried again), dead (dead-lettered).",
	}, []string{"outcome"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			existing, ok := c, false
			if errors.As(err, &already) {
				existing, ok = already.ExistingCollector.(*prometheus.CounterVec)
			}
			if !ok {
				return nil, fmt.Errorf("webhook: register metrics: %w", err)
			}
			c = existing
		}
	}
	for _, o := range []outcome{outcomeOK, outcomeRetry, outcomeDead} {
		c.WithLabelValues(string(o))
	}
	return c, nil
}

// ErrStarted is returned by Start on a Dispatcher already running (or whose
// run has not ended yet after a Stop that gave up waiting).
var ErrStarted = errors.New("webhook: already started")

// Start delivers results in the background until Stop or until ctx ends. It
// creates the consumer group first (in the background too): a failure there
// ends the run, is logged, and is what Stop returns; Redis errors later are
// logged and retried.
func (d *Dispatcher) Start(ctx context.Context) error {
	err := d.runner.Start(ctx, func(ctx context.Context) error {
		err := d.dispatch(ctx)
		if err != nil {
			d.log.Error("webhook stopped", zap.Error(err))
		}
		return err
	})
	if errors.Is(err, service.ErrRunning) {
		return ErrStarted
	}
	return err
}

// Stop ends the run of Start and waits for the deliveries in flight to stop
// (results not yet acked stay pending in the group and are delivered after a
// restart), or until ctx ends (then it returns ctx's error and Start refuses
// until the run has ended). It returns the error the run ended with, if any.
// Stopping a Dispatcher that is not running does nothing; it may be started
// again afterwards.
func (d *Dispatcher) Stop(ctx context.Context) error { return d.runner.Stop(ctx) }

// dispatch delivers results until ctx ends, then waits for the deliveries
// in flight to stop and returns nil. It returns an error only when the
// consumer group cannot be created. It takes over entries idle in other
// consumers every ClaimMinIdle/2 of the Now clock; its waits are real time.
func (d *Dispatcher) dispatch(ctx context.Context) error {
	if err := d.reader.EnsureGroup(ctx, d.opts.StartID); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the group was made: not a failure
		}
		return fmt.Errorf("webhook: %w", err)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { d.keepAlive(ctx) })

	claimEvery := d.opts.ClaimMinIdle / 2
	var lastClaim time.Time // zero: claim at once, a dead consumer's entries may be waiting
	for {
		n := d.reserve(ctx)
		if n == 0 {
			return nil // ctx ended
		}
		var entries []results.Entry
		var err error
		if d.opts.Now().Sub(lastClaim) >= claimEvery {
			d.setEnded(map[string]struct{}{})
			entries, err = d.reader.Claim(ctx, d.opts.ClaimMinIdle, n)
			if len(entries) < n {
				lastClaim = d.opts.Now() // the walk of the pending list is done for now
			}
		}
		if err == nil && len(entries) == 0 {
			entries, err = d.reader.Read(ctx, n, d.opts.PollInterval)
		}
		started := 0
		for _, e := range entries {
			dctx, ok := d.track(ctx, e.ID)
			if !ok {
				continue // a claim handed back an entry this run works on, or has just finished
			}
			started++
			wg.Go(func() {
				defer d.untrack(e.ID)
				d.deliver(dctx, e)
			})
		}
		d.setEnded(nil)
		d.unreserve(n - started)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.logs.Warn(d.log, "reading results failed; trying again", zap.Error(err))
			if !sleep(ctx, d.opts.PollInterval) {
				return nil
			}
		}
	}
}

// reserve waits for at least one free place among MaxPending and takes up to
// readBatch of them; it returns 0 when ctx ends.
func (d *Dispatcher) reserve(ctx context.Context) int {
	select {
	case d.pending <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for n < readBatch {
		select {
		case d.pending <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func (d *Dispatcher) unreserve(n int) {
	for range n {
		<-d.pending
	}
}

// setEnded starts (an empty map) or stops (nil) recording the entries whose
// delivery ends, around a claim and the start of its entries' deliveries.
func (d *Dispatcher) setEnded(m map[string]struct{}) {
	d.mu.Lock()
	d.ended = m
	d.mu.Unlock()
}

// track registers a delivery of entry id and returns its context; false if
// the entry is already being delivered, or its delivery ended since the
// claim that returned it began.
func (d *Dispatcher) track(ctx context.Context, id string) (context.Context, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.active[id]; ok {
		return nil, false
	}
	if _, ok := d.ended[id]; ok {
		return nil, false
	}
	dctx, cancel := context.WithCancel(ctx)
	d.active[id] = cancel
	return dctx, true
}

func (d *Dispatcher) untrack(id string) {
	d.mu.Lock()
	if cancel, ok := d.active[id]; ok {
		cancel()
		delete(d.active, id)
	}
	if d.ended != nil {
		d.ended[id] = struct{}{}
	}
	d.mu.Unlock()
	<-d.pending
}

// keepAlive touches the entries this run is delivering (including those
// waiting for a retry), so other consumers of the group do not take them
// over as if this one were dead. An entry another consumer took over anyway
// (this one stalled for longer than ClaimMinIdle) is abandoned here: the
// new owner delivers it, and two dispatchers do not keep retrying it.
func (d *Dispatcher) keepAlive(ctx context.Context) {
	t := time.NewTicker(max(d.opts.ClaimMinIdle/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		ids := make([]string, 0, len(d.active))
		for id := range d.active {
			ids = append(ids, id)
		}
		d.mu.Unlock()
		kept, err := d.reader.Touch(ctx, ids...)
		if err != nil {
			if ctx.Err() == nil {
				d.logs.Warn(d.log, "touching pending results failed", zap.Error(err))
			}
			continue
		}
		d.abandonLost(ids, kept)
	}
}

// abandonLost cancels the deliveries of touched ids that this consumer no
// longer owns. An id finished meanwhile is missing from kept too; canceling
// it is harmless (its bookkeeping does not use the delivery context).
func (d *Dispatcher) abandonLost(touched, kept []string) {
	owned := make(map[string]bool, len(kept))
	for _, id := range kept {
		owned[id] = true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range touched {
		if cancel, ok := d.active[id]; ok && !owned[id] {
			d.log.Info("another consumer took over a result; leaving it to them", zap.String("delivery", id))
			cancel()
		}
	}
}

// deliver makes the attempts for one entry until it is delivered,
// dead-lettered or ctx ends (then the entry stays pending for a restart).
func (d *Dispatcher) deliver(ctx context.Context, e results.Entry) {
	log := d.log.With(zap.String("delivery", e.ID), zap.String("send_id", e.Result.SendID))
	if e.Err != nil {
		d.deadLetter(ctx, log, e, dead{reason: DeadUndecodable, err: e.Err})
		return
	}
	event := EventResult
	var body []byte
	var err error
	if e.Event != nil {
		event = EventHeader(e.Event.Type)
		log = d.log.With(zap.String("delivery", e.ID), zap.String("event", event), zap.String("account_id", e.Event.AccountID))
		body, err = json.Marshal(e.Event)
	} else {
		body, err = json.Marshal(e.Result)
	}
	if err != nil {
		d.deadLetter(ctx, log, e, dead{reason: DeadUndecodable, err: err})
		return
	}
	for {
		attempt, err := d.countAttempt(ctx, e.ID)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("counting the attempt failed; trying again", zap.Error(err))
			if !sleep(ctx, d.opts.Backoff(1)) {
				return
			}
			continue
		}
		if attempt > d.opts.MaxAttempts {
			// The attempts were spent before a crash or a takeover.
			d.deadLetter(ctx, log, e, dead{reason: DeadMaxAttempts, attempts: attempt - 1, body: body})
			return
		}

		status, retryAfter, err := d.post(ctx, e.ID, event, body)
		if err != nil && ctx.Err() != nil {
			return // stopping: not an outcome, the entry stays pending
		}
		switch classify(status, err) {
		case outcomeOK:
			d.deliveries.WithLabelValues(string(outcomeOK)).Inc()
			d.finish(ctx, log, e.ID)
			log.Debug("result delivered", zap.Int("status", status), zap.Int("attempt", attempt))
			return
		case outcomeDead:
			d.deadLetter(ctx, log, e, dead{reason: DeadRejected, status: status, attempts: attempt, body: body})
			return
		case outcomeRetry:
			if attempt >= d.opts.MaxAttempts {
				d.deadLetter(ctx, log, e, dead{reason: DeadMaxAttempts, status: status, attempts: attempt, err: err, body: body})
				return
			}
			d.deliveries.WithLabelValues(string(outcomeRetry)).Inc()
			wait := d.opts.Backoff(attempt)
			if retryAfter > wait {
				wait = retryAfter
			}
			log.Info("webhook attempt failed; will retry", zap.Int("status", status), zap.NamedError("cause", err),
				zap.Int("attempt", attempt), zap.Duration("wait", wait))
			if !sleep(ctx, wait) {
				return
			}
		}
	}
}

// countAttempt records one more attempt of entry id before it is made (so an
// attempt cut short by a crash still counts) and returns its number.
func (d *Dispatcher) countAttempt(ctx context.Context, id string) (int, error) {
	key := attemptsKey(d.opts.Stream, d.opts.Group, id)
	var incr *redis.IntCmd
	_, err := d.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, key)
		p.Expire(ctx, key, attemptsTTL)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count attempt: %w", err)
	}
	return int(incr.Val()), nil
}

// EventHeader is the X-Sendworker-Event of a results stream event of type
// typ: its first "_" becomes "." ("account_breaker_open" →
// EventAccountBreakerOpen), so event types added later get a header too.
func EventHeader(typ string) string { return strings.Replace(typ, "_", ".", 1) }

// post makes one signed attempt. It returns the status, the receiver's
// Retry-After (0 if none) or a transport error stripped of the URL.
func (d *Dispatcher) post(ctx context.Context, id, event string, body []byte) (int, time.Duration, error) {
	select {
	case d.posts <- struct{}{}:
		defer func() { <-d.posts }()
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.opts.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, errors.New("cannot build the request") // the error would quote the URL
	}
	ts := d.opts.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sendworker-webhook")
	req.Header.Set(HeaderEvent, event)
	req.Header.Set(HeaderDelivery, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(d.opts.Secret, ts, id, event, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, redact(err)
	}
	defer resp.Body.Close()
	// Drain a little so the connection is reused; the body is never logged.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, retryAfter(resp.Header.Get("Retry-After")), nil
}

// redact drops the URL that net/http puts in its errors: it may hold a token.
func redact(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s request: %w", uerr.Op, uerr.Err)
	}
	return err
}

// retryAfter reads a Retry-After in seconds (the HTTP-date form is ignored),
// capped at maxRetryAfter.
func retryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(v)
	if err != nil || secs <= 0 {
		return 0
	}
	return min(time.Duration(secs)*time.Second, maxRetryAfter)
}

// finish acks a delivered entry and drops its attempt counter. It runs even
// if ctx has ended: the outcome is known and must not be redone.
func (d *Dispatcher) finish(ctx context.Context, log *zap.Logger, id string) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if err := d.reader.Ack(bctx, id); err != nil {
		// Not acked: the entry is claimed again after ClaimMinIdle and
		// delivered once more, which the receiver dedupes.
		log.Error("acking a finished result failed", zap.Error(err))
		return
	}
	if err := d.rdb.Del(bctx, attemptsKey(d.opts.Stream, d.opts.Group, id)).Err(); err != nil {
		log.Warn("dropping the attempt counter failed; it expires by itself", zap.Error(err))
	}
}

// dead says why an entry is dead-lettered.
type dead struct {
	reason   string
	status   int
	attempts int
	err      error
	body     []byte
}

// deadLetter records the entry in the dead-letter stream, then acks it. The
// two are separate commands (the streams may be in different cluster
// slots); a crash between them records it twice, never zero times.
func (d *Dispatcher) deadLetter(ctx context.Context, log *zap.Logger, e results.Entry, why dead) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	errText := ""
	if why.err != nil {
		errText = why.err.Error()
	}
	err := d.rdb.XAdd(bctx, &redis.XAddArgs{
		Stream: d.deadStream,
		MaxLen: d.opts.DeadLetterMaxLen,
		Approx: true,
		Values: []any{
			DeadFieldDelivery, e.ID,
			DeadFieldSendID, e.Result.SendID,
			DeadFieldGroup, d.opts.Group,
			DeadFieldReason, why.reason,
			DeadFieldStatus, why.status,
			DeadFieldAttempts, why.attempts,
			DeadFieldError, errText,
			DeadFieldAt, d.opts.Now().UTC().Format(time.RFC3339Nano),
			DeadFieldResult, string(why.body),
		},
	}).Err()
	if err != nil {
		log.Error("dead-lettering a result failed; it stays pending", zap.Error(err))
		return
	}
	d.deliveries.WithLabelValues(string(outcomeDead)).Inc()
	log.Warn("result dead-lettered", zap.String("reason", why.reason), zap.Int("status", why.status),
		zap.Int("attempts", why.attempts), zap.NamedError("cause", why.err))
	d.finish(ctx, log, e.ID)
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
