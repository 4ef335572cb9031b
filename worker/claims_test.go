package worker

import (
	"context"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

// countingProvider counts the provider reads.
// newCountingEnv is an env whose worker is not started (tasks are run by hand), with limiter as
// its rate limiter when not nil, and the counter of its provider reads.
func newCountingEnv(t *testing.T, limiter Limiter) (*env, *countingProvider) {
	t.Helper()
	var counter *countingProvider
	e := newEnv(t, func(c *envConfig) {
		c.noStart = true
		if limiter != nil {
			c.opts.Limiter = limiter
		}
		c.provider = func(cl *provider.Client, _ *wasim.Sim) Provider {
			counter = &countingProvider{Client: cl}
			return counter
		}
	})
	return e, counter
}

type countingProvider struct {
	*provider.Client
	reads atomic.Int64
}

func (p *countingProvider) GetAccount(ctx context.Context, id string) (*provider.Account, error) {
	p.reads.Add(1)
	return p.Client.GetAccount(ctx, id)
}

func (p *countingProvider) GetChat(ctx context.Context, chatID, accountID string) (*provider.Chat, error) {
	p.reads.Add(1)
	return p.Client.GetChat(ctx, chatID, accountID)
}

func (p *countingProvider) Chats(ctx context.Context, params provider.ListChatsParams) iter.Seq2[provider.Chat, error] {
	p.reads.Add(1)
	return p.Client.Chats(ctx, params)
}

func (p *countingProvider) Messages(ctx context.Context, chatID string, params provider.ListMessagesParams) iter.Seq2[provider.Message, error] {
	p.reads.Add(1)
	return p.Client.Messages(ctx, chatID, params)
}

// TestStaleGenerationDroppedBeforeProviderReads: a task of an older release generation is
// dropped on the record's gen alone, before any provider read, and changes nothing, even when
// nothing else about it looks stale (the send waits until a time already past).
func TestStaleGenerationDroppedBeforeProviderReads(t *testing.T) {
	t.Parallel()
	e, counter := newCountingEnv(t, nil)
	ctx := context.Background()
	id := newID("stale")
	e.submit(message(id, accA, chatA1))
	old := e.releaseTask(id)
	if _, err := e.ledger.Defer(ctx, id, "", time.Now().Add(-time.Second), tasks.ReasonWaitRateLimit); err != nil {
		t.Fatal(err)
	}
	before := e.get(id)
	if err := e.worker.Handler().ProcessTask(ctx, old); err != nil {
		t.Fatal(err)
	}
	if n := counter.reads.Load(); n != 0 {
		t.Fatalf("%d provider reads for a stale task", n)
	}
	if after := e.get(id); after.Gen != before.Gen || after.State != tasks.StateWaiting || len(after.History) != len(before.History) {
		t.Fatalf("stale task changed the send: gen %d→%d, %s, %d→%d events", before.Gen, after.Gen, after.State, len(before.History), len(after.History))
	}
	// The current release sends.
	if rec := e.drive(id, 10*time.Second); rec.State != tasks.StateSent || len(e.deliveries(id)) != 1 {
		t.Fatalf("%s, %d deliveries", rec.State, len(e.deliveries(id)))
	}
}

// listingProvider loses the answer of the first sending call (applied, then the connection
// dropped) and runs hook before every message listing; hook may hide messages from it.
type listingProvider struct {
	*faultyProvider
	hook func(chatID string) (hide map[string]bool)
}

func (p *listingProvider) Messages(ctx context.Context, chatID string, params provider.ListMessagesParams) iter.Seq2[provider.Message, error] {
	hide := p.hook(chatID)
	inner := p.faultyProvider.Messages(ctx, chatID, params)
	return func(yield func(provider.Message, error) bool) {
		for m, err := range inner {
			if err == nil && hide[m.ID] {
				continue
			}
			if !yield(m, err) {
				return
			}
		}
	}
}

// claimedProvider answers sending calls normally, then has another send claim the new message
// id before the worker records it.
type claimedProvider struct {
	*provider.Client
	claim func(messageID string)
}

func (p *claimedProvider) SendMessage(ctx context.Context, chatID string, params provider.SendMessageParams) (*provider.MessageSent, error) {
	res, err := p.Client.SendMessage(ctx, chatID, params)
	if err == nil && res != nil && res.MessageID != nil {
		p.claim(*res.MessageID)
	}
	return res, err
}

// TestReconcileLosesItsCandidate: reconciliation finds one matching message, but another send
// claims that message id before this one records it (ErrMessageClaimed). No other candidate
// is left: needs_review, never a second delivery, and the other send keeps its message.
func TestReconcileLosesItsCandidate(t *testing.T) {
	t.Parallel()
	id := newID("raced")
	var (
		e       *env
		once    sync.Once
		mu      sync.Mutex
		claimed string
	)
	e = newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
			return &listingProvider{
				faultyProvider: &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{AcceptThenDropRate: 1}, left: 1},
				hook: func(string) map[string]bool {
					if ds := e.deliveries(id); len(ds) > 0 {
						once.Do(func() {
							// Another send's Finish claims the message between this reconciliation's
							// read of the claimed ids and its own Finish.
							mu.Lock()
							claimed = ds[0].MessageID
							mu.Unlock()
							e.rdb.Set(context.Background(), e.ledger.Keys().Msg(ds[0].MessageID), "other-send", 0)
						})
					}
					return nil
				},
			}
		}
	})
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 15*time.Second)
	if rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonUnknownOutcome || !strings.Contains(rec.Detail, "another send") {
		t.Fatalf("state %s %s (%s); %s", rec.State, rec.Reason, rec.Detail, historyString(rec))
	}
	if ds := e.deliveries(id); len(ds) != 1 || rec.Attempts != 1 {
		t.Fatalf("%d deliveries, %d attempts", len(ds), rec.Attempts)
	}
	mu.Lock()
	mid := claimed
	mu.Unlock()
	if owner, err := e.ledger.SendByMessage(context.Background(), mid); err != nil || owner != "other-send" {
		t.Fatalf("message %s attributed to %q (%v)", mid, owner, err)
	}
	e.expectResult(rec)
}

// TestReconcileChoosesAgain: the one candidate reconciliation first sees is claimed by another
// send meanwhile; chosen again without it, the send's own message (listed late by the
// provider) is the only candidate left: sent with that id.
func TestReconcileChoosesAgain(t *testing.T) {
	t.Parallel()
	id := newID("again")
	req := message(id, accA, chatA1)
	var (
		e        *env
		mu       sync.Mutex
		listings int
		other    string // a message of ours with the same content, another send's
	)
	e = newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
			return &listingProvider{
				faultyProvider: &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{AcceptThenDropRate: 1}, left: 1},
				hook: func(string) map[string]bool {
					mu.Lock()
					defer mu.Unlock()
					var own string
					for _, d := range e.deliveries(id) {
						if d.MessageID != other {
							own = d.MessageID
						}
					}
					if own == "" {
						return nil
					}
					listings++
					if listings > 1 {
						return nil
					}
					// First listing after the lost send: the provider does not list it yet, and the
					// other send claims its message before this one records it.
					e.rdb.Set(context.Background(), e.ledger.Keys().Msg(other), "other-send", 0)
					return map[string]bool{own: true}
				},
			}
		}
	})
	res, err := e.client.SendMessage(context.Background(), chatA1, provider.SendMessageParams{AccountID: accA, Text: req.Text})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	other = *res.MessageID
	mu.Unlock()
	e.submit(req)
	rec := e.waitTerminal(id, 15*time.Second)
	var own []string
	for _, d := range e.deliveries(id) {
		if d.MessageID != other {
			own = append(own, d.MessageID)
		}
	}
	if rec.State != tasks.StateSent || len(own) != 1 || rec.Result.MessageID != own[0] || rec.Attempts != 1 {
		t.Fatalf("state %s %s, message %q, own deliveries %v, %d attempts; %s", rec.State, rec.Reason, rec.Result.MessageID, own, rec.Attempts, historyString(rec))
	}
	mu.Lock()
	n := listings
	mu.Unlock()
	if n < 2 {
		t.Fatalf("%d listings: the candidates were not chosen again", n)
	}
	t.Logf("history: %s", historyString(rec))
	e.expectResult(rec)
}

// TestSentMessageIDClaimedElsewhere: the provider names the new message, but its id is already
// another send's when the worker records it: the delivery is certain, so the send is sent,
// without the id, and the other send keeps it.
func TestSentMessageIDClaimedElsewhere(t *testing.T) {
	t.Parallel()
	var (
		e       *env
		mu      sync.Mutex
		claimed string
	)
	e = newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, _ *wasim.Sim) Provider {
			return &claimedProvider{Client: cl, claim: func(mid string) {
				mu.Lock()
				claimed = mid
				mu.Unlock()
				e.rdb.Set(context.Background(), e.ledger.Keys().Msg(mid), "other-send", 0)
			}}
		}
	})
	id := newID("claimed")
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 10*time.Second)
	if rec.State != tasks.StateSent || rec.Result.MessageID != "" || !strings.Contains(rec.Detail, "another send") {
		t.Fatalf("state %s, message %q, detail %q", rec.State, rec.Result.MessageID, rec.Detail)
	}
	if len(e.deliveries(id)) != 1 {
		t.Fatalf("%d deliveries", len(e.deliveries(id)))
	}
	mu.Lock()
	mid := claimed
	mu.Unlock()
	if owner, _ := e.ledger.SendByMessage(context.Background(), mid); owner != "other-send" {
		t.Fatalf("message attributed to %q", owner)
	}
	e.expectResult(rec)
}

// TestReconcileNeverResendsOverAClaimedMatch: the send's message went out but its answer was
// lost, and by the time it reconciles another send (same chat, same content) has claimed that
// very message. No unclaimed candidate is left, yet a matching message exists: it may have been
// this send's, so the send goes to needs_review instead of out a second time.
func TestReconcileNeverResendsOverAClaimedMatch(t *testing.T) {
	t.Parallel()
	id := newID("claimedmatch")
	var e *env
	e = newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
			return &listingProvider{
				faultyProvider: &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{AcceptThenDropRate: 1}, left: 1},
				hook:           func(string) map[string]bool { return nil },
			}
		}
	})
	ctx := context.Background()
	e.submit(message(id, accA, chatA1))
	// Wait for the dropped delivery, then let another send claim it before any reconciliation.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.deliveries(id)) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ds := e.deliveries(id)
	if len(ds) != 1 {
		t.Fatalf("%d deliveries before reconciliation", len(ds))
	}
	e.rdb.Set(ctx, e.ledger.Keys().Msg(ds[0].MessageID), "other-send", 0)

	rec := e.waitTerminal(id, 15*time.Second)
	if rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonUnknownOutcome {
		t.Fatalf("state %s %s (%s); %s", rec.State, rec.Reason, rec.Detail, historyString(rec))
	}
	if n := len(e.deliveries(id)); n != 1 {
		t.Fatalf("%d deliveries: a claimed match must never lead to a resend", n)
	}
}

// failingListProvider loses the answer of the first sending call, then fails every message
// listing made after that delivery, counting them.
type failingListProvider struct {
	*faultyProvider
	delivered func() bool
	listings  atomic.Int64
}

func (p *failingListProvider) Messages(ctx context.Context, chatID string, params provider.ListMessagesParams) iter.Seq2[provider.Message, error] {
	if !p.delivered() {
		return p.faultyProvider.Messages(ctx, chatID, params)
	}
	p.listings.Add(1)
	return func(yield func(provider.Message, error) bool) {
		yield(provider.Message{}, &provider.Error{Op: provider.OpChatsMessagesList, Class: provider.ClassTransient, Status: 503})
	}
}

// TestReconcileTriesCountOnlyReads: an unknown outcome whose chat can never be read ends in
// needs_review after exactly MaxReconcileTries reads of the chat. The EndCall that cut the
// lease is not a try (it read nothing).
func TestReconcileTriesCountOnlyReads(t *testing.T) {
	t.Parallel()
	id := newID("tries")
	var (
		e *env
		p *failingListProvider
	)
	e = newEnv(t, func(c *envConfig) {
		c.opts.MaxReconcileTries = 2
		c.provider = func(cl *provider.Client, sim *wasim.Sim) Provider {
			p = &failingListProvider{
				faultyProvider: &faultyProvider{Client: cl, sim: sim, faults: wasim.Faults{AcceptThenDropRate: 1}, left: 1},
				delivered:      func() bool { return len(e.deliveries(id)) > 0 },
			}
			return p
		}
	})
	e.submit(message(id, accA, chatA1))
	rec := e.waitTerminal(id, 30*time.Second)
	if rec.State != tasks.StateNeedsReview || rec.Reason != tasks.ReasonUnknownOutcome {
		t.Fatalf("state %s %s (%s); %s", rec.State, rec.Reason, rec.Detail, historyString(rec))
	}
	if n := p.listings.Load(); n != 2 {
		t.Fatalf("%d reads of the chat before needs_review, want MaxReconcileTries = 2; %s", n, historyString(rec))
	}
	if n := len(e.deliveries(id)); n != 1 {
		t.Fatalf("%d deliveries", n)
	}
}
