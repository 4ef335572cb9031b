// Package maintenance is the ledger's periodic repair, run by every replica: it
// re-releases sends whose execution died (an attempt lease that ended) or that
// showed no progress for too long (the watchdog), finishes resumes that stopped
// half-way, and trims index entries whose records' retention ran out. Each of
// those is one ledger script, safe when several replicas run them at once.
//
// It lives under internal/ because it is policy of this daemon, not an API: an
// embedder gets it through app, which starts and stops it.
package maintenance

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/internal/logthrottle"
	"github.com/sendworker/sendworker/internal/service"
)

// Ledger is what the repairs need of the send ledger (ledger.Ledger).
type Ledger interface {
	RecoverExpiredLeases(ctx context.Context, grace time.Duration, limit int) ([]string, error)
	RecoverStuck(ctx context.Context, grace time.Duration, limit int) ([]string, error)
	FinishResumes(ctx context.Context) (int, error)
	Trim(ctx context.Context) (int, error)
}

// Options configure the service; zero values take the defaults named on each field.
type Options struct {
	// RecoveryGrace is how long a send may show no progress before the watchdog
	// re-releases it (SENDWORKER_RECOVERY_GRACE). Required.
	RecoveryGrace time.Duration
	// LeaseGrace is how long after its end an attempt lease counts as dead (default 5 s).
	// A lease always outlives its sending call, so a lease that ended a few seconds ago
	// means the execution died (kill -9): re-release it now instead of waiting for
	// asynq's own lease recovery (60–85 s).
	LeaseGrace time.Duration
	// Every is the time between passes (default RecoveryGrace/10, within 1 s..5 s).
	Every time.Duration
	// Batch is the most sends one script re-releases per pass (default 500).
	Batch int
	// TrimEvery is the time between trims of expired index entries (default 1 min).
	TrimEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives what a pass did (default: nothing).
	Log *zap.Logger
	// Throttle holds back repeated warnings while Redis is down (default: one per 30 s).
	Throttle *logthrottle.Throttle
}

// Service runs the repairs in the background between Start and Stop.
type Service struct {
	ledger Ledger
	opts   Options

	trimMu   sync.Mutex // Pass may be called while the loop runs (tests, tools)
	lastTrim time.Time

	runner service.Loop // the loop of Start
}

// New returns a stopped service over l.
func New(l Ledger, opts Options) *Service {
	if opts.LeaseGrace <= 0 {
		opts.LeaseGrace = 5 * time.Second
	}
	if opts.Every <= 0 {
		opts.Every = min(max(opts.RecoveryGrace/10, time.Second), 5*time.Second)
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.TrimEvery <= 0 {
		opts.TrimEvery = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Throttle == nil {
		opts.Throttle = logthrottle.New(30*time.Second, opts.Now)
	}
	return &Service{ledger: l, opts: opts, lastTrim: opts.Now()}
}

// ErrStarted is returned by Start on a service already running.
var ErrStarted = errors.New("maintenance: already started")

// Start runs a pass every Options.Every until Stop or until ctx ends.
func (s *Service) Start(ctx context.Context) error {
	err := s.runner.Start(ctx, s.loop)
	if errors.Is(err, service.ErrRunning) {
		return ErrStarted
	}
	return err
}

// Stop ends the loop and waits for the pass in progress, or until ctx ends (then it returns
// ctx's error and Start refuses until the loop has ended).
func (s *Service) Stop(ctx context.Context) error { return s.runner.Stop(ctx) }

func (s *Service) loop(ctx context.Context) error {
	t := time.NewTicker(s.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.Pass(ctx)
	}
}

// Report is what one pass did.
type Report struct {
	CrashedReleased []string // sends whose attempt lease ended: re-released for reconciliation
	StuckReleased   []string // sends the watchdog re-released
	ResumesFinished int      // held sends released by finishing an interrupted resume
	Trimmed         bool     // whether this pass trimmed the indexes
	Errs            []error  // what failed (the next pass tries again)
}

// Pass runs the repairs once and logs what they did. The trim runs when
// Options.TrimEvery has passed on the service's clock since the last one.
func (s *Service) Pass(ctx context.Context) Report {
	var r Report
	log := s.opts.Log
	fail := func(msg string, err error) {
		r.Errs = append(r.Errs, err)
		if ctx.Err() == nil {
			s.opts.Throttle.Warn(log, msg, zap.Error(err))
		}
	}
	var err error
	if r.CrashedReleased, err = s.ledger.RecoverExpiredLeases(ctx, s.opts.LeaseGrace, s.opts.Batch); err != nil {
		fail("ledger recovery failed", err)
	} else if len(r.CrashedReleased) > 0 {
		log.Warn("crashed attempts re-released for reconciliation",
			zap.Int("count", len(r.CrashedReleased)), zap.Strings("send_ids", r.CrashedReleased))
	}
	if r.StuckReleased, err = s.ledger.RecoverStuck(ctx, s.opts.RecoveryGrace, s.opts.Batch); err != nil {
		fail("ledger recovery failed", err)
	} else if len(r.StuckReleased) > 0 {
		log.Warn("watchdog re-released sends that showed no progress",
			zap.Int("count", len(r.StuckReleased)), zap.Strings("send_ids", r.StuckReleased))
	}
	// Held sends whose pause was lifted by a resume that failed half-way (Redis down).
	if r.ResumesFinished, err = s.ledger.FinishResumes(ctx); err != nil {
		fail("finishing an interrupted resume failed", err)
	} else if r.ResumesFinished > 0 {
		log.Warn("an interrupted resume is finished: held sends released", zap.Int("count", r.ResumesFinished))
	}
	if s.trimDue() {
		r.Trimmed = true
		if _, err := s.ledger.Trim(ctx); err != nil {
			fail("ledger trim failed", err)
		}
	}
	return r
}

// trimDue says whether a trim is due on the service's clock, and if so counts it as done.
func (s *Service) trimDue() bool {
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	if now := s.opts.Now(); now.Sub(s.lastTrim) >= s.opts.TrimEvery {
		s.lastTrim = now
		return true
	}
	return false
}
