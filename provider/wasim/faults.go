package wasim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Faults is the fault injection applied to /api/v1 requests. The zero value injects nothing.
//
// Every request takes one uniform draw r in [0,1) and the rates are stacked in this order:
// Error500Rate, Error503Rate, RateLimitRate, Error504Rate, AcceptThenDropRate, LateStoreRate. So
// the rates are mutually exclusive and their sum must not exceed 1. Error504Rate,
// AcceptThenDropRate and LateStoreRate only apply to sending calls; on a read their slice of the
// draw simply means "no fault".
//
// ClockOffset is not drawn: it shifts the provider's clock for every request while it is set.
type Faults struct {
	LatencyMin time.Duration // added to every /api/v1 request, uniform in [LatencyMin, LatencyMax]
	LatencyMax time.Duration // 0 means "same as LatencyMin" (a fixed latency)

	Error500Rate  float64       // 500 errors/unexpected_error, before any state change
	Error503Rate  float64       // 503 errors/service_unavailable, before any state change
	RateLimitRate float64       // 429 errors/too_many_requests, before any state change
	RetryAfter    time.Duration // if > 0, 429 answers carry Retry-After in whole seconds (rounded up)

	Error504Rate       float64 // sending calls: the action is applied, then 504 errors/request_timeout
	AcceptThenDropRate float64 // sending calls: the action is applied, then the connection is closed with no response

	// LateStoreRate: sending calls whose action is applied only LateStoreDelay after the request
	// was read, whatever the client does meanwhile; the client never gets an answer (the
	// connection is held until the store, or until the client gives up, then closed). This is
	// a provider that completes a request the client already gave up on.
	LateStoreRate  float64
	LateStoreDelay time.Duration

	// ClockOffset shifts the provider's clock: the timestamps of the messages and chats it
	// stores from now on, its time-dependent rules (edit and delete windows) and its Date
	// header. Positive: the provider runs ahead of the real time.
	ClockOffset time.Duration
}

// Validate reports every problem in f at once.
func (f Faults) Validate() error {
	var errs []error
	if f.LatencyMin < 0 {
		errs = append(errs, fmt.Errorf("latency_min %s: must not be negative", f.LatencyMin))
	}
	if f.LatencyMax < 0 {
		errs = append(errs, fmt.Errorf("latency_max %s: must not be negative", f.LatencyMax))
	}
	if f.LatencyMax != 0 && f.LatencyMax < f.LatencyMin {
		errs = append(errs, fmt.Errorf("latency_max %s: must be 0 or at least latency_min %s", f.LatencyMax, f.LatencyMin))
	}
	if f.LateStoreDelay < 0 {
		errs = append(errs, fmt.Errorf("late_store_delay %s: must not be negative", f.LateStoreDelay))
	}
	if f.LateStoreRate > 0 && f.LateStoreDelay == 0 {
		errs = append(errs, errors.New("late_store_rate needs a late_store_delay above 0"))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retry_after %s: must not be negative", f.RetryAfter))
	}
	sum := 0.0
	for _, r := range f.rates() {
		// NaN fails both comparisons, so test for the valid range rather than the invalid one.
		if !(r.value >= 0 && r.value <= 1) {
			errs = append(errs, fmt.Errorf("%s %v: must be between 0 and 1", r.name, r.value))
			continue
		}
		sum += r.value
	}
	// A small tolerance so that rates such as 0.1+0.2+0.7 are not refused for float rounding.
	if sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("fault rates add up to %v: the sum must not exceed 1", sum))
	}
	return errors.Join(errs...)
}

type namedRate struct {
	name  string
	value float64
}

// rates lists the rates in draw order.
func (f Faults) rates() []namedRate {
	return []namedRate{
		{"error_500", f.Error500Rate},
		{"error_503", f.Error503Rate},
		{"rate_limit", f.RateLimitRate},
		{"error_504", f.Error504Rate},
		{"accept_then_drop", f.AcceptThenDropRate},
		{"late_store", f.LateStoreRate},
	}
}

// fault is the outcome of one draw.
type fault int

const (
	faultNone fault = iota
	fault500
	fault503
	fault429
	fault504
	faultDrop
	faultLate
)

// beforeState reports whether the fault answers without touching state.
func (k fault) beforeState() bool {
	return k == fault500 || k == fault503 || k == fault429
}

// pick maps one uniform draw to a fault. sending says whether the request is a sending call.
func (f Faults) pick(draw float64, sending bool) fault {
	edge := 0.0
	for i, k := range []fault{fault500, fault503, fault429, fault504, faultDrop, faultLate} {
		edge += f.rates()[i].value
		if draw < edge {
			if (k == fault504 || k == faultDrop || k == faultLate) && !sending {
				return faultNone
			}
			return k
		}
	}
	return faultNone
}

// retryAfterSeconds is the Retry-After header value, or "" for none.
func (f Faults) retryAfterSeconds() string {
	if f.RetryAfter <= 0 {
		return ""
	}
	return fmt.Sprint(int64(math.Ceil(f.RetryAfter.Seconds())))
}

// faultsJSON is the wire form used by the control endpoint: snake_case keys and durations as
// Go duration strings ("250ms"), which are easier to write by hand than nanoseconds.
type faultsJSON struct {
	LatencyMin         string  `json:"latency_min"`
	LatencyMax         string  `json:"latency_max"`
	Error500Rate       float64 `json:"error_500_rate"`
	Error503Rate       float64 `json:"error_503_rate"`
	RateLimitRate      float64 `json:"rate_limit_rate"`
	RetryAfter         string  `json:"retry_after"`
	Error504Rate       float64 `json:"error_504_rate"`
	AcceptThenDropRate float64 `json:"accept_then_drop_rate"`
	LateStoreRate      float64 `json:"late_store_rate"`
	LateStoreDelay     string  `json:"late_store_delay"`
	ClockOffset        string  `json:"clock_offset"`
}

// MarshalJSON encodes f with snake_case keys and duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		LatencyMin:         f.LatencyMin.String(),
		LatencyMax:         f.LatencyMax.String(),
		Error500Rate:       f.Error500Rate,
		Error503Rate:       f.Error503Rate,
		RateLimitRate:      f.RateLimitRate,
		RetryAfter:         f.RetryAfter.String(),
		Error504Rate:       f.Error504Rate,
		AcceptThenDropRate: f.AcceptThenDropRate,
		LateStoreRate:      f.LateStoreRate,
		LateStoreDelay:     f.LateStoreDelay.String(),
		ClockOffset:        f.ClockOffset.String(),
	})
}

// UnmarshalJSON decodes the form written by MarshalJSON. Unknown keys are errors, absent keys
// are zero, so a PUT of {"error_500_rate":0.1} means "only 500s".
func (f *Faults) UnmarshalJSON(data []byte) error {
	var in faultsJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return err
	}
	var out Faults
	var errs []error
	parse := func(name, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		*dst = d
	}
	parse("latency_min", in.LatencyMin, &out.LatencyMin)
	parse("latency_max", in.LatencyMax, &out.LatencyMax)
	parse("retry_after", in.RetryAfter, &out.RetryAfter)
	parse("late_store_delay", in.LateStoreDelay, &out.LateStoreDelay)
	parse("clock_offset", in.ClockOffset, &out.ClockOffset)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	out.Error500Rate = in.Error500Rate
	out.Error503Rate = in.Error503Rate
	out.RateLimitRate = in.RateLimitRate
	out.Error504Rate = in.Error504Rate
	out.AcceptThenDropRate = in.AcceptThenDropRate
	out.LateStoreRate = in.LateStoreRate
	*f = out
	return nil
}
