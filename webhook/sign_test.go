package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/sendworker/sendworker/webhook"
)

const (
	testDelivery = "1700000000000-0"
	testEvent    = webhook.EventResult
)

func signed(secret []byte, ts int64, body []byte) http.Header {
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(webhook.HeaderDelivery, testDelivery)
	h.Set(webhook.HeaderEvent, testEvent)
	h.Set(webhook.HeaderSignature, webhook.Sign(secret, ts, testDelivery, testEvent, body))
	return h
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"send_id":"s1","state":"sent"}`)
	good := signed(secret, now.Unix(), body)
	with := func(name, value string) http.Header {
		h := good.Clone()
		h.Set(name, value)
		return h
	}
	tests := []struct {
		name   string
		secret []byte
		header http.Header
		body   []byte
		want   error // nil: accepted
	}{
		{"valid", secret, good, body, nil},
		{"valid, 4 minutes old", secret, signed(secret, now.Unix()-240, body), body, nil},
		{"wrong secret", []byte("another-secret-of-16+"), good, body, webhook.ErrBadSignature},
		{"tampered body", secret, good, []byte(`{"send_id":"s1","state":"failed"}`), webhook.ErrBadSignature},
		{"stale", secret, signed(secret, now.Unix()-301, body), body, webhook.ErrStaleTimestamp},
		{"from the future", secret, signed(secret, now.Unix()+301, body), body, webhook.ErrStaleTimestamp},
		{"timestamp changed", secret, with(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix()-1, 10)), body, webhook.ErrBadSignature},
		{"timestamp not canonical", secret, with(webhook.HeaderTimestamp, "+"+strconv.FormatInt(now.Unix(), 10)), body, webhook.ErrBadTimestamp},
		{"timestamp not a number", secret, with(webhook.HeaderTimestamp, "yesterday"), body, webhook.ErrBadTimestamp},
		{"no timestamp", secret, with(webhook.HeaderTimestamp, ""), body, webhook.ErrMissingHeader},
		{"no signature", secret, with(webhook.HeaderSignature, ""), body, webhook.ErrMissingHeader},
		{"no prefix", secret, with(webhook.HeaderSignature, good.Get(webhook.HeaderSignature)[len("sha256="):]), body, webhook.ErrInvalid},
		{"short signature", secret, with(webhook.HeaderSignature, "sha256=abcd"), body, webhook.ErrInvalid},
		{"not hex", secret, with(webhook.HeaderSignature, "sha256="+string(make([]byte, 64))), body, webhook.ErrInvalid},
		{"no secret", nil, good, body, webhook.ErrNoSecret},
		// A captured request replayed under a fresh delivery id (to pass the receiver's
		// dedupe) or relabelled as another event does not verify.
		{"replayed with a fresh delivery id", secret, with(webhook.HeaderDelivery, "1700000000001-0"), body, webhook.ErrBadSignature},
		{"event type changed", secret, with(webhook.HeaderEvent, webhook.EventAccountBreakerOpen), body, webhook.ErrBadSignature},
		{"no delivery id", secret, with(webhook.HeaderDelivery, ""), body, webhook.ErrMissingHeader},
		{"no event type", secret, with(webhook.HeaderEvent, ""), body, webhook.ErrMissingHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify(tt.secret, tt.header, tt.body, now, 5*time.Minute)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, webhook.ErrInvalid) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyDefaultTolerance(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte("{}")
	if err := webhook.Verify(secret, signed(secret, now.Unix()-60, body), body, now, 0); err != nil {
		t.Errorf("a minute old, default tolerance: %v", err)
	}
	if err := webhook.Verify(secret, signed(secret, now.Unix()-3600, body), body, now, 0); !errors.Is(err, webhook.ErrStaleTimestamp) {
		t.Errorf("an hour old, default tolerance: %v", err)
	}
}

func TestSignKnownAnswer(t *testing.T) {
	// printf '1\n1700000000000-0\nsend.result\n{}' | openssl dgst -sha256 -hmac key
	const want = "sha256=a5061e21b8b26f8ca3f31cec9f11b68fa0bee113b667d8ec1c2068297fbedb4f"
	if got := webhook.Sign([]byte("key"), 1, testDelivery, testEvent, []byte("{}")); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

// FuzzVerify: Verify never panics, never accepts a signature other than the
// one Sign makes for the same secret, timestamp and body, and always accepts
// that one when the timestamp is fresh.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), []byte(`{"send_id":"s"}`), "1700000000", "sha256=00", int64(1_700_000_000))
	f.Add([]byte("k"), []byte(""), "-1", "", int64(0))
	f.Add([]byte("0123456789abcdef"), []byte("x"), "9223372036854775807", "sha256=zz", int64(-9_000_000_000))
	f.Fuzz(func(t *testing.T, key, body []byte, tsHeader, sigHeader string, now int64) {
		h := http.Header{}
		h.Set(webhook.HeaderTimestamp, tsHeader)
		h.Set(webhook.HeaderDelivery, testDelivery)
		h.Set(webhook.HeaderEvent, testEvent)
		h.Set(webhook.HeaderSignature, sigHeader)
		clock := time.Unix(now, 0)
		err := webhook.Verify(key, h, body, clock, time.Minute)
		if err == nil {
			ts, perr := strconv.ParseInt(h.Get(webhook.HeaderTimestamp), 10, 64)
			if perr != nil || h.Get(webhook.HeaderSignature) != webhook.Sign(key, ts, testDelivery, testEvent, body) {
				t.Fatalf("accepted a signature Sign did not make: ts %q sig %q", tsHeader, sigHeader)
			}
		} else if !errors.Is(err, webhook.ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
		// The genuine signature is accepted when fresh, whatever the body.
		if len(key) > 0 && now >= 0 {
			if err := webhook.Verify(key, signed(key, now, body), body, clock, time.Minute); err != nil {
				t.Fatalf("genuine signature rejected: %v", err)
			}
		}
	})
}
