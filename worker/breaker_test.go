package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zapcore"

	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/metrics"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

// metricValue reads one series (counter or gauge value, histogram sample count) of a metric
// whose labels include labels; ok is false when there is none.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// breakerEvents returns the event entries of the results stream, decoded.
func (e *env) breakerEvents(account string) []results.Event {
	e.t.Helper()
	entries, err := e.rdb.XRange(context.Background(), ledger.DefaultResultsStream, "-", "+").Result()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []results.Event
	for _, en := range entries {
		d, err := results.DecodeEntry(en.ID, en.Values)
		if err != nil {
			e.t.Fatalf("entry %s: %v", en.ID, err)
		}
		if d.Event != nil && d.Event.AccountID == account {
			out = append(out, *d.Event)
		}
	}
	return out
}

// accountProvider counts accounts_get and may answer it with a healthy status whatever the
// simulator says (lie), to reach the provider's 401 on sending calls.
type accountProvider struct {
	*provider.Client
	gets atomic.Int64
	lie  atomic.Bool
}

func (p *accountProvider) GetAccount(ctx context.Context, id string) (*provider.Account, error) {
	p.gets.Add(1)
	a, err := p.Client.GetAccount(ctx, id)
	if err == nil && p.lie.Load() && len(a.Sources) > 0 {
		a.Sources[0].Status = provider.StatusOK
	}
	return a, err
}

// TestAccountBreaker: an account that turns unhealthy trips one breaker shared by the replicas
// (two workers here): exactly one open event in the results stream, one WARN, the gauge set;
// its sends wait without attempts while the account is probed at most once per probe
// interval; other accounts go on. When the account is OK again the breaker closes (one event,
// one INFO, gauge cleared) and every send goes out once.
func TestAccountBreaker(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var ap *accountProvider
	var sim *wasim.Sim
	e := newEnv(t, func(c *envConfig) {
		c.opts.Metrics = metrics.New(reg)
		c.opts.AccountHealthTTL = 200 * time.Millisecond // probes: at most one a second
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
			ap = &accountProvider{Client: cl}
			sim = s
			return ap
		}
		c.noStart = true
	})
	if err := sim.SetAccountStatus(accA, "CREDENTIALS"); err != nil {
		t.Fatal(err)
	}
	e.start()
	second := New(e.redisOpt, e.ledger, e.provider, e.opts)
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = second.Stop(ctx)
	})

	var ids []string
	for i := range 4 {
		id := newID("brk")
		e.submit(message(id, accA, "chat-x"+twoDigits(i)))
		ids = append(ids, id)
	}
	other := newID("brk-other")
	e.submit(message(other, accB, chatB1))
	if rec := e.waitTerminal(other, 10*time.Second); rec.State != tasks.StateSent {
		t.Fatalf("other account's send: %s %s", rec.State, rec.Reason)
	}
	for _, id := range ids {
		e.waitFor(id, 10*time.Second, "waiting for the account", func(r *tasks.Record) bool {
			return waitsFor(r, tasks.ReasonWaitAccountDown) >= 2
		})
	}
	// While open: probes at most once a second across both workers, no attempt at all.
	g0 := ap.gets.Load()
	time.Sleep(2500 * time.Millisecond)
	if n := ap.gets.Load() - g0; n > 3 {
		t.Errorf("%d accounts_get in 2.5 s while the breaker is open, want at most 3", n)
	}
	for _, id := range ids {
		if rec := e.get(id); rec.Attempts != 0 || rec.State.Terminal() {
			t.Fatalf("%s: %s, %d attempts while its account is unhealthy", id, rec.State, rec.Attempts)
		}
	}
	evs := e.breakerEvents(accA)
	if len(evs) != 1 || evs[0].Type != results.EventAccountBreakerOpen || evs[0].Status != "CREDENTIALS" || evs[0].At.IsZero() {
		t.Fatalf("events %+v, want one account_breaker_open CREDENTIALS", evs)
	}
	if v, ok := metricValue(t, reg, "sendworker_account_breaker_open", map[string]string{"account_id": accA}); !ok || v != 1 {
		t.Fatalf("breaker gauge %v %v", v, ok)
	}
	if _, ok := metricValue(t, reg, "sendworker_account_breaker_open", map[string]string{"account_id": accB}); ok {
		t.Fatal("healthy account has a breaker series")
	}
	opened := e.logs.FilterMessageSnippet("account breaker open").FilterField(zapString("account_id", accA)).All()
	if len(opened) != 1 || opened[0].Level != zapcore.WarnLevel || opened[0].ContextMap()["status"] != "CREDENTIALS" {
		t.Fatalf("open logs: %+v", opened)
	}
	if n, _ := metricValue(t, reg, "sendworker_wait_seconds", map[string]string{"reason": string(tasks.ReasonWaitAccountDown)}); n < 8 {
		t.Errorf("%v account_unhealthy deferrals observed", n)
	}

	if err := sim.SetAccountStatus(accA, "OK"); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		rec := e.waitTerminal(id, 15*time.Second)
		if rec.State != tasks.StateSent || len(e.deliveries(id)) != 1 {
			t.Fatalf("%s: %s %s, %d deliveries", id, rec.State, rec.Reason, len(e.deliveries(id)))
		}
	}
	evs = e.breakerEvents(accA)
	if len(evs) != 2 || evs[1].Type != results.EventAccountBreakerClosed || evs[1].Status != "OK" {
		t.Fatalf("events %+v, want open then closed (OK)", evs)
	}
	waitUntil(t, 3*time.Second, "the breaker gauge cleared", func() bool {
		_, ok := metricValue(t, reg, "sendworker_account_breaker_open", map[string]string{"account_id": accA})
		return !ok
	})
	closed := e.logs.FilterMessageSnippet("account breaker closed").FilterField(zapString("account_id", accA)).All()
	if len(closed) != 1 || closed[0].Level != zapcore.InfoLevel {
		t.Fatalf("close logs: %+v", closed)
	}
}

// TestRepeatedDisconnectsOpenBreaker: accounts_get says the account is fine but its sending
// calls meet 401 disconnected_account: the second within a minute opens the breaker (status
// disconnected_account). Its status proving nothing, the breaker only half-opens: one trial
// send per probe interval (a second here), whose 401 keeps it open (no new event). When the
// account really works again, the trial is delivered, the breaker closes and the sends go out.
func TestRepeatedDisconnectsOpenBreaker(t *testing.T) {
	t.Parallel()
	var ap *accountProvider
	var sim *wasim.Sim
	e := newEnv(t, func(c *envConfig) {
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
			ap = &accountProvider{Client: cl}
			sim = s
			return ap
		}
		c.noStart = true
	})
	ap.lie.Store(true)
	if err := sim.SetAccountStatus(accA, "CREDENTIALS"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		id := newID("401")
		e.submit(message(id, accA, "chat-x"+twoDigits(i)))
		ids = append(ids, id)
	}
	e.start()
	waitUntil(t, 10*time.Second, "the breaker to open", func() bool { return len(e.breakerEvents(accA)) == 1 })
	evs := e.breakerEvents(accA)
	if evs[0].Type != results.EventAccountBreakerOpen || evs[0].Status != provider.SlugDisconnectedAccount {
		t.Fatalf("event %+v", evs[0])
	}
	// The sends already past the breaker check may still meet a 401; then one trial a second.
	time.Sleep(300 * time.Millisecond)
	rejected := len(e.sim.Sim().Deliveries())
	if rejected > len(ids) {
		t.Fatalf("%d rejected sending calls for %d sends", rejected, len(ids))
	}
	time.Sleep(2500 * time.Millisecond)
	trials := len(e.sim.Sim().Deliveries()) - rejected
	if trials > 3 {
		t.Fatalf("%d sending calls in 2.5 s while the breaker is open, want at most 3 trials", trials)
	}
	t.Logf("%d sending calls refused before the breaker opened, %d trials in 2.5 s while open", rejected, trials)
	if evs := e.breakerEvents(accA); len(evs) != 1 {
		t.Fatalf("events %+v: the trials' 401 must not reopen or close the breaker", evs)
	}
	if err := sim.SetAccountStatus(accA, "OK"); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		rec := e.waitTerminal(id, 15*time.Second)
		if rec.State != tasks.StateSent || applied(e.deliveries(id)) != 1 {
			t.Fatalf("%s: %s %s, %d applied", id, rec.State, rec.Reason, applied(e.deliveries(id)))
		}
	}
	if evs := e.breakerEvents(accA); len(evs) != 2 || evs[1].Type != results.EventAccountBreakerClosed {
		t.Fatalf("events %+v", evs)
	}
}

// TestMetricsHooks: the worker reports every terminal outcome, deferral, approval wait and
// provider error it sees.
func TestMetricsHooks(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *envConfig) {
		c.opts.Metrics = metrics.New(reg)
		c.provider = func(cl *provider.Client, s *wasim.Sim) Provider {
			return &faultyProvider{Client: cl, sim: s, faults: wasim.Faults{RateLimitRate: 1, RetryAfter: time.Second}, left: 1}
		}
	})
	sent := newID("m-sent")
	e.submit(message(sent, accA, chatA1))
	cold := newID("m-cold")
	e.submit(message(cold, accA, chatB1))
	later := newID("m-window")
	req := message(later, accA, chatA2)
	nb := time.Now().Add(time.Hour)
	req.Window = &tasks.Window{NotBefore: &nb}
	e.submit(req)
	e.waitTerminal(sent, 10*time.Second)
	e.waitTerminal(cold, 10*time.Second)
	e.waitFor(later, 10*time.Second, "waiting for its window", func(r *tasks.Record) bool { return r.State == tasks.StateWaiting })

	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if v, _ := metricValue(t, reg, name, labels); v != want {
			t.Errorf("%s%v = %v, want %v", name, labels, v, want)
		}
	}
	check("sendworker_sends_finished_total", map[string]string{"operation": "chats_messages_send", "state": "sent", "reason": ""}, 1)
	check("sendworker_sends_finished_total", map[string]string{"state": "skipped", "reason": "account_mismatch"}, 1)
	check("sendworker_wait_seconds", map[string]string{"reason": "send_window"}, 1)
	check("sendworker_wait_seconds", map[string]string{"reason": "provider_backoff"}, 1)
	check("sendworker_approval_wait_seconds", nil, 1) // only the send that reached BeginOK
	check("sendworker_provider_errors_total", map[string]string{"operation": "chats_messages_send", "class": "rate_limited"}, 1)
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBreakerReadWithTheRecord: a task that names its send's account has the account's breaker
// read with the record (one round trip) and waits while it is open; a task naming another
// account (forged, or stale) cannot hide an open breaker: the record's account is what counts,
// and its breaker is read on its own.
func TestBreakerReadWithTheRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *envConfig) { c.noStart = true })
	ctx := context.Background()
	// An open breaker whose probe is not due: the execution waits without reading the provider.
	policy := ledger.BreakerPolicy{ProbeEvery: time.Hour, TTL: time.Hour, Window: time.Minute, Trips: 1}
	if _, err := e.ledger.OpenBreaker(ctx, accA, "CREDENTIALS", time.Now(), policy); err != nil {
		t.Fatal(err)
	}
	for _, hint := range []string{accA, accB} {
		id := newID("hint")
		e.submit(message(id, accA, chatA1))
		task := e.releaseTask(id)
		p, err := tasks.DecodePayload(task.Payload())
		if err != nil || p.AccountID != accA {
			t.Fatalf("released payload %+v, %v: want the account named", p, err)
		}
		p.AccountID = hint
		b, _ := p.Encode()
		err = e.worker.Handler().ProcessTask(ctx, asynq.NewTask(task.Type(), b))
		if err != nil && !isFailure(err) {
			var re *retryError
			if !errors.As(err, &re) {
				t.Fatalf("hint %s: ProcessTask: %v", hint, err)
			}
		}
		rec := e.get(id)
		if rec.State != tasks.StateWaiting || rec.Wait == nil || rec.Wait.Reason != tasks.ReasonWaitAccountDown || rec.Attempts != 0 {
			t.Errorf("hint %s: %s %s %+v attempts %d, want waiting for the account", hint, rec.State, rec.Reason, rec.Wait, rec.Attempts)
		}
	}
	if n := len(e.sim.Sim().Deliveries()); n != 0 {
		t.Fatalf("%d deliveries while the breaker is open", n)
	}
}
