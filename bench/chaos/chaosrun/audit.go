package chaosrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// Summary is what a chaos run proved (or not).
type Summary struct {
	Sends    int `json:"sends"`    // requested
	Pushed   int `json:"pushed"`   // enqueued (accepted)
	Approved int `json:"approved"` // approved by the chaos approver

	// Delivered counts sends with at least one applied sending call at the
	// simulator; Duplicates those with more than one.
	Delivered    int      `json:"delivered"`
	Duplicates   int      `json:"duplicates"`
	DuplicateIDs []string `json:"duplicate_ids,omitempty"`
	// Lost counts approved sends not terminal at the end.
	Lost    int      `json:"lost"`
	LostIDs []string `json:"lost_ids,omitempty"`
	// NeedsReview counts sends parked for a human; NeedsReviewDelivered
	// those of them the simulator did deliver (once).
	NeedsReview          int `json:"needs_review"`
	NeedsReviewDelivered int `json:"needs_review_delivered"`
	// SentNotDelivered: records saying sent with no applied delivery.
	SentNotDelivered    int      `json:"sent_not_delivered"`
	SentNotDeliveredIDs []string `json:"sent_not_delivered_ids,omitempty"`
	// WrongMessageID: sent records whose message id is not the one the
	// simulator created for that send.
	WrongMessageID    int      `json:"wrong_message_id"`
	WrongMessageIDIDs []string `json:"wrong_message_id_ids,omitempty"`
	// DeliveredNotSent: delivered once but recorded neither sent nor
	// needs_review (e.g. failed): the Sequencer would be told it did not go.
	DeliveredNotSent    int      `json:"delivered_not_sent"`
	DeliveredNotSentIDs []string `json:"delivered_not_sent_ids,omitempty"`
	// UnattributedApplied: applied sending calls whose text names no send
	// of this run; UnattributedRefused: refused ones (nothing delivered),
	// e.g. a request body cut short by a SIGKILL.
	UnattributedApplied int `json:"unattributed_applied"`
	UnattributedRefused int `json:"unattributed_refused"`
	// MissingResults: terminal sends with no entry in the results stream.
	MissingResults    int      `json:"missing_results"`
	MissingResultsIDs []string `json:"missing_results_ids,omitempty"`

	ByState  map[string]int `json:"by_state"`
	ByReason map[string]int `json:"by_reason,omitempty"` // "state/reason" of non-sent terminal sends
	// Attempts is the histogram of record attempts (sends by attempts).
	Attempts map[int]int `json:"attempts"`
	// Reconciled counts sends whose history shows a reconciliation;
	// Undecided those whose history shows a read that found the message
	// absent while it could still land (kept sending, read again later).
	Reconciled int `json:"reconciled"`
	Undecided  int `json:"undecided"`
	// ApprovalToTerminal is the time from a send's approval to its terminal
	// state (both on the ledger's clock), over the terminal sends: the price
	// of caution shows in its tail.
	ApprovalToTerminalP50 time.Duration `json:"approval_to_terminal_p50_ns"`
	ApprovalToTerminalP99 time.Duration `json:"approval_to_terminal_p99_ns"`
	ApprovalToTerminalMax time.Duration `json:"approval_to_terminal_max_ns"`
	// Provider is the simulator's count of sending calls by outcome.
	Provider map[string]int `json:"provider_sending_calls"`

	Elapsed          time.Duration `json:"elapsed_ns"`
	ElapsedText      string        `json:"elapsed"`
	PushTook         time.Duration `json:"push_took_ns"`
	KillPhase        time.Duration `json:"kill_phase_ns"`
	AllTerminalAfter time.Duration `json:"all_terminal_after_ns"` // 0: not reached
	Kills            int           `json:"kills"`
	UnexpectedExits  int           `json:"unexpected_exits"`
	RedisRestarts    int           `json:"redis_restarts"`
	RedisKills       int           `json:"redis_kills"` // SIGKILL, then started again
	RedisRestartTook time.Duration `json:"redis_restart_took_ns"`

	HarnessErrors []string `json:"harness_errors,omitempty"`
	// Violations lists the broken guarantees; empty = the run passed.
	Violations []string `json:"violations"`
	Dir        string   `json:"dir,omitempty"`
}

// OK reports whether no guarantee was broken and the harness did its job.
func (s *Summary) OK() bool { return len(s.Violations) == 0 }

const maxListed = 20

func addID(list *[]string, id string) {
	if len(*list) < maxListed {
		*list = append(*list, id)
	}
}

func (s *Summary) judge() {
	s.ElapsedText = s.Elapsed.Round(time.Millisecond).String()
	s.Violations = []string{}
	if s.Duplicates > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d sends delivered more than once (guarantee 4)", s.Duplicates))
	}
	if s.Lost > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d approved sends not terminal at the end (guarantee 5)", s.Lost))
	}
	if s.SentNotDelivered > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d sends recorded sent but never delivered", s.SentNotDelivered))
	}
	if s.WrongMessageID > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d sends recorded with another send's message id", s.WrongMessageID))
	}
	if s.UnattributedApplied > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d delivered messages belong to no send", s.UnattributedApplied))
	}
	if s.MissingResults > 0 {
		s.Violations = append(s.Violations, fmt.Sprintf("%d terminal sends without a result in the stream (guarantee 5)", s.MissingResults))
	}
	if len(s.HarnessErrors) > 0 || s.Approved != s.Sends {
		s.Violations = append(s.Violations, fmt.Sprintf("harness: %d of %d sends approved, %d errors", s.Approved, s.Sends, len(s.HarnessErrors)))
	}
}

// delivery is the part of wasim's Delivery the audit reads.
type delivery struct {
	Seq       int       `json:"seq"`
	At        time.Time `json:"at"`
	Operation string    `json:"operation"`
	ChatID    string    `json:"chat_id"`
	MessageID string    `json:"message_id"`
	Text      string    `json:"text"`
	Outcome   string    `json:"outcome"`
	Applied   bool      `json:"applied"`
}

var sendIDInText = regexp.MustCompile(`\[(chaos-[0-9a-f]+-[0-9]+)\]`)

func fetchDeliveries(ctx context.Context, base string) ([]delivery, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_sim/deliveries?since=0", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("wasim deliveries: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("wasim deliveries: %s: %s", resp.Status, b)
	}
	var body struct {
		Deliveries []delivery `json:"deliveries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("wasim deliveries: %w", err)
	}
	return body.Deliveries, nil
}

// audit compares the simulator's deliveries with the send records and the
// results stream.
func (r *runner) audit(ctx context.Context, wasimURL string) (*Summary, error) {
	s := &Summary{
		Sends: r.c.Sends, Pushed: int(r.pushed.Load()), Approved: int(r.approvedN.Load()),
		ByState: map[string]int{}, ByReason: map[string]int{}, Attempts: map[int]int{}, Provider: map[string]int{},
	}
	ds, err := fetchDeliveries(ctx, wasimURL)
	if err != nil {
		return nil, err
	}
	applied := map[string][]delivery{}
	for _, d := range ds {
		s.Provider[d.Outcome]++
		m := sendIDInText.FindStringSubmatch(d.Text)
		if m == nil {
			if d.Applied {
				// A message nobody can account for.
				s.UnattributedApplied++
				r.logf("UNATTRIBUTED delivery #%d %s at %s chat %s: text %q", d.Seq, d.Outcome, d.At.Format("15:04:05.000"), d.ChatID, d.Text)
			} else {
				// Refused, nothing delivered (e.g. a body cut short by a SIGKILL).
				s.UnattributedRefused++
				r.logf("refused delivery #%d %s at %s chat %s carries no send id", d.Seq, d.Outcome, d.At.Format("15:04:05.000"), d.ChatID)
			}
			continue
		}
		if d.Applied {
			applied[m[1]] = append(applied[m[1]], d)
		}
	}

	results, err := r.resultIDs(ctx)
	if err != nil {
		return nil, err
	}

	var ids []string
	r.approved.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	sort.Strings(ids)
	recs, err := r.getAll(ctx, ids)
	if err != nil {
		return nil, err
	}
	var took []time.Duration
	defer func() { s.ApprovalToTerminalP50, s.ApprovalToTerminalP99, s.ApprovalToTerminalMax = percentiles(took) }()
	for _, id := range ids {
		rec := recs[id]
		got := applied[id]
		if len(got) > 0 {
			s.Delivered++
		}
		if len(got) > 1 {
			s.Duplicates++
			addID(&s.DuplicateIDs, id)
			r.logf("DUPLICATE %s: delivered %d times %s; record %s", id, len(got), describeDeliveries(got), describe(rec))
		}
		s.ByState[string(rec.State)]++
		s.Attempts[rec.Attempts]++
		for _, ev := range rec.History {
			if strings.Contains(ev.Detail, "reconcil") {
				s.Reconciled++
				break
			}
		}
		for _, ev := range rec.History {
			if strings.Contains(ev.Detail, "could still store it") {
				s.Undecided++
				break
			}
		}
		if rec.Approval != nil && rec.Result != nil && !rec.Result.FinishedAt.IsZero() {
			took = append(took, rec.Result.FinishedAt.Sub(rec.Approval.At))
		}
		if !rec.State.Terminal() {
			s.Lost++
			addID(&s.LostIDs, id)
			r.logf("LOST %s: %s", id, describe(rec))
			continue
		}
		if !results[id] {
			s.MissingResults++
			addID(&s.MissingResultsIDs, id)
			r.logf("NO RESULT %s: %s", id, describe(rec))
		}
		switch rec.State {
		case tasks.StateSent:
			if len(got) == 0 {
				s.SentNotDelivered++
				addID(&s.SentNotDeliveredIDs, id)
				r.logf("SENT, NOT DELIVERED %s: %s", id, describe(rec))
				continue
			}
			if mid := messageID(rec); mid != got[0].MessageID {
				s.WrongMessageID++
				addID(&s.WrongMessageIDIDs, id)
				r.logf("WRONG MESSAGE ID %s: record %q, delivered %q; %s", id, mid, got[0].MessageID, describe(rec))
			}
		case tasks.StateNeedsReview:
			s.NeedsReview++
			if len(got) > 0 {
				s.NeedsReviewDelivered++
			}
			s.ByReason[string(rec.State)+"/"+string(rec.Reason)]++
		default:
			s.ByReason[string(rec.State)+"/"+string(rec.Reason)]++
			if len(got) > 0 {
				s.DeliveredNotSent++
				addID(&s.DeliveredNotSentIDs, id)
				r.logf("DELIVERED, RECORDED %s %s: %s", rec.State, rec.Reason, describe(rec))
			}
		}
	}
	return s, nil
}

// percentiles are the 50th and 99th percentiles (nearest rank) and the maximum of d.
func percentiles(d []time.Duration) (p50, p99, maxD time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return rank(0.50), rank(0.99), d[len(d)-1]
}

func messageID(rec *tasks.Record) string {
	if rec.Result != nil {
		return rec.Result.MessageID
	}
	return ""
}

// getAll reads every record (with history), 32 at a time.
func (r *runner) getAll(ctx context.Context, ids []string) (map[string]*tasks.Record, error) {
	out := make(map[string]*tasks.Record, len(ids))
	var mu sync.Mutex
	var firstErr error
	work := make(chan string)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for id := range work {
				var rec *tasks.Record
				err := retry(ctx, func() error {
					var err error
					rec, err = r.led.Get(ctx, id)
					return err
				})
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("read %s: %w", id, err)
				}
				out[id] = rec
				mu.Unlock()
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return out, firstErr
}

// resultIDs reads the send ids of the results stream (default name).
func (r *runner) resultIDs(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	start := "-"
	for {
		msgs, err := r.rdb.XRangeN(ctx, "sendworker:results", start, "+", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("results stream: %w", err)
		}
		for _, m := range msgs {
			if id, ok := m.Values["send_id"].(string); ok {
				out[id] = true
			}
		}
		if len(msgs) < 1000 {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

func describeDeliveries(ds []delivery) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("#%d %s msg=%s", d.Seq, d.Outcome, d.MessageID))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// describe renders a record and its history on one line, for the report.
func describe(rec *tasks.Record) string {
	if rec == nil {
		return "<no record>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s reason=%s attempts=%d gen=%d msg=%s history:", rec.State, rec.Reason, rec.Attempts, rec.Gen, messageID(rec))
	for _, ev := range rec.History {
		fmt.Fprintf(&b, " | %s %s", ev.At.Format("15:04:05.000"), ev.State)
		if ev.Reason != "" {
			fmt.Fprintf(&b, "/%s", ev.Reason)
		}
		if ev.Attempt > 0 {
			fmt.Fprintf(&b, " a%d", ev.Attempt)
		}
		if ev.By != "" {
			fmt.Fprintf(&b, " by %s", ev.By)
		}
		if ev.Detail != "" {
			fmt.Fprintf(&b, " (%s)", ev.Detail)
		}
	}
	return b.String()
}

// Print writes the summary as a table.
func (s *Summary) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("sends", "%d requested, %d enqueued, %d approved", s.Sends, s.Pushed, s.Approved)
	row("delivered", "%d", s.Delivered)
	row("duplicates", "%d %s", s.Duplicates, listed(s.DuplicateIDs))
	row("lost", "%d %s", s.Lost, listed(s.LostIDs))
	row("needs_review", "%d (%d of them delivered once)", s.NeedsReview, s.NeedsReviewDelivered)
	row("by final state", "%s", sortedMap(s.ByState))
	if len(s.ByReason) > 0 {
		row("not sent, by reason", "%s", sortedMap(s.ByReason))
	}
	row("sent, not delivered", "%d %s", s.SentNotDelivered, listed(s.SentNotDeliveredIDs))
	row("wrong message id", "%d %s", s.WrongMessageID, listed(s.WrongMessageIDIDs))
	row("delivered, not sent", "%d %s", s.DeliveredNotSent, listed(s.DeliveredNotSentIDs))
	row("missing results", "%d %s", s.MissingResults, listed(s.MissingResultsIDs))
	row("unattributed calls", "%d applied, %d refused (nothing delivered)", s.UnattributedApplied, s.UnattributedRefused)
	row("attempts", "%s", sortedIntMap(s.Attempts))
	row("reconciled", "%d sends (%d kept undecided until they could no longer land)", s.Reconciled, s.Undecided)
	row("approval → terminal", "p50 %s, p99 %s, max %s", s.ApprovalToTerminalP50.Round(time.Millisecond),
		s.ApprovalToTerminalP99.Round(time.Millisecond), s.ApprovalToTerminalMax.Round(time.Millisecond))
	row("sending calls", "%s", sortedMap(s.Provider))
	row("elapsed", "%s (pushing %s, kill phase %s, all terminal after %s)", s.Elapsed.Round(time.Millisecond),
		s.PushTook.Round(time.Millisecond), s.KillPhase.Round(time.Millisecond), s.AllTerminalAfter.Round(time.Millisecond))
	row("kills", "%d SIGKILL (%d unexpected exits)", s.Kills, s.UnexpectedExits)
	row("redis restarts", "%d graceful, %d SIGKILL (longest down %s)", s.RedisRestarts, s.RedisKills, s.RedisRestartTook.Round(time.Millisecond))
	for _, e := range s.HarnessErrors {
		row("harness error", "%s", e)
	}
	if s.OK() {
		row("verdict", "PASS")
	} else {
		row("verdict", "FAIL: %s", strings.Join(s.Violations, "; "))
	}
	if s.Dir != "" {
		row("logs", "%s", s.Dir)
	}
	_ = tw.Flush()
}

func listed(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return "(" + strings.Join(ids, " ") + ")"
}

func sortedMap(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func sortedIntMap(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
