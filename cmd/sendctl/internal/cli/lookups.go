package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/sendworker/sendworker/provider"
)

// The provider look-ups are read-only and go through the admin API, which
// answers with the provider's objects.

// providerPage is one page of a provider list (field names match in any
// case, so both {"items","cursor"} and {"Items","Cursor"} decode).
type providerPage[T any] struct {
	Items  []T             `json:"items"`
	Cursor json.RawMessage `json:"cursor"`
}

// next returns the page's cursor, "" on the last page.
func (p *providerPage[T]) next() string {
	raw := bytes.TrimSpace(p.Cursor)
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

func pageQuery(limit int, cursor string) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q
}

func (a *app) cmdAccount(ctx context.Context, args []string) error {
	fs := a.newFlags("account")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("account", pos, 1, "ACCOUNT_ID"); err != nil {
		return err
	}
	id := pos[0]
	c, err := a.client()
	if err != nil {
		return err
	}
	var acc provider.Account
	raw, err := c.getJSON(ctx, pathOf("/v1/provider/accounts/", id), nil, &acc)
	if err != nil {
		return fmt.Errorf("account %s: %w", id, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	tw := newTable(a.stdout)
	kv := func(k, v string) { row(tw, k, cell(v)) }
	kv("Account", acc.ID)
	kv("Name", acc.Name)
	kv("Type", acc.Type)
	kv("Phone", acc.ConnectionParams.IM.PhoneNumber)
	status := acc.Status()
	if status == "" {
		status = "unknown (no source)"
	}
	kv("Status", status)
	kv("Can send", yesNo(acc.Healthy()))
	kv("Created", a.zone.fmtTime(acc.CreatedAt.Time))
	for _, s := range acc.Sources {
		kv("Source "+cell(s.ID), s.Status)
	}
	return tw.Flush()
}

func (a *app) cmdChats(ctx context.Context, args []string) error {
	fs := a.newFlags("chats")
	account := fs.String("account", "", "account `id` (required)")
	limit := fs.Int("limit", 0, "page size (provider default when 0)")
	cursor := fs.String("cursor", "", "start at this `cursor`")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("chats", pos, 0, ""); err != nil {
		return err
	}
	if *account == "" {
		return &usageError{msg: "chats: -account is required", cmd: "chats"}
	}
	if *limit < 0 {
		return &usageError{msg: "chats: -limit must not be negative", cmd: "chats"}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	q := pageQuery(*limit, *cursor)
	q.Set("account_id", *account)
	var page providerPage[provider.Chat]
	raw, err := c.getJSON(ctx, "/v1/provider/chats", q, &page)
	if err != nil {
		return fmt.Errorf("chats: %w", err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	if len(page.Items) == 0 {
		fmt.Fprintln(a.stdout, "no chats")
	} else {
		tw := newTable(a.stdout)
		row(tw, "CHAT_ID", "NAME", "TYPE", "ATTENDEE", "UNREAD", "LAST_ACTIVITY")
		for _, ch := range page.Items {
			row(tw, cell(ch.ID), cell(truncate(ch.Name, 30)), chatType(ch.Type), cell(ch.AttendeeProviderID),
				strconv.Itoa(ch.UnreadCount), a.zone.fmtTime(ch.Timestamp.Time))
		}
		tw.Flush()
	}
	if next := page.next(); next != "" {
		fmt.Fprintf(a.stderr, "more chats: add -cursor %s\n", next)
	}
	return nil
}

func chatType(t int) string {
	switch t {
	case provider.ChatSingle:
		return "single"
	case provider.ChatGroup:
		return "group"
	case provider.ChatChannel:
		return "channel"
	}
	return strconv.Itoa(t)
}

func (a *app) cmdMessages(ctx context.Context, args []string) error {
	fs := a.newFlags("messages")
	limit := fs.Int("limit", 0, "how many of the latest messages (provider default when 0)")
	cursor := fs.String("cursor", "", "older messages: the `cursor` printed after a page")
	full := fs.Bool("full", false, "print whole texts instead of truncating them")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("messages", pos, 1, "CHAT_ID"); err != nil {
		return err
	}
	if *limit < 0 {
		return &usageError{msg: "messages: -limit must not be negative", cmd: "messages"}
	}
	id := pos[0]
	c, err := a.client()
	if err != nil {
		return err
	}
	var page providerPage[provider.Message]
	raw, err := c.getJSON(ctx, pathOf("/v1/provider/chats/", id, "/messages"), pageQuery(*limit, *cursor), &page)
	if err != nil {
		return fmt.Errorf("messages %s: %w", id, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	if len(page.Items) == 0 {
		fmt.Fprintln(a.stdout, "no messages")
	} else {
		tw := newTable(a.stdout)
		row(tw, "TIME", "FROM", "MESSAGE_ID", "TEXT")
		// The provider lists newest first; a conversation reads oldest first.
		for i := len(page.Items) - 1; i >= 0; i-- {
			m := page.Items[i]
			who := "contact"
			if m.IsSender {
				who = "us"
			}
			text := messageText(m)
			if !*full {
				text = truncate(text, 80)
			}
			row(tw, a.zone.fmtTime(m.Timestamp.Time), who, cell(m.ID), cell(text))
		}
		tw.Flush()
	}
	if next := page.next(); next != "" {
		fmt.Fprintf(a.stderr, "older messages: add -cursor %s\n", next)
	}
	return nil
}

// messageText is a message's text with marks for what a table cannot show.
func messageText(m provider.Message) string {
	var parts []string
	if m.Deleted {
		parts = append(parts, "[deleted]")
	}
	if m.Text != "" {
		parts = append(parts, m.Text)
	}
	for _, at := range m.Attachments {
		name := at.FileName
		if name == "" {
			name = at.Type
		}
		parts = append(parts, "[attachment: "+name+"]")
	}
	if m.Edited {
		parts = append(parts, "(edited)")
	}
	for _, r := range m.Reactions {
		parts = append(parts, "[reaction "+r.Value+"]")
	}
	return strings.Join(parts, " ")
}

func (a *app) cmdAttendees(ctx context.Context, args []string) error {
	fs := a.newFlags("attendees")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("attendees", pos, 1, "CHAT_ID"); err != nil {
		return err
	}
	id := pos[0]
	c, err := a.client()
	if err != nil {
		return err
	}
	var page providerPage[provider.Attendee]
	raw, err := c.getJSON(ctx, pathOf("/v1/provider/chats/", id, "/attendees"), nil, &page)
	if err != nil {
		return fmt.Errorf("attendees %s: %w", id, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	if len(page.Items) == 0 {
		fmt.Fprintln(a.stdout, "no attendees")
		return nil
	}
	tw := newTable(a.stdout)
	row(tw, "ATTENDEE_ID", "PROVIDER_ID", "NAME", "SELF")
	for _, at := range page.Items {
		row(tw, cell(at.ID), cell(at.ProviderID), cell(truncate(at.Name, 30)), yesNo(bool(at.IsSelf)))
	}
	return tw.Flush()
}
