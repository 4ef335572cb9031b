// Package app wires sendworker's parts into one embeddable daemon: the
// approval stage (release and expiry loops), the asynq worker, the results
// webhook, and the admin HTTP API with health and metrics. It never touches
// signals or the process, so tests and the -dev demo run the real daemon in
// process: New, Start, Addr, Stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/console"
	"github.com/sendworker/sendworker/inbound"
	"github.com/sendworker/sendworker/internal/logthrottle"
	"github.com/sendworker/sendworker/internal/maintenance"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/metrics"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/ratelimit"
	"github.com/sendworker/sendworker/webhook"
	"github.com/sendworker/sendworker/worker"
)

// Options are what the daemon needs besides its configuration.
type Options struct {
	Logger *zap.Logger
	// Now is the clock of every part; default time.Now.
	Now func() time.Time
	// ProviderTransport carries provider requests (benchmarks and tests wrap
	// it to time calls); default a transport that keeps enough idle
	// connections for the worker's concurrency.
	ProviderTransport http.RoundTripper
	// Limiter paces sends; nil = the Redis limiter built from the
	// configuration (SENDWORKER_RATE_*), shared by every replica.
	Limiter worker.Limiter
}

// App is one sendworker process.
type App struct {
	cfg  *config.Config
	log  *zap.Logger
	opts Options

	rdb      redis.UniversalClient
	asynqCli *asynq.Client
	ledger   *ledger.Ledger
	approval *approval.Service
	worker   *worker.Worker
	webhook  *webhook.Dispatcher
	inbound  *inbound.Processor // nil when the receiver is off (no SENDWORKER_INBOUND_SECRET)
	provider *provider.Client
	limiter  *ratelimit.Limiter // nil when Options.Limiter was given
	metrics  *metrics.Metrics
	registry *prometheus.Registry
	server   *http.Server
	console  *console.Console

	// maintenance re-releases crashed and stuck sends and trims the indexes (every replica).
	maintenance *maintenance.Service

	mu       sync.Mutex
	listener net.Listener
	cancel   context.CancelFunc
	loops    sync.WaitGroup
	loopErrs []error
	stopping bool
	stopped  bool
	started  bool
	running  bool // Redis answered and the worker and loops run (Start may wait for Redis)
	// credRefused is set while the provider refuses our credentials (checked at start, then
	// every credentialsRecheck until accepted): /readyz is not ready meanwhile.
	credRefused error

	// logs holds back repeated warnings of the background loops (Redis down).
	logs *logthrottle.Throttle
	// tokens are the admin API's tokens, reloaded from SENDWORKER_ADMIN_TOKENS_FILE.
	tokens tokenState
}

// Start-up retry of an unreachable Redis: the first wait, doubled each time up to the last.
const (
	redisRetryFirst = 500 * time.Millisecond
	redisRetryMax   = 30 * time.Second
)

// credentialsRecheck is how often refused provider credentials are tried again (an operator may
// fix the gateway or the token endpoint without restarting the process).
const credentialsRecheck = 30 * time.Second

// New builds the daemon from a validated configuration. It opens no
// listener and starts nothing: Start does.
func New(cfg *config.Config, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if cfg.Redis.Mode == "" {
		return nil, errors.New("app: no Redis configured (SENDWORKER_REDIS_URL)")
	}
	a := &App{cfg: cfg, log: opts.Logger, opts: opts, registry: prometheus.NewRegistry(), logs: logthrottle.New(0, opts.Now)}

	a.metrics = metrics.New(a.registry)
	transport := opts.ProviderTransport
	if transport == nil {
		transport = providerTransport(cfg.Worker.Concurrency)
	}
	// Every provider request of the process (the worker's reads, the admin API's and the
	// console's look-ups, the limiter's account-age look-up) waits for the global request rate
	// and is observed in the metrics. The limiter is built below, and used only once New returns.
	pace := func(ctx context.Context) error { return a.opts.Limiter.WaitGlobal(ctx) }
	pc, err := newProviderClient(cfg, &http.Client{Transport: transport}, pace, a.metrics.ObserveProvider)
	if err != nil {
		return nil, err
	}
	a.provider = pc

	a.rdb = cfg.Redis.UniversalClient()
	if a.opts.Limiter == nil {
		a.limiter = ratelimit.New(a.rdb, ratelimit.Options{
			Prefix:    cfg.KeyPrefix,
			LimitsFor: cfg.LimitsFor,
			GlobalRPS: cfg.Rate.GlobalRPS,
			AccountCreatedAt: func(ctx context.Context, accountID string) (time.Time, error) {
				acc, err := pc.GetAccount(ctx, accountID)
				if err != nil {
					return time.Time{}, err
				}
				return acc.CreatedAt.Time, nil
			},
			Now:        opts.Now,
			RedisClock: true, // slots on Redis's clock, like the ledger's leases
			Logger:     a.log.Named("ratelimit"),
			Registerer: a.registry,
		})
		a.opts.Limiter = a.limiter
	}
	a.asynqCli = asynq.NewClientFromRedisClient(a.rdb)
	a.ledger = ledger.New(a.rdb, ledger.Options{
		Prefix:        cfg.KeyPrefix,
		ResultsStream: cfg.Results.Stream,
		ResultsMaxLen: int64(cfg.Results.StreamMaxLen),
		Retention:     cfg.Results.Retention,
		Now:           opts.Now,
		WaitReplicas:  cfg.Worker.WaitReplicas,
		WaitTimeout:   cfg.Worker.WaitTimeout,
	})
	if err := a.ledger.Validate(); err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	a.maintenance = maintenance.New(a.ledger, maintenance.Options{
		RecoveryGrace: cfg.Worker.RecoveryGrace,
		Now:           opts.Now,
		Log:           a.log,
		Throttle:      a.logs,
	})
	originAllowed := originChecker(cfg.Attachments.Origins)
	a.approval = approval.New(a.ledger, a.asynqCli, approval.Options{
		DefaultDeadline:    cfg.ApprovalDeadline,
		MaxAttachmentBytes: cfg.Attachments.MaxBytes,
		OriginAllowed:      originAllowed,
		Queue:              cfg.Worker.Queue,
		Now:                opts.Now,
		Logger:             a.log.Named("approval"),
	})
	a.worker = worker.New(cfg.Redis.AsynqConnOpt(), a.ledger, pc, worker.Options{
		Queue:              cfg.Worker.Queue,
		Concurrency:        cfg.Worker.Concurrency,
		ShutdownTimeout:    cfg.Worker.ShutdownTimeout,
		ReconcileDelay:     cfg.Worker.ReconcileDelay,
		LateCompletion:     cfg.Worker.LateCompletion,
		ResendPolicy:       worker.ResendPolicy(cfg.Worker.ResendPolicy),
		AccountHealthTTL:   cfg.Worker.AccountHealthTTL,
		ProviderTimeout:    cfg.Provider.Timeout,
		DryRun:             cfg.SendMode == config.SendDryRun,
		AttachmentOrigins:  cfg.Attachments.Origins,
		MaxAttachmentBytes: cfg.Attachments.MaxBytes,
		MaxDelay:           cfg.MaxDelayAfterApproval,
		Limiter:            a.opts.Limiter,
		Metrics:            a.metrics,
		Now:                opts.Now,
		Logger:             a.log.Named("worker"),
	})
	if u := cfg.Results.Webhook.URL.Reveal(); u != "" {
		a.webhook, err = webhook.New(a.rdb, webhook.Options{
			URL:         u,
			Secret:      []byte(cfg.Results.Webhook.Secret.Reveal()),
			Stream:      cfg.Results.Stream,
			Timeout:     cfg.Results.Webhook.Timeout,
			MaxAttempts: cfg.Results.Webhook.MaxAttempts,
			Registerer:  a.registry,
			Logger:      a.log.Named("webhook"),
			Now:         opts.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("app: webhook: %w", err)
		}
	}

	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(a.rdb), cfg.Worker.Queue, a.ledger),
	)
	a.tokens = tokenState{store: adminapi.NewTokenStore(apiTokens(cfg.Admin.Tokens)), current: cfg.Admin.Tokens}
	handler := adminapi.New(a.approval, adminapi.Options{
		TokenStore:   a.tokens.store,
		MaxBodyBytes: cfg.Admin.MaxBodyBytes,
		Provider:     pc,
		Forecaster:   forecaster(a.limiter),
		Inbound:      a.inboundLog(),
		Ready:        a.ready,
		Metrics:      promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}),
		Logger:       a.log.Named("admin"),
		Now:          opts.Now,
	})
	a.console = console.New(a.approval, console.Options{
		Tokens:        a.tokens.store,
		SessionTTL:    cfg.Admin.ConsoleSessionTTL,
		TrustedHeader: cfg.Admin.ConsoleTrustedHeader,
		Provider:      pc,
		Forecaster:    forecaster(a.limiter),
		Breaker:       worker.BreakerReader(a.ledger),
		Logger:        a.log.Named("console"),
		Now:           opts.Now,
	})
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, a.console)
	mux.Handle("/", handler)
	a.server = adminapi.NewServer(cfg.Admin.Addr, a.withInbound(mux))
	return a, nil
}

// withInbound mounts the receiver of the provider's webhook events (POST /v1/provider/events, its
// own shared-secret authentication) next to the admin API, and builds its processor; without
// SENDWORKER_INBOUND_SECRET it returns the admin handler as is.
func (a *App) withInbound(admin http.Handler) http.Handler {
	cfg := a.cfg.Inbound
	if cfg.Secret.Reveal() == "" {
		return admin
	}
	m := inbound.NewMetrics(a.registry)
	stream, logs := a.ledger.Keys().Inbound(), a.ledger.Keys().InboundLog()
	recv := inbound.NewReceiver(a.rdb, inbound.ReceiverOptions{
		Secrets:      []string{cfg.Secret.Reveal(), cfg.PreviousSecret.Reveal()},
		Header:       cfg.Header,
		MaxBodyBytes: cfg.MaxBodyBytes,
		Stream:       stream,
		Metrics:      m,
		Logger:       a.log.Named("inbound"),
		Now:          a.opts.Now,
	})
	pc := a.provider
	a.inbound = inbound.NewProcessor(a.rdb, a.ledger, inbound.ProcessorOptions{
		Stream:    stream,
		LogStream: logs,
		Keywords:  inbound.NewKeywords(cfg.OptOutKeywords),
		Breakers:  worker.NewAccountBreakers(a.ledger, a.metrics, a.opts.Now, a.log.Named("inbound")),
		SelfIDs: func(ctx context.Context, accountID string) ([]string, error) {
			acc, err := pc.GetAccount(ctx, accountID)
			if err != nil {
				return nil, err
			}
			return selfIDs(acc.ConnectionParams.IM.PhoneNumber), nil
		},
		Metrics: m,
		Logger:  a.log.Named("inbound"),
		Now:     a.opts.Now,
	})
	mux := http.NewServeMux()
	mux.Handle("POST /v1/provider/events", recv)
	mux.Handle("/", admin)
	return mux
}

// selfIDs are the provider ids a WhatsApp account's own messages carry: its phone number's
// digits, alone and as <digits>@s.whatsapp.net.
func selfIDs(phone string) []string {
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, phone)
	if digits == "" {
		return nil
	}
	return []string{digits + "@s.whatsapp.net", digits, "+" + digits}
}

// inboundLog reads the processed provider events (GET /v1/provider/events); nil when the
// receiver is off.
func (a *App) inboundLog() adminapi.InboundLog {
	if a.cfg.Inbound.Secret.Reveal() == "" {
		return nil
	}
	return eventLog{rdb: a.rdb, stream: a.ledger.Keys().InboundLog()}
}

type eventLog struct {
	rdb    redis.UniversalClient
	stream string
}

func (e eventLog) Events(ctx context.Context, after string, limit int) ([]inbound.LogEntry, error) {
	return inbound.ReadLog(ctx, e.rdb, e.stream, after, limit)
}

// providerTransport is http.DefaultTransport with room for one idle
// connection per worker slot: the default two per host makes nearly every
// provider call dial a new connection under load.
func providerTransport(concurrency int) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(concurrency+concurrency/2, 16)
	t.MaxIdleConns = max(t.MaxIdleConns, t.MaxIdleConnsPerHost)
	return t
}

// forecaster keeps a nil limiter a nil interface, so the API answers 503
// instead of calling a method on nil.
func forecaster(l *ratelimit.Limiter) adminapi.Forecaster {
	if l == nil {
		return nil
	}
	return l
}

func newProviderClient(cfg *config.Config, hc *http.Client, pace func(context.Context) error, observe func(provider.Exchange)) (*provider.Client, error) {
	po := provider.Options{BaseURL: cfg.Provider.BaseURL, Timeout: cfg.Provider.Timeout, UserAgent: "sendworker", HTTPClient: hc,
		Pacer: pace, Observer: observe}
	switch {
	case cfg.Provider.Auth == config.AuthOAuth2:
		po.OAuth = &provider.OAuthOptions{
			TokenURL:     cfg.Provider.OAuth.TokenURL,
			ClientID:     cfg.Provider.OAuth.ClientID,
			ClientSecret: cfg.Provider.OAuth.ClientSecret.Reveal(),
			RefreshToken: cfg.Provider.OAuth.RefreshToken.Reveal(),
			Scopes:       cfg.Provider.OAuth.Scopes,
		}
	case cfg.Provider.APIKey.Reveal() != "":
		po.APIKey = cfg.Provider.APIKey.Reveal()
	default:
		// Only reachable in dry_run (config requires a key in live mode):
		// the reads then go out without credentials and fail visibly.
		po.NoAuth = true
	}
	pc, err := provider.New(po)
	if err != nil {
		return nil, fmt.Errorf("app: provider client: %w", err)
	}
	return pc, nil
}

// originChecker allows an attachment URL whose scheme://host[:port] is one of
// origins (default ports made explicit on both sides).
func originChecker(origins []string) func(*url.URL) bool {
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		if u, err := url.Parse(o); err == nil {
			allowed[canonicalOrigin(u)] = true
		}
	}
	return func(u *url.URL) bool { return allowed[canonicalOrigin(u)] }
}

func canonicalOrigin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Start opens the admin listener and, once Redis answers, starts the worker, the approval loops
// and the webhook. With Redis reachable it returns once everything runs. With Redis unreachable
// it does not fail: /healthz answers, /readyz says not ready, and Redis is retried with backoff
// in the background (structured warnings), until it answers or Stop is called. Only a listener
// that cannot open, or a worker that cannot start, is an error. Stop ends it.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return errors.New("app: already started")
	}
	a.started = true
	ln, err := net.Listen("tcp", a.cfg.Admin.Addr)
	if err != nil {
		return fmt.Errorf("app: admin listener: %w", err)
	}
	a.listener = ln
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.goLoop("admin", func() error {
		if err := a.server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if a.cfg.Admin.TokensFile != "" {
		a.goLoop("tokens-file", func() error { return a.watchTokensFile(runCtx, tokensFilePoll) })
	}
	pingCtx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	err = a.rdb.Ping(pingCtx).Err()
	pcancel()
	if err != nil {
		a.log.Warn("redis unreachable at start: serving /healthz, not ready, retrying with backoff",
			zap.String("redis", a.cfg.Redis.String()), zap.Error(err), zap.Duration("retry_in", redisRetryFirst))
		a.goLoop("startup", func() error { return a.startWhenRedisAnswers(runCtx) })
		return nil
	}
	if err := a.startRunning(runCtx); err != nil {
		cancel()
		_ = a.server.Close()
		return err
	}
	return nil
}

// startWhenRedisAnswers pings Redis with backoff (redisRetryFirst doubling up to
// redisRetryMax) and starts everything once it answers, unless the daemon is stopping by then.
func (a *App) startWhenRedisAnswers(ctx context.Context) error {
	wait := redisRetryFirst
	for attempt := 2; ; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = min(2*wait, redisRetryMax)
			a.log.Warn("redis still unreachable; retrying", zap.Int("attempt", attempt), zap.Error(err), zap.Duration("retry_in", wait))
			continue
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stopping {
			return nil
		}
		a.log.Info("redis answers: starting", zap.Int("attempt", attempt))
		return a.startRunning(ctx)
	}
}

// startRunning starts the worker and the loops that need Redis. Called with a.mu held.
func (a *App) startRunning(runCtx context.Context) error {
	a.warnFewReplicas(runCtx)
	a.warnDurability(runCtx)
	if err := a.worker.Start(runCtx); err != nil {
		return fmt.Errorf("app: worker: %w", err)
	}
	if a.cfg.Provider.Auth == config.AuthOAuth2 || a.cfg.Provider.APIKey.Reveal() != "" {
		a.goLoop("provider-credentials", func() error { return a.credentialsLoop(runCtx) })
	}
	if err := a.approval.Start(runCtx); err != nil {
		return fmt.Errorf("app: approval: %w", err)
	}
	if err := a.maintenance.Start(runCtx); err != nil {
		return fmt.Errorf("app: maintenance: %w", err)
	}
	if a.webhook != nil {
		if err := a.webhook.Start(runCtx); err != nil {
			return fmt.Errorf("app: webhook: %w", err)
		}
	}
	if a.inbound != nil {
		if err := a.inbound.Start(runCtx); err != nil {
			return fmt.Errorf("app: inbound: %w", err)
		}
	}
	a.running = true
	a.log.Info("sendworker started",
		zap.String("admin_addr", a.listener.Addr().String()),
		zap.String("redis", a.cfg.Redis.String()),
		zap.String("send_mode", string(a.cfg.SendMode)),
		zap.String("queue", a.cfg.Worker.Queue),
		zap.Int("concurrency", a.cfg.Worker.Concurrency))
	return nil
}

// Addr is the admin API's listen address (useful with port 0).
func (a *App) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

// Ledger gives in-process callers (the -dev demo, tests) the send ledger.
func (a *App) Ledger() *ledger.Ledger { return a.ledger }

// Console is the review console served under /console/ (the -dev banner makes its sign-in links).
func (a *App) Console() *console.Console { return a.console }

// Approval gives in-process callers (the Sequencer's Go API, the demo) the approval service.
func (a *App) Approval() *approval.Service { return a.approval }

// Registry is the Prometheus registry served on /metrics.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// Stop ends the daemon: readiness turns false, the worker stops taking tasks
// and lets running sends finish (within the shutdown timeout), then the
// services (approval, maintenance, the inbound processor, the webhook), the
// other loops and the listener stop, and Redis is closed last. Safe to call
// more than once.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	if a.stopped || !a.started {
		a.mu.Unlock()
		return nil
	}
	a.stopping = true
	a.mu.Unlock()

	var errs []error
	if err := a.worker.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("worker: %w", err))
	}
	if a.cancel != nil {
		a.cancel()
	}
	if err := a.approval.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("approval: %w", err))
	}
	if err := a.maintenance.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("maintenance: %w", err))
	}
	if a.inbound != nil {
		if err := a.inbound.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("inbound: %w", err))
		}
	}
	if a.webhook != nil {
		if err := a.webhook.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("webhook: %w", err))
		}
	}
	if err := a.server.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("admin server: %w", err))
	}
	a.loops.Wait()
	a.mu.Lock()
	errs = append(errs, a.loopErrs...)
	a.stopped = true
	a.mu.Unlock()
	// The asynq client shares rdb (asynq refuses to close a shared
	// connection), so closing rdb closes both.
	if err := a.rdb.Close(); err != nil {
		errs = append(errs, fmt.Errorf("redis: %w", err))
	}
	a.log.Info("sendworker stopped")
	return errors.Join(errs...)
}

func (a *App) goLoop(name string, run func() error) {
	a.loops.Add(1)
	go func() {
		defer a.loops.Done()
		if err := run(); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("loop ended with an error", zap.String("loop", name), zap.Error(err))
			a.mu.Lock()
			a.loopErrs = append(a.loopErrs, fmt.Errorf("%s: %w", name, err))
			a.mu.Unlock()
		}
	}()
}

// warnFewReplicas says at start when SENDWORKER_WAIT_REPLICAS asks for more replicas than the
// Redis master has: every send then waits (redis_replication) until enough of them connect.
func (a *App) warnFewReplicas(ctx context.Context) {
	want := a.cfg.Worker.WaitReplicas
	if want == 0 {
		return
	}
	have, err := a.ledger.ConnectedReplicas(ctx)
	if err != nil {
		a.log.Warn("cannot check the Redis replicas SENDWORKER_WAIT_REPLICAS asks for", zap.Error(err))
		return
	}
	if have < want {
		a.log.Warn("fewer Redis replicas than SENDWORKER_WAIT_REPLICAS: no send goes out until enough replicas connect (sends wait, reason redis_replication)",
			zap.Int("wait_replicas", want), zap.Int("connected_replicas", have))
	}
}

// maxClockSkew is the clock difference between a replica and Redis the daemon accepts
// without a warning.
const maxClockSkew = time.Second

// warnDurability says once at start when the Redis holding the ledger cannot keep an
// attempt's start through a crash (see ledger.Durability.Warning). It never refuses to start:
// the operator decides.
func (a *App) warnDurability(ctx context.Context) {
	// Leases, attempt starts and reconciliation use Redis's clock; windows, rate-limit slots,
	// deadlines and the outbox use this replica's: a skew shifts those by as much.
	if skew, err := a.ledger.ClockSkew(ctx); err == nil && (skew > maxClockSkew || skew < -maxClockSkew) {
		a.log.Warn("this replica's clock differs from Redis's: send windows, rate-limit spacing and deadlines shift by as much; synchronise the clocks (NTP)",
			zap.Duration("skew", skew))
	}
	d := a.ledger.Durability(ctx)
	if w := d.Warning(a.cfg.Worker.WaitReplicas); w != "" {
		a.log.Warn("at-most-once not guaranteed through a Redis crash: "+w,
			zap.String("appendonly", d.AppendOnly), zap.String("appendfsync", d.AppendFsync),
			zap.Int("connected_replicas", d.Replicas), zap.Int("wait_replicas", a.cfg.Worker.WaitReplicas))
	}
}

// credentialsLoop checks at start that the provider accepts our credentials. A refusal is
// logged once, clearly (it otherwise shows only as sends waiting on provider_backoff, forever),
// and keeps /readyz not ready until a later check passes; network trouble says nothing about the
// credentials and changes nothing. The loop ends at the first accepted check.
func (a *App) credentialsLoop(ctx context.Context) error {
	t := time.NewTicker(credentialsRecheck)
	defer t.Stop()
	logged := false
	for {
		cctx, cancel := context.WithTimeout(ctx, a.cfg.Provider.Timeout+5*time.Second)
		err := a.provider.CheckCredentials(cctx)
		cancel()
		switch {
		case err == nil:
			a.setCredentials(nil)
			if logged {
				a.log.Info("provider credentials accepted: sends can go out again")
			}
			return nil
		case errors.Is(err, provider.ErrCredentialsRefused):
			if !logged {
				logged = true
				hint := "fix SENDWORKER_PROVIDER_API_KEY"
				if a.cfg.Provider.Auth == config.AuthOAuth2 {
					hint = "oauth2 mode is for a gateway in front of the provider that accepts bearer tokens; the provider's v1 API itself takes only X-API-KEY: use SENDWORKER_PROVIDER_AUTH=api_key, or fix the gateway or the token endpoint settings"
				}
				a.log.Error("provider refused our credentials at start: not ready, no send can go out",
					zap.String("auth", string(a.cfg.Provider.Auth)), zap.Error(err), zap.String("hint", hint))
			}
			a.setCredentials(err)
		default:
			a.log.Debug("provider credentials not checked yet", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (a *App) setCredentials(err error) {
	a.mu.Lock()
	a.credRefused = err
	a.mu.Unlock()
}

// ready backs /readyz: Redis answers, the provider has not refused our credentials, and the
// daemon is not shutting down.
func (a *App) ready(ctx context.Context) error {
	a.mu.Lock()
	stopping, running, cred := a.stopping, a.running, a.credRefused
	a.mu.Unlock()
	if stopping {
		return errors.New("shutting down")
	}
	if !running {
		// Redis did not answer at start yet: the worker and the loops wait for it.
		if err := a.rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("starting: redis: %w", err)
		}
		return errors.New("starting: redis answers, the worker is starting")
	}
	if cred != nil {
		return fmt.Errorf("provider credentials refused: %w", cred)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
