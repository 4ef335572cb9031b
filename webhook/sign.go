package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of every webhook request.
const (
	// HeaderEvent names what the body is: EventResult (a tasks.Result), or an
	// operational event of the results stream (a results.Event), such as
	// EventAccountBreakerOpen.
	HeaderEvent = "X-Sendworker-Event"
	// HeaderDelivery is the results stream entry id: the same on every
	// attempt of one result, different for every result. Receivers dedupe
	// on it.
	HeaderDelivery = "X-Sendworker-Delivery"
	// HeaderTimestamp is the Unix time (seconds) the attempt was signed.
	HeaderTimestamp = "X-Sendworker-Timestamp"
	// HeaderSignature is "sha256=" + hex(HMAC-SHA256(secret, signed)), where signed is
	// timestamp + "\n" + delivery + "\n" + event + "\n" + body: the headers above and the
	// body, so none of them can be changed or replayed under another delivery id.
	HeaderSignature = "X-Sendworker-Signature"

	// EventResult: a send reached a terminal state; the body is its result.
	EventResult = "send.result"
	// EventAccountBreakerOpen: an account turned unhealthy and its sends wait;
	// the body is a results.Event {"type", "account_id", "status", "at"}.
	EventAccountBreakerOpen = "account.breaker_open"
	// EventAccountBreakerClosed: the account is healthy again and its sends go
	// on; the body is a results.Event.
	EventAccountBreakerClosed = "account.breaker_closed"

	// DefaultTolerance is how far the signed timestamp may be from the
	// receiver's clock when Verify is given no tolerance.
	DefaultTolerance = 5 * time.Minute

	signaturePrefix = "sha256="
)

// Errors of Verify. Every rejection wraps ErrInvalid.
var (
	ErrInvalid          = errors.New("webhook: request not authenticated")
	ErrNoSecret         = fmt.Errorf("%w: no secret configured", ErrInvalid)
	ErrMissingHeader    = fmt.Errorf("%w: missing %s, %s, %s or %s header", ErrInvalid, HeaderTimestamp, HeaderDelivery, HeaderEvent, HeaderSignature)
	ErrBadTimestamp     = fmt.Errorf("%w: malformed %s header", ErrInvalid, HeaderTimestamp)
	ErrStaleTimestamp   = fmt.Errorf("%w: timestamp outside the tolerance (replayed or clock skew)", ErrInvalid)
	ErrBadSignature     = fmt.Errorf("%w: signature does not match", ErrInvalid)
	errMalformedSigning = fmt.Errorf("%w: malformed %s header", ErrInvalid, HeaderSignature)
)

// Sign returns the X-Sendworker-Signature value of one webhook request:
// "sha256=" followed by the hex HMAC-SHA256 under secret of
//
//	<timestamp>\n<delivery>\n<event>\n<body>
//
// timestamp in Unix seconds (X-Sendworker-Timestamp), delivery the
// X-Sendworker-Delivery id, event the X-Sendworker-Event type. Signing the
// timestamp lets a receiver refuse a request replayed later; signing the
// delivery id (the dedupe key) and the event type means a captured request
// cannot be replayed under a fresh delivery id or relabelled. Header values
// hold no newline, so the fields cannot be shifted into one another.
func Sign(secret []byte, timestamp int64, delivery, event string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(mac(secret, timestamp, delivery, event, body))
}

func mac(secret []byte, timestamp int64, delivery, event string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(strconv.AppendInt(nil, timestamp, 10))
	h.Write([]byte{'\n'})
	h.Write([]byte(delivery))
	h.Write([]byte{'\n'})
	h.Write([]byte(event))
	h.Write([]byte{'\n'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify is for receivers: it checks that a request carrying header and body
// was signed with secret, at a timestamp no further than tolerance from now
// (tolerance <= 0 means DefaultTolerance). The comparison is constant-time.
// A nil error means authentic; every rejection wraps ErrInvalid. Pass the raw
// body bytes as received, before any JSON decoding.
//
// Verify does not stop a replay within the tolerance: dedupe on
// X-Sendworker-Delivery for that (it is signed, so a replay keeps its id).
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	tsRaw, sigRaw := header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	delivery, event := header.Get(HeaderDelivery), header.Get(HeaderEvent)
	if tsRaw == "" || sigRaw == "" || delivery == "" || event == "" {
		return ErrMissingHeader
	}
	if strings.ContainsAny(delivery+event, "\r\n") {
		return ErrBadSignature
	}
	ts, err := strconv.ParseInt(tsRaw, 10, 64)
	// Only the canonical decimal form: the signed bytes are exactly the header.
	if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != tsRaw {
		return ErrBadTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in seconds so that absurd timestamps cannot overflow a
	// Duration; both are non-negative in practice, and a wrapped difference
	// comes out huge either way.
	skew := now.Unix() - ts
	if skew < 0 {
		skew = -skew
	}
	if skew < 0 || skew > int64(tolerance/time.Second) {
		return ErrStaleTimestamp
	}
	hexSig, ok := strings.CutPrefix(sigRaw, signaturePrefix)
	if !ok {
		return errMalformedSigning
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return errMalformedSigning
	}
	if !hmac.Equal(got, mac(secret, ts, delivery, event, body)) {
		return ErrBadSignature
	}
	return nil
}
