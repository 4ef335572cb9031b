// Package service runs one background loop as a service: Start launches it on its own
// goroutine, Stop cancels it and waits for it to end. The approval releaser and sweeper, the
// maintenance passes, the inbound processor and the webhook dispatcher each run their loop
// through a Loop, so they all start, stop and restart the same way.
package service

import (
	"context"
	"errors"
	"sync"
)

// ErrRunning is returned by Start while a run is going.
var ErrRunning = errors.New("service: already running")

// Loop runs one loop at a time. The zero value is ready to use.
type Loop struct {
	mu  sync.Mutex
	run *run
}

type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start runs loop on its own goroutine until Stop or until ctx ends. While a run is going it
// returns ErrRunning; a run that ended on its own (ctx ended, or loop returned) does not count.
func (l *Loop) Start(ctx context.Context, loop func(context.Context) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.run; r != nil {
		select {
		case <-r.done:
		default:
			return ErrRunning
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &run{cancel: cancel, done: make(chan struct{})}
	l.run = r
	go func() {
		defer close(r.done)
		defer cancel()
		r.err = loop(ctx)
	}()
	return nil
}

// Stop cancels the run and waits for it to end, or until ctx ends: then it returns ctx's error
// and Start keeps refusing until the run has ended, so two runs never overlap. It returns the
// error the run ended with. Stopping a Loop that is not running does nothing; it may be started
// again afterwards.
func (l *Loop) Stop(ctx context.Context) error {
	l.mu.Lock()
	r := l.run
	l.mu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	if l.run == r {
		l.run = nil
	}
	l.mu.Unlock()
	return r.err
}
