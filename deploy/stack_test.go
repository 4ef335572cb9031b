package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/internal/devenv"
	"github.com/sendworker/sendworker/internal/redisproc"
	"github.com/sendworker/sendworker/internal/redistest"
	"github.com/sendworker/sendworker/tasks"
)

// optionalManifests are the files of kubernetes/ the kustomize base leaves out on purpose: the
// Secret template (placeholders), the Ingress (your host and TLS secret) and the ServiceMonitor
// (needs the Prometheus Operator's CRDs).
var optionalManifests = []string{"secret.yaml", "ingress.yaml", "servicemonitor.yaml"}

// standRedis starts what the daemon's Redis URL points at, locally: one throwaway server for a
// single-server URL; for a Sentinel URL a master, a replica and a Sentinel monitoring the master
// under the URL's master name, all with the URL's passwords (SENDWORKER_WAIT_REPLICAS needs the
// replica).
func standRedis(t *testing.T, r config.Redis) standIns {
	t.Helper()
	switch r.Mode {
	case config.RedisSingle:
		return standIns{redis: redistest.Start(t).Addr()}
	case config.RedisSentinel:
	default:
		t.Fatalf("no local stand-in for Redis in %s mode", r.Mode)
	}
	ctx := context.Background()
	var args []string
	if pw := r.Password.Reveal(); pw != "" {
		args = []string{"--requirepass", pw, "--masterauth", pw}
	}
	master, err := redisproc.Start(ctx, redisproc.Options{Dir: t.TempDir(), Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.Kill() })
	replica, err := redisproc.Start(ctx, redisproc.Options{Dir: t.TempDir(), ReplicaOf: master.Addr(), Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Kill() })
	sentinel, err := redisproc.StartSentinel(ctx, t.TempDir(), r.MasterName, master.Addr(),
		redisproc.SentinelAuth{MasterPassword: r.Password.Reveal(), SentinelPassword: r.SentinelPassword.Reveal()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sentinel.Kill)
	return standIns{sentinel: sentinel.Addr()}
}

// ---- compose: the seed of demo sends ----

// composeSeed is the compose service that enqueues the demo sends: it runs sendctl enqueue -f.
func composeSeed(t *testing.T, c compose) (name string, s composeService, file string) {
	t.Helper()
	for n, svc := range c.Services {
		if len(svc.Entrypoint) > 0 && filepath.Base(svc.Entrypoint[0]) == "sendctl" && slices.Contains(svc.Command, "enqueue") {
			if name != "" {
				t.Fatalf("%s: two seed services, %s and %s", composePath, name, n)
			}
			name, s = n, svc
		}
	}
	if name == "" {
		t.Fatalf("%s: no service runs sendctl enqueue: the quick start would list nothing", composePath)
	}
	inside := flagValue(s.Command, "-f")
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == inside {
			file = filepath.Join(moduleRoot, parts[0])
		}
	}
	if file == "" {
		t.Fatalf("%s: service %s reads %q, which no volume provides", composePath, name, inside)
	}
	return name, s, file
}

// TestComposeSeed: the compose stack enqueues the demo sends of `sendworker -dev`: the seed
// service reaches a worker's admin port with a scheduler token of the workers, and its file
// holds the dev demo's sends (same ids and contents; only stop_if_replied_since is a fixed time)
// in the form sendctl enqueue -f reads, each one valid.
func TestComposeSeed(t *testing.T) {
	c := loadCompose(t)
	cfg := mustLoad(t, composePath, workerEnv(t, c))
	name, s, file := composeSeed(t, c)

	u, err := url.Parse(s.Environment["SENDCTL_URL"])
	if err != nil || u.Host == "" {
		t.Fatalf("%s: SENDCTL_URL %q is not a URL", name, s.Environment["SENDCTL_URL"])
	}
	if !slices.Contains(c.workers(), u.Hostname()) || u.Port() != strconv.Itoa(adminPort(t, cfg)) {
		t.Errorf("%s: SENDCTL_URL %s is not a sendworker service's admin port %d", name, u, adminPort(t, cfg))
	}
	if d, ok := s.DependsOn[u.Hostname()]; !ok || d.Condition == "" {
		t.Errorf("%s: must depend on %s", name, u.Hostname())
	}
	if !isSchedulerToken(cfg, s.Environment["SENDCTL_TOKEN"]) {
		t.Errorf("%s: SENDCTL_TOKEN is not a scheduler token of SENDWORKER_ADMIN_TOKENS", name)
	}
	if !strings.HasPrefix(s.Restart, "on-failure") {
		t.Errorf("%s: restart %q; want on-failure (it runs before the API is up; enqueue is idempotent)", name, s.Restart)
	}

	reqs := readSeed(t, file)
	demo := devenv.DemoSends(time.Now())
	if len(reqs) != len(demo) {
		t.Fatalf("%s: %d sends; the dev demo has %d", file, len(reqs), len(demo))
	}
	for i, d := range demo {
		got, want := reqs[i], d.Request
		if (got.StopIfRepliedSince == nil) != (want.StopIfRepliedSince == nil) {
			t.Errorf("%s: %s: stop_if_replied_since set in one and not the other", file, want.SendID)
		}
		if got.SendID != want.SendID || got.Digest() != want.Digest() || compactJSON(t, got.Metadata) != compactJSON(t, want.Metadata) {
			t.Errorf("%s: send %d is %s (digest %s); the dev demo's is %s (digest %s)", file, i, got.SendID, got.Digest(), want.SendID, want.Digest())
		}
		if err := got.Validate(tasks.ValidateOptions{Now: time.Now()}); err != nil {
			t.Errorf("%s: %s: %v", file, got.SendID, err)
		}
	}
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func isSchedulerToken(cfg *config.Config, token string) bool {
	for _, tok := range cfg.Admin.Tokens {
		if tok.Token.Reveal() == token && slices.Contains(tok.Roles, "scheduler") {
			return true
		}
	}
	return false
}

// readSeed decodes a seed file as sendctl enqueue -f reads a batch: {"sends":[...]}, no unknown
// field.
func readSeed(t *testing.T, path string) []tasks.SendRequest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var batch struct {
		Sends []tasks.SendRequest `json:"sends"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&batch); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return batch.Sends
}

// checkComposeSeedEnqueues posts the seed file to the daemon started with the compose
// environment, with the seed service's token, as sendctl enqueue -f does: every send is created.
func checkComposeSeedEnqueues(ctx context.Context, t *testing.T, c compose, base string) {
	t.Helper()
	_, s, file := composeSeed(t, c)
	body, err := json.Marshal(map[string]any{"sends": readSeed(t, file)})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sends:batch", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Environment["SENDCTL_TOKEN"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			SendID string `json:"send_id"`
			Status int    `json:"status"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/sends:batch with the seed: %d, %v", resp.StatusCode, err)
	}
	for _, r := range out.Results {
		if r.Status != http.StatusCreated {
			t.Errorf("seed send %s: status %d; want 201", r.SendID, r.Status)
		}
	}
	if len(out.Results) == 0 {
		t.Error("the seed enqueued nothing")
	}
}

// ---- Kubernetes: kustomize base, Ingress, NetworkPolicy ----

// TestKustomization: `kubectl apply -k deploy/kubernetes` applies every manifest of the
// directory except the optional ones, each exactly once, in the namespace the docs use.
func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(kubernetesDir, kustomization))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s: %v", kustomization, err)
	}
	if k.Kind != "Kustomization" || !strings.HasPrefix(k.APIVersion, "kustomize.config.k8s.io/") {
		t.Fatalf("%s: kind %q, apiVersion %q", kustomization, k.Kind, k.APIVersion)
	}
	if k.Namespace == "" {
		t.Errorf("%s: no namespace", kustomization)
	}
	files, _ := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != kustomization && !slices.Contains(optionalManifests, b) {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s resources %v; want every manifest but %v: %v", kustomization, got, optionalManifests, want)
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(kubernetesDir, r)); err != nil {
			t.Errorf("%s: resource %s: %v", kustomization, r, err)
		}
	}
	for _, o := range optionalManifests {
		if _, err := os.Stat(filepath.Join(kubernetesDir, o)); err != nil {
			t.Errorf("optional manifest %s: %v", o, err)
		}
	}
}

type ingress struct {
	Spec struct {
		IngressClassName string `yaml:"ingressClassName"`
		TLS              []struct {
			Hosts      []string `yaml:"hosts"`
			SecretName string   `yaml:"secretName"`
		} `yaml:"tls"`
		Rules []struct {
			Host string `yaml:"host"`
			HTTP struct {
				Paths []struct {
					Path     string `yaml:"path"`
					PathType string `yaml:"pathType"`
					Backend  struct {
						Service struct {
							Name string `yaml:"name"`
							Port struct {
								Name   string `yaml:"name"`
								Number int    `yaml:"number"`
							} `yaml:"port"`
						} `yaml:"service"`
					} `yaml:"backend"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	} `yaml:"spec"`
}

type networkPolicy struct {
	Spec struct {
		PodSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"podSelector"`
		PolicyTypes []string `yaml:"policyTypes"`
		Ingress     []struct {
			From []struct {
				NamespaceSelector *struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"namespaceSelector"`
				PodSelector *struct {
					MatchLabels map[string]string `yaml:"matchLabels"`
				} `yaml:"podSelector"`
			} `yaml:"from"`
			Ports []struct {
				Port portRef `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
	} `yaml:"spec"`
}

// TestIngressAndNetworkPolicy: the Ingress ends TLS for every host it routes, routes the API
// (and only paths under /v1/: /metrics, /healthz and /readyz need no token) to the Service's
// port; the NetworkPolicy selects the sendworker pods and lets in only listed peers on the
// admin port.
func TestIngressAndNetworkPolicy(t *testing.T) {
	objs := manifests(t)
	var d deployment
	only(t, objs, "Deployment", &d)
	pod := d.Spec.Template
	var svc service
	svcObj := only(t, objs, "Service", &svc)
	svcPort := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		svcPort[p.Name], svcPort[strconv.Itoa(p.Port)] = true, true
	}
	containerPort := map[string]bool{}
	for _, p := range pod.Spec.Containers[0].Ports {
		containerPort[p.Name], containerPort[strconv.Itoa(p.ContainerPort)] = true, true
	}

	var ing ingress
	only(t, objs, "Ingress", &ing)
	tlsHosts := map[string]bool{}
	for _, tls := range ing.Spec.TLS {
		if tls.SecretName == "" {
			t.Error("Ingress: a tls entry without secretName")
		}
		for _, h := range tls.Hosts {
			tlsHosts[h] = true
		}
	}
	if len(ing.Spec.Rules) == 0 {
		t.Fatal("Ingress: no rules")
	}
	for _, r := range ing.Spec.Rules {
		if r.Host == "" || !tlsHosts[r.Host] {
			t.Errorf("Ingress: host %q is not covered by TLS: bearer tokens would cross the network in clear", r.Host)
		}
		for _, p := range r.HTTP.Paths {
			if !strings.HasPrefix(p.Path, "/v1/") && !strings.HasPrefix(p.Path, "/console/") {
				t.Errorf("Ingress: path %q; only the API (/v1/...) goes outside: /metrics, /healthz and /readyz need no token", p.Path)
			}
			be := p.Backend.Service
			port := be.Port.Name
			if port == "" {
				port = strconv.Itoa(be.Port.Number)
			}
			if be.Name != svcObj.Metadata.Name || !svcPort[port] {
				t.Errorf("Ingress: path %s goes to %s:%s, not a port of Service %s", p.Path, be.Name, port, svcObj.Metadata.Name)
			}
		}
	}

	var np networkPolicy
	only(t, objs, "NetworkPolicy", &np)
	if !labelsMatch(np.Spec.PodSelector.MatchLabels, pod.Metadata.Labels) {
		t.Error("NetworkPolicy: the podSelector does not select the sendworker pods")
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Error("NetworkPolicy: policyTypes lacks Ingress")
	}
	if len(np.Spec.Ingress) == 0 {
		t.Fatal("NetworkPolicy: no ingress rule (nothing could reach the API)")
	}
	for i, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("NetworkPolicy: ingress rule %d admits every source: /metrics needs no token", i)
		}
		for _, f := range rule.From {
			if (f.NamespaceSelector == nil || len(f.NamespaceSelector.MatchLabels) == 0) && (f.PodSelector == nil || len(f.PodSelector.MatchLabels) == 0) {
				t.Errorf("NetworkPolicy: ingress rule %d has a peer that selects everything", i)
			}
		}
		if len(rule.Ports) == 0 {
			t.Errorf("NetworkPolicy: ingress rule %d opens every port", i)
		}
		for _, p := range rule.Ports {
			if !containerPort[string(p.Port)] {
				t.Errorf("NetworkPolicy: port %q is not a port of the container", p.Port)
			}
		}
	}
}

// ---- Redis on the Bitnami chart ----

type bitnamiValues struct {
	Architecture string `yaml:"architecture"`
	Auth         struct {
		Enabled  bool `yaml:"enabled"`
		Sentinel bool `yaml:"sentinel"`
	} `yaml:"auth"`
	CommonConfiguration string `yaml:"commonConfiguration"`
	Replica             struct {
		ReplicaCount int `yaml:"replicaCount"`
		Persistence  struct {
			Enabled bool `yaml:"enabled"`
		} `yaml:"persistence"`
	} `yaml:"replica"`
	Sentinel struct {
		Enabled   bool   `yaml:"enabled"`
		MasterSet string `yaml:"masterSet"`
		Quorum    int    `yaml:"quorum"`
	} `yaml:"sentinel"`
}

// TestRedisOnTheBitnamiChart: the Redis that the Kubernetes manifests use is the Bitnami chart
// in Sentinel mode, configured for the guarantees (AOF with fsync on every write, no eviction,
// persistent volumes, a quorum of Sentinels), and sentinel.env and the Secret point at exactly
// its Sentinels and master set, with SENDWORKER_WAIT_REPLICAS=1.
func TestRedisOnTheBitnamiChart(t *testing.T) {
	data, err := os.ReadFile(bitnamiValuesPath)
	if err != nil {
		t.Fatal(err)
	}
	var v bitnamiValues
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", bitnamiValuesPath, err)
	}
	if v.Architecture != "replication" || !v.Sentinel.Enabled {
		t.Errorf("%s: architecture %q, sentinel.enabled %v; want replication with Sentinel", bitnamiValuesPath, v.Architecture, v.Sentinel.Enabled)
	}
	if v.Replica.ReplicaCount < 3 || v.Sentinel.Quorum < 2 || v.Sentinel.Quorum > v.Replica.ReplicaCount {
		t.Errorf("%s: %d nodes, quorum %d; want at least 3 nodes and a majority quorum", bitnamiValuesPath, v.Replica.ReplicaCount, v.Sentinel.Quorum)
	}
	if !v.Replica.Persistence.Enabled {
		t.Errorf("%s: replica.persistence.enabled must be true", bitnamiValuesPath)
	}
	conf := map[string]string{}
	for _, line := range strings.Split(v.CommonConfiguration, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			conf[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for k, want := range map[string]string{"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"} {
		if conf[k] != want {
			t.Errorf("%s: commonConfiguration %s %q; want %q", bitnamiValuesPath, k, conf[k], want)
		}
	}

	env := readEnvFile(t, filepath.Join(redisDir, "sentinel.env"))
	r, err := config.ParseRedisURL(env["SENDWORKER_REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	if r.MasterName != v.Sentinel.MasterSet {
		t.Errorf("sentinel.env names master %q; the chart's masterSet is %q", r.MasterName, v.Sentinel.MasterSet)
	}
	// The chart's pods: <release>-node-<i>.<release>-headless, each with a Sentinel on 26379.
	node := regexp.MustCompile(`^([a-z0-9-]+)-node-(\d+)\.([a-z0-9-]+)-headless:26379$`)
	seen := map[int]bool{}
	for _, a := range r.Addrs {
		m := node.FindStringSubmatch(a)
		if m == nil || m[1] != m[3] {
			t.Errorf("sentinel.env: %s is not a Sentinel of the chart (<release>-node-N.<release>-headless:26379)", a)
			continue
		}
		i, _ := strconv.Atoi(m[2])
		seen[i] = true
	}
	for i := range v.Replica.ReplicaCount {
		if !seen[i] {
			t.Errorf("sentinel.env does not list the Sentinel of node %d", i)
		}
	}
	if env["SENDWORKER_WAIT_REPLICAS"] != "1" {
		t.Errorf("sentinel.env: SENDWORKER_WAIT_REPLICAS %q; want 1", env["SENDWORKER_WAIT_REPLICAS"])
	}

	// The Kubernetes manifests use that Redis.
	k8s := mustLoad(t, kubernetesDir, kubernetesEnv(t, manifests(t)))
	if k8s.Redis.Mode != config.RedisSentinel || !slices.Equal(k8s.Redis.Addrs, r.Addrs) || k8s.Redis.MasterName != r.MasterName {
		t.Errorf("the Kubernetes SENDWORKER_REDIS_URL (%s %v %s) is not sentinel.env's (%v %s)", k8s.Redis.Mode, k8s.Redis.Addrs, k8s.Redis.MasterName, r.Addrs, r.MasterName)
	}
	if k8s.Worker.WaitReplicas < 1 {
		t.Errorf("the Kubernetes configuration has SENDWORKER_WAIT_REPLICAS %d on Sentinel; want 1", k8s.Worker.WaitReplicas)
	}
	if v.Auth.Enabled && k8s.Redis.Password.Reveal() == "" {
		t.Error("the chart asks for a password; the Kubernetes SENDWORKER_REDIS_URL has none")
	}
	if v.Auth.Sentinel && k8s.Redis.SentinelPassword.Reveal() == "" {
		t.Error("auth.sentinel: the Sentinels ask for the password; the URL has no sentinel_password")
	}
}

// ---- the commands of the docs ----

// TestDocsCommandsRunFromTheRoot: every file that a kubectl, helm or docker command of the
// READMEs names (-f, -k, --from-env-file, --env-file) exists relative to the repository root,
// where the docs say to run them. Files the reader makes (sendworker-secrets.env) are exempt.
func TestDocsCommandsRunFromTheRoot(t *testing.T) {
	userFiles := map[string]bool{"sendworker-secrets.env": true, "-": true}
	flagArg := regexp.MustCompile(`(?:^|\s)(?:-f|-k|--filename|--kustomize|--from-env-file|--from-file|--env-file|--values)[ =](\S+)`)
	for _, doc := range []string{filepath.Join(moduleRoot, "README.md"), "README.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			cmd := strings.TrimSpace(line)
			cmd, _, _ = strings.Cut(cmd, " #")
			if !regexp.MustCompile(`^(kubectl|helm|docker)\b`).MatchString(cmd) {
				continue
			}
			for _, m := range flagArg.FindAllStringSubmatch(cmd, -1) {
				p := strings.Trim(m[1], `"'\`)
				if userFiles[p] || strings.Contains(p, "://") || strings.HasPrefix(p, "$") {
					continue
				}
				if _, err := os.Stat(filepath.Join(moduleRoot, p)); err != nil {
					t.Errorf("%s:%d: %q names %s, which is not a path from the repository root", doc, i+1, cmd, p)
				}
			}
		}
	}
}
