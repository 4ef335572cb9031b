// Package chaosrun is the chaos run of sendworker: real daemon processes
// (cmd/sendworker) and the provider simulator (cmd/wasim) as subprocesses
// over one AOF-backed redis-server, thousands of approved sends pushed while
// workers are killed with SIGKILL and Redis is restarted, then an audit of
// what the simulator received against what the ledger says.
//
// It is shared by the chaos program (bench/chaos) and its CI test: both call
// Run with a Config and judge the Summary.
package chaosrun

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Config is one chaos run. Zero values take the defaults of DefaultConfig
// where noted.
type Config struct {
	// Sends is how many approved sends are pushed; Accounts and
	// ChatsPerAccount size the simulator's generated state the sends are
	// spread over (round robin over accounts, then chats).
	Sends, Accounts, ChatsPerAccount int
	// Workers is the number of sendworker processes; Concurrency their
	// SENDWORKER_CONCURRENCY.
	Workers, Concurrency int
	// PushRate is sends enqueued and approved per second; 0 = as fast as
	// the chaos process can.
	PushRate float64
	// KillEvery is the mean time between two SIGKILLs of a random worker
	// (±25% jitter); 0 = no kills. KillFor bounds the kill phase from the
	// start of pushing; 0 = until every send has been pushed.
	KillEvery, KillFor time.Duration
	// RedisRestartAt is when (from the start of pushing) Redis is restarted
	// gracefully (SIGTERM, AOF kept); negative = never.
	RedisRestartAt time.Duration
	// RedisKillAt is when (from the start of pushing) Redis is killed with
	// SIGKILL and started again: only what its persistence had on disk
	// survives; negative = never. Redis runs with the shipped persistence
	// (AOF, appendfsync always) unless RedisFsync says otherwise.
	RedisKillAt time.Duration
	// RedisFsync is Redis's appendfsync (default "always", the shipped setting).
	RedisFsync string
	// Timeout bounds the whole wait, from the start of pushing until every
	// send is terminal.
	Timeout time.Duration

	// Faults injected by the simulator, as fractions of requests.
	Error500, RateLimit, AcceptThenDrop float64
	RetryAfter                          time.Duration
	LatencyMin, LatencyMax              time.Duration
	// LateStore is the fraction of sending calls the simulator stores only
	// LateStoreDelay after they arrived, never answering them.
	LateStore      float64
	LateStoreDelay time.Duration
	// ProviderClockOffset shifts the simulator's clock (message timestamps,
	// Date header) against the workers' and Redis's.
	ProviderClockOffset time.Duration

	// Daemon timings (SENDWORKER_RECOVERY_GRACE, _RECONCILE_DELAY,
	// _PROVIDER_TIMEOUT, _LATE_COMPLETION) and SENDWORKER_RESEND_POLICY
	// ("" = the daemon's default).
	RecoveryGrace, ReconcileDelay, ProviderTimeout, LateCompletion time.Duration
	ResendPolicy                                                   string

	// Seed drives the simulator's faults and the choice of victims; 0 = random.
	Seed uint64
	// Dir is the working directory (binaries, Redis files, process logs);
	// "" = a temporary one, removed after a clean run unless Keep.
	Dir  string
	Keep bool
	// BinDir holds prebuilt sendworker and wasim binaries; "" = go build them.
	BinDir string
	// Progress receives one line every few seconds and the notable events;
	// nil = io.Discard.
	Progress io.Writer
}

// DefaultConfig is the 10,000-send run of the chaos program.
func DefaultConfig() Config {
	return Config{
		Sends:           10_000,
		Accounts:        100,
		ChatsPerAccount: 20,
		Workers:         3,
		Concurrency:     20,
		PushRate:        250,
		KillEvery:       2 * time.Second,
		RedisRestartAt:  15 * time.Second,
		Timeout:         10 * time.Minute,
		Error500:        0.05,
		RateLimit:       0.05,
		RetryAfter:      time.Second,
		AcceptThenDrop:  0.10,
		LatencyMin:      time.Millisecond,
		LatencyMax:      10 * time.Millisecond,
		RecoveryGrace:   20 * time.Second,
		ReconcileDelay:  time.Second,
		ProviderTimeout: 5 * time.Second,
		// Off by default; -provider-clock-offset, -late-store and -redis-kill-at turn the
		// three faults of a late or skewed provider and a crashing Redis on.
		RedisKillAt:    -1,
		RedisFsync:     "always",
		LateStoreDelay: 8 * time.Second,
		// The simulator's late stores land within LateStoreDelay: the bound the workers
		// wait out before an absent message counts as never sent.
		LateCompletion: 15 * time.Second,
	}
}

func (c Config) validate() error {
	var errs []error
	if c.Sends < 1 {
		errs = append(errs, errors.New("sends must be at least 1"))
	}
	if c.Accounts < 1 || c.ChatsPerAccount < 1 {
		errs = append(errs, errors.New("accounts and chats per account must be at least 1"))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("workers must be at least 1"))
	}
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		errs = append(errs, errors.New("concurrency must be 1..1000"))
	}
	if c.PushRate < 0 || c.KillEvery < 0 || c.KillFor < 0 {
		errs = append(errs, errors.New("push rate, kill-every and kill-for must not be negative"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	if c.LateStore < 0 || (c.LateStore > 0 && c.LateStoreDelay <= 0) {
		errs = append(errs, errors.New("late store must be ≥ 0, with a positive late-store delay"))
	}
	switch c.RedisFsync {
	case "always", "everysec", "no":
	default:
		errs = append(errs, fmt.Errorf("redis appendfsync %q: want always, everysec or no", c.RedisFsync))
	}
	if sum := c.Error500 + c.RateLimit + c.AcceptThenDrop + c.LateStore; c.Error500 < 0 || c.RateLimit < 0 || c.AcceptThenDrop < 0 || sum > 1 {
		errs = append(errs, fmt.Errorf("fault rates must be ≥ 0 and add up to at most 1 (got %v)", sum))
	}
	if c.RecoveryGrace <= 0 || c.ProviderTimeout <= 0 || c.ReconcileDelay < 0 {
		errs = append(errs, errors.New("recovery grace and provider timeout must be positive, reconcile delay not negative"))
	}
	return errors.Join(errs...)
}
