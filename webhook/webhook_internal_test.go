package webhook

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		err    error
		want   outcome
	}{
		{200, nil, outcomeOK},
		{201, nil, outcomeOK},
		{204, nil, outcomeOK},
		{299, nil, outcomeOK},
		{301, nil, outcomeRetry},
		{400, nil, outcomeDead},
		{401, nil, outcomeDead},
		{403, nil, outcomeDead},
		{404, nil, outcomeDead},
		{408, nil, outcomeRetry},
		{410, nil, outcomeDead},
		{413, nil, outcomeDead},
		{422, nil, outcomeDead},
		{429, nil, outcomeRetry},
		{499, nil, outcomeDead},
		{500, nil, outcomeRetry},
		{502, nil, outcomeRetry},
		{503, nil, outcomeRetry},
		{504, nil, outcomeRetry},
		{0, errors.New("connection refused"), outcomeRetry},
	}
	for _, tt := range tests {
		if got := classify(tt.status, tt.err); got != tt.want {
			t.Errorf("classify(%d, %v) = %s, want %s", tt.status, tt.err, got, tt.want)
		}
	}
}

func TestDefaultBackoff(t *testing.T) {
	for attempt := 0; attempt <= 40; attempt++ {
		step := 5 * time.Minute
		if attempt <= 9 {
			step = min(time.Second<<max(attempt-1, 0), step)
		}
		for range 20 {
			d := DefaultBackoff(attempt)
			if d < step/2 || d > step {
				t.Fatalf("DefaultBackoff(%d) = %v, want within [%v, %v]", attempt, d, step/2, step)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "7": 7 * time.Second, "100000": maxRetryAfter,
		http.TimeFormat: 0, // the date form is ignored
	} {
		if got := retryAfter(v); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

// TestClaimSkipsWhatEndedMeanwhile: a claim may read an entry as pending just before the
// delivery in flight acks it; when the claim's answer arrives, that delivery has ended and the
// entry is no longer active. The entry is then not delivered again: track refuses an entry
// whose delivery ended since the claim began, and only then.
func TestClaimSkipsWhatEndedMeanwhile(t *testing.T) {
	d := &Dispatcher{active: map[string]context.CancelFunc{}, pending: make(chan struct{}, 4)}
	ctx := context.Background()
	take := func(id string) bool {
		d.pending <- struct{}{} // as reserve does for each entry taken on
		_, ok := d.track(ctx, id)
		if !ok {
			<-d.pending
		}
		return ok
	}
	if !take("1-0") {
		t.Fatal("a new entry refused")
	}
	d.setEnded(map[string]struct{}{}) // a claim begins, reads 1-0 as pending
	d.untrack("1-0")                  // its delivery acks it and ends
	if take("1-0") {
		t.Fatal("an entry whose delivery ended during the claim is delivered again")
	}
	if !take("2-0") {
		t.Fatal("another entry of the claim refused")
	}
	d.untrack("2-0")
	d.setEnded(nil) // the claim's entries are taken on
	if !take("1-0") {
		t.Fatal("an entry claimed again later (not acked: a failed delivery) is refused")
	}
}
