package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// env is a fake process environment for Load.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

func (e env) environ() []string {
	var out []string
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func (e env) load() (*Config, error) { return Load(e.lookup, e.environ()) }

// with returns a copy of e with kv pairs set ("" values included: they count as unset).
func (e env) with(kv ...string) env {
	out := maps.Clone(e)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// validEnv is the smallest valid production environment.
func validEnv() env {
	return env{
		"SENDWORKER_PROVIDER_BASE_URL": "https://api1.unipile.com:13111",
		"SENDWORKER_PROVIDER_API_KEY":  "api-key-0123456789",
		"SENDWORKER_ADMIN_TOKENS":      "alice:approver:alice-token-0123456789,seq:scheduler:seq-token-0123456789",
	}
}

func errorVars(t *testing.T, err error) []string {
	t.Helper()
	var names []string
	for _, fe := range FieldErrors(err) {
		names = append(names, fe.Var)
	}
	return names
}

func TestDefaultsValidInDev(t *testing.T) {
	c := Defaults()
	c.Dev = true
	if err := c.Validate(); err != nil {
		t.Fatalf("Defaults() in dev mode: %v", err)
	}
}

func TestDefaultsNeedProviderOutsideDev(t *testing.T) {
	got := errorVars(t, Defaults().Validate())
	want := []string{envProviderBaseURL, envProviderAPIKey, envAdminTokens}
	if !slices.Equal(got, want) {
		t.Fatalf("Defaults().Validate() named %v, want %v", got, want)
	}
}

func TestDefaultValues(t *testing.T) {
	c := Defaults()
	want := &Config{
		SendMode: SendLive,
		Redis:    Redis{Mode: RedisSingle, Addrs: []string{"127.0.0.1:6379"}},
		Provider: Provider{Auth: AuthAPIKey, Timeout: 30 * time.Second},
		Worker: Worker{Concurrency: 20, Queue: "sendworker", ShutdownTimeout: 25 * time.Second,
			ReconcileDelay: 15 * time.Second, LateCompletion: 10 * time.Minute, ResendPolicy: "after_proof",
			AccountHealthTTL: 30 * time.Second, RecoveryGrace: 5 * time.Minute, WaitTimeout: 500 * time.Millisecond},
		Rate: Rate{
			Limits: Limits{MinInterval: 10 * time.Second, Jitter: 10 * time.Second, HourlyCap: 60, DailyCap: 300,
				NewChatsHourlyCap: 5, NewChatsDailyCap: 20, WarmupStep: 10},
			GlobalRPS: 10,
		},
		ApprovalDeadline:      24 * time.Hour,
		MaxDelayAfterApproval: 72 * time.Hour,
		Admin:                 Admin{Addr: ":8080", MaxBodyBytes: 1 << 20, ConsoleSessionTTL: 12 * time.Hour},
		Attachments:           Attachments{MaxBytes: 15 << 20},
		Results: Results{Stream: "sendworker:results", StreamMaxLen: 1_000_000, Retention: 720 * time.Hour,
			Webhook: Webhook{Timeout: 10 * time.Second, MaxAttempts: 10}},
		Inbound:   Inbound{Header: "X-Sendworker-Inbound-Secret", MaxBodyBytes: 256 << 10},
		Log:       Log{Level: "info", Format: "json"},
		KeyPrefix: "sendworker",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Defaults() =\n%#v\nwant\n%#v", c, want)
	}
}

// TestDefaultsRoundTrip: every default parses, and prints back as written in the table.
func TestDefaultsRoundTrip(t *testing.T) {
	for _, v := range vars() {
		c := &Config{}
		if v.def != "" {
			if err := v.parse(c, v.def); err != nil {
				t.Errorf("%s: default %q does not parse: %v", v.name, v.def, err)
			}
		}
		if got := v.show(Defaults()); got != v.def {
			t.Errorf("%s: default prints as %q, table says %q", v.name, got, v.def)
		}
	}
}

func TestEmptyEnvironmentIsDevOnly(t *testing.T) {
	if _, err := (env{}).load(); err == nil {
		t.Fatal("empty environment loaded without SENDWORKER_DEV")
	}
	c, err := env{"SENDWORKER_DEV": "true"}.load()
	if err != nil {
		t.Fatalf("dev with nothing else: %v", err)
	}
	if c.Redis.Mode != "" || c.Redis.AsynqConnOpt() != nil || c.Redis.UniversalClient() != nil {
		t.Errorf("dev without SENDWORKER_REDIS_URL: Redis = %+v, want zero (embedded)", c.Redis)
	}
	if c.Log.Format != "console" {
		t.Errorf("dev log format = %q, want console", c.Log.Format)
	}
	c, err = env{"SENDWORKER_DEV": "1", "SENDWORKER_REDIS_URL": "redis://10.1.1.1", "SENDWORKER_LOG_FORMAT": "json"}.load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.Addrs[0] != "10.1.1.1:6379" || c.Log.Format != "json" {
		t.Errorf("dev with explicit settings: Redis %v, log format %q", c.Redis.Addrs, c.Log.Format)
	}
}

func TestValidEnv(t *testing.T) {
	c, err := validEnv().load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Provider.APIKey.Reveal() != "api-key-0123456789" || len(c.Admin.Tokens) != 2 {
		t.Fatalf("unexpected config: %v", c)
	}
}

// TestVariables checks good and bad values of every variable, one at a time on a valid
// environment: a bad value yields exactly one error, naming the variable.
func TestVariables(t *testing.T) {
	tests := []struct {
		name, value string
		problem     string // "" = valid
	}{
		{"SENDWORKER_DEV", "yes", ""},
		{"SENDWORKER_DEV", "maybe", `"maybe" is not a boolean`},
		{"SENDWORKER_SEND_MODE", "dry_run", ""},
		{"SENDWORKER_SEND_MODE", "DRY_RUN", ""},
		{"SENDWORKER_SEND_MODE", "test", `"test" is not one of live, dry_run`},
		{"SENDWORKER_REDIS_URL", "rediss://cache:6380/3", ""},
		{"SENDWORKER_REDIS_URL", "http://cache:6379", `unsupported scheme "http"`},
		{"SENDWORKER_REDIS_URL", "redis://cache/16", "database must be a number from 0 to 15"},
		{"SENDWORKER_PROVIDER_BASE_URL", "http://127.0.0.1:8081", ""},
		{"SENDWORKER_PROVIDER_BASE_URL", "https://api1.unipile.com:13111/api/v1", "remove the /api/v1 suffix: sendworker adds it to every call (use https://api1.unipile.com:13111)"},
		{"SENDWORKER_PROVIDER_BASE_URL", "https://api1.unipile.com:13111/api/v1/", "remove the /api/v1 suffix"},
		{"SENDWORKER_PROVIDER_BASE_URL", "api1.unipile.com:13111", "must start with http:// or https://"},
		{"SENDWORKER_PROVIDER_BASE_URL", "https://user:pw@api.example.com", "must not contain credentials"},
		{"SENDWORKER_PROVIDER_BASE_URL", "https://api.example.com?x=1", "must not contain a query string"},
		{"SENDWORKER_PROVIDER_AUTH", "bearer", `"bearer" is not one of api_key, oauth2`},
		{"SENDWORKER_PROVIDER_OAUTH_TOKEN_URL", "https://auth/token", "only used when SENDWORKER_PROVIDER_AUTH=oauth2"},
		{"SENDWORKER_PROVIDER_OAUTH_SCOPES", "a,b", "only used when SENDWORKER_PROVIDER_AUTH=oauth2"},
		{"SENDWORKER_PROVIDER_TIMEOUT", "1m30s", ""},
		{"SENDWORKER_PROVIDER_TIMEOUT", "0s", "must be > 0, got 0s"},
		{"SENDWORKER_PROVIDER_TIMEOUT", "30", `"30" has no unit (write e.g. 30s)`},
		{"SENDWORKER_PROVIDER_TIMEOUT", "1d", "days are not a unit"},
		{"SENDWORKER_CONCURRENCY", "1000", ""},
		{"SENDWORKER_CONCURRENCY", "abc", `"abc" is not an integer`},
		{"SENDWORKER_CONCURRENCY", "0", "must be between 1 and 1000, got 0"},
		{"SENDWORKER_CONCURRENCY", "1001", "must be between 1 and 1000, got 1001"},
		{"SENDWORKER_CONCURRENCY", "99999999999999999999", "is too large"},
		{"SENDWORKER_QUEUE", "sends:eu-1", ""},
		{"SENDWORKER_QUEUE", "my queue", "must be non-empty and made of letters, digits"},
		{"SENDWORKER_SHUTDOWN_TIMEOUT", "-5s", "must be > 0, got -5s"},
		{"SENDWORKER_RECONCILE_DELAY", "0s", ""},
		{"SENDWORKER_RECONCILE_DELAY", "-1s", "must be ≥ 0, got -1s"},
		{"SENDWORKER_ACCOUNT_HEALTH_TTL", "0", ""},
		{"SENDWORKER_ACCOUNT_HEALTH_TTL", "soon", `"soon" is not a duration`},
		{"SENDWORKER_RECOVERY_GRACE", "0s", "must be > 0"},
		{"SENDWORKER_RECOVERY_GRACE", "2m", ""},
		{"SENDWORKER_WAIT_REPLICAS", "17", "must be between 0 and 16"},
		{"SENDWORKER_WAIT_REPLICAS", "-1", "must be between 0 and 16"},
		{"SENDWORKER_WAIT_REPLICAS", "2", ""},
		{"SENDWORKER_WAIT_TIMEOUT", "0s", "must be between 1ms and 2s"},
		{"SENDWORKER_WAIT_TIMEOUT", "500us", "must be between 1ms and 2s"},
		{"SENDWORKER_WAIT_TIMEOUT", "3s", "must be between 1ms and 2s"},
		{"SENDWORKER_RATE_MIN_INTERVAL", "0s", ""},
		{"SENDWORKER_RATE_MIN_INTERVAL", "-1s", "must be ≥ 0, got -1s"},
		{"SENDWORKER_RATE_JITTER", "-1m", "must be ≥ 0, got -1m"},
		{"SENDWORKER_RATE_HOURLY_CAP", "0", ""},
		{"SENDWORKER_RATE_HOURLY_CAP", "-1", "must be ≥ 0, got -1"},
		{"SENDWORKER_RATE_DAILY_CAP", "x", `"x" is not an integer`},
		{"SENDWORKER_RATE_NEW_CHATS_HOURLY_CAP", "-3", "must be ≥ 0, got -3"},
		{"SENDWORKER_RATE_NEW_CHATS_DAILY_CAP", "2.5", `"2.5" is not an integer`},
		{"SENDWORKER_RATE_RECIPIENT_COOLDOWN", "72h", ""},
		{"SENDWORKER_RATE_RECIPIENT_COOLDOWN", "-72h", "must be ≥ 0, got -72h"},
		{"SENDWORKER_RATE_WARMUP_START", "30", ""},
		{"SENDWORKER_RATE_WARMUP_START", "301", "301 is above SENDWORKER_RATE_DAILY_CAP (300)"},
		{"SENDWORKER_RATE_WARMUP_STEP", "-1", "must be ≥ 0, got -1"},
		{"SENDWORKER_RATE_GLOBAL_RPS", "0.5", ""},
		{"SENDWORKER_RATE_GLOBAL_RPS", "NaN", `"NaN" is not a number`},
		{"SENDWORKER_RATE_GLOBAL_RPS", "-1", "must be a finite number ≥ 0, got -1"},
		{"SENDWORKER_RATE_ACCOUNT_OVERRIDES", "acc-1:daily_cap=0", ""},
		{"SENDWORKER_RATE_ACCOUNT_OVERRIDES", "acc-1:daily_cap=-1", "account acc-1: daily_cap must be ≥ 0, got -1"},
		{"SENDWORKER_RATE_ACCOUNT_OVERRIDES", "acc-1:warmup_start=500", "account acc-1: warmup_start (500) is above daily_cap (300)"},
		{"SENDWORKER_APPROVAL_DEADLINE", "72h", ""},
		{"SENDWORKER_APPROVAL_DEADLINE", "0s", "must be > 0, got 0s"},
		{"SENDWORKER_ADMIN_ADDR", "127.0.0.1:0", ""},
		{"SENDWORKER_ADMIN_ADDR", "8080", `"8080" is not host:port`},
		{"SENDWORKER_ADMIN_ADDR", ":http", `":http" is not host:port`},
		{"SENDWORKER_ADMIN_TOKENS", "bob:admin:bob-token-0123456789", ""},
		{"SENDWORKER_ADMIN_TOKENS", "bob:admin", "entry 1: want identity:role[+role]:token"},
		{"SENDWORKER_ADMIN_TOKENS", "bob:root:bob-token-0123456789", `entry 1 (bob): unknown role "root"`},
		{"SENDWORKER_ADMIN_TOKENS", "bob:admin+admin:bob-token-0123456789", "entry 1 (bob): role admin listed twice"},
		{"SENDWORKER_ADMIN_TOKENS", "bob::bob-token-0123456789", "entry 1 (bob): unknown role"},
		{"SENDWORKER_ADMIN_TOKENS", "bob:admin:short", "entry 1 (bob): token must be at least 16 characters"},
		{"SENDWORKER_ADMIN_TOKENS", "bob:admin:bob-token-0123456789,bob:approver:bob-token-9876543210", "entry 2 (bob): identity already used by entry 1"},
		{"SENDWORKER_ADMIN_TOKENS", "bob:admin+approver:bob-token-0123456789,bob:approver+admin:bob-token-9876543210", ""},
		{"SENDWORKER_ADMIN_TOKENS", "bob:admin:same-token-0123456789,eve:approver:same-token-0123456789", "entry 2 (eve): same token as entry 1"},
		{"SENDWORKER_ADMIN_TOKENS", "b o b:admin:bob-token-0123456789", "entry 1: identity must be non-empty"},
		{"SENDWORKER_MAX_BODY_BYTES", "64KiB", ""},
		{"SENDWORKER_MAX_BODY_BYTES", "0", "must be between 1 and 67108864 bytes, got 0"},
		{"SENDWORKER_MAX_BODY_BYTES", "1 lot", `"1 lot" is not a size`},
		{"SENDWORKER_ATTACHMENT_ORIGINS", "https://cdn.example.com, http://localhost:9000,", ""},
		{"SENDWORKER_ATTACHMENT_ORIGINS", "http://cdn.example.com", "http is only allowed for localhost and 127.0.0.1; use https"},
		{"SENDWORKER_ATTACHMENT_ORIGINS", "https://cdn.example.com/files", "no path, query or credentials"},
		{"SENDWORKER_ATTACHMENT_ORIGINS", "https://cdn.example.com/", "no path, query or credentials"},
		{"SENDWORKER_ATTACHMENT_ORIGINS", "ftp://cdn.example.com", "scheme must be https"},
		{"SENDWORKER_ATTACHMENT_ORIGINS", "https://a.example.com,https://A.example.com", `origin 2 "https://a.example.com": listed twice`},
		{"SENDWORKER_ATTACHMENT_ORIGINS", "https://a.example.com:99999", "port must be a number from 1 to 65535"},
		{"SENDWORKER_ATTACHMENT_MAX_BYTES", "100MiB", ""},
		{"SENDWORKER_ATTACHMENT_MAX_BYTES", "101MiB", "must be between 1 and 104857600 bytes, got 105906176"},
		{"SENDWORKER_RESULTS_STREAM", "results stream", "must be non-empty"},
		{"SENDWORKER_RESULTS_STREAM_MAXLEN", "0", ""},
		{"SENDWORKER_RESULTS_STREAM_MAXLEN", "-1", "must be ≥ 0, got -1"},
		{"SENDWORKER_RESULT_RETENTION", "-1h", "must be > 0, got -1h"},
		{"SENDWORKER_WEBHOOK_URL", "https://hooks.example.com/x", "SENDWORKER_WEBHOOK_SECRET"}, // reported on the secret
		{"SENDWORKER_WEBHOOK_SECRET", "webhook-secret-0123456789", "set but SENDWORKER_WEBHOOK_URL is empty"},
		{"SENDWORKER_WEBHOOK_TIMEOUT", "0s", "must be > 0, got 0s"},
		{"SENDWORKER_WEBHOOK_MAX_ATTEMPTS", "0", "must be between 1 and 100, got 0"},
		{"SENDWORKER_LOG_LEVEL", "DEBUG", ""},
		{"SENDWORKER_LOG_LEVEL", "verbose", `"verbose" is not one of debug, info, warn, error`},
		{"SENDWORKER_LOG_FORMAT", "text", `"text" is not one of json, console`},
		{"SENDWORKER_KEY_PREFIX", "sw:eu-1_a", ""},
		{"SENDWORKER_KEY_PREFIX", "SW", `"SW" must be non-empty and made of lower-case letters`},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := validEnv().with(tt.name, tt.value).load()
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			fes := FieldErrors(err)
			if len(fes) != 1 {
				t.Fatalf("want one error, got %d: %v", len(fes), err)
			}
			want := tt.name
			if tt.name == envWebhookURL {
				want = envWebhookSecret
			}
			if fes[0].Var != want || !strings.Contains(fes[0].Error(), tt.problem) {
				t.Fatalf("got %q, want %s: ...%s...", fes[0].Error(), want, tt.problem)
			}
		})
	}
}

func TestProviderAuth(t *testing.T) {
	oauth := validEnv().with("SENDWORKER_PROVIDER_API_KEY", "", "SENDWORKER_PROVIDER_AUTH", "oauth2",
		"SENDWORKER_PROVIDER_OAUTH_TOKEN_URL", "https://auth.example.com/token")
	tests := []struct {
		name string
		env  env
		want []string // variables named, in order
	}{
		{"api key required in live mode", validEnv().with("SENDWORKER_PROVIDER_API_KEY", ""), []string{envProviderAPIKey}},
		{"no api key needed in dry run", validEnv().with("SENDWORKER_PROVIDER_API_KEY", "", "SENDWORKER_SEND_MODE", "dry_run"), nil},
		{"no api key needed in dev", validEnv().with("SENDWORKER_PROVIDER_API_KEY", "", "SENDWORKER_DEV", "true"), nil},
		{"oauth2 client credentials", oauth.with("SENDWORKER_PROVIDER_OAUTH_CLIENT_ID", "id", "SENDWORKER_PROVIDER_OAUTH_CLIENT_SECRET", "s"), nil},
		{"oauth2 refresh token", oauth.with("SENDWORKER_PROVIDER_OAUTH_REFRESH_TOKEN", "r"), nil},
		{"oauth2 nothing", oauth, []string{envOAuthClientID}},
		{"oauth2 id without secret", oauth.with("SENDWORKER_PROVIDER_OAUTH_CLIENT_ID", "id"), []string{envOAuthClientSecret}},
		{"oauth2 secret without id", oauth.with("SENDWORKER_PROVIDER_OAUTH_CLIENT_SECRET", "s"), []string{envOAuthClientID}},
		{"oauth2 without token url", oauth.with("SENDWORKER_PROVIDER_OAUTH_TOKEN_URL", "", "SENDWORKER_PROVIDER_OAUTH_REFRESH_TOKEN", "r"), []string{envOAuthTokenURL}},
		{"oauth2 with api key", oauth.with("SENDWORKER_PROVIDER_OAUTH_REFRESH_TOKEN", "r", "SENDWORKER_PROVIDER_API_KEY", "k"), []string{envProviderAPIKey}},
		{"oauth2 bad token url", oauth.with("SENDWORKER_PROVIDER_OAUTH_REFRESH_TOKEN", "r", "SENDWORKER_PROVIDER_OAUTH_TOKEN_URL", "auth/token"), []string{envOAuthTokenURL}},
		{"api_key with oauth leftovers", validEnv().with("SENDWORKER_PROVIDER_OAUTH_CLIENT_SECRET", "s", "SENDWORKER_PROVIDER_OAUTH_CLIENT_ID", "id"),
			[]string{envOAuthClientID, envOAuthClientSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.env.load()
			if got := errorVars(t, err); !slices.Equal(got, tt.want) {
				t.Fatalf("errors on %v, want %v: %v", got, tt.want, err)
			}
		})
	}
	_, err := validEnv().with("SENDWORKER_PROVIDER_API_KEY", "").load()
	const want = "SENDWORKER_PROVIDER_API_KEY: required when SENDWORKER_SEND_MODE=live and SENDWORKER_PROVIDER_AUTH=api_key"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	_, err := validEnv().with(
		"SENDWORKER_CONCURRENCY", "abc",
		"SENDWORKER_RATE_MIN_INTERVAL", "-1s",
		"SENDWORKER_PROVIDER_API_KEY", "",
		"SENDWORKER_LOG_LEVEL", "loud",
		"SENDWORKER_REDIS_URL", "redis-sentinel://10.0.0.1:26379",
	).load()
	want := []string{ // in documentation order
		`SENDWORKER_REDIS_URL: missing master name: redis-sentinel://host1:26379,host2:26379/<master-name>`,
		`SENDWORKER_PROVIDER_API_KEY: required when SENDWORKER_SEND_MODE=live and SENDWORKER_PROVIDER_AUTH=api_key`,
		`SENDWORKER_CONCURRENCY: "abc" is not an integer`,
		`SENDWORKER_RATE_MIN_INTERVAL: must be ≥ 0, got -1s`,
		`SENDWORKER_LOG_LEVEL: "loud" is not one of debug, info, warn, error`,
	}
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Error())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnknownVariables(t *testing.T) {
	_, err := validEnv().with("SENDWORKER_CONCURENCY", "5", "SENDWORKER_WHATEVER", "1", "OTHER_APP_SETTING", "x").load()
	fes := FieldErrors(err)
	if len(fes) != 2 {
		t.Fatalf("want 2 errors, got %v", err)
	}
	if got := fes[0].Error(); got != "SENDWORKER_CONCURENCY: unknown variable (did you mean SENDWORKER_CONCURRENCY?)" {
		t.Errorf("typo: %s", got)
	}
	if got := fes[1].Error(); got != "SENDWORKER_WHATEVER: unknown variable" {
		t.Errorf("unknown: %s", got)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFileAndOverride(t *testing.T) {
	path := writeFile(t, "sendworker.env", `
SENDWORKER_CONCURRENCY=7
SENDWORKER_QUEUE=from-file
SENDWORKER_PROVIDER_API_KEY="file-key-0123456789"
`)
	c, err := validEnv().with("SENDWORKER_CONFIG_FILE", path, "SENDWORKER_CONCURRENCY", "9", "SENDWORKER_QUEUE", "").load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Worker.Concurrency != 9 {
		t.Errorf("environment should win: concurrency %d", c.Worker.Concurrency)
	}
	if c.Worker.Queue != "from-file" {
		t.Errorf("empty environment value should not hide the file: queue %q", c.Worker.Queue)
	}
	if c.Provider.APIKey.Reveal() != "api-key-0123456789" {
		t.Errorf("environment should win for secrets too")
	}
	if c.ConfigFile != path {
		t.Errorf("ConfigFile = %q", c.ConfigFile)
	}

	bad := writeFile(t, "bad.env", "SENDWORKER_CONFIG_FILE=/etc/other\nPATH=/bin\nSENDWORKER_QUEUE=a\nSENDWORKER_QUEUE=b\n")
	_, err = validEnv().with("SENDWORKER_CONFIG_FILE", bad).load()
	var got []string
	for _, fe := range FieldErrors(err) {
		if fe.Var != envConfigFile {
			t.Errorf("error on %s, want %s", fe.Var, envConfigFile)
		}
		got = append(got, strings.TrimPrefix(fe.Problem, bad+": "))
	}
	want := []string{
		"line 4: SENDWORKER_QUEUE already set on line 3",
		"line 1: SENDWORKER_CONFIG_FILE cannot be set inside the file",
		"line 2: unknown variable",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	_, err = validEnv().with("SENDWORKER_CONFIG_FILE", filepath.Join(t.TempDir(), "missing.env")).load()
	if fes := FieldErrors(err); len(fes) != 1 || fes[0].Var != envConfigFile || !strings.Contains(fes[0].Problem, "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestGoodFixture(t *testing.T) {
	c, err := env{"SENDWORKER_CONFIG_FILE": "testdata/good.env"}.load()
	if err != nil {
		t.Fatal(err)
	}
	base := Limits{MinInterval: 20 * time.Second, Jitter: 40 * time.Second, HourlyCap: 30, DailyCap: 200,
		NewChatsHourlyCap: 3, NewChatsDailyCap: 10, RecipientCooldown: 12 * time.Hour, WarmupStart: 20, WarmupStep: 15}
	acc1, acc2 := base, base
	acc1.MinInterval, acc1.DailyCap = 5*time.Second, 50
	acc2.HourlyCap = 10
	want := &Config{
		ConfigFile: "testdata/good.env",
		SendMode:   SendDryRun,
		Redis: Redis{Mode: RedisSentinel, Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, MasterName: "prod-master",
			Password: "m@ster-pass", SentinelPassword: "sent-pass", DB: 2},
		Provider: Provider{
			BaseURL: "https://api1.unipile.com:13111",
			Auth:    AuthOAuth2,
			OAuth: OAuth{TokenURL: "https://auth.example.com/oauth/token", ClientID: "sendworker",
				ClientSecret: "client secret with # and spaces", Scopes: []string{"messages.send", "chats.read"}},
			Timeout: 45 * time.Second,
		},
		Worker: Worker{Concurrency: 50, Queue: "sends-prod", ShutdownTimeout: 40 * time.Second,
			ReconcileDelay: 30 * time.Second, LateCompletion: 15 * time.Minute, ResendPolicy: "never",
			AccountHealthTTL: time.Minute, RecoveryGrace: 10 * time.Minute, WaitReplicas: 1, WaitTimeout: 2 * time.Second},
		Rate:                  Rate{Limits: base, GlobalRPS: 2.5, AccountOverrides: map[string]Limits{"acc-1": acc1, "acc-2": acc2}},
		ApprovalDeadline:      48 * time.Hour,
		MaxDelayAfterApproval: 96 * time.Hour,
		Admin: Admin{Addr: "127.0.0.1:9090", MaxBodyBytes: 2 << 20, Tokens: []AdminToken{
			{Identity: "alice", Roles: []string{"approver", "admin"}, Token: "alice-token-0123456789"},
			{Identity: "sequencer", Roles: []string{"scheduler"}, Token: "sequencer-token-0123456789"},
			{Identity: "bea", Roles: []string{"approver"}, Token: "bea-token-0123456789", Accounts: []string{"acc-1", "acc:2"}},
		}, ConsoleSessionTTL: 8 * time.Hour, ConsoleTrustedHeader: "X-Forwarded-Email"},
		Attachments: Attachments{MaxBytes: 20 << 20,
			Origins: []string{"https://cdn.example.com", "https://files.example.com:8443", "http://127.0.0.1:9000"}},
		Results: Results{Stream: "prod:results", StreamMaxLen: 500000, Retention: 2160 * time.Hour,
			Webhook: Webhook{URL: "https://sequencer.example.com/hooks/sendworker", Secret: "webhook-secret-0123456789",
				Timeout: 5 * time.Second, MaxAttempts: 20}},
		Inbound: Inbound{Secret: "inbound-secret-0123456789", PreviousSecret: "inbound-old-secret-0123456789",
			Header: "X-Provider-Secret", MaxBodyBytes: 128 << 10, OptOutKeywords: []string{"STOP", "ARRÊT", "STOP ALL"}},
		Log:       Log{Level: "warn", Format: "console"},
		KeyPrefix: "sw:prod",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%v\nwant\n%v", c, want)
	}
	// Every variable but the two alternatives to what the fixture uses is set in it.
	for name, v := range c.Redacted() {
		if v == "" && name != envDev && name != envProviderAPIKey && name != envAdminTokensFile && name != envOAuthRefreshToken {
			t.Errorf("good.env leaves %s unset", name)
		}
	}
	if c.LimitsFor("acc-1") != acc1 || c.LimitsFor("acc-2") != acc2 || c.LimitsFor("acc-3") != base {
		t.Errorf("LimitsFor does not apply the overrides")
	}
}

func TestBadFixture(t *testing.T) {
	_, err := env{"SENDWORKER_CONFIG_FILE": "testdata/bad.env"}.load()
	want := []string{
		`SENDWORKER_CONFIG_FILE: testdata/bad.env: line 15: expected KEY=VALUE`,
		`SENDWORKER_CONFIG_FILE: testdata/bad.env: line 2: unknown variable (did you mean SENDWORKER_CONCURRENCY?)`,
		`SENDWORKER_SEND_MODE: "yolo" is not one of live, dry_run`,
		`SENDWORKER_REDIS_URL: missing master name: redis-sentinel://host1:26379,host2:26379/<master-name>`,
		`SENDWORKER_PROVIDER_BASE_URL: remove the /api/v1 suffix: sendworker adds it to every call (use https://api1.unipile.com:13111)`,
		`SENDWORKER_CONCURRENCY: "abc" is not an integer`,
		`SENDWORKER_RATE_MIN_INTERVAL: must be ≥ 0, got -1s`,
		`SENDWORKER_RATE_ACCOUNT_OVERRIDES: account acc-1: unknown limit "daily_cp" (did you mean daily_cap?); known: min_interval, jitter, hourly_cap, daily_cap, new_chats_hourly_cap, new_chats_daily_cap, recipient_cooldown, warmup_start, warmup_step`,
		`SENDWORKER_ADMIN_TOKENS: entry 1 (alice): token must be at least 16 characters`,
		`SENDWORKER_ATTACHMENT_ORIGINS: origin 1 "http://cdn.example.com/files": an origin is scheme://host[:port] only: no path, query or credentials`,
		`SENDWORKER_WEBHOOK_SECRET: required when SENDWORKER_WEBHOOK_URL is set`,
		`SENDWORKER_LOG_LEVEL: "verbose" is not one of debug, info, warn, error`,
		`SENDWORKER_KEY_PREFIX: "Send Worker" must be non-empty and made of lower-case letters, digits and "_:-"`,
	}
	var got []string
	for _, fe := range FieldErrors(err) {
		got = append(got, fe.Error())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\n\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a secret leaked into the errors:\n%v", err)
	}
}

func TestAdminTokensFile(t *testing.T) {
	path := writeFile(t, "tokens", "# admin tokens\n\nalice:approver+admin:alice-token-0123456789\n  seq:scheduler:seq-token-0123456789  \n")
	base := validEnv().with("SENDWORKER_ADMIN_TOKENS", "")
	c, err := base.with("SENDWORKER_ADMIN_TOKENS_FILE", path).load()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Admin.Tokens) != 2 || c.Admin.Tokens[1].Identity != "seq" || !c.Admin.Tokens[0].HasRole(RoleAdmin) {
		t.Fatalf("tokens = %v", c.Admin.Tokens)
	}

	bad := writeFile(t, "tokens", "alice:approver:alice-token-0123456789\n\nbob-secret-token-xyz\nbob:approver:alice-token-0123456789\n")
	_, err = base.with("SENDWORKER_ADMIN_TOKENS_FILE", bad).load()
	if fes := FieldErrors(err); len(fes) != 1 || fes[0].Var != envAdminTokensFile || !strings.Contains(fes[0].Problem, "line 3: want identity:role[+role]:token") {
		t.Fatalf("bad file: %v", err)
	}
	if strings.Contains(err.Error(), "bob-secret") || strings.Contains(err.Error(), "alice-token") {
		t.Fatalf("token leaked: %v", err)
	}
	dup := writeFile(t, "tokens", "alice:approver:alice-token-0123456789\nbob:approver:alice-token-0123456789\n")
	_, err = base.with("SENDWORKER_ADMIN_TOKENS_FILE", dup).load()
	if fes := FieldErrors(err); len(fes) != 1 || fes[0].Var != envAdminTokensFile || !strings.Contains(fes[0].Problem, "same token as entry 1") {
		t.Fatalf("duplicate in file: %v", err)
	}

	_, err = validEnv().with("SENDWORKER_ADMIN_TOKENS_FILE", path).load()
	if got := errorVars(t, err); !slices.Equal(got, []string{envAdminTokensFile}) {
		t.Fatalf("both set: %v", err)
	}
	_, err = base.with("SENDWORKER_ADMIN_TOKENS_FILE", filepath.Join(t.TempDir(), "nope")).load()
	if got := errorVars(t, err); !slices.Equal(got, []string{envAdminTokensFile}) {
		t.Fatalf("missing file: %v", err)
	}
	_, err = base.load()
	if fes := FieldErrors(err); len(fes) != 1 || !strings.Contains(fes[0].Error(), "SENDWORKER_ADMIN_TOKENS: required (unless SENDWORKER_DEV=true)") {
		t.Fatalf("no tokens: %v", err)
	}
}

func TestOverrides(t *testing.T) {
	base := Defaults().Rate.Limits
	tests := []struct {
		in      string
		want    map[string]Limits
		problem string
	}{
		{in: "", want: nil},
		{in: " ; ", want: nil},
		{in: "acc-1:min_interval=5s,daily_cap=50;acc-2:hourly_cap=10;", want: map[string]Limits{
			"acc-1": func() Limits { l := base; l.MinInterval, l.DailyCap = 5*time.Second, 50; return l }(),
			"acc-2": func() Limits { l := base; l.HourlyCap = 10; return l }(),
		}},
		{in: " acc_3 : recipient_cooldown = 1h , warmup_start=5 ", want: map[string]Limits{
			"acc_3": func() Limits { l := base; l.RecipientCooldown, l.WarmupStart = time.Hour, 5; return l }(),
		}},
		{in: "acc-1", problem: "entry 1: want account:key=value[,key=value]"},
		{in: "acc-1:", problem: "account acc-1: want key=value after the ':'"},
		{in: ":daily_cap=1", problem: "entry 1: account id must be non-empty"},
		{in: "a b:daily_cap=1", problem: "entry 1: account id must be non-empty"},
		{in: "acc-1:daily_cap=1;acc-1:hourly_cap=1", problem: "account acc-1: listed twice"},
		{in: "acc-1:daily_cap=1,daily_cap=2", problem: "account acc-1: daily_cap given twice"},
		{in: "acc-1:min_interval=5", problem: `account acc-1: min_interval: "5" has no unit`},
		{in: "acc-1:daily_cap=many", problem: `account acc-1: daily_cap: "many" is not an integer`},
		{in: "acc-1:dailycap=1", problem: `unknown limit "dailycap" (did you mean daily_cap?)`},
		{in: "acc-1:speed=1;acc-2:daily_cap=x", problem: `account acc-1: unknown limit "speed"; known: min_interval`},
	}
	for _, tt := range tests {
		got, err := parseOverrides(tt.in, base)
		if tt.problem != "" {
			if err == nil || !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("parseOverrides(%q) error = %v, want ...%s...", tt.in, err, tt.problem)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseOverrides(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	// Both problems of the last case are reported.
	if _, err := parseOverrides("acc-1:speed=1;acc-2:daily_cap=x", base); !strings.Contains(err.Error(), "acc-2: daily_cap") {
		t.Errorf("second problem missing: %v", err)
	}

	// An override inherits the global limits set in the same environment, whatever the order.
	c, err := validEnv().with("SENDWORKER_RATE_ACCOUNT_OVERRIDES", "acc-1:daily_cap=50", "SENDWORKER_RATE_HOURLY_CAP", "7").load()
	if err != nil {
		t.Fatal(err)
	}
	if l := c.LimitsFor("acc-1"); l.HourlyCap != 7 || l.DailyCap != 50 {
		t.Errorf("LimitsFor(acc-1) = %+v", l)
	}
	if got := c.Redacted()["SENDWORKER_RATE_ACCOUNT_OVERRIDES"]; got != "acc-1:daily_cap=50" {
		t.Errorf("overrides print as %q", got)
	}
}

// TestReferenceCoversEveryField walks Config with reflect: every field must be set by exactly one
// variable of the table (a struct is covered as a whole or field by field).
func TestReferenceCoversEveryField(t *testing.T) {
	c := &Config{}
	type target struct {
		addr uintptr
		typ  reflect.Type
	}
	bound := make(map[target]string)
	for _, v := range vars() {
		p := reflect.ValueOf(v.ptr(c))
		key := target{p.Pointer(), p.Type().Elem()}
		if other, dup := bound[key]; dup {
			t.Errorf("%s and %s set the same field", v.name, other)
		}
		bound[key] = v.name
	}
	used := make(map[string]bool)
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		if name, ok := bound[target{v.Addr().Pointer(), v.Type()}]; ok {
			used[name] = true
			return
		}
		if v.Kind() != reflect.Struct {
			t.Errorf("field %s has no variable", path)
			return
		}
		for i := range v.NumField() {
			walk(v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	}
	walk(reflect.ValueOf(c).Elem(), "Config")
	for _, d := range Reference() {
		if !used[d.Name] {
			t.Errorf("%s is bound to no field of Config", d.Name)
		}
		if !strings.HasPrefix(d.Name, Prefix) || d.Description == "" {
			t.Errorf("bad reference entry %+v", d)
		}
	}
	if got, want := len(Reference()), len(used); got != want {
		t.Errorf("Reference has %d entries, %d fields bound", got, want)
	}
	md := ReferenceMarkdown()
	for _, d := range Reference() {
		if !strings.Contains(md, "`"+d.Name+"`") {
			t.Errorf("markdown table lacks %s", d.Name)
		}
	}
}

// TestFieldDocsNameTheirVariables: each variable is named ("X is SENDWORKER_...") in the doc
// comment of the field it sets, in config.go.
func TestFieldDocsNameTheirVariables(t *testing.T) {
	src, err := os.ReadFile("config.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range Reference() {
		if !strings.Contains(string(src), " is "+d.Name) {
			t.Errorf("config.go does not document %s on its field", d.Name)
		}
	}
}

// secretEnv holds a distinctive marker in every secret.
func secretEnv() env {
	return validEnv().with(
		"SENDWORKER_PROVIDER_API_KEY", "MARKER-api-key-0123",
		"SENDWORKER_REDIS_URL", "redis-sentinel://user:MARKER-redis@10.0.0.1/mymaster?sentinel_password=MARKER-sentinel",
		"SENDWORKER_ADMIN_TOKENS", "alice:approver:MARKER-alice-token-0123",
		"SENDWORKER_WEBHOOK_URL", "https://hooks.example.com/x?token=MARKER-query",
		"SENDWORKER_WEBHOOK_SECRET", "MARKER-webhook-0123456",
	)
}

func TestSecretsNeverPrinted(t *testing.T) {
	c, err := secretEnv().load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.Password.Reveal() != "MARKER-redis" || c.Redis.SentinelPassword.Reveal() != "MARKER-sentinel" {
		t.Fatalf("secrets not loaded: %+v", c.Redis)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"value %v":  fmt.Sprintf("%v", *c),
		"value %+v": fmt.Sprintf("%+v", *c),
		"value %#v": fmt.Sprintf("%#v", *c),
		"%s":        fmt.Sprintf("%s", c.Provider.APIKey),
		"%q":        fmt.Sprintf("%q", c.Provider.APIKey),
		"%x":        fmt.Sprintf("%x", c.Provider.APIKey),
		"json":      string(j),
		"String":    c.String(),
		"Redacted":  fmt.Sprint(c.Redacted()),
		"Redis":     c.Redis.String(),
		"token":     fmt.Sprint(c.Admin.Tokens),
	}
	for name, out := range outputs {
		if strings.Contains(out, "MARKER") {
			t.Errorf("%s output contains a secret:\n%s", name, out)
		}
	}
	r := c.Redacted()
	for name, want := range map[string]string{
		"SENDWORKER_PROVIDER_API_KEY":             "<secret>",
		"SENDWORKER_PROVIDER_OAUTH_CLIENT_SECRET": "",
		"SENDWORKER_REDIS_URL":                    "redis-sentinel://user:<secret>@10.0.0.1:26379/mymaster?sentinel_password=<secret>",
		"SENDWORKER_ADMIN_TOKENS":                 "alice:approver:<secret>",
		"SENDWORKER_WEBHOOK_URL":                  "https://hooks.example.com/<secret>",
		"SENDWORKER_WEBHOOK_SECRET":               "<secret>",
		"SENDWORKER_CONCURRENCY":                  "20",
	} {
		if r[name] != want {
			t.Errorf("Redacted()[%s] = %q, want %q", name, r[name], want)
		}
	}
	if len(r) != len(Reference()) {
		t.Errorf("Redacted has %d entries, want %d", len(r), len(Reference()))
	}
	if got := fmt.Sprintf("%v %s %#v", Secret("x"), Secret("x"), Secret("x")); got != "<secret> <secret> <secret>" {
		t.Errorf("Secret formats as %q", got)
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	_, err := secretEnv().with(
		"SENDWORKER_REDIS_URL", "redis-sentinel://user:MARKER-pw/with-slash@10.0.0.1/mymaster?sentinel_password=MARKER-sentinel&x=MARKER-q",
		"SENDWORKER_ADMIN_TOKENS", "alice:approver:MARKER,MARKER-no-colons-at-all,bob:approver:MARKER-alice-token-0123,alice:boss:MARKER-xyz-0123456789",
		"SENDWORKER_WEBHOOK_SECRET", "MARKER-short",
		"SENDWORKER_PROVIDER_BASE_URL", "https://u:MARKER-pw@api.example.com/api/v1",
		"SENDWORKER_PROVIDER_OAUTH_TOKEN_URL", "https://u:MARKER-pw@auth.example.com/token",
	).load()
	fes := FieldErrors(err)
	if len(fes) < 5 {
		t.Fatalf("want at least 5 errors, got %v", err)
	}
	for _, fe := range fes {
		if strings.Contains(fe.Error(), "MARKER") || strings.Contains(fe.Value, "MARKER") {
			t.Errorf("secret in error: %q (value %q)", fe.Error(), fe.Value)
		}
	}
	// Malformed URLs with the secret where a password or query goes: neither the error nor the
	// redacted value may show it.
	for _, raw := range []string{
		"redis://:MARKER@host:notaport", "redis://:MARKER/x@host", "redis://MARKER?x@host", "redis://:MARKER#x@host",
		"redis://:MARKER%zz@host", "redis-sentinel://h/m?sentinel_password=MARKER&MARKER=1", "redis://h?MARKER=1",
		"redis://u:MARKER@h:1,h:2", "redis-cluster://u:MARKER@h/0",
	} {
		if _, err := ParseRedisURL(raw); err == nil || strings.Contains(err.Error(), "MARKER") {
			t.Errorf("ParseRedisURL(%q) = %v", raw, err)
		}
		if red := redactRedisURL(raw); strings.Contains(red, "MARKER") {
			t.Errorf("redactRedisURL(%q) = %q", raw, red)
		}
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := Defaults()
	c.Dev = true
	c.Worker.Concurrency = 0
	c.SendMode = "maybe"
	c.Redis = Redis{Mode: RedisSentinel, Addrs: []string{"h:1"}}
	c.Rate.AccountOverrides = map[string]Limits{"acc 1": {}, "acc-2": {HourlyCap: -1}}
	c.Admin.Tokens = []AdminToken{{Identity: "x", Roles: []string{"admin"}, Token: "short"}}
	got := errorVars(t, c.Validate())
	want := []string{envSendMode, envRedisURL, "SENDWORKER_CONCURRENCY", "SENDWORKER_RATE_ACCOUNT_OVERRIDES", envAdminTokens}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v: %v", got, want, c.Validate())
	}
}
