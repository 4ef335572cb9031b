package main

import (
	"context"

	"github.com/sendworker/sendworker/internal/callgrind"
)

// instructions counts Redis's instructions around one phase of the run when
// Redis runs under callgrind (-redis-instructions); otherwise it does nothing.
type instructions struct {
	on bool
	c  callgrind.Counter
	n  int // tasks or sends per phase
}

// start zeroes the count at the start of a phase.
func (i instructions) start(ctx context.Context) error {
	if !i.on {
		return nil
	}
	return i.c.Zero(ctx)
}

// perUnit is the phase's count divided by its n (0 when off).
func (i instructions) perUnit(ctx context.Context, label string) (float64, error) {
	if !i.on {
		return 0, nil
	}
	total, err := i.c.Dump(ctx, label)
	if err != nil {
		return 0, err
	}
	return float64(total) / float64(i.n), nil
}
