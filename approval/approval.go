// Package approval is the gate in front of every send: it takes send
// requests in (validated, digested, stored idempotently as pending_approval),
// records the human decisions on them (approve the exact digest, reject,
// cancel, pause and resume), expires the ones nobody approved in time, and
// hands approved sends to asynq through the ledger's outbox.
//
// It never sends anything and never decides who may approve (roles are the
// admin API's job): every state change is one atomic ledger transition, and
// the only thing it gives asynq is an identifier (send_id, digest, gen, and the
// account as a hint) that the worker checks against the ledger again before
// sending.
package approval

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/sendworker/sendworker/internal/service"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

// Defaults of Options.
const (
	DefaultDeadline        = 24 * time.Hour
	DefaultReleaseInterval = 200 * time.Millisecond
	DefaultSweepInterval   = time.Second
	DefaultTaskRetention   = 24 * time.Hour
	// DefaultTaskTimeout bounds one execution of a send task. The worker's
	// attempt lease (longer than the provider timeout) fits well inside it.
	DefaultTaskTimeout = 5 * time.Minute
	// DefaultTaskMaxRetry is asynq's retry budget for a released task. The
	// worker defers waits through the ledger (a new task), so retries are
	// only spent on real errors (Redis, transient provider failures).
	DefaultTaskMaxRetry = 20
)

// Batch sizes of the background loops and the parallelism of bulk calls.
const (
	releaseBatch    = 500
	sweepBatch      = 500
	releaseParallel = 8
	bulkParallel    = 16
	// MaxNoteLen bounds a reject/cancel reason (stored, shown, never logged).
	MaxNoteLen = 1024
)

// Options configures a Service. Zero values take the defaults above.
type Options struct {
	// DefaultDeadline is how long a send without approval_deadline waits for
	// approval. Default 24h (SENDWORKER_APPROVAL_DEADLINE).
	DefaultDeadline time.Duration
	// MaxAttachmentBytes caps each attachment's declared size; 0 = no cap.
	MaxAttachmentBytes int64
	// OriginAllowed, when set, refuses attachment URLs of other origins at enqueue.
	OriginAllowed func(*url.URL) bool
	// Queue is the asynq queue released sends go to. Default "sendworker".
	Queue string
	// ReleaseInterval and SweepInterval pace Run's loops. Defaults 200ms and 1s.
	// An approval in this process wakes the releaser at once.
	ReleaseInterval, SweepInterval time.Duration
	// TaskRetention is the asynq Retention of released tasks: while it lasts,
	// the task id stays taken (no second task for one release) and its result
	// stays readable. Default 24h.
	TaskRetention time.Duration
	// TaskTimeout and TaskMaxRetry are the asynq Timeout and MaxRetry of
	// released tasks. Defaults 5m and 20.
	TaskTimeout  time.Duration
	TaskMaxRetry int
	// Now is the clock; default time.Now. Give the ledger the same one.
	Now    func() time.Time
	Logger *zap.Logger
}

func (o Options) withDefaults() Options {
	if o.DefaultDeadline <= 0 {
		o.DefaultDeadline = DefaultDeadline
	}
	if o.Queue == "" {
		o.Queue = tasks.DefaultQueue
	}
	if o.ReleaseInterval <= 0 {
		o.ReleaseInterval = DefaultReleaseInterval
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.TaskRetention <= 0 {
		o.TaskRetention = DefaultTaskRetention
	}
	if o.TaskTimeout <= 0 {
		o.TaskTimeout = DefaultTaskTimeout
	}
	if o.TaskMaxRetry <= 0 {
		o.TaskMaxRetry = DefaultTaskMaxRetry
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// Service is the approval stage. It is safe for concurrent use, and any
// number of replicas may run it (and its Run loops) against one Redis.
type Service struct {
	l      *ledger.Ledger
	client *asynq.Client
	opts   Options
	log    *zap.Logger
	// kick wakes the releaser after an approval or a resume in this process.
	kick chan struct{}

	runner service.Loop // the loops of Start
}

// New returns a Service over the ledger l, releasing approved sends with
// client (which may be nil for a Service that never releases, e.g. a
// read-only tool; ReleaseOnce then fails).
func New(l *ledger.Ledger, client *asynq.Client, opts Options) *Service {
	opts = opts.withDefaults()
	return &Service{l: l, client: client, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}
}

// Ledger returns the ledger the Service works on (reads: Get, List, Counts...).
func (s *Service) Ledger() *ledger.Ledger { return s.l }

// EnqueueResult is the outcome of one item of EnqueueMany.
type EnqueueResult struct {
	Record  *tasks.Record
	Created bool
	Err     error
}

// ApproveItem names one send to approve and the digest the approver saw.
type ApproveItem struct {
	SendID string `json:"send_id"`
	Digest string `json:"digest"`
}

// DecisionResult is the outcome of one item of a bulk decision.
type DecisionResult struct {
	SendID string
	Record *tasks.Record
	Err    error
}

// problems collects field errors into one *tasks.ValidationError.
type problems struct{ v tasks.ValidationError }

func (p *problems) add(field, code, msg string) {
	p.v.Fields = append(p.v.Fields, tasks.FieldError{Field: field, Code: code, Message: msg})
}

// actor refuses a decision without an identity: every decision is recorded
// with who made it.
func (p *problems) actor(field, by string) {
	if by == "" {
		p.add(field, "required", "the caller's identity is required")
	}
}

func (p *problems) sendID(id string) {
	if !tasks.ValidSendID(id) {
		p.add("send_id", "invalid", "1 to 128 characters of letters, digits and . _ : -")
	}
}

func (p *problems) providerID(field, id string) {
	if !tasks.ValidProviderID(id) {
		p.add(field, "invalid", "a provider id: 1 to 256 letters, digits and ._:@=+/-")
	}
}

func (p *problems) note(field, note string) {
	if len(note) > MaxNoteLen {
		p.add(field, "too_long", fmt.Sprintf("at most %d bytes", MaxNoteLen))
	}
}

func (p *problems) err() error {
	if len(p.v.Fields) == 0 {
		return nil
	}
	return &p.v
}

// Enqueue validates req and stores it as pending_approval. requestedBy is the
// caller's identity and always wins: a requested_by in req is overwritten (the
// API takes identity from the token, never from the body). Requested_by is not
// part of the digest, so a retry of the same content by another identity is
// the same send (created false) and keeps its first requester.
//
// Created is true for a new record and false for an identical earlier one; the
// same send_id with other content is a *ledger.ConflictError. Invalid input is
// a *tasks.ValidationError naming every bad field.
func (s *Service) Enqueue(ctx context.Context, req tasks.SendRequest, requestedBy string) (*tasks.Record, bool, error) {
	var p problems
	if p.actor("requested_by", requestedBy); p.err() != nil {
		return nil, false, p.err()
	}
	req.RequestedBy = requestedBy
	now := s.opts.Now()
	if err := req.Validate(tasks.ValidateOptions{Now: now, MaxAttachmentBytes: s.opts.MaxAttachmentBytes, OriginAllowed: s.opts.OriginAllowed}); err != nil {
		return nil, false, err
	}
	rec, created, err := s.l.Create(ctx, &req, req.Digest(), s.deadline(&req, now))
	if err != nil {
		return nil, false, fmt.Errorf("enqueue: %w", err)
	}
	if created {
		s.log.Info("send enqueued", zap.String("send_id", req.SendID), zap.String("by", requestedBy),
			zap.String("operation", string(req.Operation)), zap.String("account_id", req.AccountID))
	}
	return rec, created, nil
}

// deadline is the effective approval deadline: the request's (or now plus
// the default), never later than the window's not_after, after which the
// send could not go out anyway.
func (s *Service) deadline(req *tasks.SendRequest, now time.Time) time.Time {
	d := now.Add(s.opts.DefaultDeadline)
	if req.ApprovalDeadline != nil {
		d = *req.ApprovalDeadline
	}
	if w := req.Window; w != nil && w.NotAfter != nil && w.NotAfter.Before(d) {
		d = *w.NotAfter
	}
	return d
}

// EnqueueMany enqueues each request on its own (one bad item does not stop
// the others) and returns one result per request, in order.
func (s *Service) EnqueueMany(ctx context.Context, reqs []tasks.SendRequest, requestedBy string) []EnqueueResult {
	out := make([]EnqueueResult, len(reqs))
	parallel(len(reqs), func(i int) {
		rec, created, err := s.Enqueue(ctx, reqs[i], requestedBy)
		out[i] = EnqueueResult{Record: rec, Created: created, Err: err}
	})
	return out
}

// Approve records by's approval of digest, the digest by has seen. The ledger
// refuses, atomically: another digest (ledger.ErrDigestMismatch), the
// requester approving their own send (ledger.ErrSelfApproval), a send no
// longer pending or past its deadline (*ledger.StateError). On success the
// send is in the outbox and this process's releaser is woken.
func (s *Service) Approve(ctx context.Context, sendID, digest, by string) (*tasks.Record, error) {
	var p problems
	p.sendID(sendID)
	if !tasks.ValidDigest(digest) {
		p.add("digest", "invalid", "the send's digest: 64 lowercase hex characters")
	}
	if p.actor("by", by); p.err() != nil {
		return nil, p.err()
	}
	rec, err := s.l.Approve(ctx, sendID, digest, by, "")
	if err != nil {
		return nil, fmt.Errorf("approve: %w", err)
	}
	s.log.Info("send approved", zap.String("send_id", sendID), zap.String("by", by), zap.String("digest", digest))
	s.wake()
	return rec, nil
}

// ApproveMany approves each item on its own and returns one result per item, in order.
func (s *Service) ApproveMany(ctx context.Context, items []ApproveItem, by string) []DecisionResult {
	out := make([]DecisionResult, len(items))
	parallel(len(items), func(i int) {
		rec, err := s.Approve(ctx, items[i].SendID, items[i].Digest, by)
		out[i] = DecisionResult{SendID: items[i].SendID, Record: rec, Err: err}
	})
	return out
}

// Reject ends a send that has not gone out (pending, approved, waiting) as
// rejected. A send being sent is *ledger.StateError{ErrTooLate}; a final one
// {ErrFinal}. reason is stored as the decision note.
func (s *Service) Reject(ctx context.Context, sendID, by, reason string) (*tasks.Record, error) {
	return s.decide(ctx, "reject", "rejected", s.l.Reject, sendID, by, reason)
}

// RejectMany rejects each send on its own and returns one result per id, in order.
func (s *Service) RejectMany(ctx context.Context, ids []string, by, reason string) []DecisionResult {
	out := make([]DecisionResult, len(ids))
	parallel(len(ids), func(i int) {
		rec, err := s.Reject(ctx, ids[i], by, reason)
		out[i] = DecisionResult{SendID: ids[i], Record: rec, Err: err}
	})
	return out
}

// Cancel ends a send that has not gone out as canceled (same rules as Reject).
func (s *Service) Cancel(ctx context.Context, sendID, by, reason string) (*tasks.Record, error) {
	return s.decide(ctx, "cancel", "canceled", s.l.Cancel, sendID, by, reason)
}

func (s *Service) decide(ctx context.Context, verb, done string, fn func(context.Context, string, string, string) (*tasks.Record, error), sendID, by, note string) (*tasks.Record, error) {
	var p problems
	p.sendID(sendID)
	p.note("reason", note)
	if p.actor("by", by); p.err() != nil {
		return nil, p.err()
	}
	rec, err := fn(ctx, sendID, by, note)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", verb, err)
	}
	// The note is free text from a human: kept in the record, not in logs.
	s.log.Info("send "+done, zap.String("send_id", sendID), zap.String("by", by))
	return rec, nil
}

// Pause holds every send of accountID ("" = all accounts), including sends
// already approved and released: the worker re-checks the switch atomically
// before sending and parks held sends until Resume.
func (s *Service) Pause(ctx context.Context, accountID, by string) error {
	return s.setPaused(ctx, accountID, true, by)
}

// Resume lifts a Pause; the sends it held go back to the outbox.
func (s *Service) Resume(ctx context.Context, accountID, by string) error {
	return s.setPaused(ctx, accountID, false, by)
}

func (s *Service) setPaused(ctx context.Context, accountID string, paused bool, by string) error {
	var p problems
	if accountID != "" {
		p.providerID("account_id", accountID)
	}
	if p.actor("by", by); p.err() != nil {
		return p.err()
	}
	verb, done, scope := "resume", "resumed", accountID
	if paused {
		verb, done = "pause", "paused"
	}
	if scope == "" {
		scope = "global"
	}
	if err := s.l.SetPaused(ctx, accountID, paused, by); err != nil {
		return fmt.Errorf("%s %s: %w", verb, scope, err)
	}
	s.log.Info("sends "+done, zap.String("scope", scope), zap.String("by", by))
	if !paused {
		s.wake()
	}
	return nil
}

// AddOptOut puts a contact (attendee provider id or chat id) on the opt-out
// list: no send to it goes out any more, even one already approved.
func (s *Service) AddOptOut(ctx context.Context, contactID, by string) error {
	_, err := s.OptOut(ctx, contactID, by, "")
	return err
}

// OptOut puts a contact on the opt-out list with a reason (default
// "request"), source "api" and the time, and ends, skipped/opted_out, the
// sends addressed to it that have not started (ledger.PutOptOut). It returns
// those send ids.
func (s *Service) OptOut(ctx context.Context, contactID, by, reason string) ([]string, error) {
	if err := s.checkOptOut(contactID, by, reason); err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "request"
	}
	out, err := s.l.PutOptOut(ctx, ledger.OptOutRequest{Entry: ledger.OptOutEntry{ContactID: contactID, Reason: reason,
		Source: "api", By: by, At: s.opts.Now()}})
	if err != nil {
		return nil, fmt.Errorf("add opt-out: %w", err)
	}
	s.log.Info("opt-out added", zap.String("contact_id", contactID), zap.String("by", by), zap.Int("sends_ended", len(out.SendIDs)))
	return out.SendIDs, nil
}

// RemoveOptOut takes a contact off the opt-out list.
func (s *Service) RemoveOptOut(ctx context.Context, contactID, by string) error {
	return s.RemoveOptOutReason(ctx, contactID, by, "")
}

// RemoveOptOutReason takes a contact off the opt-out list, with the reason in the audit trail.
func (s *Service) RemoveOptOutReason(ctx context.Context, contactID, by, reason string) error {
	if err := s.checkOptOut(contactID, by, reason); err != nil {
		return err
	}
	if _, err := s.l.DeleteOptOut(ctx, contactID, by, reason); err != nil {
		return fmt.Errorf("remove opt-out: %w", err)
	}
	s.log.Info("opt-out removed", zap.String("contact_id", contactID), zap.String("by", by))
	return nil
}

func (s *Service) checkOptOut(contactID, by, reason string) error {
	var p problems
	p.providerID("contact_id", contactID)
	p.actor("by", by)
	p.note("reason", reason)
	return p.err()
}

// wake nudges the releaser of this process without blocking.
func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// parallel runs fn(0..n-1) on at most bulkParallel goroutines.
func parallel(n int, fn func(i int)) {
	workers := min(n, bulkParallel)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// Revise corrects the text of a pending send before approval: the send gets
// a new revision (its request with text, a new digest), if its digest is
// still shown, the one the editor saw (else ledger.ErrDigestMismatch: it
// changed meanwhile). The old digest can then no longer be approved. The
// editor may approve the revision they wrote; the original requester still
// may not approve (no self-approval). Only sends that carry a text
// (chats_messages_send, chats_create, messages_edit) can be revised; the new
// text passes the same checks as at enqueue. A text equal to the current one
// changes nothing and returns the record as it is.
func (s *Service) Revise(ctx context.Context, sendID, shown, text, by string) (*tasks.Record, error) {
	var p problems
	p.sendID(sendID)
	if !tasks.ValidDigest(shown) {
		p.add("digest", "invalid", "the digest of the revision shown: 64 lowercase hex characters")
	}
	if p.actor("by", by); p.err() != nil {
		return nil, p.err()
	}
	rec, err := s.l.Get(ctx, sendID)
	if err != nil {
		return nil, fmt.Errorf("revise: %w", err)
	}
	switch {
	case rec.State != tasks.StatePendingApproval:
		return nil, fmt.Errorf("revise: %w", &ledger.StateError{Err: ledger.ErrNotPending, SendID: sendID, Current: rec.State})
	case rec.Digest != shown:
		return nil, fmt.Errorf("revise: send %s: %w", sendID, ledger.ErrDigestMismatch)
	}
	switch rec.Request.Operation {
	case tasks.OpSendMessage, tasks.OpCreateChat, tasks.OpEdit:
	default:
		p.add("text", "not_allowed", "a "+string(rec.Request.Operation)+" send has no text to correct")
		return nil, p.err()
	}
	req := rec.Request
	req.Text = text
	if err := req.Validate(tasks.ValidateOptions{Now: s.opts.Now(), MaxAttachmentBytes: s.opts.MaxAttachmentBytes, OriginAllowed: s.opts.OriginAllowed}); err != nil {
		return nil, err
	}
	digest := req.Digest()
	if digest == shown {
		return rec, nil
	}
	out, err := s.l.Revise(ctx, sendID, shown, &req, digest, by)
	if err != nil {
		return nil, fmt.Errorf("revise: %w", err)
	}
	// The text is a human's words: kept in the record, not in logs.
	s.log.Info("send revised", zap.String("send_id", sendID), zap.String("by", by), zap.Int("revision", out.Revision), zap.String("digest", digest))
	return out, nil
}

// ResolveReview records an admin's finding on a send whose outcome was
// unknown (state needs_review): ledger.ResolveSent with the chat's message
// that is it, ledger.ResolveCancel, or ledger.ResolveNotSent, which approves
// it again, so it is released and goes out (the admin checked that it did
// not). See ledger.ResolveReview.
func (s *Service) ResolveReview(ctx context.Context, sendID string, res ledger.Resolution, messageID, by, note string) (*tasks.Record, error) {
	var p problems
	p.sendID(sendID)
	p.note("note", note)
	switch res {
	case ledger.ResolveSent:
		p.providerID("message_id", messageID)
	case ledger.ResolveNotSent, ledger.ResolveCancel:
		if messageID != "" {
			p.add("message_id", "not_allowed", "only marking a send sent names a message")
		}
	default:
		p.add("resolution", "invalid", "sent, not_sent or cancel")
	}
	if p.actor("by", by); p.err() != nil {
		return nil, p.err()
	}
	rec, err := s.l.ResolveReview(ctx, sendID, res, messageID, by, note)
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	s.log.Info("send review resolved", zap.String("send_id", sendID), zap.String("by", by), zap.String("resolution", string(res)))
	if res == ledger.ResolveNotSent {
		s.wake()
	}
	return rec, nil
}
