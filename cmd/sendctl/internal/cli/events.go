package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// eventEntry is one processed provider event of GET /v1/provider/events.
type eventEntry struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Outcome    string    `json:"outcome"`
	Detail     string    `json:"detail"`
	AccountID  string    `json:"account_id"`
	ChatID     string    `json:"chat_id"`
	MessageID  string    `json:"message_id"`
	Status     string    `json:"status"`
	SendIDs    []string  `json:"send_ids"`
	ReceivedAt time.Time `json:"received_at"`
	At         time.Time `json:"at"`
}

// cmdEvents: "events tail [-limit N] [-cursor C] [-f]": the provider's webhook events as sendworker
// processed them (never their text), oldest first; -f keeps polling for new ones.
func (a *app) cmdEvents(ctx context.Context, args []string) error {
	fs := a.newFlags("events")
	limit := fs.Int("limit", 20, "how many events (1..1000): the latest ones, or those after -cursor")
	cursor := fs.String("cursor", "", "show the events after this one (an event id)")
	follow := fs.Bool("f", false, "keep showing new events as they are processed (until interrupted)")
	every := fs.Duration("every", time.Second, "with -f, how often to ask")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || pos[0] != "tail" {
		return &usageError{msg: "events: want tail", cmd: "events"}
	}
	if err := wantArgs("events tail", pos[1:], 0, ""); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return &usageError{msg: "events tail: -limit must be 1..1000", cmd: "events"}
	}
	if *follow && *every < 100*time.Millisecond {
		return &usageError{msg: "events tail: -every must be at least 100ms", cmd: "events"}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	after := *cursor
	header := true
	for {
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if after != "" {
			q.Set("cursor", after)
		}
		var ans struct {
			Events     []eventEntry `json:"events"`
			NextCursor string       `json:"next_cursor"`
		}
		raw, err := c.getJSON(ctx, "/v1/provider/events", q, &ans)
		if err != nil {
			if ctx.Err() != nil && *follow {
				return nil
			}
			return fmt.Errorf("events tail: %w", err)
		}
		if a.json() {
			if !*follow {
				return writePrettyJSON(a.stdout, raw)
			}
			for _, e := range ans.Events {
				b, _ := json.Marshal(e)
				fmt.Fprintln(a.stdout, string(b))
			}
		} else {
			if len(ans.Events) == 0 && !*follow {
				fmt.Fprintln(a.stdout, "no events")
				return nil
			}
			tw := newTable(a.stdout)
			if header && len(ans.Events) > 0 {
				row(tw, "PROCESSED", "TYPE", "OUTCOME", "ACCOUNT", "CHAT", "MESSAGE", "SENDS", "DETAIL")
				header = false
			}
			for _, e := range ans.Events {
				detail := e.Detail
				if e.Status != "" && !strings.Contains(detail, e.Status) {
					detail = strings.TrimSpace(e.Status + " " + detail)
				}
				row(tw, a.zone.fmtTime(e.At), cell(e.Type), cell(e.Outcome), cell(e.AccountID), cell(e.ChatID), cell(e.MessageID),
					cell(strings.Join(e.SendIDs, ",")), cell(detail))
			}
			tw.Flush()
		}
		if ans.NextCursor != "" {
			after = ans.NextCursor
		}
		if !*follow {
			return nil
		}
		t := time.NewTimer(*every)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
