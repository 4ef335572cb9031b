// Command inbound measures the receiver of the provider's webhook events and the time from a
// contact's reply to the sends it stops, with -n pending sends in the ledger:
//
//   - accept: events/s the receiver answers 200 (auth, decode, validate, XADD) over real HTTP on
//     127.0.0.1 with -c parallel clients, and its answer time p50/p99; beside a baseline handler
//     measured in the same run (read the body, XADD it: no auth, no decode), and the processing rate
//     of the consumer group (-replicas processors) draining that backlog;
//
//   - reply → skipped: for -replies chats holding pending sends, the time from posting the reply to
//     the result entry (skipped/contact_replied) of its send in the results stream.
//
//     go run ./bench/inbound -n 10000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendworker/sendworker/inbound"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/ledger"
	"github.com/sendworker/sendworker/tasks"
)

const secret = "bench-secret-0123456789"

type config struct {
	n, events, conc, replies, replicas, accounts int
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 10_000, "pending sends in the ledger (each chat holds two)")
	flag.IntVar(&c.events, "events", 20_000, "events posted in the accept phase (each side)")
	flag.IntVar(&c.conc, "c", 32, "parallel HTTP clients")
	flag.IntVar(&c.replies, "replies", 500, "replies measured in the reply → skipped phase")
	flag.IntVar(&c.replicas, "replicas", 2, "processors (replicas) in the consumer group")
	flag.IntVar(&c.accounts, "accounts", 50, "accounts the sends are spread over")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bench-inbound-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	proc, err := redisproc.Start(ctx, redisproc.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer proc.Kill()
	rdb := redis.NewClient(&redis.Options{Addr: proc.Addr(), PoolSize: 4 * c.conc})
	defer rdb.Close()
	l := ledger.New(rdb, ledger.Options{})
	stream, logs := l.Keys().Inbound(), l.Keys().InboundLog()

	fmt.Printf("seeding %d pending sends (%d chats, %d accounts)...\n", c.n, c.n/2, c.accounts)
	if err := seed(ctx, l, c); err != nil {
		return err
	}

	metrics := inbound.NewMetrics(nil)
	recv := inbound.NewReceiver(rdb, inbound.ReceiverOptions{Secrets: []string{secret}, Stream: stream, Metrics: metrics})
	baselineStream := "bench:baseline"
	baseline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		if err := rdb.XAdd(r.Context(), &redis.XAddArgs{Stream: baselineStream, Values: []any{"body", body}}).Err(); err != nil {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	})
	recvURL, stopRecv, err := serve(recv)
	if err != nil {
		return err
	}
	defer stopRecv()
	baseURL, stopBase, err := serve(baseline)
	if err != nil {
		return err
	}
	defer stopBase()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.conc, MaxIdleConns: c.conc}}

	// Accept phase: events for chats with no send (each is processed as a reply that stops nothing).
	body := func(i int) []byte {
		return event(fmt.Sprintf("acc-%d", i%c.accounts), fmt.Sprintf("idle-chat-%d", i), fmt.Sprintf("idle-m-%d", i), time.Now())
	}
	// Two rounds, alternating, so that the box's noise hits both sides alike.
	fmt.Printf("\naccept (%d events per round and side, %d clients, real HTTP on 127.0.0.1)\n", c.events/2, c.conc)
	for round := range 2 {
		off := round * c.events / 2
		shifted := func(i int) []byte { return body(off + i) }
		baseRate, baseLat, err := blast(client, baseURL, "", c.events/2, c.conc, shifted)
		if err != nil {
			return err
		}
		rate, lat, err := blast(client, recvURL, secret, c.events/2, c.conc, shifted)
		if err != nil {
			return err
		}
		fmt.Printf("  round %d receiver            %8.0f events/s   answer p50 %s  p99 %s  max %s\n", round+1, rate, pct(lat, 50), pct(lat, 99), pct(lat, 100))
		fmt.Printf("  round %d baseline (XADD only)%8.0f events/s   answer p50 %s  p99 %s  max %s\n", round+1, baseRate, pct(baseLat, 50), pct(baseLat, 99), pct(baseLat, 100))
	}
	c.events = c.events / 2 * 2

	// The consumer group drains the accepted backlog.
	start := time.Now()
	for i := range c.replicas {
		p := inbound.NewProcessor(rdb, l, inbound.ProcessorOptions{Stream: stream, LogStream: logs,
			Consumer: fmt.Sprintf("replica-%d", i), Block: 100 * time.Millisecond, Metrics: metrics})
		if err := p.Start(ctx); err != nil {
			return err
		}
		defer func() { _ = p.Stop(context.WithoutCancel(ctx)) }()
	}
	for {
		n, err := rdb.XLen(ctx, logs).Result()
		if err != nil {
			return err
		}
		if n >= int64(c.events) {
			break
		}
		<-time.After(20 * time.Millisecond)
	}
	drain := time.Since(start)
	fmt.Printf("  processed by %d replicas: %d events in %s = %.0f events/s\n", c.replicas, c.events, drain.Round(time.Millisecond),
		float64(c.events)/drain.Seconds())

	// Reply → skipped, with the processors idle and the ledger still holding its pending sends.
	seen := map[string]time.Time{}
	var mu sync.Mutex
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	lastID, err := lastEntry(ctx, rdb, l.ResultsStream())
	if err != nil {
		return err
	}
	go func() {
		from := lastID
		for rctx.Err() == nil {
			res, err := rdb.XRead(rctx, &redis.XReadArgs{Streams: []string{l.ResultsStream(), from}, Block: 200 * time.Millisecond, Count: 500}).Result()
			if err != nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			for _, m := range res[0].Messages {
				from = m.ID
				if id, ok := m.Values["send_id"].(string); ok && m.Values["reason"] == string(tasks.ReasonContactReplied) {
					seen[id] = now
				}
			}
			mu.Unlock()
		}
	}()
	posted := make([]time.Time, c.replies)
	var next atomic.Int64
	var pwg sync.WaitGroup
	for range min(c.conc, 8) {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= c.replies {
					return
				}
				chat := i * (c.n / 2 / c.replies)
				posted[i] = time.Now()
				b := event(fmt.Sprintf("acc-%d", chat%c.accounts), fmt.Sprintf("chat-%d", chat), fmt.Sprintf("reply-%d", i), time.Now())
				if _, err := post(client, recvURL, secret, b); err != nil {
					fmt.Fprintln(os.Stderr, "post:", err)
				}
				<-time.After(5 * time.Millisecond) // a realistic trickle, not a flood
			}
		}()
	}
	pwg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	var delays []time.Duration
	for time.Now().Before(deadline) {
		mu.Lock()
		delays = delays[:0]
		for i := range c.replies {
			chat := i * (c.n / 2 / c.replies)
			if t, ok := seen[fmt.Sprintf("s-%d-a", chat)]; ok {
				delays = append(delays, t.Sub(posted[i]))
			}
		}
		mu.Unlock()
		if len(delays) == c.replies {
			break
		}
		<-time.After(50 * time.Millisecond)
	}
	fmt.Printf("\nreply → send skipped (%d replies, %d pending sends in the ledger, %d replicas)\n", c.replies, c.n, c.replicas)
	fmt.Printf("  skipped %d/%d sends (two per chat)   post → result entry p50 %s  p99 %s  max %s\n",
		2*len(delays), 2*c.replies, pct(delays, 50), pct(delays, 99), pct(delays, 100))
	return nil
}

// seed creates n pending sends, two per chat, with stop_if_replied_since an hour ago.
func seed(ctx context.Context, l *ledger.Ledger, c config) error {
	since := time.Now().Add(-time.Hour)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= c.n {
					return
				}
				chat := i / 2
				suffix := "a"
				if i%2 == 1 {
					suffix = "b"
				}
				req := &tasks.SendRequest{SendID: fmt.Sprintf("s-%d-%s", chat, suffix), Operation: tasks.OpSendMessage,
					AccountID: fmt.Sprintf("acc-%d", chat%c.accounts), RequestedBy: "bench", ChatID: fmt.Sprintf("chat-%d", chat),
					Text: "follow-up", StopIfRepliedSince: &since}
				if _, _, err := l.Create(ctx, req, req.Digest(), time.Now().Add(24*time.Hour)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func event(account, chat, msg string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{"account_id": account, "account_type": "WHATSAPP", "event": "message_received",
		"chat_id": chat, "timestamp": at.UTC().Format(time.RFC3339Nano), "message_id": msg, "message": "sounds good, thanks",
		"is_sender": false, "sender": map[string]string{"attendee_id": "att-" + chat, "attendee_provider_id": "33600" + chat + "@s.whatsapp.net"}})
	return b
}

func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func post(client *http.Client, url, key string, body []byte) (time.Duration, error) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if key != "" {
		req.Header.Set(inbound.DefaultHeader, key)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("answer %d", resp.StatusCode)
	}
	return time.Since(start), nil
}

// blast posts n events with conc clients and returns events/s and every answer time.
func blast(client *http.Client, url, key string, n, conc int, body func(int) []byte) (float64, []time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, err := post(client, url, key, body(i))
				if err != nil {
					failed.Add(1)
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		return 0, nil, fmt.Errorf("%d posts failed", f)
	}
	return float64(n) / elapsed.Seconds(), lat, nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return s[i].Round(10 * time.Microsecond)
}

func lastEntry(ctx context.Context, rdb *redis.Client, stream string) (string, error) {
	m, err := rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(m) == 0 {
		return "0", nil
	}
	return m[0].ID, nil
}
