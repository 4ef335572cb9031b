package approval

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/internal/service"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// ErrStarted is returned by Start on a Service whose loops already run.
var ErrStarted = errors.New("approval: already started")

// Start runs the releaser and the expiry sweeper (Run) in the background
// until Stop or until ctx ends.
func (s *Service) Start(ctx context.Context) error {
	err := s.runner.Start(ctx, s.Run) // Run logs its own errors and always returns nil
	if errors.Is(err, service.ErrRunning) {
		return ErrStarted
	}
	return err
}

// Stop ends the loops of Start and waits for the batch in progress, or
// until ctx ends (then it returns ctx's error and Start refuses until the
// loops have ended). Stopping a Service that is not running does nothing; it
// may be started again afterwards.
func (s *Service) Stop(ctx context.Context) error { return s.runner.Stop(ctx) }

// Run runs the releaser (outbox → asynq) and the expiry sweeper until ctx is
// done, then returns nil: the blocking form of Start, for a caller that owns
// the goroutine. Every replica may run it: both loops are safe
// concurrently (see ReleaseOnce and SweepOnce). Errors are logged and the
// loops go on at their next tick: the outbox and the deadline index keep
// the work, so nothing is lost while Redis is away.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.loop(ctx, "release", s.opts.ReleaseInterval, s.kick, s.ReleaseOnce, releaseBatch) })
	wg.Go(func() { s.loop(ctx, "sweep", s.opts.SweepInterval, nil, s.SweepOnce, sweepBatch) })
	wg.Wait()
	return nil
}

// maxBurst bounds the back-to-back batches of a loop between two ticks.
const maxBurst = 100

// loop calls once every interval (and on each kick); after a full batch it
// goes again at once, so a backlog drains at Redis speed, not tick speed.
func (s *Service) loop(ctx context.Context, name string, every time.Duration, kick <-chan struct{}, once func(context.Context) (int, error), batch int) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing, burst := false, 0
	for {
		n, err := once(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			// Log the first failure of a run and the recovery, not every tick.
			s.log.Error(name+" failed; retrying every tick", zap.Error(err))
			failing = true
		case err == nil && failing:
			s.log.Info(name + " recovered")
			failing = false
		}
		// A full batch means more work is due: go again at once, but at most
		// maxBurst times in a row, so a batch that never shrinks cannot spin.
		if err == nil && n >= batch && burst < maxBurst {
			burst++
			continue
		}
		burst = 0
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
	}
}

// ReleaseOnce hands at most one batch of due outbox entries to asynq and
// returns how many it released. For each entry it enqueues task
// whatsapp:<op> with id tasks.TaskID(send_id, gen) and payload {send_id, digest,
// gen, account_id}; then it removes the entries enqueued, in one script
// (ledger.MarkAllReleased, each only if its gen is still current). An entry
// whose task id already exists was released by another replica or before a
// crash: it is marked released without a second task. An entry that fails
// stays in the outbox for the next call, and so does the whole batch if
// marking fails (asynq then refuses the second task of each).
func (s *Service) ReleaseOnce(ctx context.Context) (int, error) {
	if s.client == nil {
		return 0, errors.New("release: no asynq client")
	}
	due, err := s.l.DueForRelease(ctx, releaseBatch)
	if err != nil {
		return 0, fmt.Errorf("release: %w", err)
	}
	var (
		mu       sync.Mutex
		enqueued []ledger.Release
		errs     []error
	)
	work := make(chan ledger.Release)
	var wg sync.WaitGroup
	for range min(len(due), releaseParallel) {
		wg.Go(func() {
			for r := range work {
				err := s.enqueue(ctx, r)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					enqueued = append(enqueued, r)
				}
				mu.Unlock()
			}
		})
	}
	for _, r := range due {
		work <- r
	}
	close(work)
	wg.Wait()
	if err := s.l.MarkAllReleased(ctx, enqueued); err != nil {
		// The tasks exist; the next call finds the entries again and asynq refuses the
		// duplicate ids, so retrying is harmless.
		errs = append([]error{fmt.Errorf("%d tasks enqueued, not marked released: %w", len(enqueued), err)}, errs...)
		return len(enqueued), fmt.Errorf("release: %w", errors.Join(errs...))
	}
	if len(errs) > 0 {
		// One line per batch is enough: the entries stay in the outbox.
		return len(enqueued), fmt.Errorf("release: %d of %d failed, first: %w", len(errs), len(due), errs[0])
	}
	return len(enqueued), nil
}

// enqueue makes the asynq task of one release; an existing task of the same id is success.
func (s *Service) enqueue(ctx context.Context, r ledger.Release) error {
	p := tasks.Payload{SendID: r.SendID, Digest: r.Digest, Gen: r.Gen, AccountID: r.AccountID}
	payload, err := p.Encode()
	if err != nil {
		return fmt.Errorf("release %s: %w", r.SendID, err)
	}
	id := p.TaskID()
	_, err = s.client.EnqueueContext(ctx, asynq.NewTask(r.Operation.TaskType(), payload),
		asynq.TaskID(id),
		asynq.Queue(s.opts.Queue),
		asynq.MaxRetry(s.opts.TaskMaxRetry),
		asynq.Timeout(s.opts.TaskTimeout),
		asynq.Retention(s.opts.TaskRetention),
	)
	switch {
	case err == nil:
		s.log.Debug("send released", zap.String("send_id", r.SendID), zap.Int64("gen", r.Gen), zap.String("task_id", id))
	case errors.Is(err, asynq.ErrTaskIDConflict):
		// Already enqueued by another replica or before a crash: done.
	default:
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}

// SweepOnce expires at most one batch of pending sends whose approval
// deadline passed (each one atomic in the ledger, with its result written)
// and returns how many. Concurrent sweepers never expire a send twice.
func (s *Service) SweepOnce(ctx context.Context) (int, error) {
	ids, err := s.l.ExpireDue(ctx, sweepBatch)
	if err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	for _, id := range ids {
		s.log.Info("send expired", zap.String("send_id", id), zap.String("reason", string(tasks.ReasonApprovalExpired)))
	}
	return len(ids), nil
}
