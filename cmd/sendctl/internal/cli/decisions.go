package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"

	"github.com/sendworker/sendworker/tasks"
)

const approveDetails = `
An approval names the digest it approves: copy it from "sendctl show SEND_ID".
If the send is not the one you reviewed, the API refuses (exit 4).

Bulk: -f FILE holds [{"send_id":"...","digest":"..."}, ...] (or {"items":[...]}).

-from-list lists the sends pending approval (optionally of one -account) and
prints what would be approved. Only with -yes does it approve each one, with
the digest it printed. Any failed item makes the exit code 7.`

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
	fromList := fs.Bool("from-list", false, "list the pending sends and approve them with the digests shown (needs -yes)")
	state := fs.String("state", string(tasks.StatePendingApproval), "with -from-list: the `state` listed (only pending_approval)")
	account := fs.String("account", "", "with -from-list: only this account `id`")
	limit := fs.Int("limit", 0, "with -from-list: page size of the listing")
	yes := fs.Bool("yes", false, "with -from-list: really approve (otherwise only print what would be approved)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if !*fromList {
		var listOnly []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "yes", "account", "state", "limit":
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
	case *fromList:
		if *state != string(tasks.StatePendingApproval) {
			return &usageError{msg: "approve: -from-list approves pending sends: -state must be pending_approval", cmd: "approve"}
		}
		if err := checkLimit("approve", *limit); err != nil {
			return err
		}
		return a.approveFromList(ctx, *account, *limit, *yes)
	case *file != "":
		if *digest != "" {
			return &usageError{msg: "approve: with -f the digests come from the file; drop -digest", cmd: "approve"}
		}
		data, err := a.readInput("approve", *file)
		if err != nil {
			return err
		}
		items, err := parseApproveFile(data)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("approve: %s: %v", *file, err), cmd: "approve"}
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		return a.approveMany(ctx, c, items)
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
			current := "unknown"
			var now tasks.Record
			if _, gerr := c.getJSON(ctx, pathOf("/v1/sends/", id), nil, &now); gerr == nil {
				current = shortDigest(now.Digest)
			}
			ae.Message = fmt.Sprintf("the send changed since you looked (current digest %s); run \"sendctl show %s\" again", current, id)
		}
		return fmt.Errorf("approve %s: %w", id, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	fmt.Fprintf(a.stdout, "%s: approved digest %s (state %s)\n", rec.SendID, shortDigest(d), rec.State)
	return nil
}

type approveBody struct {
	Digest string `json:"digest"`
}

func parseApproveFile(data []byte) ([]approveItem, error) {
	trimmed := bytes.TrimSpace(data)
	var items []approveItem
	var err error
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var b struct {
			Items []approveItem `json:"items"`
		}
		err = decodeStrict(trimmed, &b)
		items = b.Items
	} else {
		err = decodeStrict(trimmed, &items)
	}
	if err != nil {
		return nil, fmt.Errorf("%v; want [{\"send_id\":\"...\",\"digest\":\"...\"}, ...]", err)
	}
	if len(items) == 0 {
		return nil, errors.New("no items")
	}
	for i, it := range items {
		if it.SendID == "" || it.Digest == "" {
			return nil, fmt.Errorf("item %d: send_id and digest are both required", i+1)
		}
	}
	return items, nil
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

func (a *app) approveFromList(ctx context.Context, account string, limit int, yes bool) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	q := listQuery(string(tasks.StatePendingApproval), account, limit, "", true)
	got, err := fetchSends(ctx, c, q, true)
	if err != nil {
		return fmt.Errorf("approve: list: %w", err)
	}
	var items []approveItem
	var shown []tasks.Record
	for _, r := range got.recs {
		if r.State == tasks.StatePendingApproval {
			items = append(items, approveItem{SendID: r.SendID, Digest: r.Digest})
			shown = append(shown, r)
		}
	}
	if !yes {
		if a.json() {
			b, err := got.json()
			if err != nil {
				return err
			}
			if err := writePrettyJSON(a.stdout, b); err != nil {
				return err
			}
		} else {
			a.printSends(shown, true)
		}
		fmt.Fprintf(a.stderr, "would approve %d send(s); review them, then run again with -yes to approve each with the digest shown\n", len(items))
		return nil
	}
	if len(items) == 0 {
		fmt.Fprintln(a.stderr, "nothing to approve")
		if a.json() {
			return writePrettyJSON(a.stdout, []byte(`{"results":[]}`))
		}
		return nil
	}
	return a.approveMany(ctx, c, items)
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
		return nil, err
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
