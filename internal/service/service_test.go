package service

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLoop: a loop runs until Stop, which returns its error; a second Start is refused while it
// runs; a Stop bounded by an ended context leaves Start refusing until the run ends; a Loop can
// be started again after Stop, and after a run that ended on its own.
func TestLoop(t *testing.T) {
	t.Parallel()
	l := &Loop{}
	ctx := context.Background()
	if err := l.Stop(ctx); err != nil {
		t.Fatalf("stop of a loop never started: %v", err)
	}

	errEnd := errors.New("ended")
	runs := make(chan struct{}, 4)
	release := make(chan struct{})
	loop := func(ctx context.Context) error {
		runs <- struct{}{}
		<-ctx.Done()
		<-release // held until the test lets it end
		return errEnd
	}
	if err := l.Start(ctx, loop); err != nil {
		t.Fatal(err)
	}
	<-runs
	if err := l.Start(ctx, loop); !errors.Is(err, ErrRunning) {
		t.Fatalf("second start: %v, want ErrRunning", err)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Stop(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("bounded stop: %v, want context.Canceled", err)
	}
	if err := l.Start(ctx, loop); !errors.Is(err, ErrRunning) {
		t.Fatalf("start while the old run ends: %v, want ErrRunning", err)
	}
	close(release)
	if err := l.Stop(ctx); !errors.Is(err, errEnd) {
		t.Fatalf("stop: %v, want the loop's error", err)
	}
	if err := l.Start(ctx, loop); err != nil {
		t.Fatalf("restart: %v", err)
	}
	<-runs
	if err := l.Stop(ctx); !errors.Is(err, errEnd) {
		t.Fatalf("stop after restart: %v", err)
	}

	// A run that ended on its own (its context ended) does not block the next Start.
	short, cancelShort := context.WithCancel(ctx)
	if err := l.Start(short, loop); err != nil {
		t.Fatal(err)
	}
	<-runs
	cancelShort()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := l.Start(ctx, loop)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("start after a run ended on its own: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	<-runs
	if err := l.Stop(ctx); !errors.Is(err, errEnd) {
		t.Fatalf("final stop: %v", err)
	}
}
