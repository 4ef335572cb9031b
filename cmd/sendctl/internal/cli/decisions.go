package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

const approveDetails = `
An approval names the digest it approves: copy it from "sendctl show SEND_ID".
If the send is not the one you reviewed, the API refuses (exit 4).

Bulk: -f FILE holds [{"send_id":"...","digest":"..."}, ...] (or {"items":[...]}).

Reviewing many sends at once takes two runs, so that only what a human was
shown in full gets approved:
  sendctl approve -from-list [-account A] -review FILE
      prints every send pending approval in full (text, attachments,
      recipients, digest) and writes FILE: the send ids with the digest of
      exactly what was printed. Nothing is approved.
  sendctl approve -f FILE
      approves each send of FILE with its digest. A send that changed since
      the review is refused by the API (its digest no longer matches); sends
      enqueued after the review are not in FILE, are not approved, and are
      listed at the end.
Any failed item makes the exit code 7.`

const rejectDetails = `
Several SEND_IDs, or -f FILE, reject in bulk. FILE holds a JSON array of send
ids, {"send_ids":[...]}, or records with a "send_id" (e.g. "sendctl list -o json").
Any failed item makes the exit code 7.`

// normDigest checks a digest typed by a human: 64 hex digits.
func normDigest(cmd, d string) (string, error) {
	d = strings.ToLower(strings.TrimSpace(d))
	if len(d) != 64 || strings.Trim(d, "0123456789abcdef") != "" {
		return "", &usageError{msg: fmt.Sprintf("%s: -digest must be the full 64-hex-digit digest printed by \"sendctl show\"", cmd), cmd: cmd}
	}
	return d, nil
}

type approveItem struct {
	SendID string `json:"send_id"`
	Digest string `json:"digest"`
}

func (a *app) cmdApprove(ctx context.Context, args []string) error {
	fs := a.newFlags("approve")
	digest := fs.String("digest", "", "the `digest` you reviewed (from \"sendctl show\")")
	file := fs.String("f", "", "bulk: approve the send ids and digests in `FILE` (- = standard input)")
	fromList := fs.Bool("from-list", false, "print every pending send in full and write the review file (-review); approves nothing")
	review := fs.String("review", "", "with -from-list: write the send ids and digests printed to `FILE`, for \"approve -f FILE\"")
	state := fs.String("state", string(tasks.StatePendingApproval), "with -from-list: the `state` listed (only pending_approval)")
	account := fs.String("account", "", "with -from-list: only this account `id`")
	limit := fs.Int("limit", 0, "with -from-list: page size of the listing")
	yes := fs.Bool("yes", false, "no longer approves anything: review with -from-list -review FILE, then approve -f FILE")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if !*fromList {
		var listOnly []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "review", "account", "state", "limit":
				listOnly = append(listOnly, "-"+f.Name)
			}
		})
		if len(listOnly) > 0 {
			return &usageError{msg: fmt.Sprintf("approve: %s: only with -from-list", strings.Join(listOnly, ", ")), cmd: "approve"}
		}
	}
	modes := 0
	for _, on := range []bool{len(pos) > 0, *file != "", *fromList} {
		if on {
			modes++
		}
	}
	switch {
	case modes == 0:
		return &usageError{msg: "approve: give SEND_ID -digest D, -f FILE or -from-list", cmd: "approve"}
	case modes > 1:
		return &usageError{msg: "approve: SEND_ID, -f and -from-list exclude each other", cmd: "approve"}
	case *yes:
		return &usageError{msg: "approve: -yes would approve sends nobody was shown in full: run \"sendctl approve -from-list -review FILE\", read what it prints, then \"sendctl approve -f FILE\"", cmd: "approve"}
	case *fromList:
		if *state != string(tasks.StatePendingApproval) {
			return &usageError{msg: "approve: -from-list approves pending sends: -state must be pending_approval", cmd: "approve"}
		}
		if *review == "" {
			return &usageError{msg: "approve: -from-list needs -review FILE: the file the approve run (-f FILE) takes", cmd: "approve"}
		}
		if err := checkLimit("approve", *limit); err != nil {
			return err
		}
		return a.reviewPending(ctx, *account, *limit, *review)
	case *file != "":
		if *digest != "" {
			return &usageError{msg: "approve: with -f the digests come from the file; drop -digest", cmd: "approve"}
		}
		data, err := a.readInput("approve", *file)
		if err != nil {
			return err
		}
		rf, err := parseApproveFile(data)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("approve: %s: %v", *file, err), cmd: "approve"}
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		err = a.approveMany(ctx, c, rf.Items)
		if rf.Reviewed != nil {
			if uerr := a.listUnreviewed(ctx, c, rf); uerr != nil && err == nil {
				err = uerr
			}
		}
		return err
	}
	if err := wantArgs("approve", pos, 1, "SEND_ID"); err != nil {
		return err
	}
	id := pos[0]
	if *digest == "" {
		return &usageError{msg: fmt.Sprintf("approve %s: -digest is required: copy it from \"sendctl show %s\"", id, id), cmd: "approve"}
	}
	d, err := normDigest("approve", *digest)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var rec tasks.Record
	raw, _, err := c.send(ctx, http.MethodPost, pathOf("/v1/sends/", id, "/approve"), approveBody{Digest: d}, &rec)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == "digest_mismatch" {
			ae.Message = a.digestMismatch(ctx, c, id, d)
		}
		return fmt.Errorf("approve %s: %w", id, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	fmt.Fprintf(a.stdout, "%s: approved digest %s (state %s)\n", rec.SendID, shortDigest(d), rec.State)
	return nil
}

// digestMismatch explains a refused digest. A send's content is fixed when
// it is enqueued (the same send_id with other content is refused), so a
// digest that is not the send's is never an older version of it: it was
// mistyped or copied from another send. Only when the send's stored content
// does not match its own digest has the send changed behind the approver's
// back.
func (a *app) digestMismatch(ctx context.Context, c *client, id, given string) string {
	var now tasks.Record
	if _, err := c.getJSON(ctx, pathOf("/v1/sends/", id), nil, &now); err != nil || now.Digest == "" {
		return fmt.Sprintf("digest %s is not the digest of send %s; run \"sendctl show %s\" and copy its DIGEST line", shortDigest(given), id, id)
	}
	if now.Request.Digest() != now.Digest {
		return fmt.Sprintf("the send changed since you looked (its digest is now %s); run \"sendctl show %s\" again", shortDigest(now.Digest), id)
	}
	return fmt.Sprintf("wrong digest: %s is not the digest of send %s (%s), which has not changed since it was enqueued; "+
		"copy the DIGEST line of \"sendctl show %s\"", shortDigest(given), id, shortDigest(now.Digest), id)
}

type approveBody struct {
	Digest string `json:"digest"`
}

// reviewFile is what "approve -from-list -review FILE" writes and "approve
// -f FILE" reads. A plain list of items (hand-made from "sendctl show") is
// accepted too; then Reviewed is nil.
type reviewFile struct {
	// Reviewed is when the review run listed the sends; Account the -account it listed.
	Reviewed *time.Time    `json:"reviewed_at,omitempty"`
	Account  string        `json:"account_id,omitempty"`
	Items    []approveItem `json:"items"`
}

func parseApproveFile(data []byte) (*reviewFile, error) {
	trimmed := bytes.TrimSpace(data)
	var rf reviewFile
	var err error
	if len(trimmed) > 0 && trimmed[0] == '{' {
		err = decodeStrict(data, &rf)
	} else {
		err = decodeStrict(data, &rf.Items)
	}
	if err != nil {
		return nil, fmt.Errorf("%s; want [{\"send_id\":\"...\",\"digest\":\"...\"}, ...]", jsonErrorAt(data, err))
	}
	if len(rf.Items) == 0 {
		return nil, errors.New("no items")
	}
	for i, it := range rf.Items {
		if it.SendID == "" || it.Digest == "" {
			return nil, fmt.Errorf("item %d: send_id and digest are both required", i+1)
		}
	}
	return &rf, nil
}

func (a *app) approveMany(ctx context.Context, c *client, items []approveItem) error {
	ans, err := bulk(ctx, c, "/v1/sends:approve", items, func(chunk []approveItem) any {
		return struct {
			Items []approveItem `json:"items"`
		}{chunk}
	})
	if err != nil {
		if len(ans.items) > 0 {
			_ = a.report(ans, func(int) string { return "approved" })
		}
		return fmt.Errorf("approve: %w", err)
	}
	if err := a.report(ans, func(int) string { return "approved" }); err != nil {
		return fmt.Errorf("approve: %w", err)
	}
	return nil
}

// reviewPending prints every send pending approval in full, as "sendctl show"
// does, and writes the review file: for each send printed, the digest of the
// content printed (computed here from it, and checked against the server's).
// It approves nothing.
func (a *app) reviewPending(ctx context.Context, account string, limit int, path string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	q := listQuery(string(tasks.StatePendingApproval), account, limit, "", true)
	got, err := fetchSends(ctx, c, q, true)
	if err != nil {
		return fmt.Errorf("approve: list: %w", err)
	}
	now := time.Now().UTC()
	rf := reviewFile{Reviewed: &now, Account: account, Items: []approveItem{}}
	var shown []tasks.Record
	for _, r := range got.recs {
		if r.State != tasks.StatePendingApproval {
			continue
		}
		if d := r.Request.Digest(); d != r.Digest {
			// What would be printed is not what the digest covers: never put it in the file.
			fmt.Fprintf(a.stderr, "%s: left out: its content does not match its digest %s\n", cell(r.SendID), shortDigest(r.Digest))
			continue
		}
		shown = append(shown, r)
		rf.Items = append(rf.Items, approveItem{SendID: r.SendID, Digest: r.Request.Digest()})
	}
	if a.json() {
		b, err := json.Marshal(struct {
			Sends []tasks.Record `json:"sends"`
		}{shown})
		if err != nil {
			return err
		}
		if err := writePrettyJSON(a.stdout, b); err != nil {
			return err
		}
	} else {
		for i := range shown {
			fmt.Fprintf(a.stdout, "======== %d of %d: %s ========\n", i+1, len(shown), cell(shown[i].SendID))
			a.zone.printRecord(a.stdout, &shown[i])
			fmt.Fprintln(a.stdout)
		}
	}
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return &usageError{msg: fmt.Sprintf("approve: review file: %v", pathErr(err))}
	}
	if len(shown) == 0 {
		fmt.Fprintf(a.stderr, "no send pending approval; %s lists none\n", path)
		return nil
	}
	fmt.Fprintf(a.stderr, "%d send(s) printed in full above and written to %s with their digests.\n"+
		"Approve exactly these with: sendctl approve -f %s\n", len(shown), path, path)
	return nil
}

// listUnreviewed lists the sends pending approval now (of the review's
// account) that the review file does not hold with their current digest:
// enqueued or changed after the review, so not approved by this run.
func (a *app) listUnreviewed(ctx context.Context, c *client, rf *reviewFile) error {
	q := listQuery(string(tasks.StatePendingApproval), rf.Account, 0, "", true)
	got, err := fetchSends(ctx, c, q, true)
	if err != nil {
		return fmt.Errorf("approve: list the sends not reviewed: %w", err)
	}
	reviewed := map[string]string{}
	for _, it := range rf.Items {
		reviewed[it.SendID] = it.Digest
	}
	var left []tasks.Record
	for _, r := range got.recs {
		if r.State != tasks.StatePendingApproval {
			continue
		}
		if d, ok := reviewed[r.SendID]; !ok || d != r.Digest {
			left = append(left, r)
		}
	}
	if len(left) == 0 {
		return nil
	}
	fmt.Fprintf(a.stderr, "%d send(s) pending approval were not approved: enqueued or changed after the review of %s:\n",
		len(left), a.zone.fmtTime(*rf.Reviewed))
	for _, r := range left {
		fmt.Fprintf(a.stderr, "  %s  %s  created %s\n", cell(r.SendID), cell(r.Request.AccountID), a.zone.fmtTime(r.CreatedAt))
	}
	fmt.Fprintln(a.stderr, "review them with: sendctl approve -from-list -review FILE")
	return nil
}

func (a *app) cmdReject(ctx context.Context, args []string) error {
	fs := a.newFlags("reject")
	reason := fs.String("reason", "", "why (recorded with the decision; required)")
	file := fs.String("f", "", "bulk: reject the send ids in `FILE` (- = standard input)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	ids := pos
	switch {
	case *file != "" && len(pos) > 0:
		return &usageError{msg: "reject: give SEND_IDs or -f FILE, not both", cmd: "reject"}
	case *file != "":
		data, err := a.readInput("reject", *file)
		if err != nil {
			return err
		}
		ids, err = parseIDFile(data)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("reject: %s: %v", *file, err), cmd: "reject"}
		}
	case len(pos) == 0:
		return &usageError{msg: "reject: missing SEND_ID", cmd: "reject"}
	}
	if strings.TrimSpace(*reason) == "" {
		return &usageError{msg: "reject: -reason is required: say why, it is kept with the decision", cmd: "reject"}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if len(ids) == 1 && *file == "" {
		return a.decideOne(ctx, c, "reject", "rejected", ids[0], *reason)
	}
	ans, err := bulk(ctx, c, "/v1/sends:reject", ids, func(chunk []string) any {
		return struct {
			SendIDs []string `json:"send_ids"`
			Reason  string   `json:"reason"`
		}{chunk, *reason}
	})
	word := func(int) string { return "rejected" }
	if err != nil {
		if len(ans.items) > 0 {
			_ = a.report(ans, word)
		}
		return fmt.Errorf("reject: %w", err)
	}
	if err := a.report(ans, word); err != nil {
		return fmt.Errorf("reject: %w", err)
	}
	return nil
}

// parseIDFile reads send ids: ["a","b"], {"send_ids":[...]}, or objects with
// a "send_id" (a bare array, or under "sends", "items" or "results").
func parseIDFile(data []byte) ([]string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New(jsonErrorAt(data, err))
	}
	var list []any
	switch t := v.(type) {
	case []any:
		list = t
	case map[string]any:
		for _, key := range []string{"send_ids", "sends", "items", "results"} {
			if l, ok := t[key].([]any); ok {
				list = l
				break
			}
		}
		if list == nil {
			return nil, errors.New(`want a JSON array of send ids or {"send_ids":[...]}`)
		}
	default:
		return nil, errors.New(`want a JSON array of send ids or {"send_ids":[...]}`)
	}
	ids := make([]string, 0, len(list))
	for i, item := range list {
		switch t := item.(type) {
		case string:
			ids = append(ids, t)
		case map[string]any:
			id, _ := t["send_id"].(string)
			if id == "" {
				return nil, fmt.Errorf("item %d has no send_id", i+1)
			}
			ids = append(ids, id)
		default:
			return nil, fmt.Errorf("item %d is not a send id", i+1)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("no send ids")
	}
	return ids, nil
}

// decideOne rejects or cancels one send.
func (a *app) decideOne(ctx context.Context, c *client, verb, done, id, reason string) error {
	var rec tasks.Record
	body := struct {
		Reason string `json:"reason,omitempty"`
	}{reason}
	raw, _, err := c.send(ctx, http.MethodPost, pathOf("/v1/sends/", id, "/"+verb), body, &rec)
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, id, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	fmt.Fprintf(a.stdout, "%s: %s (state %s)\n", rec.SendID, done, rec.State)
	return nil
}

func (a *app) cmdCancel(ctx context.Context, args []string) error {
	fs := a.newFlags("cancel")
	reason := fs.String("reason", "", "why (optional, recorded with the decision)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("cancel", pos, 1, "SEND_ID"); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	return a.decideOne(ctx, c, "cancel", "canceled", pos[0], *reason)
}
