// Command chaos proves sendworker's at-most-once and nothing-lost guarantees
// under crashes and provider faults: it builds cmd/sendworker and cmd/wasim,
// runs an AOF-backed redis-server, the simulator with faults and several
// sendworker processes, pushes approved sends while killing a random worker
// with SIGKILL every couple of seconds and restarting Redis once, then
// audits the simulator's deliveries against the send records. It exits 1 if
// any send was delivered twice, lost, or otherwise misrecorded.
//
//	go run ./bench/chaos                       # 10,000 sends, 3 workers
//	go run ./bench/chaos -sends 300 -json      # the CI size, machine-readable
//
// Three faults of a late or skewed provider and a crashing Redis, each alone or together:
//
//	go run ./bench/chaos -provider-clock-offset 2m   # the provider's clock 2 minutes ahead
//	go run ./bench/chaos -late-store 0.05            # 5% of sends stored 8 s late, unanswered
//	go run ./bench/chaos -redis-kill-at 20s          # Redis SIGKILLed (appendfsync always)
//
// The run logic lives in bench/chaos/chaosrun, shared with the CI test.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sendworker/sendworker/bench/chaos/chaosrun"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	c := chaosrun.DefaultConfig()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Sends, "sends", c.Sends, "approved sends to push")
	fs.IntVar(&c.Accounts, "accounts", c.Accounts, "simulator accounts the sends are spread over")
	fs.IntVar(&c.ChatsPerAccount, "chats", c.ChatsPerAccount, "chats per account")
	fs.IntVar(&c.Workers, "workers", c.Workers, "sendworker processes")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "SENDWORKER_CONCURRENCY of each worker")
	fs.Float64Var(&c.PushRate, "push-rate", c.PushRate, "sends enqueued+approved per second (0 = as fast as possible)")
	fs.DurationVar(&c.KillEvery, "kill-every", c.KillEvery, "mean time between two SIGKILLs of a random worker (0 = none)")
	fs.DurationVar(&c.KillFor, "kill-for", c.KillFor, "length of the kill phase from the start (0 = until every send is pushed)")
	fs.DurationVar(&c.RedisRestartAt, "redis-restart-at", c.RedisRestartAt, "restart Redis (graceful, AOF) this long after the start (negative = never)")
	fs.DurationVar(&c.RedisKillAt, "redis-kill-at", c.RedisKillAt, "kill Redis with SIGKILL and start it again this long after the start (negative = never)")
	fs.StringVar(&c.RedisFsync, "redis-fsync", c.RedisFsync, "Redis appendfsync: always (the shipped setting), everysec or no")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "deadline for every send to be terminal, from the start")
	fs.Float64Var(&c.Error500, "error-500", c.Error500, "fraction of provider requests answered 500")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "fraction of provider requests answered 429")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After of the 429s")
	fs.Float64Var(&c.AcceptThenDrop, "accept-then-drop", c.AcceptThenDrop, "fraction of sending calls applied, then the connection dropped")
	fs.Float64Var(&c.LateStore, "late-store", c.LateStore, "fraction of sending calls stored only -late-store-delay after they arrived, never answered")
	fs.DurationVar(&c.LateStoreDelay, "late-store-delay", c.LateStoreDelay, "how late those calls are stored")
	fs.DurationVar(&c.ProviderClockOffset, "provider-clock-offset", c.ProviderClockOffset, "shift of the simulator's clock against ours (message timestamps, Date)")
	fs.DurationVar(&c.LatencyMin, "latency-min", c.LatencyMin, "simulator latency, minimum")
	fs.DurationVar(&c.LatencyMax, "latency-max", c.LatencyMax, "simulator latency, maximum")
	fs.DurationVar(&c.RecoveryGrace, "recovery-grace", c.RecoveryGrace, "SENDWORKER_RECOVERY_GRACE of the workers")
	fs.DurationVar(&c.ReconcileDelay, "reconcile-delay", c.ReconcileDelay, "SENDWORKER_RECONCILE_DELAY of the workers")
	fs.DurationVar(&c.ProviderTimeout, "provider-timeout", c.ProviderTimeout, "SENDWORKER_PROVIDER_TIMEOUT of the workers")
	fs.DurationVar(&c.LateCompletion, "late-completion", c.LateCompletion, "SENDWORKER_LATE_COMPLETION of the workers (keep it above -late-store-delay)")
	fs.StringVar(&c.ResendPolicy, "resend-policy", c.ResendPolicy, "SENDWORKER_RESEND_POLICY of the workers (after_proof or never; empty = the default)")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the faults and of the kill victims (0 = random)")
	fs.StringVar(&c.Dir, "dir", "", "working directory, kept (default: a temporary one, removed after a clean run)")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (binaries, Redis files, process logs)")
	fs.StringVar(&c.BinDir, "bin-dir", "", "directory of prebuilt sendworker and wasim binaries (default: go build them)")
	asJSON := fs.Bool("json", false, "print the summary as JSON on stdout (progress still goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected arguments %q\n", fs.Args())
		return 2
	}
	c.Progress = stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := chaosrun.Run(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v\n", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sum)
	} else {
		sum.Print(stdout)
	}
	if !sum.OK() {
		return 1
	}
	return 0
}
