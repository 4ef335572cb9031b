package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// pauseState is the answer of the pause routes.
type pauseState struct {
	Global   bool     `json:"global"`
	Accounts []string `json:"accounts"`
}

func (p pauseState) String() string {
	accounts := "none"
	if len(p.Accounts) > 0 {
		accounts = strings.Join(p.Accounts, ", ")
	}
	return fmt.Sprintf("global pause: %s; paused accounts: %s", onOff(p.Global), cell(accounts))
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "off"
}

func (a *app) cmdPause(ctx context.Context, args []string) error {
	return a.pauseOrResume(ctx, "pause", args)
}

func (a *app) cmdResume(ctx context.Context, args []string) error {
	return a.pauseOrResume(ctx, "resume", args)
}

func (a *app) pauseOrResume(ctx context.Context, verb string, args []string) error {
	fs := a.newFlags(verb)
	account := fs.String("account", "", verb+" only this account `id` (default: everything)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	status := false
	switch {
	case verb == "pause" && len(pos) == 1 && pos[0] == "status":
		if *account != "" {
			return &usageError{msg: "pause status: takes no -account (it shows every switch)", cmd: verb}
		}
		status = true
	case len(pos) > 0:
		return &usageError{msg: fmt.Sprintf("%s: unexpected argument %q", verb, pos[0]), cmd: verb}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var (
		st  pauseState
		raw []byte
	)
	switch {
	case status:
		raw, err = c.getJSON(ctx, "/v1/pause", nil, &st)
	case *account != "":
		raw, _, err = c.send(ctx, http.MethodPost, pathOf("/v1/accounts/", *account, "/"+verb), nil, &st)
	default:
		raw, _, err = c.send(ctx, http.MethodPost, "/v1/"+verb, nil, &st)
	}
	if err != nil {
		if status {
			return fmt.Errorf("pause status: %w", err)
		}
		if *account != "" {
			return fmt.Errorf("%s account %s: %w", verb, *account, err)
		}
		return fmt.Errorf("%s: %w", verb, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	fmt.Fprintln(a.stdout, st.String())
	return nil
}

// optOutEntry is one entry of GET /v1/optouts.
type optOutEntry struct {
	ContactID string    `json:"contact_id"`
	Reason    string    `json:"reason"`
	Source    string    `json:"source"`
	Keyword   string    `json:"keyword"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
}

func (a *app) cmdOptOut(ctx context.Context, args []string) error {
	fs := a.newFlags("optout")
	reason := fs.String("reason", "", "why (add, remove): kept in the entry and the audit trail")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return &usageError{msg: "optout: want add CONTACT_ID, remove CONTACT_ID or list", cmd: "optout"}
	}
	sub := pos[0]
	switch sub {
	case "add", "remove":
		if err := wantArgs("optout "+sub, pos[1:], 1, "CONTACT_ID"); err != nil {
			return err
		}
	case "list":
		if err := wantArgs("optout list", pos[1:], 0, ""); err != nil {
			return err
		}
	default:
		return &usageError{msg: fmt.Sprintf("optout: unknown action %q; want add, remove or list", sub), cmd: "optout"}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var (
		ans struct {
			OptOuts []string      `json:"optouts"`
			Entries []optOutEntry `json:"entries"`
			Ended   []string      `json:"ended"`
		}
		raw []byte
	)
	switch sub {
	case "add":
		body := struct {
			ContactID string `json:"contact_id"`
			Reason    string `json:"reason,omitempty"`
		}{pos[1], *reason}
		raw, _, err = c.send(ctx, http.MethodPost, "/v1/optouts", body, &ans)
	case "remove":
		path := pathOf("/v1/optouts/", pos[1])
		if *reason != "" {
			path += "?reason=" + url.QueryEscape(*reason)
		}
		raw, _, err = c.send(ctx, http.MethodDelete, path, nil, &ans)
	default:
		raw, err = c.getJSON(ctx, "/v1/optouts", nil, &ans)
	}
	if err != nil {
		if sub == "list" {
			return fmt.Errorf("optout list: %w", err)
		}
		return fmt.Errorf("optout %s %s: %w", sub, pos[1], err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	switch sub {
	case "add":
		fmt.Fprintf(a.stdout, "%s: opted out (%d contact(s) on the list)\n", cell(pos[1]), len(ans.OptOuts))
		if len(ans.Ended) > 0 {
			fmt.Fprintf(a.stdout, "%d pending send(s) ended opted_out: %s\n", len(ans.Ended), cell(strings.Join(ans.Ended, ", ")))
		}
	case "remove":
		fmt.Fprintf(a.stdout, "%s: removed from the opt-out list (%d contact(s) on the list)\n", cell(pos[1]), len(ans.OptOuts))
	default:
		if len(ans.OptOuts) == 0 {
			fmt.Fprintln(a.stdout, "no opt-outs")
			return nil
		}
		byID := map[string]optOutEntry{}
		for _, e := range ans.Entries {
			byID[e.ContactID] = e
		}
		tw := newTable(a.stdout)
		row(tw, "CONTACT_ID", "SINCE", "REASON", "KEYWORD", "BY", "SOURCE")
		for _, id := range ans.OptOuts {
			e := byID[id]
			since := ""
			if !e.At.IsZero() {
				since = a.zone.fmtTime(e.At)
			}
			row(tw, cell(id), since, cell(e.Reason), cell(e.Keyword), cell(e.By), cell(e.Source))
		}
		tw.Flush()
	}
	return nil
}

// statsAnswer is the answer of GET /v1/stats.
type statsAnswer struct {
	Counts map[string]int64 `json:"counts"`
	Outbox int64            `json:"outbox"`
	Paused pauseState       `json:"paused"`
}

func (a *app) cmdStats(ctx context.Context, args []string) error {
	fs := a.newFlags("stats")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("stats", pos, 0, ""); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var st statsAnswer
	raw, err := c.getJSON(ctx, "/v1/stats", nil, &st)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	tw := newTable(a.stdout)
	row(tw, "STATE", "COUNT")
	var total int64
	known := map[string]bool{}
	for _, s := range tasks.States {
		known[string(s)] = true
		n := st.Counts[string(s)]
		total += n
		row(tw, string(s), strconv.FormatInt(n, 10))
	}
	var other []string
	for s := range st.Counts {
		if !known[s] {
			other = append(other, s)
		}
	}
	sort.Strings(other)
	for _, s := range other {
		total += st.Counts[s]
		row(tw, cell(s), strconv.FormatInt(st.Counts[s], 10))
	}
	row(tw, "total", strconv.FormatInt(total, 10))
	tw.Flush()
	fmt.Fprintf(a.stdout, "\noutbox: %d approved send(s) waiting to be released\n", st.Outbox)
	fmt.Fprintln(a.stdout, st.Paused.String())
	return nil
}
