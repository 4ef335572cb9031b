package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/internal/logthrottle"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/metrics"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/tasks"
	"github.com/sendworker/sendworker/worker/attachments"
)

// Provider is the part of the provider client the worker uses (provider.Client implements it).
type Provider interface {
	GetAccount(ctx context.Context, accountID string) (*provider.Account, error)
	GetChat(ctx context.Context, chatID, accountID string) (*provider.Chat, error)
	Chats(ctx context.Context, p provider.ListChatsParams) iter.Seq2[provider.Chat, error]
	Messages(ctx context.Context, chatID string, p provider.ListMessagesParams) iter.Seq2[provider.Message, error]

	SendMessage(ctx context.Context, chatID string, p provider.SendMessageParams) (*provider.MessageSent, error)
	StartChat(ctx context.Context, p provider.StartChatParams) (*provider.ChatStarted, error)
	AddReaction(ctx context.Context, messageID, reaction string) error
	EditMessage(ctx context.Context, messageID, text string) error
	DeleteMessage(ctx context.Context, messageID string) error
}

// Limiter paces sends (per account, globally); ratelimit.Limiter (Redis, shared by every
// replica) is the one implementation, NoLimit the absence of limits.
//
// ReserveSlot is called at the start of an execution, after the record's own checks
// (generation, final state, send window, account breaker) and before any provider read: a send
// only reads the provider when its slot has come. A slot that does not Go is "not yet": the
// send is deferred with reason rate_limit (the limit that decided it in the detail), which is
// not a failure. Cancel frees a slot the send holds (still in the future) when it will not use
// it; Refund gives back the slot it took, even one already consumed, when a guard refused the
// send before any sending call. Penalize forbids an account's slots before a time, on every
// replica (a provider 429). WaitGlobal blocks briefly until this process may make one provider
// request (the cluster-wide rate): the worker calls it before BeginAttempt for the sending call,
// so that it never waits with an attempt lease running, and makes that call WithoutPacing. Its
// provider reads are paced by the client (provider.Options.Pacer, which the app sets to the
// same WaitGlobal), like every other provider request of the process.
type Limiter interface {
	ReserveSlot(ctx context.Context, rec *tasks.Record, now time.Time) (ratelimit.Slot, error)
	Cancel(ctx context.Context, rec *tasks.Record) (freed bool, err error)
	Refund(ctx context.Context, rec *tasks.Record) (refunded bool, err error)
	Penalize(ctx context.Context, accountID string, until time.Time) error
	WaitGlobal(ctx context.Context) error
}

var _ Limiter = (*ratelimit.Limiter)(nil)

// NoLimit is the Limiter of no limits: every slot is now, nothing is held.
type NoLimit struct{}

func (NoLimit) ReserveSlot(_ context.Context, _ *tasks.Record, now time.Time) (ratelimit.Slot, error) {
	return ratelimit.Slot{At: now, Go: true}, nil
}
func (NoLimit) Cancel(context.Context, *tasks.Record) (bool, error) { return false, nil }
func (NoLimit) Refund(context.Context, *tasks.Record) (bool, error) { return false, nil }
func (NoLimit) Penalize(context.Context, string, time.Time) error   { return nil }
func (NoLimit) WaitGlobal(context.Context) error                    { return nil }

// Defaults of Options.
const (
	DefaultConcurrency      = 20
	DefaultShutdownTimeout  = 25 * time.Second
	DefaultReconcileDelay   = 15 * time.Second
	DefaultProviderTimeout  = 30 * time.Second // provider.Client's default
	DefaultLease            = 30 * time.Second
	DefaultBackoffBase      = 5 * time.Second
	DefaultBackoffMax       = 5 * time.Minute
	DefaultMaxTransient     = 5
	DefaultReconcileTries   = 3
	DefaultLateCompletion   = 10 * time.Minute
	DefaultAttendeeCacheTTL = 10 * time.Second
	DefaultDelayedTaskCheck = time.Second
	DefaultSlotLead         = 500 * time.Millisecond
	// DefaultMaxDelayAfterApproval: see Options.MaxDelayAfterApproval.
	DefaultMaxDelayAfterApproval = 72 * time.Hour
)

// Options configure a Worker. Zero values take the defaults above.
type Options struct {
	// Queue is the asynq queue of send tasks, served alone (sends have their own queue).
	Queue string
	// Concurrency is how many tasks run at once in this process.
	Concurrency int
	// ShutdownTimeout is how long Stop lets running sends finish before cancelling them.
	ShutdownTimeout time.Duration
	// ReconcileDelay is the least wait before reading the chat to decide a lost outcome.
	ReconcileDelay time.Duration
	// LateCompletion bounds how long after its sending call the provider may still store a
	// message whose answer was lost (its own queue, the account's phone session). Until the
	// attempt's start + Lease + LateCompletion (Redis's clock) a chat without the message
	// proves nothing: the send stays sending, undecided, and is read again then (default
	// 10m).
	LateCompletion time.Duration
	// ResendPolicy decides a send whose message is proven absent after an unknown outcome:
	// ResendAfterProof (default) sends it again, ResendNever ends it needs_review.
	ResendPolicy ResendPolicy
	// AccountHealthTTL caches provider account status in this process; 0 = no cache. It is
	// also how often, at most, an account whose breaker is open is probed (accounts_get) across
	// all replicas (at least once a second).
	AccountHealthTTL time.Duration
	// Lease is the ledger attempt lease (default the larger of 30s and ProviderTimeout+15s).
	// It must exceed ProviderTimeout (checked by New): a
	// sending call is also cut at the lease's end, so no call outlives its lease.
	Lease time.Duration
	// ProviderTimeout is the provider client's timeout (default 30s). When the Provider has
	// a Timeout() time.Duration method, the larger of the two is used.
	ProviderTimeout time.Duration
	// DryRun does everything but the sending call; every result says dry_run.
	DryRun bool
	// AttachmentOrigins allow-lists attachment origins ("https://host[:port]").
	AttachmentOrigins []string
	// MaxAttachmentBytes caps each attachment (default 15 MiB).
	MaxAttachmentBytes int64
	// HTTPClient fetches attachments (default: 60 s timeout).
	HTTPClient *http.Client
	// Limiter paces sends; nil = NoLimit.
	Limiter Limiter
	// SlotLead is how early a send whose rate-limit slot is in the future comes back: it does
	// its provider reads then, and waits in the worker (at most SlotLead) to send at its slot.
	// Without it a send would go out up to the outbox and asynq pick-up delays after its slot,
	// so two sends of an account could reach the provider closer than the limiter spaced them.
	// Default 500ms; negative: no lead (a send comes back at its slot and goes after its reads).
	SlotLead time.Duration
	// Metrics records sends finished, deferrals, approval waits and account breakers; nil
	// records nothing. Provider requests are observed by the provider client
	// (provider.Options.Observer), not here.
	Metrics *metrics.Metrics
	// BackoffBase and BackoffMax shape the waits after provider errors and unhealthy accounts:
	// base·2^n, capped, with jitter.
	BackoffBase, BackoffMax time.Duration
	// MaxTransientAttempts is the budget of transient failures (sending call certainly not
	// delivered, attachment fetch errors) before a send fails (default 5).
	MaxTransientAttempts int
	// MaxReconcileTries is how many undecided reconciliations (listing failed, ambiguous) a
	// send gets before needs_review (default 3).
	MaxReconcileTries int
	// AttendeeCacheTTL caches, per account, which attendees have a chat (default 10s).
	AttendeeCacheTTL time.Duration
	// MaxDelay is how long after its approval (or its window.not_before, if later) a send
	// without window.not_after may still go out (default 72h); past it the send ends expired
	// (max_delay_exceeded). A send's own window.not_after wins, earlier or later.
	MaxDelay time.Duration
	// DelayedTaskCheckInterval is asynq's poll of scheduled/retry tasks (default 1s).
	DelayedTaskCheckInterval time.Duration
	// Now is the clock of the worker's decisions (windows, edit windows); default time.Now.
	// The sending call's deadline always uses the real clock.
	Now    func() time.Time
	Logger *zap.Logger
}

// ResendPolicy is what happens to a send whose sending call had an unknown outcome once the
// chat proved the message absent (see Options.LateCompletion).
type ResendPolicy string

const (
	// ResendAfterProof sends it again: absent reads repeated until the attempt could no longer
	// land are the proof.
	ResendAfterProof ResendPolicy = "after_proof"
	// ResendNever never sends it again automatically: it ends needs_review, with the evidence,
	// for a person to decide. For deployments that prefer a lost message to any risk of two.
	ResendNever ResendPolicy = "never"
)

// leaseMargin is kept between the end of a sending call and the end of its lease, so that a
// call never overlaps another execution's reconciliation.
func leaseMargin(lease time.Duration) time.Duration { return min(2*time.Second, lease/10) }

func (o Options) withDefaults() Options {
	if o.Queue == "" {
		o.Queue = tasks.DefaultQueue
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.ReconcileDelay <= 0 {
		o.ReconcileDelay = DefaultReconcileDelay
	}
	if o.ProviderTimeout <= 0 {
		o.ProviderTimeout = DefaultProviderTimeout
	}
	if o.MaxAttachmentBytes <= 0 {
		o.MaxAttachmentBytes = attachments.DefaultMaxBytes
	}
	if o.Limiter == nil {
		o.Limiter = NoLimit{}
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.MaxTransientAttempts <= 0 {
		o.MaxTransientAttempts = DefaultMaxTransient
	}
	if o.MaxReconcileTries <= 0 {
		o.MaxReconcileTries = DefaultReconcileTries
	}
	if o.LateCompletion <= 0 {
		o.LateCompletion = DefaultLateCompletion
	}
	if o.ResendPolicy == "" {
		o.ResendPolicy = ResendAfterProof
	}
	if o.AttendeeCacheTTL <= 0 {
		o.AttendeeCacheTTL = DefaultAttendeeCacheTTL
	}
	if o.DelayedTaskCheckInterval <= 0 {
		o.DelayedTaskCheckInterval = DefaultDelayedTaskCheck
	}
	if o.SlotLead == 0 {
		o.SlotLead = DefaultSlotLead
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelayAfterApproval
	}
	if o.SlotLead < 0 {
		o.SlotLead = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Worker runs the asynq server of sends. Create it with New; Start and Stop it once.
type Worker struct {
	redis   asynq.RedisConnOpt
	l       *ledger.Ledger
	p       Provider
	opts    Options
	log     *zap.Logger
	err     error // configuration problem found by New, returned by Start and by every task
	fetcher *attachments.Fetcher
	health  *healthCache
	known   *attendeeCache
	breaker *breaker

	// base is the context of every handler: Stop cancels it only after ShutdownTimeout.
	base       context.Context
	cancelBase context.CancelCauseFunc
	running    atomic.Int64 // handlers in flight

	mu       sync.Mutex
	srv      *asynq.Server
	started  bool
	stopped  bool
	stopSync context.CancelFunc // ends the breaker gauge refresh
	syncDone chan struct{}
}

// errStopping is the cause of the handler contexts cancelled by Stop.
var errStopping = errors.New("worker stopping")

// New returns a Worker. It validates opts: a problem (such as a Lease not longer than the
// provider timeout, or a malformed attachment origin) is returned by Start, and every task
// handled meanwhile is retried rather than run with a configuration that could send twice.
func New(redis asynq.RedisConnOpt, l *ledger.Ledger, p Provider, opts Options) *Worker {
	opts = opts.withDefaults()
	// The stricter of the configured and the client's own timeout bounds a
	// sending call; the lease must outlast it.
	if t, ok := p.(interface{ Timeout() time.Duration }); ok {
		opts.ProviderTimeout = max(opts.ProviderTimeout, t.Timeout())
	}
	if opts.Lease <= 0 {
		// Long enough for any call plus the margin, short enough that a crashed
		// execution is reconciled soon (the lease recovery runs a few seconds
		// after it ends).
		opts.Lease = max(DefaultLease, opts.ProviderTimeout+15*time.Second)
	}
	w := &Worker{redis: redis, l: l, p: p, opts: opts, log: opts.Logger.Named("worker")}
	var errs []error
	if l == nil {
		errs = append(errs, errors.New("worker: a ledger is required"))
	}
	if p == nil {
		errs = append(errs, errors.New("worker: a provider is required"))
	}
	if opts.Lease <= opts.ProviderTimeout+leaseMargin(opts.Lease) {
		errs = append(errs, fmt.Errorf("worker: Lease %s must exceed the provider timeout %s by more than %s: a sending call must end before its lease does",
			opts.Lease, opts.ProviderTimeout, leaseMargin(opts.Lease)))
	}
	if opts.ResendPolicy != ResendAfterProof && opts.ResendPolicy != ResendNever {
		errs = append(errs, fmt.Errorf("worker: ResendPolicy %q: want %q or %q", opts.ResendPolicy, ResendAfterProof, ResendNever))
	}
	f, err := attachments.New(attachments.Options{Origins: opts.AttachmentOrigins, MaxBytes: opts.MaxAttachmentBytes, HTTPClient: opts.HTTPClient})
	if err != nil {
		errs = append(errs, fmt.Errorf("worker: %w", err))
	}
	w.err = errors.Join(errs...)
	w.fetcher = f
	w.health = &healthCache{ttl: opts.AccountHealthTTL, now: opts.Now, entries: map[string]healthEntry{}}
	w.known = &attendeeCache{ttl: opts.AttendeeCacheTTL, now: opts.Now, accounts: map[string]*attendeeEntry{}}
	if l != nil {
		w.breaker = newBreaker(l, max(opts.AccountHealthTTL, minProbeInterval), opts.Now, opts.Metrics, w.log)
	}
	w.base, w.cancelBase = context.WithCancelCause(context.Background())
	return w
}

// Handler returns the task handler (for tests and for embedding in another asynq server).
func (w *Worker) Handler() asynq.Handler { return asynq.HandlerFunc(w.processTask) }

// Start starts the asynq server on the send queue. It returns at once.
func (w *Worker) Start(ctx context.Context) error {
	if w.err != nil {
		return w.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("worker: already started")
	}
	srv := asynq.NewServer(w.redis, asynq.Config{
		Concurrency:              w.opts.Concurrency,
		BaseContext:              func() context.Context { return w.base },
		Queues:                   map[string]int{w.opts.Queue: 1},
		IsFailure:                isFailure,
		RetryDelayFunc:           retryDelay,
		Logger:                   logthrottle.NewAsynqLogger(w.log.Named("asynq"), logthrottle.New(0, nil)), // Redis down: one line per message per 30 s
		ShutdownTimeout:          w.opts.ShutdownTimeout,
		DelayedTaskCheckInterval: w.opts.DelayedTaskCheckInterval,
		TaskCheckInterval:        200 * time.Millisecond,
	})
	if err := srv.Ping(); err != nil {
		return fmt.Errorf("worker: redis: %w", err)
	}
	if err := srv.Start(w.Handler()); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.srv, w.started = srv, true
	syncCtx, stopSync := context.WithCancel(context.Background())
	w.stopSync, w.syncDone = stopSync, make(chan struct{})
	go func() {
		defer close(w.syncDone)
		if w.opts.Metrics != nil {
			w.breaker.runSync(syncCtx)
		}
	}()
	w.log.Info("worker started", zap.String("queue", w.opts.Queue), zap.Int("concurrency", w.opts.Concurrency),
		zap.Bool("dry_run", w.opts.DryRun), zap.Duration("lease", w.opts.Lease))
	return nil
}

// Stop stops taking tasks, lets running sends finish for up to ShutdownTimeout (or until ctx
// ends), then cancels those still running and shuts the asynq server down. A cancelled send
// is never half-recorded: a call that certainly did not go out is deferred, one that may have
// is left in its lease for reconciliation, and asynq puts its task back. Stop is idempotent.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	srv, started, stopped := w.srv, w.started, w.stopped
	w.stopped = true
	w.mu.Unlock()
	if !started || stopped {
		w.cancelBase(errStopping)
		return nil
	}
	srv.Stop() // no new tasks
	grace := time.NewTimer(w.opts.ShutdownTimeout)
	defer grace.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for w.running.Load() > 0 {
		select {
		case <-tick.C:
		case <-grace.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	if n := w.running.Load(); n > 0 {
		w.log.Warn("cancelling running sends", zap.Int64("running", n))
	}
	w.cancelBase(errStopping)
	w.stopSync()
	<-w.syncDone
	done := make(chan struct{})
	go func() { srv.Shutdown(); close(done) }()
	select {
	case <-done:
		w.log.Info("worker stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("worker: stop: %w", context.Cause(ctx))
	}
}

// newToken returns a random attempt token.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
