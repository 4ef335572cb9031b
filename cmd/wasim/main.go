// Command wasim runs wasim, the simulator of the WhatsApp provider API (package
// provider/wasim), as a standalone HTTP server for demos, benchmarks and chaos tests. It is a
// simulator: nothing it receives ever reaches WhatsApp.
//
//	wasim                                  # demo seed on 127.0.0.1:8090, no auth
//	wasim -seed state.json -api-key dev    # your own state, X-API-KEY required
//	wasim -generate-accounts 50 -generate-chats 200 -error-503 0.05 -rate-limit 0.02 -retry-after 2s
//
// Faults can be changed while it runs with PUT /_sim/faults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sendworker/sendworker/provider/wasim"
)

func main() { os.Exit(run()) }

// run wires the process to runWith: real arguments, environment, output and signals.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runWith(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
}

// shutdownTimeout bounds how long in-flight requests may take once a signal arrived.
const shutdownTimeout = 5 * time.Second

// runWith serves until ctx ends and returns the exit code: 0 after a clean stop, 1 on a runtime
// error, 2 on bad flags.
func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "wasim: %v\n", err)
		return 2
	}
	srv, err := wasim.Listen(cfg.addr, cfg.opts)
	if err != nil {
		fmt.Fprintf(stderr, "wasim: %v\n", err)
		return 1
	}
	if cfg.webhook.URL != "" {
		if err := srv.Sim().SetWebhook(cfg.webhook); err != nil {
			_ = srv.Close()
			fmt.Fprintf(stderr, "wasim: -webhook-url: %v\n", err)
			return 2
		}
	}
	printBanner(stdout, srv, cfg)
	<-ctx.Done()
	fmt.Fprintln(stdout, "wasim: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "wasim: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// config is what the flags decided.
type config struct {
	addr       string
	opts       wasim.Options
	seedSource string // for the banner
	webhook    wasim.WebhookConfig
}

// parseFlags reads flags, with WASIM_ADDR and WASIM_API_KEY as defaults, and reports every
// problem at once.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("wasim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrDefault := getenv("WASIM_ADDR")
	if addrDefault == "" {
		addrDefault = "127.0.0.1:8090"
	}
	var (
		cfg          config
		faults       wasim.Faults
		oauthClients = map[string]string{}
		refresh      []string
		errs         []error
	)
	fs.StringVar(&cfg.addr, "addr", addrDefault, "listen address (env WASIM_ADDR)")
	seedFile := fs.String("seed", "", "load the initial state from this JSON seed file")
	genAccounts := fs.Int("generate-accounts", 0, "generate this many accounts instead of loading a seed")
	genChats := fs.Int("generate-chats", 10, "chats per generated account")
	genSeed := fs.Uint64("generate-seed", 1, "seed value of the generated state (same value, same state)")
	demo := fs.Bool("demo-seed", false, "load the embedded demo state (the default when no other seed is given)")
	apiKey := fs.String("api-key", getenv("WASIM_API_KEY"), "require this X-API-KEY (env WASIM_API_KEY); empty with no OAuth client means no auth")
	fs.Func("oauth-client", "accept OAuth2 client credentials `id:secret` at /oauth/token (repeatable)", func(v string) error {
		id, secret, ok := strings.Cut(v, ":")
		if !ok || id == "" || secret == "" {
			return errors.New("want id:secret")
		}
		oauthClients[id] = secret
		return nil
	})
	fs.Func("refresh-token", "accept this OAuth2 refresh token (repeatable)", func(v string) error {
		if v == "" {
			return errors.New("empty refresh token")
		}
		refresh = append(refresh, v)
		return nil
	})
	fs.StringVar(&cfg.webhook.URL, "webhook-url", "", "post webhook events (new messages from contacts, account status changes) to this URL")
	fs.StringVar(&cfg.webhook.Header, "webhook-header", "X-Sendworker-Inbound-Secret", "custom header carrying -webhook-secret")
	fs.StringVar(&cfg.webhook.Secret, "webhook-secret", getenv("WASIM_WEBHOOK_SECRET"), "shared secret sent in -webhook-header (env WASIM_WEBHOOK_SECRET)")
	fs.DurationVar(&cfg.webhook.RetryDelay, "webhook-retry-delay", time.Second, "delay before the first retry of an event not answered 200 (the n-th waits n times as long; 5 retries)")
	tokenTTL := fs.Duration("token-ttl", time.Hour, "lifetime of issued access tokens")
	randSeed := fs.Uint64("rand-seed", 0, "seed of the fault and id generator; 0 means random")
	fs.DurationVar(&faults.LatencyMin, "latency-min", 0, "minimum latency added to every /api/v1 request")
	fs.DurationVar(&faults.LatencyMax, "latency-max", 0, "maximum latency (0: same as -latency-min)")
	fs.Float64Var(&faults.Error500Rate, "error-500", 0, "fraction of requests answered 500 errors/unexpected_error")
	fs.Float64Var(&faults.Error503Rate, "error-503", 0, "fraction of requests answered 503 errors/service_unavailable")
	fs.Float64Var(&faults.Error504Rate, "error-504", 0, "fraction of sending calls stored, then answered 504 errors/request_timeout")
	fs.Float64Var(&faults.RateLimitRate, "rate-limit", 0, "fraction of requests answered 429 errors/too_many_requests")
	fs.DurationVar(&faults.RetryAfter, "retry-after", 0, "Retry-After sent with 429s (0: no header)")
	fs.Float64Var(&faults.AcceptThenDropRate, "accept-then-drop", 0, "fraction of sending calls stored, then the connection is closed with no response")
	fs.Float64Var(&faults.LateStoreRate, "late-store", 0, "fraction of sending calls stored only -late-store-delay after they arrived, never answered")
	fs.DurationVar(&faults.LateStoreDelay, "late-store-delay", 0, "how long after a late-store call arrived its message is stored")
	fs.DurationVar(&faults.ClockOffset, "clock-offset", 0, "shift of the provider's clock (message timestamps, Date header); negative: behind")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}

	sources := 0
	for _, set := range []bool{*seedFile != "", *genAccounts > 0, *demo} {
		if set {
			sources++
		}
	}
	if sources > 1 {
		errs = append(errs, errors.New("-seed, -generate-accounts and -demo-seed are exclusive"))
	}
	if *genAccounts < 0 || *genChats < 0 {
		errs = append(errs, errors.New("-generate-accounts and -generate-chats must not be negative"))
	}
	if err := faults.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("faults: %w", err))
	}
	switch {
	case *seedFile != "":
		seed, err := loadSeedFile(*seedFile)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.opts.Seed, cfg.seedSource = seed, "file "+*seedFile
	case *genAccounts > 0:
		cfg.opts.Seed = wasim.GenerateSeed(*genAccounts, *genChats, *genSeed)
		cfg.seedSource = fmt.Sprintf("generated, %d accounts x %d chats (seed %d)", *genAccounts, *genChats, *genSeed)
	default:
		cfg.opts.Seed, cfg.seedSource = wasim.DemoSeed(), "demo (embedded)"
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	cfg.opts.APIKey = *apiKey
	cfg.opts.OAuthClients = oauthClients
	cfg.opts.RefreshTokens = refresh
	cfg.opts.TokenTTL = *tokenTTL
	cfg.opts.Faults = faults
	if *randSeed != 0 {
		cfg.opts.Rand = rand.New(rand.NewPCG(*randSeed, *randSeed))
	}
	return cfg, nil
}

func loadSeedFile(path string) (*wasim.Seed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seed, err := wasim.LoadSeed(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return seed, nil
}

// printBanner says loudly that this is a simulator, where it listens and what it holds. It never
// prints credentials.
func printBanner(w io.Writer, srv *wasim.Server, cfg config) {
	base := srv.URL()
	auth := "none (development: any request is accepted)"
	switch {
	case cfg.opts.APIKey != "" && len(cfg.opts.OAuthClients)+len(cfg.opts.RefreshTokens) > 0:
		auth = "X-API-KEY or OAuth2 bearer (token endpoint " + base + "/oauth/token)"
	case cfg.opts.APIKey != "":
		auth = "X-API-KEY required"
	case len(cfg.opts.OAuthClients)+len(cfg.opts.RefreshTokens) > 0:
		auth = "OAuth2 bearer (token endpoint " + base + "/oauth/token)"
	}
	faults := "none"
	if f := cfg.opts.Faults; f != (wasim.Faults{}) {
		faults = fmt.Sprintf("%+v", f)
	}
	fmt.Fprintln(w, "wasim: WhatsApp provider SIMULATOR — not the real provider, nothing reaches WhatsApp")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  base URL\t%s\t(clients use %s/api/v1)\n", base, base)
	fmt.Fprintf(tw, "  auth\t%s\n", auth)
	fmt.Fprintf(tw, "  seed\t%s\n", cfg.seedSource)
	fmt.Fprintf(tw, "  faults\t%s\t(change with PUT %s/_sim/faults)\n", faults, base)
	fmt.Fprintf(tw, "  control\t%s/_sim/\t(faults, deliveries, stats, accounts/{id}/status, accounts/{id}/error, accounts/{id}/contacts/{provider_id}/other_id, chats/{id}/incoming, webhook)\n", base)
	if wh := srv.Sim().Webhook(); wh.URL != "" {
		fmt.Fprintf(tw, "  webhook\t%s\t(header %s)\n", wh.URL, wh.Header)
	}
	accounts := srv.Sim().Accounts()
	fmt.Fprintf(tw, "  accounts\t%d\n", len(accounts))
	const maxListed = 20 // a generated seed can hold thousands
	for i, a := range accounts {
		if i == maxListed {
			fmt.Fprintf(tw, "    ...\t%d more\n", len(accounts)-maxListed)
			break
		}
		fmt.Fprintf(tw, "    %s\t%s\t%d chats\t%s\n", a.ID, a.Status, a.Chats, a.Name)
	}
	// Errors writing the banner to stdout are not worth failing a simulator for.
	_ = tw.Flush()
}
