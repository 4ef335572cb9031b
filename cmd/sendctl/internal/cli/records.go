package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sendworker/sendworker/tasks"
)

// listAnswer is a page of GET /v1/sends.
type listAnswer struct {
	Sends      []tasks.Record `json:"sends"`
	NextCursor string         `json:"next_cursor"`
}

// sendsPages is what fetchSends got: the records, and each page as the API
// sent it (for -o json).
type sendsPages struct {
	recs  []tasks.Record
	pages [][]byte
	next  string // cursor of the page after the last one fetched, "" at the end
}

// fetchSends gets one page of sends, or every page when all is set.
func fetchSends(ctx context.Context, c *client, q url.Values, all bool) (*sendsPages, error) {
	out := &sendsPages{}
	seen := map[string]bool{}
	for {
		var page listAnswer
		raw, err := c.getJSON(ctx, "/v1/sends", q, &page)
		if err != nil {
			return out, err
		}
		out.recs = append(out.recs, page.Sends...)
		out.pages = append(out.pages, raw)
		out.next = page.NextCursor
		if !all || page.NextCursor == "" {
			return out, nil
		}
		if seen[page.NextCursor] {
			return out, &transportError{msg: "GET /v1/sends: the server repeated a cursor; stopping"}
		}
		seen[page.NextCursor] = true
		q.Set("cursor", page.NextCursor)
	}
}

// json is the API's page when there was one, else the pages' sends joined
// in one {"sends":[...],"next_cursor":""}.
func (p *sendsPages) json() ([]byte, error) {
	if len(p.pages) == 1 {
		return p.pages[0], nil
	}
	joined := []json.RawMessage{}
	for _, raw := range p.pages {
		var page struct {
			Sends []json.RawMessage `json:"sends"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return nil, err
		}
		joined = append(joined, page.Sends...)
	}
	return json.Marshal(struct {
		Sends      []json.RawMessage `json:"sends"`
		NextCursor string            `json:"next_cursor"`
	}{joined, p.next})
}

func parseState(cmd, s string) error {
	if s == "" || tasks.State(s).Valid() {
		return nil
	}
	names := make([]string, len(tasks.States))
	for i, st := range tasks.States {
		names[i] = string(st)
	}
	return &usageError{msg: fmt.Sprintf("%s: unknown state %q; want one of %s", cmd, s, strings.Join(names, ", ")), cmd: cmd}
}

func checkLimit(cmd string, n int) error {
	if n < 0 || n > 1000 {
		return &usageError{msg: fmt.Sprintf("%s: -limit %d: want 1..1000", cmd, n), cmd: cmd}
	}
	return nil
}

func (a *app) cmdList(ctx context.Context, args []string) error {
	fs := a.newFlags("list")
	state := fs.String("state", "", "only sends in this `state`")
	account := fs.String("account", "", "only sends of this account `id`")
	limit := fs.Int("limit", 0, "page size, 1..1000 (server default when 0)")
	cursor := fs.String("cursor", "", "start at this `cursor` (printed after a page that has more)")
	all := fs.Bool("all", false, "follow cursors to the last page")
	oldest := fs.Bool("oldest", false, "oldest first")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("list", pos, 0, ""); err != nil {
		return err
	}
	if err := parseState("list", *state); err != nil {
		return err
	}
	if err := checkLimit("list", *limit); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	q := listQuery(*state, *account, *limit, *cursor, *oldest)
	got, err := fetchSends(ctx, c, q, *all)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if a.json() {
		b, err := got.json()
		if err != nil {
			return err
		}
		return writePrettyJSON(a.stdout, b)
	}
	a.printSends(got.recs, false)
	if got.next != "" {
		fmt.Fprintf(a.stderr, "more sends: add -cursor %s (or -all)\n", got.next)
	}
	return nil
}

func listQuery(state, account string, limit int, cursor string, oldest bool) url.Values {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if account != "" {
		q.Set("account_id", account)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if oldest {
		q.Set("order", "oldest")
	}
	return q
}

// printSends prints a table of sends; withDigest adds the digest column
// (what -from-list approves). When a send waits, REASON says why and an
// UNTIL column says until when ("resume" for a send held by a pause).
func (a *app) printSends(recs []tasks.Record, withDigest bool) {
	z := a.zone
	if len(recs) == 0 {
		fmt.Fprintln(a.stdout, "no sends")
		return
	}
	waits := slices.ContainsFunc(recs, func(r tasks.Record) bool { return r.Wait != nil })
	tw := newTable(a.stdout)
	head := []string{"SEND_ID", "STATE", "REASON"}
	if waits {
		head = append(head, "UNTIL")
	}
	head = append(head, "OPERATION", "ACCOUNT", "TO", "TEXT", "CREATED")
	if withDigest {
		head = append(head, "DIGEST")
	}
	row(tw, head...)
	for _, r := range recs {
		reason := r.Reason
		if r.Wait != nil && reason == "" {
			reason = r.Wait.Reason
		}
		cells := []string{cell(r.SendID), cell(string(r.State)), cell(string(reason))}
		if waits {
			cells = append(cells, z.waitUntil(r.Wait))
		}
		cells = append(cells,
			cell(string(r.Request.Operation)), cell(r.Request.AccountID), cell(truncate(recipient(r.Request), 32)),
			cell(truncate(r.Request.Text, listTextWidth)), z.fmtTime(r.CreatedAt),
		)
		if withDigest {
			cells = append(cells, shortDigest(r.Digest))
		}
		row(tw, cells...)
	}
	tw.Flush()
}

// recipient says to whom or on what a send acts.
func recipient(req tasks.SendRequest) string {
	switch req.Operation {
	case tasks.OpCreateChat:
		return "new chat with " + strings.Join(req.AttendeeIDs, ", ")
	case tasks.OpReaction, tasks.OpEdit, tasks.OpDelete:
		s := "message " + req.MessageID
		if req.ChatID != "" {
			s += " in chat " + req.ChatID
		}
		return s
	}
	if req.ChatID != "" {
		return "chat " + req.ChatID
	}
	return ""
}

func (a *app) cmdShow(ctx context.Context, args []string) error {
	fs := a.newFlags("show")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("show", pos, 1, "SEND_ID"); err != nil {
		return err
	}
	id := pos[0]
	c, err := a.client()
	if err != nil {
		return err
	}
	var rec tasks.Record
	raw, err := c.getJSON(ctx, pathOf("/v1/sends/", id), nil, &rec)
	if err != nil {
		return fmt.Errorf("show %s: %w", id, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	a.zone.printRecord(a.stdout, &rec)
	return nil
}

// printRecord shows everything about a send, nothing truncated: this is
// what an approver reviews.
func (z zone) printRecord(w io.Writer, r *tasks.Record) {
	req := r.Request
	fmt.Fprintf(w, "DIGEST     %s\n", r.Digest)
	if r.State == tasks.StatePendingApproval {
		fmt.Fprintf(w, "           approve with: sendctl approve %s -digest %s\n", r.SendID, r.Digest)
	}
	fmt.Fprintln(w)

	tw := newTable(w)
	kv := func(k, v string) { row(tw, k, cell(v)) }
	kv("Send", r.SendID)
	kv("State", string(r.State))
	if r.Reason != "" {
		kv("Reason", string(r.Reason))
	}
	if r.Detail != "" {
		kv("Detail", r.Detail)
	}
	if r.Wait != nil {
		kv("Waiting", fmt.Sprintf("until %s (%s)", z.waitUntil(r.Wait), r.Wait.Reason))
	}
	if rc := r.Reconcile; rc != nil {
		kv("Attempt started", z.fmtTime(rc.AttemptStartedAt)+" (Redis clock)")
		if wm := rc.Watermark; wm != nil {
			mark := "no message"
			if wm.MessageID != "" {
				mark = "message " + wm.MessageID
			}
			kv("Watermark", fmt.Sprintf("%s at %s (provider clock), chat %s", mark, z.fmtTime(wm.At), wm.ChatID))
		}
		if rc.Why != "" {
			kv("Undecided", rc.Why)
			kv("Next check", z.fmtTime(rc.NextCheck))
		}
	}
	kv("Operation", string(req.Operation))
	kv("Account", req.AccountID)
	if req.ChatID != "" {
		kv("Chat", req.ChatID)
	}
	for i, id := range req.AttendeeIDs {
		kv(fmt.Sprintf("Attendee %d", i+1), id)
	}
	if req.MessageID != "" {
		kv("Message", req.MessageID)
	}
	if req.Reaction != "" {
		kv("Reaction", showText(req.Reaction))
	}
	kv("Requested by", req.RequestedBy)
	kv("Created", z.fmtTime(r.CreatedAt))
	kv("Updated", z.fmtTime(r.UpdatedAt))
	kv("Approval deadline", z.fmtTime(r.ApprovalDeadline))
	if req.StopIfRepliedSince != nil {
		kv("Stop if replied since", z.fmtTimePtr(req.StopIfRepliedSince))
	}
	if req.Window != nil {
		kv("Window", z.windowText(req.Window))
	}
	if len(req.Metadata) > 0 {
		kv("Metadata", string(req.Metadata))
	}
	if r.Approval != nil {
		kv("Approved", z.decisionText(r.Approval))
	}
	if r.Decision != nil {
		kv("Decided", z.decisionText(r.Decision))
	}
	kv("Attempts", strconv.Itoa(r.Attempts))
	if res := r.Result; res != nil {
		kv("Result", z.resultText(res))
	}
	tw.Flush()

	if req.Text != "" {
		fmt.Fprintf(w, "\nText (%d characters):\n", utf8.RuneCountInString(req.Text))
		for _, line := range strings.Split(showText(req.Text), "\n") {
			fmt.Fprintf(w, "  | %s\n", line)
		}
		if hasHidden(req.Text) {
			fmt.Fprintln(w, "  WARNING: the text holds invisible or control characters, shown above as \\uXXXX")
		}
	}
	if len(req.Attachments) > 0 {
		fmt.Fprintf(w, "\nAttachments (%d):\n", len(req.Attachments))
		for i, at := range req.Attachments {
			fmt.Fprintf(w, "  %d. %s  %s  %d bytes\n", i+1, cell(at.Filename), cell(at.ContentType), at.Size)
			fmt.Fprintf(w, "     url     %s\n", cell(at.URL))
			fmt.Fprintf(w, "     sha256  %s\n", cell(at.SHA256))
		}
	}
	if len(r.History) > 0 {
		fmt.Fprintln(w, "\nHistory:")
		tw := newTable(w)
		row(tw, "  AT", "STATE", "REASON", "BY", "ATTEMPT", "DETAIL")
		for _, e := range r.History {
			attempt := "-"
			if e.Attempt > 0 {
				attempt = strconv.Itoa(e.Attempt)
			}
			row(tw, "  "+z.fmtTime(e.At), cell(string(e.State)), cell(string(e.Reason)), cell(e.By), attempt, cell(e.Detail))
		}
		tw.Flush()
	}
}

func (z zone) decisionText(d *tasks.Decision) string {
	s := fmt.Sprintf("by %s at %s", d.By, z.fmtTime(d.At))
	if d.Digest != "" {
		s += ", digest " + shortDigest(d.Digest)
	}
	if d.Note != "" {
		s += ": " + d.Note
	}
	return s
}

func (z zone) resultText(r *tasks.Result) string {
	parts := []string{string(r.State)}
	if r.Reason != "" {
		parts = append(parts, "reason "+string(r.Reason))
	}
	if r.MessageID != "" {
		parts = append(parts, "message "+r.MessageID)
	}
	if r.ChatID != "" {
		parts = append(parts, "chat "+r.ChatID)
	}
	if r.ApprovedBy != "" {
		parts = append(parts, "approved by "+r.ApprovedBy)
	}
	parts = append(parts, "finished "+z.fmtTime(r.FinishedAt))
	if r.DryRun {
		parts = append(parts, "DRY RUN: nothing was sent")
	}
	return strings.Join(parts, ", ")
}

func (z zone) windowText(w *tasks.Window) string {
	var parts []string
	if w.NotBefore != nil {
		parts = append(parts, "not before "+z.fmtTime(*w.NotBefore))
	}
	if w.NotAfter != nil {
		parts = append(parts, "not after "+z.fmtTime(*w.NotAfter))
	}
	if len(w.Days) > 0 {
		parts = append(parts, strings.Join(w.Days, ","))
	}
	if w.From != "" || w.To != "" {
		parts = append(parts, w.From+"-"+w.To)
	}
	if w.Timezone != "" {
		parts = append(parts, w.Timezone)
	}
	return strings.Join(parts, ", ")
}

// waitUntil is when a waiting send goes on: its time, "resume" for a send
// held by a pause (it has none), "-" for a send that does not wait.
func (z zone) waitUntil(w *tasks.Wait) string {
	switch {
	case w == nil:
		return "-"
	case w.Until.IsZero():
		return "resume"
	}
	return z.fmtTime(w.Until)
}
