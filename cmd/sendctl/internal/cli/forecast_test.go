package cli

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sendworker/sendworker/tasks"
)

// sampleForecast is a forecast as the API answers it, as of t0 (09:00): the
// reply slot is 3m12s away (min interval), the new-chat budget of the hour is
// spent, a penalty holds the account, and three sends wait (one held by the
// pause, with no until).
const sampleForecast = `{"account_id":"acc-1","at":"2025-06-01T09:00:00Z",
 "paused":{"global":false,"account":true},
 "rate":{"limits":{"min_interval":"10s","jitter":"5s","hourly_cap":60,"daily_cap":300,"new_chats_hourly_cap":5,
   "new_chats_daily_cap":20,"recipient_cooldown":"0s","warmup_start":0,"warmup_step":10},
  "daily_cap":300,"next_slot":"2025-06-01T09:03:12Z","next_slot_binding":"min_interval",
  "next_new_chat_slot":"2025-06-01T10:00:00Z","next_new_chat_slot_binding":"new_chats_hourly_cap",
  "last_slot":"2025-06-01T09:03:02Z","slots_last_hour":12,"slots_last_day":140,"new_chats_last_hour":5,"new_chats_last_day":7,
  "queued":1,"new_chats_queued":0,"penalty_until":"2025-06-01T09:02:00Z"},
 "counts":{"approved":2,"waiting":1000,"sending":0},"counts_capped":["waiting"],
 "waiting":[
  {"send_id":"w-2","operation":"chats_create","reason":"send_window","until":"2025-06-01T09:45:00Z","detail":"outside the send's window; goes when it opens"},
  {"send_id":"w-1","operation":"chats_messages_send","reason":"rate_limit","until":"2025-06-03T13:00:00Z","detail":"the account's rate limits put it at this time"},
  {"send_id":"w-3","operation":"messages_edit","reason":"paused","until":null,"detail":"held by a pause; goes after resume"}],
 "next_cursor":"czEuOQ"}`

func TestForecastView(t *testing.T) {
	api := newFakeAPI(t, always(200, sampleForecast))
	res := run(t, api.srv.URL, "", "forecast", "acc-1")
	if res.code != exitOK {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	for _, want := range []string{
		"Account               acc-1\n",
		"Paused                YES: this account is paused\n",
		"Next reply slot       in 3m12s (2025-06-01T09:03:12Z), held back by the minimum interval (10s)\n",
		"Next new-chat slot    in 1h (2025-06-01T10:00:00Z), held back by the new-chats hourly cap (5)\n",
		"Sends, last hour      12 of 60 (hourly cap)\n",
		"Sends, last day       140 of 300 (daily cap)\n",
		"New chats, last hour  5 of 5 (hourly cap): FULL\n",
		"New chats, last day   7 of 20 (daily cap)\n",
		"Slots queued          1 (new chats 0)\n",
		"Last slot             in 3m2s (2025-06-01T09:03:02Z)\n",
		"Penalty               no send before 2025-06-01T09:02:00Z (in 2m)\n",
		"Spacing               at least 10s apart, plus up to 5s of jitter\n",
		"Sends                 approved 2, waiting 1000+, sending 0\n",
		"SEND_ID  OP      REASON       UNTIL                 IN       DETAIL\n",
		"w-2      create  send_window  2025-06-01T09:45:00Z  in 45m   outside the send's window; goes when it opens\n",
		"w-1      send    rate_limit   2025-06-03T13:00:00Z  in 2d4h  the account's rate limits put it at this time\n",
		"w-3      edit    paused       resume                -        held by a pause; goes after resume\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "more waiting sends: add -cursor czEuOQ") {
		t.Errorf("stderr lacks the cursor:\n%s", res.stderr)
	}

	// A free account: slots "now", nothing held back, nothing waits.
	free := `{"account_id":"acc/2","at":"2025-06-01T09:00:00Z","paused":{"global":true,"account":false},
	 "rate":{"limits":{"min_interval":"10s","jitter":"0s","hourly_cap":0,"daily_cap":300,"new_chats_hourly_cap":5,"new_chats_daily_cap":20,
	  "recipient_cooldown":"1h0m0s","warmup_start":10,"warmup_step":10},"daily_cap":30,
	  "next_slot":"2025-06-01T09:00:00Z","next_slot_binding":"none","next_new_chat_slot":"2025-06-01T09:00:00Z","next_new_chat_slot_binding":"none",
	  "last_slot":null,"slots_last_hour":0,"slots_last_day":0,"new_chats_last_hour":0,"new_chats_last_day":0,"queued":0,"new_chats_queued":0,
	  "penalty_until":null},"counts":{"approved":0,"waiting":0,"sending":0},"counts_capped":[],"waiting":[],"next_cursor":""}`
	api = newFakeAPI(t, always(200, free))
	res = run(t, api.srv.URL, "", "forecast", "acc/2", "-limit", "10", "-cursor", "c1")
	if res.code != exitOK {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	c := api.Calls()[0]
	if c.Path != "/v1/accounts/acc%2F2/forecast" || c.Query != (url.Values{"limit": {"10"}, "cursor": {"c1"}}).Encode() {
		t.Errorf("request %s?%s", c.Path, c.Query)
	}
	for _, want := range []string{
		"Paused                YES: everything is paused (global pause)\n",
		"Next reply slot       now\n",
		"Next new-chat slot    now\n",
		"Sends, last hour      0 (no hourly cap)\n",
		"Sends, last day       0 of 30 (daily cap) (warm-up; full cap 300)\n",
		"Spacing               at least 10s apart; 1h between two sends to one recipient\n",
		"Warm-up               daily cap 10 on day 1, +10 a day\n",
		"no waiting sends\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stdout)
		}
	}
	for _, unwanted := range []string{"Last slot", "Penalty", "held back"} {
		if strings.Contains(res.stdout, unwanted) {
			t.Errorf("output has %q:\n%s", unwanted, res.stdout)
		}
	}
	if res.stderr != "" {
		t.Errorf("stderr: %s", res.stderr)
	}
}

func TestForecastUsage(t *testing.T) {
	api := newFakeAPI(t, always(200, sampleForecast))
	for _, args := range [][]string{{"forecast"}, {"forecast", "a", "b"}, {"forecast", "a", "-limit", "5000"}} {
		if res := run(t, api.srv.URL, "", args...); res.code != exitUsage {
			t.Errorf("%v: exit %d, want usage", args, res.code)
		}
	}
	if n := len(api.Calls()); n != 0 {
		t.Errorf("%d calls on usage errors", n)
	}
	res := run(t, api.srv.URL, "", "help", "forecast")
	if res.code != exitOK || !strings.Contains(res.stdout, "Usage: sendctl forecast ACCOUNT_ID") || !strings.Contains(res.stdout, "-cursor") {
		t.Errorf("help forecast: %d\n%s", res.code, res.stdout)
	}
	api = newFakeAPI(t, always(503, `{"error":{"code":"unavailable","message":"rate-limit forecasts are not configured"}}`))
	res = run(t, api.srv.URL, "", "forecast", "acc-1")
	if res.code != exitServer || !strings.Contains(res.stderr, "sendctl: forecast acc-1: server error (HTTP 503): rate-limit forecasts are not configured") {
		t.Errorf("503: exit %d\n%s", res.code, res.stderr)
	}
}

// TestListShowsWaits: a list with waiting sends says why and until when.
func TestListShowsWaits(t *testing.T) {
	rl := sampleRecord("w-1", tasks.StateWaiting)
	rl.Wait = &tasks.Wait{Until: t0.Add(5 * time.Minute), Reason: tasks.ReasonWaitRateLimit}
	held := sampleRecord("w-2", tasks.StateWaiting)
	held.Wait = &tasks.Wait{Reason: tasks.ReasonWaitPaused}
	api := newFakeAPI(t, always(200, `{"sends":[`+mustJSON(t, rl)+`,`+mustJSON(t, held)+`],"next_cursor":""}`))
	res := run(t, api.srv.URL, "", "list", "-state", "waiting")
	if res.code != exitOK {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	lines := strings.Split(res.stdout, "\n")
	if !strings.HasPrefix(lines[0], "SEND_ID  STATE    REASON      UNTIL                 OPERATION") ||
		!strings.HasPrefix(lines[1], "w-1      waiting  rate_limit  2025-06-01T09:05:00Z  chats_messages_send") ||
		!strings.HasPrefix(lines[2], "w-2      waiting  paused      resume                chats_messages_send") {
		t.Errorf("list of waiting sends:\n%s", res.stdout)
	}

	// Without waiting sends the table keeps its columns.
	api = newFakeAPI(t, always(200, `{"sends":[`+mustJSON(t, sampleRecord("s-1", tasks.StatePendingApproval))+`],"next_cursor":""}`))
	res = run(t, api.srv.URL, "", "list")
	if strings.Contains(res.stdout, "UNTIL") || !strings.HasPrefix(res.stdout, "SEND_ID  STATE             REASON  OPERATION") {
		t.Errorf("list without waits:\n%s", res.stdout)
	}

	// show says until resume for a held send.
	api = newFakeAPI(t, always(200, mustJSON(t, held)))
	res = run(t, api.srv.URL, "", "show", "w-2")
	if !strings.Contains(res.stdout, "until resume (paused)") {
		t.Errorf("show held send:\n%s", res.stdout)
	}
}
