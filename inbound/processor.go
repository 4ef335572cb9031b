package inbound

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/internal/service"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// DefaultGroup is the consumer group of the accepted-events stream: every replica is a consumer
// of it, so each event is processed by one of them.
const DefaultGroup = "sendworker-inbound"

// logMaxLen caps the processed-events log (what `sendctl events tail` shows).
const logMaxLen = 100_000

// Breakers opens and closes account breakers (worker.AccountBreakers).
type Breakers interface {
	Open(ctx context.Context, account, status string) error
	Close(ctx context.Context, account, status string) error
}

// ProcessorOptions configures a Processor.
type ProcessorOptions struct {
	Stream    string // the accepted-events stream (required)
	LogStream string // the processed-events log (required)
	Group     string // default DefaultGroup
	Consumer  string // default host-pid-random: unique per process
	// MinIdle: entries another consumer read and left unacknowledged for this long (it died)
	// are claimed; default 30s.
	MinIdle time.Duration
	Block   time.Duration // how long one read waits for new entries; default 1s
	Batch   int           // entries per read; default 50
	// Keywords: the opt-out keywords (NewKeywords(nil) when nil).
	Keywords *Keywords
	Breakers Breakers
	// SelfIDs returns the account's own provider ids (to tell its own messages, which the
	// provider also reports, from the contact's) when the event does not say; nil: unknown.
	SelfIDs func(ctx context.Context, accountID string) ([]string, error)
	Metrics *Metrics
	Logger  *zap.Logger
	// Now: the clock of the log's timestamps, of the claim cadence (every MinIdle/2) and of the
	// cache of an account's own ids; default time.Now.
	Now func() time.Time
}

// Processor consumes the accepted-events stream and acts on each event once. Start runs it in
// the background, Stop ends it.
type Processor struct {
	rdb  redis.UniversalClient
	l    *ledger.Ledger
	opts ProcessorOptions

	pendingFrom string // own pending entries still to re-read after a restart ("" when done)
	claimFrom   string

	failures map[string]int // consecutive failures of an entry (the loop's goroutine only)

	mu   sync.Mutex
	self map[string]selfEntry

	runner service.Loop // the run of Start
}

type selfEntry struct {
	ids []string
	at  time.Time
}

// NewProcessor returns a processor acting through l.
func NewProcessor(rdb redis.UniversalClient, l *ledger.Ledger, opts ProcessorOptions) *Processor {
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.Consumer == "" {
		host, _ := os.Hostname()
		opts.Consumer = fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
	}
	if opts.MinIdle <= 0 {
		opts.MinIdle = 30 * time.Second
	}
	if opts.Block <= 0 {
		opts.Block = time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 50
	}
	if opts.Keywords == nil {
		opts.Keywords = NewKeywords(nil)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Processor{rdb: rdb, l: l, opts: opts, pendingFrom: "0", claimFrom: "0-0",
		failures: map[string]int{}, self: map[string]selfEntry{}}
}

// EnsureGroup creates the consumer group (from the start of the stream: events accepted before
// any processor ran are processed too).
func (p *Processor) EnsureGroup(ctx context.Context) error {
	err := p.rdb.XGroupCreateMkStream(ctx, p.opts.Stream, p.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("inbound: create group: %w", err)
	}
	return nil
}

// ErrStarted is returned by Start on a Processor whose loop already runs (or has not ended yet
// after a Stop that gave up waiting).
var ErrStarted = errors.New("inbound: processor already started")

// Start processes events in the background until Stop or until ctx ends. It creates the
// consumer group first (in the background too): a failure there ends the loop, is logged, and is
// what Stop returns; Redis errors later are logged and retried with backoff.
func (p *Processor) Start(ctx context.Context) error {
	err := p.runner.Start(ctx, func(ctx context.Context) error {
		err := p.loop(ctx)
		if err != nil {
			p.opts.Logger.Error("inbound events: processor stopped", zap.Error(err))
		}
		return err
	})
	if errors.Is(err, service.ErrRunning) {
		return ErrStarted
	}
	return err
}

// Stop ends the loop of Start and waits for the event in progress, or until ctx ends (then it
// returns ctx's error and Start refuses until the loop has ended). It returns the error the loop
// ended with, if any. Stopping a Processor that is not running does nothing; it may be started
// again afterwards.
func (p *Processor) Stop(ctx context.Context) error { return p.runner.Stop(ctx) }

// loop processes events until ctx ends. It claims entries idle in other consumers every
// MinIdle/2 of the Now clock; its waits (a read's Block, the backoff after an error) are real
// time.
func (p *Processor) loop(ctx context.Context) error {
	if err := p.EnsureGroup(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the group was made: not a failure
		}
		return err
	}
	lastClaim := time.Time{}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		now := p.opts.Now()
		claim := now.Sub(lastClaim) >= p.opts.MinIdle/2
		if claim {
			lastClaim = now
		}
		_, err := p.step(ctx, claim, p.opts.Block)
		if err == nil {
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			break
		}
		backoff = min(max(backoff*2, 100*time.Millisecond), 5*time.Second)
		p.opts.Logger.Warn("inbound events: processing failed; retrying", zap.Duration("in", backoff), zap.Error(err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	return nil
}

// ProcessOnce does one round without waiting: this consumer's pending entries, then entries
// idle for MinIdle in other consumers, then new ones. It returns how many it processed. It
// shares the loop's position in the stream: call it only while the Processor is not started.
func (p *Processor) ProcessOnce(ctx context.Context) (int, error) {
	if err := p.EnsureGroup(ctx); err != nil {
		return 0, err
	}
	return p.step(ctx, true, -1)
}

func (p *Processor) step(ctx context.Context, claim bool, block time.Duration) (int, error) {
	var msgs []redis.XMessage
	if p.pendingFrom != "" {
		// After a restart, the entries this consumer read and never acknowledged come first.
		got, err := p.read(ctx, p.pendingFrom, -1)
		if err != nil {
			return 0, err
		}
		if len(got) == 0 {
			p.pendingFrom = ""
		} else {
			p.pendingFrom = got[len(got)-1].ID
		}
		msgs = got
	}
	if len(msgs) == 0 && claim {
		got, next, err := p.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: p.opts.Stream, Group: p.opts.Group,
			Consumer: p.opts.Consumer, MinIdle: p.opts.MinIdle, Start: p.claimFrom, Count: int64(p.opts.Batch)}).Result()
		if err != nil {
			return 0, fmt.Errorf("inbound: claim: %w", err)
		}
		p.claimFrom = next
		msgs = got
	}
	if len(msgs) == 0 {
		got, err := p.read(ctx, ">", block)
		if err != nil {
			return 0, err
		}
		msgs = got
	}
	n := 0
	for _, m := range msgs {
		if err := p.handleEntry(ctx, m); err != nil {
			if p.failures[m.ID]++; p.failures[m.ID] < maxEntryAttempts || ctx.Err() != nil {
				// Left pending: this consumer re-reads it on its next round.
				p.pendingFrom = "0"
				return n, err
			}
			// An event that fails every time must not hold up the ones behind it for ever.
			delete(p.failures, m.ID)
			p.opts.Logger.Error("inbound event dropped after repeated failures", zap.String("entry", m.ID),
				zap.Int("attempts", maxEntryAttempts), zap.Error(err))
			p.opts.Metrics.count(entryKind(m), "failed")
			if err := p.finishEntry(ctx, m, nil, entryKind(m), Result{Outcome: "failed", Detail: err.Error()}); err != nil {
				return n, err
			}
		}
		delete(p.failures, m.ID)
		n++
	}
	return n, nil
}

// maxEntryAttempts: an entry whose processing failed this many times in a row is dropped
// (logged, counted as failed). Failures are Redis errors: a Redis outage stops every entry
// alike, and its backoff keeps the attempts far apart.
const maxEntryAttempts = 10

func entryKind(m redis.XMessage) string {
	if k, ok := m.Values[fieldKind].(string); ok && k != "" {
		return k
	}
	return "unknown"
}

func (p *Processor) read(ctx context.Context, from string, block time.Duration) ([]redis.XMessage, error) {
	res, err := p.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: p.opts.Group, Consumer: p.opts.Consumer,
		Streams: []string{p.opts.Stream, from}, Count: int64(p.opts.Batch), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			// The stream was deleted: make the group again and go on.
			return nil, p.EnsureGroup(ctx)
		}
		return nil, fmt.Errorf("inbound: read: %w", err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// Result is what processing one event did (the processed-events log entry).
type Result struct {
	Outcome string
	Detail  string
	SendIDs []string
}

// handleEntry processes one stream entry, then acknowledges and deletes it (the body holds
// message text: it is not kept once processed) and logs the outcome.
func (p *Processor) handleEntry(ctx context.Context, m redis.XMessage) error {
	body, _ := m.Values[fieldBody].(string)
	kind := "unknown"
	var res Result
	var ev *Event
	if m.Values == nil {
		res = Result{Outcome: "invalid", Detail: "entry deleted before it was processed"}
	} else if e, err := Decode([]byte(body)); err != nil {
		res = Result{Outcome: "invalid", Detail: err.Error()}
	} else {
		ev, kind = e, string(e.Kind)
		r, err := p.Handle(ctx, e)
		if err != nil {
			p.opts.Metrics.count(kind, "error")
			return err
		}
		res = r
	}
	p.opts.Metrics.count(kind, res.Outcome)
	log := p.opts.Logger.With(zap.String("entry", m.ID), zap.String("type", kind), zap.String("outcome", res.Outcome))
	if ev != nil {
		log = log.With(zap.String("account_id", ev.AccountID), zap.String("chat_id", ev.ChatID), zap.String("message_id", ev.MessageID))
	}
	if len(res.SendIDs) > 0 {
		log.Info("inbound event processed", zap.Strings("send_ids", res.SendIDs), zap.String("detail", res.Detail))
	} else {
		log.Debug("inbound event processed", zap.String("detail", res.Detail))
	}
	return p.finishEntry(ctx, m, ev, kind, res)
}

// finishEntry logs the outcome to the log stream, acknowledges and deletes the entry, in one
// MULTI.
func (p *Processor) finishEntry(ctx context.Context, m redis.XMessage, ev *Event, kind string, res Result) error {
	values := []any{"entry", m.ID, "type", kind, "outcome", res.Outcome, "detail", res.Detail,
		"send_ids", strings.Join(res.SendIDs, ","), "at", p.opts.Now().UTC().Format(time.RFC3339Nano)}
	if ev != nil {
		values = append(values, "account_id", ev.AccountID, "chat_id", ev.ChatID, "message_id", ev.MessageID, "status", ev.Status)
	}
	if r, ok := m.Values[fieldReceived].(string); ok {
		values = append(values, "received_ms", r)
	}
	pipe := p.rdb.TxPipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: p.opts.LogStream, MaxLen: logMaxLen, Approx: true, Values: values})
	pipe.XAck(ctx, p.opts.Stream, p.opts.Group, m.ID)
	pipe.XDel(ctx, p.opts.Stream, m.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("inbound: ack: %w", err)
	}
	return nil
}

// Handle acts on one decoded event. Every effect is idempotent or deduped by the event's key
// inside the ledger script that makes it, so an event processed twice (a crash between the
// effect and the acknowledgement) changes nothing the second time.
func (p *Processor) Handle(ctx context.Context, ev *Event) (Result, error) {
	switch ev.Kind {
	case KindAccountStatus:
		return p.accountStatus(ctx, ev)
	case KindMessage:
		return p.message(ctx, ev)
	case KindReaction, KindRead, KindDelivered, KindEdited, KindDeleted:
		kind := strings.TrimPrefix(string(ev.Kind), "message_")
		out, err := p.l.RecordReceipt(ctx, ledger.Receipt{Key: ev.Key(), MessageID: ev.MessageID, Kind: kind,
			Value: ev.Reaction, At: ev.At})
		switch {
		case err != nil:
			return Result{}, err
		case out.Duplicate:
			return Result{Outcome: "duplicate"}, nil
		case !out.Matched:
			return Result{Outcome: "no_match", Detail: "not a message sendworker sent"}, nil
		}
		return Result{Outcome: "receipt", SendIDs: out.SendIDs}, nil
	}
	return Result{Outcome: "ignored"}, nil
}

// Account statuses: these close the breaker, those open it, any other (CONNECTING, a passing
// state) changes nothing.
var (
	healthyStatuses   = []string{"OK", "CONNECTED", "RECONNECTED", "SYNC_SUCCESS", "CREATION_SUCCESS"}
	unhealthyStatuses = []string{"CREDENTIALS", "ERROR", "STOPPED", "PERMISSIONS", "DELETED"}
)

func (p *Processor) accountStatus(ctx context.Context, ev *Event) (Result, error) {
	if p.opts.Breakers == nil {
		return Result{Outcome: "status_ignored", Detail: "no breakers"}, nil
	}
	switch {
	case slices.Contains(unhealthyStatuses, ev.Status):
		if err := p.opts.Breakers.Open(ctx, ev.AccountID, ev.Status); err != nil {
			return Result{}, err
		}
		return Result{Outcome: "breaker_open", Detail: ev.Status}, nil
	case slices.Contains(healthyStatuses, ev.Status):
		if err := p.opts.Breakers.Close(ctx, ev.AccountID, ev.Status); err != nil {
			return Result{}, err
		}
		return Result{Outcome: "breaker_closed", Detail: ev.Status}, nil
	}
	return Result{Outcome: "status_ignored", Detail: ev.Status}, nil
}

func (p *Processor) message(ctx context.Context, ev *Event) (Result, error) {
	own, known, err := p.fromAccount(ctx, ev)
	if err != nil {
		return Result{}, err
	}
	if !known {
		return Result{Outcome: "sender_unknown", Detail: "cannot tell the contact from the account"}, nil
	}
	if own {
		return Result{Outcome: "own_message"}, nil
	}
	contacts := ContactIDs(ev)
	if sender := tasks.NormalizeID(ev.Sender.ProviderID); tasks.FormOf(sender) != tasks.FormOther {
		linked, err := p.l.LinkedID(ctx, sender)
		if err != nil {
			return Result{}, err
		}
		if linked != "" && !slices.Contains(contacts, linked) {
			contacts = append(contacts, linked) // the person's sends addressed under the other form
		}
	}
	if kw, ok := p.opts.Keywords.Match(ev.Text); ok {
		person := contacts[0]
		if ev.Sender.ProviderID != "" {
			person = ev.Sender.ProviderID
		}
		out, err := p.l.PutOptOut(ctx, ledger.OptOutRequest{
			Entry: ledger.OptOutEntry{ContactID: person, Reason: "keyword", Keyword: kw, By: ledger.InboundBy, At: ev.At,
				Source: "provider message " + ev.MessageID + " in chat " + ev.ChatID},
			Key: ev.Key(), AccountID: ev.AccountID, ChatID: ev.ChatID, OtherContactIDs: contacts,
		})
		if err != nil {
			return Result{}, err
		}
		if out.Duplicate {
			return Result{Outcome: "duplicate"}, nil
		}
		return Result{Outcome: "opted_out", Detail: "keyword " + kw, SendIDs: out.SendIDs}, nil
	}
	out, err := p.l.ContactReplied(ctx, ledger.ReplyEvent{Key: ev.Key(), AccountID: ev.AccountID, ChatID: ev.ChatID,
		MessageID: ev.MessageID, SenderID: ev.Sender.ProviderID, At: ev.At, ContactIDs: contacts})
	if err != nil {
		return Result{}, err
	}
	if out.Duplicate {
		return Result{Outcome: "duplicate"}, nil
	}
	return Result{Outcome: "replied", Detail: strconv.Itoa(len(out.SendIDs)) + " sends skipped", SendIDs: out.SendIDs}, nil
}

// ContactIDs are the ids a message event's contact is known by in the ledger's contact index:
// the chat, then the sender's provider and attendee ids, normalized as the index is
// (tasks.NormalizeID); message adds the sender's linked id of the other WhatsApp form, when the
// ledger knows one. Every contact match of this package
// goes through here, so that a normalisation of identities (one person under several ids) has
// one place to change.
func ContactIDs(ev *Event) []string {
	var out []string
	for _, id := range []string{ev.ChatID, ev.Sender.ProviderID, ev.Sender.ID} {
		id = tasks.NormalizeID(id)
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// fromAccount tells whether the account itself wrote the message (the provider reports the
// account's own messages too, written here or on another device). known is false when nothing
// can tell: such an event is not acted on.
func (p *Processor) fromAccount(ctx context.Context, ev *Event) (own, known bool, err error) {
	if ev.IsSender != nil {
		return *ev.IsSender, true, nil
	}
	if ev.AccountUserID != "" && ev.Sender.ProviderID != "" {
		return ev.Sender.ProviderID == ev.AccountUserID, true, nil
	}
	if _, err := p.l.SendByMessage(ctx, ev.MessageID); err == nil {
		return true, true, nil // a message one of our sends produced
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return false, false, err
	}
	if p.opts.SelfIDs == nil || ev.Sender.ProviderID == "" {
		return false, false, nil
	}
	ids, err := p.selfIDs(ctx, ev.AccountID)
	if err != nil {
		p.opts.Logger.Warn("inbound: the account's own ids are unknown", zap.String("account_id", ev.AccountID), zap.Error(err))
		return false, false, nil
	}
	if len(ids) == 0 {
		return false, false, nil
	}
	return slices.Contains(ids, ev.Sender.ProviderID), true, nil
}

const selfTTL = 10 * time.Minute

func (p *Processor) selfIDs(ctx context.Context, account string) ([]string, error) {
	p.mu.Lock()
	e, ok := p.self[account]
	p.mu.Unlock()
	if ok && p.opts.Now().Sub(e.at) < selfTTL {
		return e.ids, nil
	}
	ids, err := p.opts.SelfIDs(ctx, account)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.self[account] = selfEntry{ids: ids, at: p.opts.Now()}
	p.mu.Unlock()
	return ids, nil
}
