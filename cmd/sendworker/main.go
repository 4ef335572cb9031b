// Command sendworker is the daemon: the approval stage, the asynq workers
// that deliver approved WhatsApp sends, and the admin HTTP API with health
// and metrics. `sendworker -dev` (or no configuration at all) runs everything
// in one process against an in-process Redis and the provider simulator.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	// Send windows name IANA zones; embed them so a minimal container image works.
	_ "time/tzdata"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sendworker/sendworker/app"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/devenv"
	"github.com/sendworker/sendworker/internal/logthrottle"
	"github.com/sendworker/sendworker/results"
	"github.com/sendworker/sendworker/tasks"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sendworker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "run everything in one process: in-process Redis, provider simulator, demo data (nothing real is sent)")
	devApprove := fs.Bool("dev-approve", false, "with -dev: approve the demo sends automatically (as the demo approver) to watch the whole flow unattended")
	devExit := fs.Duration("dev-exit-after", 0, "with -dev: stop after this long (for scripted demos)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration (secrets redacted) and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	lookup := os.LookupEnv
	environ := os.Environ()
	noConfig := !hasSendworkerEnv(environ)
	if *dev || noConfig {
		lookup = withDev(lookup)
	}
	cfg, err := config.Load(lookup, environ)
	if err != nil {
		fmt.Fprintf(stderr, "sendworker: configuration is invalid:\n")
		for _, fe := range config.FieldErrors(err) {
			fmt.Fprintf(stderr, "  %s\n", fe)
		}
		if len(config.FieldErrors(err)) == 0 {
			fmt.Fprintf(stderr, "  %v\n", err)
		}
		return 2
	}
	if cfg.Dev {
		// Before -print-config: it shows the values dev mode runs with.
		devenv.ApplyDefaults(cfg)
	}
	if *printConfig {
		fmt.Fprint(stdout, cfg.String())
		if cfg.Dev {
			for _, n := range devenv.ConfigNotes(cfg) {
				fmt.Fprintf(stdout, "# %s\n", n)
			}
		}
		return 0
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sendworker: logger: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	// go-redis prints its own lines (dial failures, pool errors) through a process-wide logger:
	// route them into the structured log, one per message per 30 s while Redis is down.
	redis.SetLogger(logthrottle.NewRedisLogger(log.Named("redis"), logthrottle.New(0, nil)))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the admin tokens file (the daemon also reloads it when it changes). Caught
	// from here on, so a SIGHUP during start-up does not kill the process; handled once started.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer func() { signal.Stop(hup); close(hup) }()

	var env *devenv.Env
	if cfg.Dev {
		if noConfig && !*dev {
			fmt.Fprintln(stderr, "sendworker: no SENDWORKER_* configuration found: starting in DEV MODE (in-process Redis + provider simulator; nothing real is sent). Set SENDWORKER_* variables for production.")
		}
		env, err = devenv.Start(cfg)
		if err != nil {
			log.Error("dev environment failed", zap.Error(err))
			return 1
		}
		defer env.Close()
	}

	a, err := app.New(cfg, app.Options{Logger: log})
	if err != nil {
		log.Error("cannot build the daemon", zap.Error(err))
		return 1
	}
	if err := a.Start(ctx); err != nil && cfg.Dev && strings.Contains(err.Error(), "address already in use") {
		// Port 8080 is taken on this machine: the demo takes any free port. The App that could
		// not listen is stopped first, so its Redis connections are not left open.
		if err := a.Stop(ctx); err != nil {
			log.Warn("the daemon that could not listen did not stop cleanly", zap.Error(err))
		}
		cfg.Admin.Addr = "127.0.0.1:0"
		if a, err = app.New(cfg, app.Options{Logger: log}); err == nil {
			err = a.Start(ctx)
		}
		if err != nil {
			log.Error("cannot start", zap.Error(err))
			return 1
		}
	} else if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}

	go func() {
		for range hup {
			if err := a.ReloadTokens(); err != nil {
				log.Warn("SIGHUP: admin tokens not reloaded", zap.Error(err))
			}
		}
	}()

	if cfg.Dev {
		if code := runDemo(ctx, a, env, cfg, stdout, *devApprove, *devExit); code != 0 {
			stopApp(a, cfg, log)
			return code
		}
	} else {
		<-ctx.Done()
	}
	log.Info("shutting down", zap.Duration("timeout", cfg.Worker.ShutdownTimeout))
	return stopApp(a, cfg, log)
}

func stopApp(a *app.App, cfg *config.Config, log *zap.Logger) int {
	// The worker gets ShutdownTimeout for running sends; the rest a little more.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Worker.ShutdownTimeout+5*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		log.Error("shutdown incomplete", zap.Error(err))
		return 1
	}
	return 0
}

// runDemo enqueues the demo sends, prints how to approve them, optionally
// approves them itself, and prints every result written back until ctx ends.
func runDemo(ctx context.Context, a *app.App, env *devenv.Env, cfg *config.Config, out io.Writer, approve bool, exitAfter time.Duration) int {
	if err := env.ConnectWebhook(cfg, a.Addr()); err != nil {
		fmt.Fprintf(out, "demo: the simulator's webhook is not connected: %v\n", err)
	}
	recs, err := devenv.EnqueueDemo(ctx, a.Approval(), time.Now())
	if err != nil {
		fmt.Fprintf(out, "demo: enqueue failed: %v\n", err)
		return 1
	}
	links := map[string]string{}
	for _, id := range []string{devenv.ApproverIdentity, devenv.AdminIdentity} {
		if code, err := a.Console().NewDevCode(ctx, id); err == nil {
			links[id] = "http://" + a.Addr() + "/console/dev-login?code=" + code
		}
	}
	devenv.PrintBanner(out, env, a.Addr(), cfg.Results.Stream, recs, approve, links)
	if exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, exitAfter)
		defer cancel()
	}
	if approve {
		for _, r := range recs {
			if _, err := a.Approval().Approve(ctx, r.SendID, r.Digest, devenv.ApproverIdentity); err != nil {
				fmt.Fprintf(out, "demo: approve %s: %v\n", r.SendID, err)
			} else {
				fmt.Fprintf(out, "demo: approved %s as %s\n", r.SendID, devenv.ApproverIdentity)
			}
		}
	}
	reader := results.NewReader(cfg.Redis.UniversalClient(), cfg.Results.Stream, "dev-console", "dev-console")
	if err := reader.EnsureGroup(ctx, "0"); err != nil {
		fmt.Fprintf(out, "demo: results stream: %v\n", err)
		return 1
	}
	for ctx.Err() == nil {
		entries, err := reader.Read(ctx, 50, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(out, "demo: reading results: %v\n", err)
			time.Sleep(time.Second)
			continue
		}
		for _, e := range entries {
			switch {
			case e.Event != nil:
				line := fmt.Sprintf("EVENT  %s account=%s", e.Event.Type, e.Event.AccountID)
				if e.Event.Status != "" {
					line += " status=" + e.Event.Status
				}
				if e.Event.ChatID != "" {
					line += " chat=" + e.Event.ChatID
				}
				if e.Event.SendID != "" {
					line += " send=" + e.Event.SendID
				}
				if len(e.Event.SendIDs) > 0 {
					line += " sends=" + strings.Join(e.Event.SendIDs, ",")
				}
				fmt.Fprintln(out, line)
			case e.Err == nil:
				printResult(out, e.Result)
			}
			_ = reader.Ack(ctx, e.ID)
		}
	}
	return 0
}

func printResult(out io.Writer, r tasks.Result) {
	line := fmt.Sprintf("RESULT %-24s %-20s %-14s %-9s", r.SendID, r.Operation, r.AccountID, r.State)
	if r.Reason != "" {
		line += " reason=" + string(r.Reason)
	}
	if r.MessageID != "" {
		line += " message_id=" + r.MessageID
	}
	if r.ApprovedBy != "" {
		line += " approved_by=" + r.ApprovedBy
	}
	fmt.Fprintln(out, line)
}

func hasSendworkerEnv(environ []string) bool {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "SENDWORKER_") {
			return true
		}
	}
	return false
}

func withDev(lookup func(string) (string, bool)) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if name == "SENDWORKER_DEV" {
			return "true", true
		}
		return lookup(name)
	}
}

func newLogger(cfg *config.Config) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Log.Level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	if cfg.Log.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	// An operational error (Redis down, a port taken) is said in the message and its fields; a
	// Go stack trace in the log helps nobody running the daemon.
	zc.DisableStacktrace = true
	zc.Level = zap.NewAtomicLevelAt(level)
	return zc.Build()
}
