// Command console measures the review console's server time with a large
// approval backlog: it fills a throwaway redis-server with N pending sends
// over several accounts, then times the queue page (first page, a deep
// cursor page, filtered by account and by sequence), the send page (with the
// conversation read from the provider simulator over HTTP, and without a
// provider) and, in the same run as the baseline, the admin API's list call
// (GET /v1/sends?state=pending_approval&limit=50). Each request is served by
// the handler in process (no network between client and server), so the
// figures are the server's own time: Redis round trips, provider reads,
// template rendering.
//
//	go run ./bench/console -n 100000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/adminapi"
	"github.com/sendworker/sendworker/approval"
	"github.com/sendworker/sendworker/console"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/provider/wasim"
	"github.com/sendworker/sendworker/tasks"
)

const token = "bench-approver-token-0123456789"

func main() {
	n := flag.Int("n", 100_000, "pending sends to seed")
	accounts := flag.Int("accounts", 10, "accounts the sends are spread over")
	reps := flag.Int("reps", 300, "requests per measured page")
	flag.Parse()
	if err := run(*n, *accounts, *reps); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(n, accounts, reps int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-console-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	proc, err := redisproc.Start(ctx, redisproc.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer func() { _ = proc.Kill() }()
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr(), PoolSize: 64})
	defer rdb.Close()
	l := ledger.New(rdb, ledger.Options{})
	svc := approval.New(l, nil, approval.Options{DefaultDeadline: 7 * 24 * time.Hour})

	sim, err := wasim.Listen("127.0.0.1:0", wasim.Options{APIKey: "sim-key", Seed: wasim.DemoSeed()})
	if err != nil {
		return err
	}
	defer sim.Close()
	pc, err := provider.New(provider.Options{BaseURL: sim.URL(), APIKey: "sim-key"})
	if err != nil {
		return err
	}

	start := time.Now()
	if err := seed(ctx, svc, n, accounts); err != nil {
		return err
	}
	fmt.Printf("sendworker console benchmark: %d pending sends over %d accounts, %d requests per page, GOMAXPROCS=%d, redis %s (seeded in %s)\n\n",
		n, accounts, reps, runtime.GOMAXPROCS(0), rdb.InfoMap(ctx, "server").Item("Server", "redis_version"), time.Since(start).Round(time.Second))

	tokens := []adminapi.Token{{Identity: "approver", Roles: []string{adminapi.RoleApprover}, Token: token}}
	api := adminapi.New(svc, adminapi.Options{Tokens: tokens})
	store := adminapi.NewTokenStore(tokens)
	withProvider := console.New(svc, console.Options{Tokens: store, Provider: pc})
	noProvider := console.New(svc, console.Options{Tokens: store})
	cookie, err := session(ctx, withProvider)
	if err != nil {
		return err
	}

	// A cursor half-way down the queue.
	deep := ""
	for range n / 2 / 500 {
		p, err := l.Queue(ctx, ledger.QueueQuery{After: deep, Limit: 500})
		if err != nil {
			return err
		}
		deep = p.Next
	}
	mid := fmt.Sprintf("s-%07d", n/2)

	fmt.Printf("%-58s %9s %9s\n", "server time per request", "p50", "p99")
	for _, c := range []struct {
		name string
		h    http.Handler
		path string
		auth bool
	}{
		{"admin API GET /v1/sends?state=pending_approval (baseline)", api, "/v1/sends?state=pending_approval&limit=50", true},
		{"admin API GET /v1/sends?state=pending_approval deep page", api, "/v1/sends?state=pending_approval&limit=50&order=oldest&cursor=" + apiCursor(ctx, api, n/2), true},
		{"console queue page (first 50, oldest deadline)", withProvider, "/console/", false},
		{"console queue page (deep cursor)", withProvider, "/console/?after=" + deep, false},
		{"console queue page (filter: account acc-3)", withProvider, "/console/?account=acc-3", false},
		{"console queue page (filter: sequence seq-7, step 2)", withProvider, "/console/?sequence=seq-7&step=2", false},
		{"console send page (conversation from the simulator)", withProvider, "/console/sends/" + mid, false},
		{"console send page (no provider reads)", noProvider, "/console/sends/" + mid, false},
	} {
		p50, p99, err := measure(c.h, c.path, c.auth, cookie, reps)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Printf("%-58s %9s %9s\n", c.name, p50, p99)
	}
	return nil
}

// seed enqueues n sends: account acc-(i%accounts), sequence seq-(i%10),
// step i%3, deadlines spread over a week in an order unrelated to i.
func seed(ctx context.Context, svc *approval.Service, n, accounts int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	next := make(chan int, 1024)
	now := time.Now()
	for range 32 {
		wg.Go(func() {
			for i := range next {
				dl := now.Add(time.Hour + time.Duration((i*7919)%n)*time.Second*6)
				req := tasks.SendRequest{
					SendID: fmt.Sprintf("s-%07d", i), Operation: tasks.OpSendMessage,
					AccountID: fmt.Sprintf("acc-%d", i%accounts), ChatID: "chat-paris-camille",
					Text:             fmt.Sprintf("Bonjour Camille 👋 relance %d\nÀ bientôt", i),
					Metadata:         json.RawMessage(fmt.Sprintf(`{"sequence":"seq-%d","step":%d}`, i%10, i%3)),
					ApprovalDeadline: &dl,
				}
				if _, _, err := svc.Enqueue(ctx, req, "sequencer"); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func session(ctx context.Context, c *console.Console) (string, error) {
	code, err := c.NewDevCode(ctx, "approver")
	if err != nil {
		return "", err
	}
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest("GET", "/console/dev-login?code="+code, nil))
	for _, ck := range rec.Result().Cookies() {
		if ck.Name == "sw_session" {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", fmt.Errorf("no session cookie (%d)", rec.Code)
}

func apiCursor(ctx context.Context, api http.Handler, skip int) string {
	cursor := ""
	for range skip / 1000 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, "GET", "/v1/sends?state=pending_approval&limit=1000&order=oldest&cursor="+cursor, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		api.ServeHTTP(rec, req)
		var page struct {
			NextCursor string `json:"next_cursor"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &page)
		cursor = page.NextCursor
	}
	return cursor
}

func measure(h http.Handler, path string, auth bool, cookie string, reps int) (time.Duration, time.Duration, error) {
	var times []time.Duration
	for i := range reps + 10 {
		req := httptest.NewRequest("GET", path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		} else {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(rec, req)
		d := time.Since(t0)
		if rec.Code != http.StatusOK {
			return 0, 0, fmt.Errorf("status %d: %.300s", rec.Code, rec.Body.String())
		}
		if !auth && !strings.Contains(rec.Body.String(), "</html>") {
			return 0, 0, fmt.Errorf("not a whole page")
		}
		if i >= 10 { // the first requests warm caches and connections
			times = append(times, d)
		}
	}
	slices.Sort(times)
	q := func(p float64) time.Duration { return times[int(p*float64(len(times)-1))].Round(10 * time.Microsecond) }
	return q(0.50), q(0.99), nil
}
