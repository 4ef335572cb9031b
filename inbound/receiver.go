package inbound

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// DefaultHeader is the request header carrying the shared secret, set as a custom header when
// the webhook is created with the provider.
const DefaultHeader = "X-Sendworker-Inbound-Secret"

// DefaultMaxBodyBytes bounds an event body.
const DefaultMaxBodyBytes = 256 << 10

// streamMaxLen caps the accepted-events stream (processed entries are deleted at once; this
// only bounds a backlog while no processor runs).
const streamMaxLen = 1_000_000

// Fields of an accepted-events stream entry.
const (
	fieldKind     = "kind"
	fieldKey      = "key"
	fieldAccount  = "account_id"
	fieldBody     = "body"
	fieldReceived = "received_ms"
)

// ReceiverOptions configures a Receiver.
type ReceiverOptions struct {
	// Secrets are the accepted values of Header: the current one and, during a rotation, the
	// previous one. Empty strings are ignored; none accepted means every request is refused.
	Secrets      []string
	Header       string // default DefaultHeader
	MaxBodyBytes int64  // default DefaultMaxBodyBytes
	Stream       string // the accepted-events stream (required)
	Metrics      *Metrics
	Logger       *zap.Logger
	Now          func() time.Time
}

// Receiver is the HTTP endpoint the provider posts events to. It authenticates, decodes and
// validates an event, appends it to the accepted-events stream and answers 200: the provider
// wants an answer within 30 s, so nothing else happens before the answer.
type Receiver struct {
	rdb     redis.UniversalClient
	opts    ReceiverOptions
	secrets [][sha256.Size]byte
}

// NewReceiver returns the receiver writing to rdb.
func NewReceiver(rdb redis.UniversalClient, opts ReceiverOptions) *Receiver {
	if opts.Header == "" {
		opts.Header = DefaultHeader
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Receiver{rdb: rdb, opts: opts}
	for _, s := range opts.Secrets {
		if s != "" {
			r.secrets = append(r.secrets, sha256.Sum256([]byte(s)))
		}
	}
	return r
}

// authorized compares the header with every accepted secret in constant time (hashes, so the
// length of a secret does not leak either), without stopping at the first match.
func (rc *Receiver) authorized(got string) bool {
	if got == "" {
		return false
	}
	h := sha256.Sum256([]byte(got))
	ok := 0
	for _, s := range rc.secrets {
		ok |= subtle.ConstantTimeCompare(h[:], s[:])
	}
	return ok == 1
}

type answer struct {
	Accepted bool   `json:"accepted,omitempty"`
	ID       string `json:"id,omitempty"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

func (rc *Receiver) fail(w http.ResponseWriter, status int, kind, code, msg string) {
	rc.opts.Metrics.count(kind, code)
	a := answer{Error: &struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, msg}}
	writeJSON(w, status, a)
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := rc.opts.Logger.With(zap.String("remote", r.RemoteAddr))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rc.fail(w, http.StatusMethodNotAllowed, "unknown", "method_not_allowed", "use POST")
		return
	}
	if !rc.authorized(r.Header.Get(rc.opts.Header)) {
		log.Warn("inbound event refused: missing or wrong shared secret")
		rc.fail(w, http.StatusUnauthorized, "unknown", "unauthorized", "missing or wrong "+rc.opts.Header)
		return
	}
	if r.ContentLength > rc.opts.MaxBodyBytes {
		log.Warn("inbound event refused: body too large", zap.Int64("bytes", r.ContentLength))
		rc.fail(w, http.StatusRequestEntityTooLarge, "unknown", "body_too_large", "the body exceeds "+strconv.FormatInt(rc.opts.MaxBodyBytes, 10)+" bytes")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rc.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("inbound event refused: body too large")
			rc.fail(w, http.StatusRequestEntityTooLarge, "unknown", "body_too_large", "the body exceeds "+strconv.FormatInt(rc.opts.MaxBodyBytes, 10)+" bytes")
			return
		}
		rc.fail(w, http.StatusBadRequest, "unknown", "unreadable", "the body could not be read")
		return
	}
	ev, err := Decode(body)
	if err != nil {
		code, status := "invalid_event", http.StatusBadRequest
		if errors.Is(err, ErrUnknownKind) {
			code, status = "unknown_event", http.StatusUnprocessableEntity
		}
		// err never quotes the message text (Decode's contract).
		log.Warn("inbound event refused", zap.String("code", code), zap.Error(err))
		rc.fail(w, status, "unknown", code, err.Error())
		return
	}
	id, err := rc.rdb.XAdd(r.Context(), &redis.XAddArgs{
		Stream: rc.opts.Stream, MaxLen: streamMaxLen, Approx: true,
		Values: []any{fieldKind, string(ev.Kind), fieldKey, ev.Key(), fieldAccount, ev.AccountID,
			fieldBody, body, fieldReceived, rc.opts.Now().UnixMilli()},
	}).Result()
	if err != nil {
		log.Error("inbound event not stored: the provider will retry", zap.String("type", string(ev.Kind)), zap.Error(err))
		rc.fail(w, http.StatusServiceUnavailable, string(ev.Kind), "unavailable", "the event could not be stored; retry")
		return
	}
	rc.opts.Metrics.count(string(ev.Kind), "accepted")
	log.Debug("inbound event accepted", zap.String("type", string(ev.Kind)), zap.String("account_id", ev.AccountID), zap.String("entry", id))
	writeJSON(w, http.StatusOK, answer{Accepted: true, ID: id})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
