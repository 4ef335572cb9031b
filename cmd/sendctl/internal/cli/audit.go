package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const auditDetails = `
Lists the decisions recorded in the audit stream, oldest first: enqueued,
approved, rejected, canceled, expired, paused, resumed, opt-out changes.
-from and -to take RFC 3339 times, or "2026-03-01T09:30" / "2026-03-01" in the
-tz zone. The server reads a bounded part of the stream per call, so a page may
be short: -all follows the cursors to the end.

-jsonl exports every matching entry (all pages) as JSON Lines on standard
output, one entry per line, for archiving or other tools:
  sendctl audit -from 2026-03-01 -to 2026-04-01 -jsonl > audit-2026-03.jsonl`

// auditEntry is one line of GET /v1/audit; unknown fields are kept for -jsonl.
type auditEntry struct {
	ID        string            `json:"id"`
	Event     string            `json:"event"`
	At        time.Time         `json:"at"`
	By        string            `json:"by"`
	SendID    string            `json:"send_id"`
	AccountID string            `json:"account_id"`
	Digest    string            `json:"digest"`
	Note      string            `json:"note"`
	Scope     string            `json:"scope"`
	ContactID string            `json:"contact_id"`
	Other     map[string]string `json:"other"`
}

func (a *app) cmdAudit(ctx context.Context, args []string) error {
	fs := a.newFlags("audit")
	actor := fs.String("actor", "", "only decisions by this `identity` (\"system\" for expiries)")
	send := fs.String("send", "", "only decisions about this send `id`")
	account := fs.String("account", "", "only decisions about this account `id`")
	from := fs.String("from", "", "only decisions at or after this `time`")
	to := fs.String("to", "", "only decisions at or before this `time`")
	limit := fs.Int("limit", 0, "page size, 1..1000 (server default when 0)")
	cursor := fs.String("cursor", "", "start after this `cursor` (printed after a page that has more)")
	all := fs.Bool("all", false, "follow cursors to the end")
	jsonl := fs.Bool("jsonl", false, "export every matching entry as JSON Lines (implies -all)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("audit", pos, 0, ""); err != nil {
		return err
	}
	if err := checkLimit("audit", *limit); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"actor": *actor, "send_id": *send, "account_id": *account, "cursor": *cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, f := range []struct{ name, val string }{{"from", *from}, {"to", *to}} {
		if f.val == "" {
			continue
		}
		t, err := a.zone.parseTime(f.val)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("audit: -%s: %v", f.name, err), cmd: "audit"}
		}
		q.Set(f.name, t.UTC().Format(time.RFC3339Nano))
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var out *bufio.Writer
	if *jsonl {
		out = bufio.NewWriter(a.stdout)
		defer out.Flush()
	}
	var entries []auditEntry
	var pages []json.RawMessage
	seen := map[string]bool{}
	for {
		var page struct {
			Entries    []json.RawMessage `json:"entries"`
			NextCursor string            `json:"next_cursor"`
		}
		raw, err := c.getJSON(ctx, "/v1/audit", q, &page)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		pages = append(pages, raw)
		for _, e := range page.Entries {
			if out != nil {
				// One entry per line, as the server wrote it (compact JSON holds no newline).
				out.Write(e)
				out.WriteByte('\n')
				continue
			}
			var ae auditEntry
			if err := json.Unmarshal(e, &ae); err != nil {
				return &transportError{msg: fmt.Sprintf("GET /v1/audit: an entry is not what sendctl expects: %v", err)}
			}
			entries = append(entries, ae)
		}
		next := page.NextCursor
		if next == "" || !(*all || *jsonl) {
			if next != "" && out == nil && !a.json() {
				fmt.Fprintf(a.stderr, "more entries: add -cursor %s (or -all)\n", next)
			}
			break
		}
		if seen[next] {
			return &transportError{msg: "GET /v1/audit: the server repeated a cursor; stopping"}
		}
		seen[next] = true
		q.Set("cursor", next)
	}
	if out != nil {
		return out.Flush()
	}
	if a.json() {
		if len(pages) == 1 {
			return writePrettyJSON(a.stdout, pages[0])
		}
		b, err := json.Marshal(struct {
			Entries    []auditEntry `json:"entries"`
			NextCursor string       `json:"next_cursor"`
		}{entries, ""})
		if err != nil {
			return err
		}
		return writePrettyJSON(a.stdout, b)
	}
	a.printAudit(entries)
	return nil
}

func (a *app) printAudit(entries []auditEntry) {
	if len(entries) == 0 {
		fmt.Fprintln(a.stdout, "no entries")
		return
	}
	tw := newTable(a.stdout)
	row(tw, "AT", "EVENT", "BY", "SEND", "ACCOUNT", "DETAIL")
	for _, e := range entries {
		var detail []string
		if e.Digest != "" {
			detail = append(detail, "digest "+shortDigest(e.Digest))
		}
		if e.Scope != "" {
			detail = append(detail, "scope "+e.Scope)
		}
		if e.ContactID != "" {
			detail = append(detail, "contact "+e.ContactID)
		}
		if e.Note != "" {
			detail = append(detail, "note: "+truncate(e.Note, 60))
		}
		send, account := e.SendID, e.AccountID
		if send == "" {
			send = "-"
		}
		if account == "" {
			account = "-"
		}
		row(tw, a.zone.fmtTime(e.At), cell(e.Event), cell(e.By), cell(send), cell(account), cell(strings.Join(detail, "; ")))
	}
	tw.Flush()
}
