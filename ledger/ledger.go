// Package ledger keeps the send records of sendworker in Redis: the single
// source of truth of every send's state, its approval, its attempts and its
// result. Every change of state is one atomic Lua script (never
// check-then-act across round trips), so two replicas, a crash between two
// steps, or a task that asynq runs twice can never produce two deliveries or
// a lost send.
//
// The ledger never talks to the provider and never decides policy (who may
// approve, what is warm): it enforces the state machine of tasks.State and
// records decisions with who and when.
//
// # Keys and Redis Cluster
//
// Every key is built in keys.go and starts with the hash tag {prefix}, so
// all of them live in one cluster slot and a script may touch any of them.
// Every script is in scripts.go. Scripts discover some keys only from the
// record (its account, its chat), so keys.go also holds the Lua twins of the
// Go key builders; a test checks that both spell every key the same way.
//
// # The results stream
//
// A terminal transition and its results entry are one script: the stream is
// XADDed inside the script that sets the final state, so a crash can never
// separate them. The stream name is configurable and, by default
// ("sendworker:results"), not hash-tagged. That is fine on a single server or
// behind Sentinel. On Redis Cluster the stream must be in the ledger's slot:
// name it with the same hash tag, e.g. "{sendworker}:results". Validate
// reports a cluster client with an untagged stream; a misconfigured ledger
// that skips Validate still cannot split a transition from its result, because
// Redis refuses the whole script (CROSSSLOT) before running any of it.
//
// The result JSON of the stream ("result" field) is assembled inside the
// script from the record's fields (strings escaped by cjson, the stored
// metadata copied verbatim), because several terminal transitions (expiry,
// opt-out at BeginAttempt) pick their records inside Redis where Go cannot
// prepare it. It decodes to the same tasks.Result as Record.Result.
//
// # The watchdog
//
// After release a send moves only when its asynq task runs. The scripts keep
// {prefix}:watch, the approved, waiting and sending sends (not held) scored by
// when they are due to make progress, and RecoverStuck re-schedules (new generation, so a late old task
// is stale) those on which nothing happened for a grace: a lost task never
// loses a send. RecoverExpiredLeases does the same, within seconds, for the
// sending sends whose attempt lease has expired ({prefix}:leases). See
// watchdog.go.
//
// # Bounded growth
//
// Terminal records and their history expire after Retention. Their index
// entries are removed by Trim (called periodically), which pops the
// {prefix}:finished zset (scored by finish time); List also drops entries whose
// record is gone. History keeps the last historyMax events. The audit and
// results streams are capped (MAXLEN ~).
package ledger

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/internal/luafn"
	"github.com/sendworker/sendworker/tasks"
)

// Options configures a Ledger.
type Options struct {
	// Prefix starts every key; default "sendworker". Keys carry a hash tag
	// ({prefix}) so all of them live in one Redis Cluster slot, which the
	// multi-key scripts need.
	Prefix string
	// ResultsStream receives one entry per terminal transition; default
	// "sendworker:results".
	ResultsStream string
	// ResultsMaxLen trims the stream approximately; default 1,000,000.
	ResultsMaxLen int64
	// Retention is how long a terminal record is kept; default 30 days.
	Retention time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// LeaseClock is the clock of attempt leases; default LeaseClockRedis.
	LeaseClock LeaseClock
	// WaitReplicas > 0: BeginAttempt waits (Redis WAIT, in the same round
	// trip as its script) until that many replicas hold the attempt's start,
	// for up to WaitTimeout (default 500ms), and answers ErrNotReplicated
	// when fewer did: a failover could lose that start and let the send go
	// out a second time, so the caller must not make the call.
	WaitReplicas int
	WaitTimeout  time.Duration
}

// LeaseClock says which clock sets and judges attempt leases.
type LeaseClock int

const (
	// LeaseClockRedis: Redis's own clock (TIME, in the scripts). Every replica
	// then judges a lease with the same clock, however far its own clock
	// drifts: a replica running ahead can never take over an attempt whose
	// call may still be in flight. The daemon's setting.
	LeaseClockRedis LeaseClock = iota
	// LeaseClockCaller: Now, the caller's clock, like every other time of the
	// ledger. For tests that move time with an injected Now.
	LeaseClockCaller
)

// Errors returned by the transitions. Use errors.Is; a *StateError also
// carries the state the send is in.
var (
	ErrNotFound       = errors.New("send not found")
	ErrConflict       = errors.New("send_id already used for other content")
	ErrDigestMismatch = errors.New("digest is not the send's current digest")
	ErrSelfApproval   = errors.New("the requester cannot approve their own send")
	ErrNotPending     = errors.New("send is not pending approval")
	ErrFinal          = errors.New("send already reached a final state")
	ErrTooLate        = errors.New("send is being sent and can no longer be stopped")
	// ErrStopPending is a Reject or Cancel of a send in state sending: it
	// wraps ErrTooLate (the send could not be stopped now), but the request
	// is recorded on the send: it takes effect (the send ends rejected or
	// canceled) unless that attempt turns out to have delivered the message.
	// ErrNotReplicated: BeginAttempt started a new attempt (BeginOK, the
	// attempt token is the caller's), or Approve approved a send, but fewer
	// than Options.WaitReplicas replicas acknowledged it in time. After
	// BeginAttempt the caller must not send: it ends the attempt (Defer)
	// instead; after Approve the approval stands on the master but must not
	// be reported as done.
	ErrNotReplicated = errors.New("the write reached too few Redis replicas")
	ErrStopPending   = fmt.Errorf("%w; the request is recorded and takes effect unless the message turns out delivered", ErrTooLate)
	ErrStaleAttempt  = errors.New("attempt is no longer the send's current attempt")
	// ErrMessageClaimed is an End(sent) of a new message (chats_messages_send,
	// chats_create) whose provider message id another send already owns:
	// nothing changed, the send is still in its state. The id is not this
	// send's message.
	ErrMessageClaimed = errors.New("message id is already attributed to another send")
	// ErrBadQuery is a List query out of range (unknown state, limit).
	ErrBadQuery = errors.New("invalid list query")
	// ErrBadCursor is a List cursor that this ledger did not produce.
	ErrBadCursor = fmt.Errorf("%w: malformed cursor", ErrBadQuery)
)

// StateError is a transition refused because of the send's current state.
type StateError struct {
	Err     error // one of the sentinel errors above
	SendID  string
	Current tasks.State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("send %s: %v (state %s)", e.SendID, e.Err, e.Current)
}
func (e *StateError) Unwrap() error { return e.Err }

// ConflictError is returned by Create when send_id exists with another digest.
type ConflictError struct {
	SendID         string
	ExistingDigest string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("send %s: %v (existing digest %s)", e.SendID, ErrConflict, e.ExistingDigest)
}
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Ledger is the Redis-backed store of send records.
type Ledger struct {
	rdb  redis.UniversalClient
	lua  *luafn.Runner // runs the scripts: FCALL, or EVALSHA where Functions are missing
	opts Options
	keys Keys
}

// Defaults of Options.
const (
	DefaultPrefix        = "sendworker"
	DefaultResultsStream = "sendworker:results"
	DefaultResultsMaxLen = 1_000_000
	DefaultRetention     = 30 * 24 * time.Hour

	auditMaxLen = 1_000_000 // approximate cap of the audit stream
	historyMax  = 200       // events kept per send (the newest)
	// claimMinTTL is the least a message id's claim ({p}:msg:<id>) is kept, whatever the
	// retention: a reconciliation looks at the chat's messages since its attempt's watermark,
	// so a claim must outlive the longest a send can stay sending (lease, late completion, an
	// outage of the workers); a day covers that with room to spare.
	claimMinTTL = 24 * time.Hour
)

// New returns a Ledger over rdb, with Options defaults filled in. Call
// Validate once at start to catch a configuration Redis Cluster would refuse.
func New(rdb redis.UniversalClient, opts Options) *Ledger {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.ResultsStream == "" {
		opts.ResultsStream = DefaultResultsStream
	}
	if opts.ResultsMaxLen <= 0 {
		opts.ResultsMaxLen = DefaultResultsMaxLen
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 500 * time.Millisecond
	}
	// WAIT takes whole milliseconds, and 0 would block for ever.
	opts.WaitTimeout = max(opts.WaitTimeout, time.Millisecond)
	return &Ledger{rdb: rdb, lua: luafn.NewRunner(rdb), opts: opts, keys: Keys{tag: "{" + opts.Prefix + "}:"}}
}

// Validate reports options that cannot work: a prefix with braces (it would
// break the hash tag), or, on Redis Cluster, a results stream outside the
// ledger's hash slot (it must carry the tag "{prefix}").
func (l *Ledger) Validate() error {
	if strings.ContainsAny(l.opts.Prefix, "{}") {
		return fmt.Errorf("ledger: prefix %q must not contain braces", l.opts.Prefix)
	}
	if _, cluster := l.rdb.(*redis.ClusterClient); cluster && hashTag(l.opts.ResultsStream) != l.opts.Prefix {
		return fmt.Errorf("ledger: on Redis Cluster the results stream %q must carry the hash tag {%s} (e.g. %q) so a terminal transition and its result are written by one script",
			l.opts.ResultsStream, l.opts.Prefix, "{"+l.opts.Prefix+"}:results")
	}
	return nil
}

// hashTag returns the part of key Redis Cluster hashes: the text between the
// first "{" and the next "}", when not empty; otherwise the whole key.
func hashTag(key string) string {
	start := strings.IndexByte(key, '{')
	if start < 0 {
		return key
	}
	end := strings.IndexByte(key[start+1:], '}')
	if end <= 0 {
		return key
	}
	return key[start+1 : start+1+end]
}

// Keys returns the key names of l (for tests, benchmarks and ops tools).
func (l *Ledger) Keys() Keys { return l.keys }

// ResultsStream returns the name of the results stream l appends to.
func (l *Ledger) ResultsStream() string { return l.opts.ResultsStream }

// nowMs is the current time of the injected clock in Unix milliseconds: the
// only time the scripts know.
func (l *Ledger) nowMs() int64 { return l.opts.Now().UnixMilli() }

// msTime turns stored milliseconds back into a UTC time; 0 is the zero time.
func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// isoMs formats milliseconds as RFC 3339 with the precision they have.
func isoMs(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }
