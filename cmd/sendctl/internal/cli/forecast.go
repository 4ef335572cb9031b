package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sendworker/sendworker/adminapi/wire"
	"github.com/sendworker/sendworker/tasks"
)

const forecastDetails = `
Shows, as of the server's clock, when the account's next send may go (a reply
or message into an existing chat, and a new chat), which limit decides it, how
many sends went in the last hour and day against the caps, whether a pause
holds the account, and its waiting sends: why each waits and until when.
Relative times ("in 3m12s") count from the server's clock.`

func (a *app) cmdForecast(ctx context.Context, args []string) error {
	fs := a.newFlags("forecast")
	limit := fs.Int("limit", 0, "waiting sends per page, 1..1000 (server default 50 when 0)")
	cursor := fs.String("cursor", "", "start at this `cursor` (printed after a page that has more)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs("forecast", pos, 1, "ACCOUNT_ID"); err != nil {
		return err
	}
	if err := checkLimit("forecast", *limit); err != nil {
		return err
	}
	account := pos[0]
	c, err := a.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *cursor != "" {
		q.Set("cursor", *cursor)
	}
	var f wire.Forecast
	raw, err := c.getJSON(ctx, pathOf("/v1/accounts/", account, "/forecast"), q, &f)
	if err != nil {
		return fmt.Errorf("forecast %s: %w", account, err)
	}
	if a.json() {
		return writePrettyJSON(a.stdout, raw)
	}
	a.zone.printForecast(a.stdout, &f)
	if f.NextCursor != "" {
		fmt.Fprintf(a.stderr, "more waiting sends: add -cursor %s\n", f.NextCursor)
	}
	return nil
}

// printForecast is the readable view of an account's forecast.
func (z zone) printForecast(w io.Writer, f *wire.Forecast) {
	r := &f.Rate
	lim := &r.Limits
	tw := newTable(w)
	kv := func(k, v string) { row(tw, k, cell(v)) }
	kv("Account", f.AccountID)
	kv("As of", z.fmtTime(f.At))
	kv("Paused", pausedText(f.Paused.Account, f.Paused.Global))
	kv("Next reply slot", z.slotText(f.At, r.NextSlot, r.NextSlotBinding, f))
	kv("Next new-chat slot", z.slotText(f.At, r.NextNewChatSlot, r.NextNewChatSlotBinding, f))
	kv("Sends, last hour", ofCap(r.SlotsLastHour, lim.HourlyCap, "hourly cap"))
	daily := ofCap(r.SlotsLastDay, r.DailyCap, "daily cap")
	if r.DailyCap > 0 && lim.DailyCap > 0 && r.DailyCap < lim.DailyCap {
		daily += fmt.Sprintf(" (warm-up; full cap %d)", lim.DailyCap)
	}
	kv("Sends, last day", daily)
	kv("New chats, last hour", ofCap(r.NewChatsLastHour, lim.NewChatsHourlyCap, "hourly cap"))
	kv("New chats, last day", ofCap(r.NewChatsLastDay, lim.NewChatsDailyCap, "daily cap"))
	kv("Slots queued", fmt.Sprintf("%d (new chats %d)", r.Queued, r.NewChatsQueued))
	if r.LastSlot != nil {
		kv("Last slot", z.whenText(f.At, *r.LastSlot))
	}
	if r.PenaltyUntil != nil {
		kv("Penalty", fmt.Sprintf("no send before %s (%s)", z.fmtTime(*r.PenaltyUntil), relative(f.At, *r.PenaltyUntil)))
	}
	kv("Spacing", spacingText(lim.MinInterval, lim.Jitter, lim.RecipientCooldown))
	if lim.WarmupStart > 0 {
		kv("Warm-up", fmt.Sprintf("daily cap %d on day 1, +%d a day", lim.WarmupStart, lim.WarmupStep))
	}
	kv("Sends", countsText(f.Counts, f.CountsCapped))
	tw.Flush()

	fmt.Fprintln(w)
	if len(f.Waiting) == 0 {
		fmt.Fprintln(w, "no waiting sends")
	} else {
		z.printWaitingSends(w, f.At, f.Waiting)
	}
	if len(f.Undecided) > 0 {
		fmt.Fprintln(w, "\nundecided (outcome unknown; never sent again before the next check):")
		z.printWaitingSends(w, f.At, f.Undecided)
	}
}

func (z zone) printWaitingSends(w io.Writer, at time.Time, sends []wire.WaitingSend) {
	tw := newTable(w)
	row(tw, "SEND_ID", "OP", "REASON", "UNTIL", "IN", "DETAIL")
	for _, s := range sends {
		until, in := "resume", "-"
		if s.Until != nil {
			until, in = z.fmtTime(*s.Until), relative(at, *s.Until)
		}
		row(tw, cell(s.SendID), cell(opName(string(s.Operation))), cell(string(s.Reason)), until, in, cell(s.Detail))
	}
	tw.Flush()
}

func pausedText(account, global bool) string {
	switch {
	case account && global:
		return "YES: the account and everything (global pause)"
	case account:
		return "YES: this account is paused"
	case global:
		return "YES: everything is paused (global pause)"
	}
	return "no"
}

// slotText is "now", or "in 3m12s (2025-06-01T09:03:12Z), held back by the
// minimum interval (10s)".
func (z zone) slotText(now, at time.Time, binding string, f *wire.Forecast) string {
	s := "now"
	if at.Sub(now) >= time.Second {
		s = z.whenText(now, at)
	}
	if why := bindingText(binding, f); why != "" {
		s += ", held back by " + why
	}
	return s
}

// bindingText says in words which limit decided a slot; "" when none did.
func bindingText(b string, f *wire.Forecast) string {
	lim := &f.Rate.Limits
	switch b {
	case "", "none":
		return ""
	case "min_interval":
		return "the minimum interval (" + durText(lim.MinInterval) + ")"
	case "hourly_cap":
		return fmt.Sprintf("the hourly cap (%d)", lim.HourlyCap)
	case "daily_cap":
		return fmt.Sprintf("the daily cap (%d)", f.Rate.DailyCap)
	case "warmup":
		return fmt.Sprintf("the warm-up daily cap (%d)", f.Rate.DailyCap)
	case "new_chats_hourly_cap":
		return fmt.Sprintf("the new-chats hourly cap (%d)", lim.NewChatsHourlyCap)
	case "new_chats_daily_cap":
		return fmt.Sprintf("the new-chats daily cap (%d)", lim.NewChatsDailyCap)
	case "penalty":
		return "a provider penalty"
	case "beyond_horizon":
		return "no free slot within the horizon"
	}
	return cell(b)
}

// whenText is t from now with its time: "in 3m12s (time)", "5m ago (time)".
func (z zone) whenText(now, t time.Time) string {
	return relative(now, t) + " (" + z.fmtTime(t) + ")"
}

// relative is t as seen from now: "in 3m12s", "now", "2h5m ago".
func relative(now, t time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case d == 0:
		return "now"
	case d < 0:
		return shortDuration(-d) + " ago"
	}
	return "in " + shortDuration(d)
}

// shortDuration writes d (whole seconds) without zero tails: 3m12s, 2h, 1d4h.
func shortDuration(d time.Duration) string {
	if d >= 24*time.Hour {
		days := d / (24 * time.Hour)
		rest := (d - days*24*time.Hour).Round(time.Hour)
		if rest == 24*time.Hour {
			days, rest = days+1, 0
		}
		if rest == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, rest/time.Hour)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ofCap is "3 of 60 (hourly cap)", or "3 (no hourly cap)".
func ofCap(n, cap int, what string) string {
	if cap <= 0 {
		return fmt.Sprintf("%d (no %s)", n, what)
	}
	s := fmt.Sprintf("%d of %d (%s)", n, cap, what)
	if n >= cap {
		s += ": FULL"
	}
	return s
}

func spacingText(minInterval, jitter, cooldown string) string {
	s := "at least " + durText(minInterval) + " apart"
	if j := durText(jitter); j != "0s" && j != "" {
		s += ", plus up to " + j + " of jitter"
	}
	if c := durText(cooldown); c != "0s" && c != "" {
		s += "; " + c + " between two sends to one recipient"
	}
	return s
}

// durText writes a Go duration from the API the short way ("1h", not
// "1h0m0s"); anything else as it is.
func durText(s string) string {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return s
	}
	return shortDuration(d)
}

// countsText is "approved 1, waiting 3, sending 0" ("1000+" for a capped count).
func countsText(counts map[tasks.State]int, capped []tasks.State) string {
	var parts []string
	for _, s := range []tasks.State{tasks.StateApproved, tasks.StateWaiting, tasks.StateSending} {
		n := strconv.Itoa(counts[s])
		if slices.Contains(capped, s) {
			n += "+"
		}
		parts = append(parts, string(s)+" "+n)
	}
	return strings.Join(parts, ", ")
}

// opName is an operation's short sendctl alias (send, create, ...).
func opName(op string) string {
	switch tasks.Operation(op) {
	case tasks.OpSendMessage:
		return "send"
	case tasks.OpCreateChat:
		return "create"
	case tasks.OpReaction:
		return "react"
	case tasks.OpEdit:
		return "edit"
	case tasks.OpDelete:
		return "delete"
	}
	return op
}
