package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// Limits of the pages.
const (
	queuePageSize   = 50
	queueScanMax    = 2000 // sends looked at per queue page when filters drop many
	conversationLen = 20   // last messages shown on a send page
	maxBulk         = 100  // sends of one bulk decision (a page holds at most 50)
)

// base is what every page's layout needs.
type base struct {
	Who     *Identity
	CSRF    string
	Title   string
	Nav     string
	Notice  string // a neutral message (done)
	Problem string // what went wrong, nothing changed
	Pending int64  // pending sends in the caller's scope, for the title
}

func (c *Console) base(r *request, title, nav string) base {
	b := base{Who: r.who, CSRF: r.sess.CSRF, Title: title, Nav: nav}
	b.Pending, _ = c.pendingCount(r, "")
	return b
}

// pendingCount counts the pending sends the caller may see (of account, if set).
func (c *Console) pendingCount(r *request, account string) (int64, error) {
	l := c.svc.Ledger()
	if account != "" || !r.who.Accounts.Limited() {
		return l.PendingCount(r.Context(), account)
	}
	var total int64
	for _, a := range r.who.Accounts {
		n, err := l.PendingCount(r.Context(), a)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// row is one send of the queue.
type row struct {
	Rec       *tasks.Record
	Sequence  string
	Step      string
	Preview   string
	Whole     bool // the preview is the whole content: the row may be approved from the queue
	Recipient string
	Mine      bool
}

func metaString(raw json.RawMessage, key string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m[key] == nil {
		return ""
	}
	var s string
	if json.Unmarshal(m[key], &s) == nil {
		return s
	}
	return string(bytes.TrimSpace(m[key]))
}

func recipientOf(req *tasks.SendRequest) string {
	switch {
	case req.ChatID != "":
		return req.ChatID
	case len(req.AttendeeIDs) > 0:
		return strings.Join(req.AttendeeIDs, ", ")
	}
	return req.MessageID
}

// previewOf is the queue's one-line view of a send, and whether it is all of it: a text cut
// short or a send with attachments must be opened (and its whole content seen) to be approved.
func previewOf(req *tasks.SendRequest) (string, bool) {
	whole := true
	s := req.Text
	switch req.Operation {
	case tasks.OpReaction:
		s = "reaction " + req.Reaction
	case tasks.OpDelete:
		s = "delete message " + req.MessageID
	}
	if len(req.Attachments) > 0 {
		s += fmt.Sprintf(" [+%d attachment(s)]", len(req.Attachments))
		whole = false
	}
	if r := []rune(s); len(r) > 140 {
		s = string(r[:140]) + "…"
		whole = false
	}
	return s, whole
}

type queueFilter struct {
	Account, Sequence, Step string
}

func (f queueFilter) Active() bool { return f.Account != "" || f.Sequence != "" || f.Step != "" }

// GET /console/?account=&sequence=&step=&after=
func (c *Console) queue(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	f := queueFilter{Account: q.Get("account"), Sequence: q.Get("sequence"), Step: q.Get("step")}
	if f.Account != "" && !r.who.Accounts.Allows(f.Account) {
		c.errorPage(w, r.Request, r.who, http.StatusForbidden, "You may review only the accounts "+strings.Join(r.who.Accounts, ", ")+".")
		return nil
	}
	keep := func(rec *tasks.Record) bool {
		if !r.who.Accounts.Allows(rec.Request.AccountID) || (f.Account != "" && rec.Request.AccountID != f.Account) {
			return false
		}
		return (f.Sequence == "" || metaString(rec.Request.Metadata, "sequence") == f.Sequence) &&
			(f.Step == "" || metaString(rec.Request.Metadata, "step") == f.Step)
	}
	if !f.Active() && !r.who.Accounts.Limited() {
		keep = nil // every pending send is shown
	}
	page, err := c.svc.Ledger().Queue(r.Context(), ledger.QueueQuery{After: q.Get("after"), Limit: queuePageSize, ScanMax: queueScanMax, Keep: keep})
	if errors.Is(err, ledger.ErrBadQuery) {
		c.errorPage(w, r.Request, r.who, http.StatusBadRequest, "That page link is not valid any more; start from the top of the queue.")
		return nil
	}
	if err != nil {
		return err
	}
	rows := make([]row, len(page.Records))
	for i, rec := range page.Records {
		preview, whole := previewOf(&rec.Request)
		rows[i] = row{Rec: rec, Sequence: metaString(rec.Request.Metadata, "sequence"), Step: metaString(rec.Request.Metadata, "step"),
			Preview: preview, Whole: whole, Recipient: recipientOf(&rec.Request), Mine: rec.Request.RequestedBy == r.who.Name}
	}
	b := c.base(r, "Queue", "queue")
	var inAccount int64 = -1
	if f.Account != "" {
		inAccount, _ = c.pendingCount(r, f.Account)
	}
	b.Notice = q.Get("ok")
	next := ""
	if page.Next != "" {
		v := q
		v.Set("after", page.Next)
		next = Prefix + "?" + v.Encode()
	}
	c.render(w, r.Request, http.StatusOK, "queue", map[string]any{
		"Rows": rows, "Filter": f, "Next": next, "First": q.Get("after") == "", "Scanned": page.Scanned,
		"InAccount": inAccount, "Partial": q.Get("partial") == "1", "Now": c.opts.Now(),
	}, &b, nil)
	return nil
}

// GET /console/live: the count for the title and the poller.
func (c *Console) live(w http.ResponseWriter, r *request) error {
	n, err := c.pendingCount(r, "")
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(map[string]int64{"pending": n})
}

// message is one line of the conversation.
type message struct {
	// Near marks, on a send whose outcome is unknown, our own messages
	// sent within attemptWindow of one of its attempts: the candidates.
	Near   bool
	ID     string
	Mine   bool
	Sender string
	Text   string
	At     time.Time
	Files  []string
}

type sendView struct {
	Rec          *tasks.Record
	Sequence     string
	Step         string
	AccountName  string
	AccountPhone string
	AccountState string
	Recipients   []string
	Conversation []message
	ConvProblem  string
	Mine         bool
	CanDecide    bool
	CanResolve   bool
	Next         string
}

// loadSend reads a send the caller may see, or writes a 404 page.
func (c *Console) loadSend(w http.ResponseWriter, r *request) (*tasks.Record, bool, error) {
	id := r.PathValue("send_id")
	rec, err := c.svc.Ledger().Get(r.Context(), id)
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && !r.who.Accounts.Allows(rec.Request.AccountID)) {
		c.errorPage(w, r.Request, r.who, http.StatusNotFound, "There is no send "+id+" (or it is not one of your accounts').")
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return rec, true, nil
}

// GET /console/sends/{send_id}
func (c *Console) send(w http.ResponseWriter, r *request) error {
	rec, ok, err := c.loadSend(w, r)
	if !ok {
		return err
	}
	b := c.base(r, "Send "+rec.SendID, "queue")
	b.Notice = r.URL.Query().Get("ok")
	return c.renderSend(w, r, http.StatusOK, rec, b)
}

func (c *Console) renderSend(w http.ResponseWriter, r *request, status int, rec *tasks.Record, b base) error {
	v := c.sendView(r, rec)
	c.render(w, r.Request, status, "send", map[string]any{"V": v, "Now": c.opts.Now()}, &b, nil)
	return nil
}

func (c *Console) sendView(r *request, rec *tasks.Record) sendView {
	ctx := r.Context()
	req := &rec.Request
	v := sendView{Rec: rec, Sequence: metaString(req.Metadata, "sequence"), Step: metaString(req.Metadata, "step"),
		Mine: req.RequestedBy == r.who.Name}
	v.CanDecide = rec.State == tasks.StatePendingApproval && r.who.Has("approver") && !v.Mine
	v.CanResolve = rec.State == tasks.StateNeedsReview && r.who.Has("admin")
	if p := c.opts.Provider; p != nil {
		if acc, err := p.GetAccount(ctx, req.AccountID); err == nil {
			v.AccountName, v.AccountPhone, v.AccountState = acc.Name, acc.ConnectionParams.IM.PhoneNumber, acc.Status()
		}
		names := map[string]string{}
		if req.ChatID != "" {
			if at, err := p.ListAttendees(ctx, req.ChatID, provider.ListAttendeesParams{Limit: 50}); err == nil {
				for _, a := range at.Items {
					names[a.ID], names[a.ProviderID] = a.Name, a.Name
					if !a.IsSelf {
						v.Recipients = append(v.Recipients, nameAnd(a.Name, a.ProviderID))
					}
				}
			}
			msgs, err := p.ListMessages(ctx, req.ChatID, provider.ListMessagesParams{Limit: conversationLen})
			if err != nil {
				v.ConvProblem = "The conversation could not be read from the provider just now."
				c.log.Warn("console: conversation read failed", zap.String("send_id", rec.SendID), zap.Error(err))
			} else {
				for i := len(msgs.Items) - 1; i >= 0; i-- { // the provider lists newest first
					m := msgs.Items[i]
					sender := names[m.SenderAttendeeID]
					if sender == "" {
						sender = names[m.SenderID]
					}
					if bool(m.IsSender) {
						sender = "You (" + firstNonEmpty(v.AccountName, req.AccountID) + ")"
					} else if sender == "" {
						sender = m.SenderID
					}
					msg := message{ID: m.ID, Mine: bool(m.IsSender), Sender: sender, Text: m.Text, At: m.Timestamp.Time}
					msg.Near = msg.Mine && rec.State == tasks.StateNeedsReview && nearAttempt(rec, msg.At)
					for _, a := range m.Attachments {
						msg.Files = append(msg.Files, firstNonEmpty(a.FileName, a.Type))
					}
					v.Conversation = append(v.Conversation, msg)
				}
			}
		} else {
			v.Recipients = req.AttendeeIDs
			v.ConvProblem = "This send starts a new chat: there is no conversation yet."
		}
	}
	if rec.State == tasks.StatePendingApproval {
		var keep func(*tasks.Record) bool
		if r.who.Accounts.Limited() {
			keep = func(x *tasks.Record) bool { return r.who.Accounts.Allows(x.Request.AccountID) }
		}
		if p, err := c.svc.Ledger().Queue(ctx, ledger.QueueQuery{After: ledger.QueueCursorOf(rec), Limit: 1, ScanMax: 200, Keep: keep}); err == nil && len(p.Records) == 1 {
			v.Next = p.Records[0].SendID
		}
	}
	return v
}

// attemptWindow is how close to an attempt a message of ours counts as its
// possible delivery on the send page of a send that needs review.
const attemptWindow = 10 * time.Minute

func nearAttempt(rec *tasks.Record, at time.Time) bool {
	for _, ev := range rec.History {
		if ev.Attempt > 0 && ev.At.Sub(at).Abs() <= attemptWindow {
			return true
		}
	}
	return false
}

func nameAnd(name, id string) string {
	if name == "" {
		return id
	}
	return name + " (" + id + ")"
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// decisionProblem explains a refused decision in words, or "" when err is
// not a refusal (a failure of ours).
func decisionProblem(err error) (int, string) {
	var ve *tasks.ValidationError
	switch {
	case errors.Is(err, ledger.ErrDigestMismatch):
		return http.StatusConflict, "This send changed since the page was shown: nothing was approved. Read it again below."
	case errors.Is(err, ledger.ErrSelfApproval):
		return http.StatusForbidden, "You requested this send: someone else must approve it. Nothing was approved."
	case errors.Is(err, ledger.ErrNotPending), errors.Is(err, ledger.ErrFinal), errors.Is(err, ledger.ErrTooLate):
		return http.StatusConflict, "This send was decided or moved on meanwhile (see its state below): nothing was changed."
	case errors.Is(err, ledger.ErrNotFound):
		return http.StatusNotFound, "This send does not exist any more."
	case errors.As(err, &ve):
		return http.StatusBadRequest, "The form was incomplete: " + ve.Error()
	}
	return 0, ""
}

// POST /console/sends/{send_id}/approve (digest)
func (c *Console) approve(w http.ResponseWriter, r *request) error {
	return c.decide(w, r, "approved", func(id string) (*tasks.Record, error) {
		return c.svc.Approve(r.Context(), id, r.PostFormValue("digest"), r.who.Name)
	})
}

// POST /console/sends/{send_id}/reject (reason)
func (c *Console) reject(w http.ResponseWriter, r *request) error {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		rec, ok, err := c.loadSend(w, r)
		if !ok {
			return err
		}
		b := c.base(r, "Send "+rec.SendID, "queue")
		b.Problem = "Say why the send is rejected: nothing was changed."
		return c.renderSend(w, r, http.StatusBadRequest, rec, b)
	}
	return c.decide(w, r, "rejected", func(id string) (*tasks.Record, error) {
		return c.svc.Reject(r.Context(), id, r.who.Name, reason)
	})
}

func (c *Console) decide(w http.ResponseWriter, r *request, done string, fn func(id string) (*tasks.Record, error)) error {
	rec, ok, err := c.loadSend(w, r)
	if !ok {
		return err
	}
	v := c.sendView(r, rec) // the next send, found before this one leaves the queue
	if _, err := fn(rec.SendID); err != nil {
		status, problem := decisionProblem(err)
		if status == 0 {
			return err
		}
		if rec, err = c.svc.Ledger().Get(r.Context(), rec.SendID); err != nil {
			return err
		}
		b := c.base(r, "Send "+rec.SendID, "queue")
		b.Problem = problem
		return c.renderSend(w, r, status, rec, b)
	}
	msg := strings.ToUpper(done[:1]) + done[1:] + " " + rec.SendID + "."
	to := Prefix + "?ok=" + urlQueryEscape(msg)
	if v.Next != "" && r.PostFormValue("then") != "queue" {
		to = Prefix + "sends/" + urlPathEscape(v.Next) + "?ok=" + urlQueryEscape(msg)
	}
	http.Redirect(w, r.Request, to, http.StatusSeeOther)
	return nil
}

// POST /console/sends/{send_id}/revise (digest, text): the corrected text
// becomes a new revision; the page then shows it to be approved.
func (c *Console) revise(w http.ResponseWriter, r *request) error {
	rec, ok, err := c.loadSend(w, r)
	if !ok {
		return err
	}
	// Browsers send line breaks of a textarea as CRLF; WhatsApp's are LF.
	text := strings.ReplaceAll(r.PostFormValue("text"), "\r\n", "\n")
	out, err := c.svc.Revise(r.Context(), rec.SendID, r.PostFormValue("digest"), text, r.who.Name)
	if err != nil {
		status, problem := decisionProblem(err)
		if status == 0 {
			return err
		}
		if rec, err = c.svc.Ledger().Get(r.Context(), rec.SendID); err != nil {
			return err
		}
		b := c.base(r, "Send "+rec.SendID, "queue")
		b.Problem = strings.Replace(problem, "nothing was approved", "your correction was not saved", 1)
		return c.renderSend(w, r, status, rec, b)
	}
	msg := "Nothing changed: the text is the same."
	if out.Revision != rec.Revision {
		msg = fmt.Sprintf("Saved revision %d. Read it once more, then approve it.", out.Revision)
	}
	http.Redirect(w, r.Request, Prefix+"sends/"+urlPathEscape(rec.SendID)+"?ok="+urlQueryEscape(msg), http.StatusSeeOther)
	return nil
}

// POST /console/sends/{send_id}/resolve (resolution=sent|not_sent|cancel,
// message_id, confirm, note): an admin's finding on a send that needs review.
func (c *Console) resolve(w http.ResponseWriter, r *request) error {
	rec, ok, err := c.loadSend(w, r)
	if !ok {
		return err
	}
	res := ledger.Resolution(r.PostFormValue("resolution"))
	problem := ""
	if res == ledger.ResolveNotSent && r.PostFormValue("confirm") != "yes" {
		problem = "Tick the box to confirm that the message did not go out: it will be sent again. Nothing was changed."
	}
	if problem == "" {
		_, err = c.svc.ResolveReview(r.Context(), rec.SendID, res, r.PostFormValue("message_id"), r.who.Name, strings.TrimSpace(r.PostFormValue("note")))
		if err == nil {
			msg := map[ledger.Resolution]string{ledger.ResolveSent: "Marked sent", ledger.ResolveNotSent: "Marked not sent: it goes out again", ledger.ResolveCancel: "Canceled"}[res]
			http.Redirect(w, r.Request, Prefix+"sends/"+urlPathEscape(rec.SendID)+"?ok="+urlQueryEscape(msg+"."), http.StatusSeeOther)
			return nil
		}
		var ve *tasks.ValidationError
		switch {
		case errors.Is(err, ledger.ErrMessageClaimed):
			problem = "That message is already another send's. Nothing was changed."
		case errors.Is(err, ledger.ErrNotInReview):
			problem = "This send no longer needs review. Nothing was changed."
		case errors.As(err, &ve):
			problem = "The form was incomplete: " + ve.Error()
		default:
			return err
		}
	}
	if rec, err = c.svc.Ledger().Get(r.Context(), rec.SendID); err != nil {
		return err
	}
	b := c.base(r, "Send "+rec.SendID, "review")
	b.Problem = problem
	return c.renderSend(w, r, http.StatusConflict, rec, b)
}

// bulkResult is one line of a bulk decision's answer.
type bulkResult struct {
	SendID  string
	OK      bool
	Problem string
}

// POST /console/bulk: action=approve|reject, item="send_id digest" (each
// ticked row, with the digest it showed), reason (reject).
func (c *Console) bulk(w http.ResponseWriter, r *request) error {
	action, reason := r.PostFormValue("action"), strings.TrimSpace(r.PostFormValue("reason"))
	items := r.PostForm["item"]
	b := c.base(r, "Bulk decision", "queue")
	switch {
	case len(items) == 0:
		b.Problem = "No send was selected: nothing was changed."
	case len(items) > maxBulk:
		b.Problem = fmt.Sprintf("At most %d sends at once: nothing was changed.", maxBulk)
	case action != "approve" && action != "reject":
		b.Problem = "Choose approve or reject: nothing was changed."
	case action == "reject" && reason == "":
		b.Problem = "Say why the sends are rejected: nothing was changed."
	}
	if b.Problem != "" {
		c.render(w, r.Request, http.StatusBadRequest, "bulk", map[string]any{"Action": action}, &b, nil)
		return nil
	}
	var (
		ids  []string
		want []approval.ApproveItem
	)
	for _, it := range items {
		id, digest, _ := strings.Cut(it, " ")
		ids = append(ids, id)
		want = append(want, approval.ApproveItem{SendID: id, Digest: digest})
	}
	recs, err := c.svc.Ledger().Records(r.Context(), ids)
	if err != nil {
		return err
	}
	out := make([]bulkResult, len(ids))
	var keep []int
	for i, rec := range recs {
		if rec == nil || !r.who.Accounts.Allows(rec.Request.AccountID) {
			out[i] = bulkResult{SendID: ids[i], Problem: "no such send"}
			continue
		}
		if _, whole := previewOf(&rec.Request); action == "approve" && !whole {
			// The queue showed only the start of it: approving needs its page, where all of it is shown.
			out[i] = bulkResult{SendID: ids[i], Problem: "not approved: the queue shows only part of this send; open it to read it in full and approve it there"}
			continue
		}
		keep = append(keep, i)
	}
	var res []approval.DecisionResult
	if action == "approve" {
		sel := make([]approval.ApproveItem, len(keep))
		for j, i := range keep {
			sel[j] = want[i]
		}
		res = c.svc.ApproveMany(r.Context(), sel, r.who.Name)
	} else {
		sel := make([]string, len(keep))
		for j, i := range keep {
			sel[j] = ids[i]
		}
		res = c.svc.RejectMany(r.Context(), sel, r.who.Name, reason)
	}
	done := 0
	for j, d := range res {
		i := keep[j]
		out[i] = bulkResult{SendID: ids[i], OK: d.Err == nil}
		if d.Err != nil {
			_, p := decisionProblem(d.Err)
			if p == "" {
				p = "failed on our side; try again"
				c.log.Error("console bulk decision failed", zap.String("send_id", ids[i]), zap.Error(d.Err))
			}
			out[i].Problem = p
			continue
		}
		done++
	}
	past := map[string]string{"approve": "approved", "reject": "rejected"}[action]
	b.Notice = fmt.Sprintf("%d of %d sends %s.", done, len(ids), past)
	c.render(w, r.Request, http.StatusOK, "bulk", map[string]any{"Action": action, "Results": out}, &b, nil)
	return nil
}
