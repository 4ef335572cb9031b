package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sendworker/sendworker/app"
	"github.com/sendworker/sendworker/config"
	"github.com/sendworker/sendworker/provider/wasim"
)

// Paths of the packaging files, relative to this package.
const (
	composePath    = "../docker-compose.yml"
	dockerfilePath = "../Dockerfile"
	goModPath      = "../go.mod"
	moduleRoot     = ".."
	kubernetesDir  = "kubernetes"
	redisDir       = "redis"
	// kustomization is the kustomize base of kubernetes/ (not a manifest itself).
	kustomization = "kustomization.yaml"
	// bitnamiValuesPath are the Helm values of the Redis that the Kubernetes manifests use.
	bitnamiValuesPath = "redis/bitnami-values.yaml"
	// composeSeedPath is the file of demo sends the compose seed service enqueues.
	composeSeedPath = "compose/demo-sends.json"
)

// stopMargin is what cmd/sendworker gives the rest of the shutdown after the worker's
// SENDWORKER_SHUTDOWN_TIMEOUT (stopApp): a grace period must exceed the sum.
const stopMargin = 5 * time.Second

// demoAccount is an account of wasim.DemoSeed, read through the admin API to prove that the
// provider URL and API key reach the simulator.
const demoAccount = "acc-paris"

// ---- docker-compose.yml ----

type compose struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image           string               `yaml:"image"`
	Build           any                  `yaml:"build"`
	Entrypoint      words                `yaml:"entrypoint"`
	Command         words                `yaml:"command"`
	Environment     envVars              `yaml:"environment"`
	Ports           []string             `yaml:"ports"`
	Volumes         []string             `yaml:"volumes"`
	DependsOn       map[string]dependsOn `yaml:"depends_on"`
	StopGracePeriod string               `yaml:"stop_grace_period"`
	Restart         string               `yaml:"restart"`
	Healthcheck     *struct {
		Test words `yaml:"test"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
}

type dependsOn struct {
	Condition string `yaml:"condition"`
}

// words is a compose command or entrypoint: a list, or a string split on white space.
type words []string

func (w *words) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*w = strings.Fields(n.Value)
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*w = list
	return nil
}

// envVars is a compose environment, in either of its forms (map, or list of KEY=VALUE).
type envVars map[string]string

func (e *envVars) UnmarshalYAML(n *yaml.Node) error {
	out := envVars{}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			v := n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s is not a scalar", v.Line, n.Content[i].Value)
			}
			if v.Tag == "!!null" {
				out[n.Content[i].Value] = ""
				continue
			}
			out[n.Content[i].Value] = v.Value
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			k, v, _ := strings.Cut(item.Value, "=")
			out[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment is neither a map nor a list", n.Line)
	}
	*e = out
	return nil
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	data, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", composePath)
	}
	return c
}

// workers are the services that run the image's entrypoint, the daemon: built from the
// repository, entrypoint not overridden.
func (c compose) workers() []string {
	var names []string
	for name, s := range c.Services {
		if s.Build != nil && len(s.Entrypoint) == 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// workerEnv is the environment of the sendworker replicas, which must all be the same.
func workerEnv(t *testing.T, c compose) map[string]string {
	t.Helper()
	names := c.workers()
	if len(names) == 0 {
		t.Fatalf("%s: no sendworker service (built from the repository, default entrypoint)", composePath)
	}
	env := c.Services[names[0]].Environment
	for _, n := range names[1:] {
		if !maps.Equal(env, c.Services[n].Environment) {
			t.Errorf("%s: services %s and %s are replicas but have different environments", composePath, names[0], n)
		}
	}
	return env
}

// ---- Kubernetes manifests ----

type k8sObject struct {
	File       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	node *yaml.Node
}

// portRef is a Kubernetes int-or-string port: a number or a port name.
type portRef string

func (p *portRef) UnmarshalYAML(n *yaml.Node) error {
	*p = portRef(n.Value)
	return nil
}

type probe struct {
	HTTPGet *struct {
		Path string  `yaml:"path"`
		Port portRef `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []volumeMount `yaml:"volumeMounts"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

type deployment struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    *int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name string `yaml:"name"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string  `yaml:"name"`
			Port       int     `yaml:"port"`
			TargetPort portRef `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	Spec struct {
		MinAvailable   *portRef `yaml:"minAvailable"`
		MaxUnavailable *portRef `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type configMapOrSecret struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// manifests reads every YAML document under kubernetes/.
func manifests(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", kubernetesDir, err)
	}
	var objs []k8sObject
	for _, f := range files {
		if filepath.Base(f) == kustomization {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(n.Content) == 0 {
				continue // an empty document
			}
			o := k8sObject{File: f, node: &n}
			if err := n.Decode(&o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: a document lacks apiVersion, kind or metadata.name", f)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

// only returns the one object of kind, decoded into out.
func only(t *testing.T, objs []k8sObject, kind string, out any) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range objs {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s in %s, found %d", kind, kubernetesDir, len(found))
	}
	if err := found[0].node.Decode(out); err != nil {
		t.Fatalf("%s: %s: %v", found[0].File, kind, err)
	}
	return found[0]
}

// kubernetesEnv is what the Deployment's container receives: its envFrom sources in order (a
// later source wins, as in Kubernetes), then its env entries.
func kubernetesEnv(t *testing.T, objs []k8sObject) map[string]string {
	t.Helper()
	var d deployment
	only(t, objs, "Deployment", &d)
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, src := range c.EnvFrom {
		var kind, name string
		switch {
		case src.ConfigMapRef != nil:
			kind, name = "ConfigMap", src.ConfigMapRef.Name
		case src.SecretRef != nil:
			kind, name = "Secret", src.SecretRef.Name
		default:
			t.Fatal("Deployment: envFrom entry without configMapRef or secretRef")
		}
		data := objectData(t, objs, kind, name)
		for k, v := range data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	return env
}

// objectData returns the data of the ConfigMap or Secret called name (Secret data decoded).
func objectData(t *testing.T, objs []k8sObject, kind, name string) map[string]string {
	t.Helper()
	for _, o := range objs {
		if o.Kind != kind || o.Metadata.Name != name {
			continue
		}
		var cs configMapOrSecret
		if err := o.node.Decode(&cs); err != nil {
			t.Fatalf("%s: %v", o.File, err)
		}
		out := map[string]string{}
		for k, v := range cs.Data {
			if kind == "Secret" {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatalf("%s: data.%s is not base64", o.File, k)
				}
				v = string(b)
			}
			out[k] = v
		}
		for k, v := range cs.StringData {
			out[k] = v
		}
		return out
	}
	t.Fatalf("the Deployment refers to %s %q, which no manifest defines", kind, name)
	return nil
}

// ---- configuration ----

func knownVars() map[string]bool {
	known := map[string]bool{}
	for _, d := range config.Reference() {
		known[d.Name] = true
	}
	return known
}

// load runs env through the daemon's configuration loader, as if it were the process
// environment.
func load(env map[string]string) (*config.Config, error) {
	environ := make([]string, 0, len(env))
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	return config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, environ)
}

func mustLoad(t *testing.T, what string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := load(env)
	if err != nil {
		t.Fatalf("%s: the configuration does not load:\n%v", what, err)
	}
	if cfg.Dev {
		t.Fatalf("%s: configures dev mode (in-memory Redis, simulator): not a deployment", what)
	}
	return cfg
}

// standIns are the local servers that replace the deployment's hosts.
type standIns struct {
	redis    string // host:port of a single server
	sentinel string // host:port of one Sentinel (for a redis-sentinel:// URL)
	provider string // http://host:port
	webhook  string // http://host:port
}

// localize returns env with every host replaced by a local stand-in and the admin API on a
// free loopback port. A single Redis server is stood in for by one, a Sentinel setup by one
// Sentinel (master name, passwords and options kept); Cluster cannot be.
func localize(t *testing.T, env map[string]string, s standIns) map[string]string {
	t.Helper()
	out := maps.Clone(env)
	rehost := func(name, raw, scheme, host string) {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			t.Fatalf("%s is not a URL with a host", name)
		}
		if scheme != "" {
			u.Scheme = scheme
		}
		u.Host = host
		out[name] = u.String()
	}
	for k, v := range env {
		switch k {
		case "SENDWORKER_REDIS_URL":
			r, err := config.ParseRedisURL(v)
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			switch r.Mode {
			case config.RedisSingle:
				rehost(k, v, "", s.redis)
			case config.RedisSentinel:
				rehost(k, v, "", s.sentinel)
			default:
				t.Fatalf("%s: %s mode cannot be stood in for here", k, r.Mode)
			}
		case "SENDWORKER_PROVIDER_BASE_URL":
			p, _ := url.Parse(s.provider)
			rehost(k, v, p.Scheme, p.Host)
		case "SENDWORKER_WEBHOOK_URL":
			w, _ := url.Parse(s.webhook)
			rehost(k, v, w.Scheme, w.Host)
		case "SENDWORKER_CONFIG_FILE", "SENDWORKER_ADMIN_TOKENS_FILE":
			t.Fatalf("%s names a file inside the container; this check cannot follow it", k)
		}
	}
	out["SENDWORKER_ADMIN_ADDR"] = "127.0.0.1:0"
	return out
}

// adminPort is the port the daemon listens on with cfg.
func adminPort(t *testing.T, cfg *config.Config) int {
	t.Helper()
	_, p, err := net.SplitHostPort(cfg.Admin.Addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n == 0 {
		t.Fatalf("SENDWORKER_ADMIN_ADDR %q has no fixed port", cfg.Admin.Addr)
	}
	return n
}

// ---- tests ----

func TestVariablesAreKnown(t *testing.T) {
	known := knownVars()
	check := func(where string, env map[string]string) {
		for k := range env {
			if !strings.HasPrefix(k, config.Prefix) {
				continue
			}
			if !known[k] {
				t.Errorf("%s sets %s, which is not a sendworker variable (config.Reference)", where, k)
			}
		}
	}
	c := loadCompose(t)
	for name, s := range c.Services {
		check(composePath+" service "+name, s.Environment)
	}

	objs := manifests(t)
	var cmKeys, secretKeys map[string]string
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			cmKeys = objectData(t, objs, o.Kind, o.Metadata.Name)
			check(o.File, cmKeys)
		case "Secret":
			secretKeys = objectData(t, objs, o.Kind, o.Metadata.Name)
			check(o.File, secretKeys)
		}
	}
	for _, data := range []map[string]string{cmKeys, secretKeys} {
		for k := range data {
			if !strings.HasPrefix(k, config.Prefix) {
				t.Errorf("%s in a ConfigMap/Secret loaded with envFrom is not a SENDWORKER_* variable", k)
			}
		}
	}
	for k := range cmKeys {
		if _, dup := secretKeys[k]; dup {
			t.Errorf("%s is in both the ConfigMap and the Secret: one silently overrides the other", k)
		}
	}
	check("the Deployment", kubernetesEnv(t, objs))

	envFiles, _ := filepath.Glob(filepath.Join(redisDir, "*.env"))
	for _, f := range envFiles {
		check(f, readEnvFile(t, f))
	}
}

func TestComposeConfigurationLoads(t *testing.T) {
	env := workerEnv(t, loadCompose(t))
	mustLoad(t, composePath, env)
	local := localize(t, env, standIns{redis: "127.0.0.1:6379", sentinel: "127.0.0.1:26379", provider: "http://127.0.0.1:8090", webhook: "http://127.0.0.1:9"})
	mustLoad(t, composePath+" (hosts replaced by local addresses)", local)
}

func TestKubernetesConfigurationLoads(t *testing.T) {
	env := kubernetesEnv(t, manifests(t))
	mustLoad(t, kubernetesDir, env)
	local := localize(t, env, standIns{redis: "127.0.0.1:6379", sentinel: "127.0.0.1:26379", provider: "http://127.0.0.1:8090", webhook: "http://127.0.0.1:9"})
	mustLoad(t, kubernetesDir+" (hosts replaced by local addresses)", local)
}

func TestComposeWiring(t *testing.T) {
	c := loadCompose(t)
	env := workerEnv(t, c)
	cfg := mustLoad(t, composePath, env)

	replicas := 0
	for _, name := range c.workers() {
		s := c.Services[name]
		n := 1
		if s.Deploy.Replicas != nil {
			n = *s.Deploy.Replicas
		}
		replicas += n

		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil {
			t.Errorf("%s: stop_grace_period %q: %v", name, s.StopGracePeriod, err)
		} else if limit := cfg.Worker.ShutdownTimeout + stopMargin; grace <= limit {
			t.Errorf("%s: stop_grace_period %s must exceed SENDWORKER_SHUTDOWN_TIMEOUT + %s = %s", name, grace, stopMargin, limit)
		}
		if !slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+strconv.Itoa(adminPort(t, cfg))) }) {
			t.Errorf("%s: no port mapping to the admin port %d (SENDWORKER_ADMIN_ADDR)", name, adminPort(t, cfg))
		}
		if d, ok := s.DependsOn["redis"]; !ok || d.Condition != "service_healthy" {
			t.Errorf("%s: must depend on redis with condition service_healthy", name)
		}
	}
	if replicas < 2 {
		t.Errorf("%d sendworker replica(s); want at least 2", replicas)
	}

	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on unknown service %s", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			case d.Condition == "":
				t.Errorf("%s: depends_on %s has no condition", name, dep)
			}
		}
	}

	// Redis: persistent, never evicting, health-checked, and the host the workers use.
	redisURL, err := url.Parse(env["SENDWORKER_REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	redis, ok := c.Services[redisURL.Hostname()]
	if !ok {
		t.Fatalf("SENDWORKER_REDIS_URL host %q is not a compose service", redisURL.Hostname())
	}
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image %q: want redis:7", redis.Image)
	}
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis command %q lacks %q", cmd, want)
		}
	}
	if !slices.ContainsFunc(redis.Volumes, func(v string) bool {
		src, dst, _ := strings.Cut(v, ":")
		_, named := c.Volumes[src]
		return named && dst == "/data"
	}) {
		t.Errorf("redis: no named volume on /data (volumes %v)", redis.Volumes)
	}
	if redis.Healthcheck == nil || !strings.Contains(strings.Join(redis.Healthcheck.Test, " "), "redis-cli ping") {
		t.Error("redis: healthcheck must run redis-cli ping")
	}

	// The simulator: the host and port of the provider URL, the key the workers send.
	provURL, err := url.Parse(cfg.Provider.BaseURL)
	if err != nil {
		t.Fatal(err)
	}
	sim, ok := c.Services[provURL.Hostname()]
	if !ok {
		t.Fatalf("SENDWORKER_PROVIDER_BASE_URL host %q is not a compose service", provURL.Hostname())
	}
	if got := flagValue(sim.Command, "-addr"); !strings.HasSuffix(got, ":"+provURL.Port()) || !strings.HasPrefix(got, "0.0.0.0:") {
		t.Errorf("%s: -addr %q; want 0.0.0.0:%s (the provider URL's port)", provURL.Hostname(), got, provURL.Port())
	}
	if got := flagValue(sim.Command, "-api-key"); got != cfg.Provider.APIKey.Reveal() {
		t.Errorf("%s: -api-key differs from SENDWORKER_PROVIDER_API_KEY", provURL.Hostname())
	}

	// asynqmon: read-only (it can run tasks), on the workers' Redis.
	mon, ok := c.Services["asynqmon"]
	if !ok {
		t.Fatal("no asynqmon service")
	}
	if !strings.HasPrefix(mon.Image, "hibiken/asynqmon") {
		t.Errorf("asynqmon image %q", mon.Image)
	}
	if !slices.Contains(mon.Command, "--read-only") {
		t.Error("asynqmon must run with --read-only")
	}
	if got := flagValue(mon.Command, "--redis-addr"); got != redisURL.Host {
		t.Errorf("asynqmon --redis-addr %q; the workers use %q", got, redisURL.Host)
	}
}

// flagValue finds -name value or -name=value in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func TestKubernetesManifests(t *testing.T) {
	objs := manifests(t)
	cfg := mustLoad(t, kubernetesDir, kubernetesEnv(t, objs))
	port := adminPort(t, cfg)

	var d deployment
	only(t, objs, "Deployment", &d)
	pod := d.Spec.Template
	if d.Spec.Replicas < 2 {
		t.Errorf("Deployment: %d replicas; want at least 2", d.Spec.Replicas)
	}
	if !labelsMatch(d.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Error("Deployment: the selector does not match the pod template's labels")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers; want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// containerPort resolves a port name or number to the container's port number.
	containerPort := func(what string, p portRef) int {
		for _, cp := range c.Ports {
			if string(p) == cp.Name || string(p) == strconv.Itoa(cp.ContainerPort) {
				return cp.ContainerPort
			}
		}
		t.Errorf("%s: port %q is not a port of the container", what, p)
		return 0
	}
	for _, pr := range []struct {
		name  string
		probe *probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("Deployment: no httpGet %s", pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path {
			t.Errorf("%s path %q; the daemon serves %s", pr.name, pr.probe.HTTPGet.Path, pr.path)
		}
		if got := containerPort(pr.name, pr.probe.HTTPGet.Port); got != port {
			t.Errorf("%s port %d; SENDWORKER_ADMIN_ADDR listens on %d", pr.name, got, port)
		}
	}

	grace := pod.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Error("Deployment: terminationGracePeriodSeconds unset (default 30s)")
	} else if limit := cfg.Worker.ShutdownTimeout + stopMargin; time.Duration(*grace)*time.Second <= limit {
		t.Errorf("terminationGracePeriodSeconds %d must exceed SENDWORKER_SHUTDOWN_TIMEOUT + %s = %s", *grace, stopMargin, limit)
	}

	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Error("Deployment: want cpu and memory requests and a memory limit")
	}
	psc := pod.Spec.SecurityContext
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("Deployment: the pod must run as a non-root user (runAsNonRoot, runAsUser != 0)")
	}
	csc := c.SecurityContext
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("Deployment: readOnlyRootFilesystem must be true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("Deployment: allowPrivilegeEscalation must be false")
	}
	// Attachments are staged in os.TempDir(): with a read-only root, /tmp needs a volume.
	if !slices.ContainsFunc(c.VolumeMounts, func(m volumeMount) bool { return m.MountPath == os.TempDir() }) {
		t.Errorf("Deployment: no writable volume on %s (attachments are staged there)", os.TempDir())
	}

	ann := pod.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != strconv.Itoa(port) {
		t.Errorf("pod annotations: want prometheus.io/scrape=true, path=/metrics, port=%d; got %v", port, ann)
	}

	var svc service
	svcObj := only(t, objs, "Service", &svc)
	if !labelsMatch(svc.Spec.Selector, pod.Metadata.Labels) {
		t.Error("Service: the selector does not match the pods")
	}
	svcPorts := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = true
		if got := containerPort("Service port "+p.Name, p.TargetPort); got != port {
			t.Errorf("Service port %s targets %d; the daemon listens on %d", p.Name, got, port)
		}
	}

	var sm serviceMonitor
	only(t, objs, "ServiceMonitor", &sm)
	if !labelsMatch(sm.Spec.Selector.MatchLabels, svcObj.Metadata.Labels) {
		t.Error("ServiceMonitor: the selector does not match the Service's labels")
	}
	if len(sm.Spec.Endpoints) == 0 {
		t.Error("ServiceMonitor: no endpoints")
	}
	for _, e := range sm.Spec.Endpoints {
		if !svcPorts[e.Port] || e.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint %s%s: want a Service port name and /metrics", e.Port, e.Path)
		}
	}

	var pdb podDisruptionBudget
	only(t, objs, "PodDisruptionBudget", &pdb)
	if !labelsMatch(pdb.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Error("PodDisruptionBudget: the selector does not match the pods")
	}
	switch {
	case pdb.Spec.MinAvailable != nil:
		if n, err := strconv.Atoi(string(*pdb.Spec.MinAvailable)); err == nil && n >= d.Spec.Replicas {
			t.Errorf("PodDisruptionBudget minAvailable %d with %d replicas blocks every drain", n, d.Spec.Replicas)
		}
	case pdb.Spec.MaxUnavailable == nil:
		t.Error("PodDisruptionBudget: neither minAvailable nor maxUnavailable")
	}
}

// labelsMatch reports whether every selector label is in labels (and the selector is not empty).
func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestDaemonServesProbes starts the real daemon with the compose and Kubernetes environments,
// their hosts replaced by a throwaway redis-server, the simulator (with the API key they give)
// and a local webhook receiver, and checks what the probes and the scrape ask for.
func TestDaemonServesProbes(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	objs := manifests(t)
	var d deployment
	only(t, objs, "Deployment", &d)
	ctr := d.Spec.Template.Spec.Containers[0]
	if ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet == nil || ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet == nil {
		t.Fatal("Deployment: httpGet readiness and liveness probes are required")
	}

	cases := []struct {
		name  string
		env   map[string]string
		paths []string
	}{
		// Compose has no probes (distroless image, no shell): the paths operators are told to probe.
		{"compose", workerEnv(t, c), []string{"/healthz", "/readyz", "/metrics"}},
		{"kubernetes", kubernetesEnv(t, objs), []string{
			ctr.ReadinessProbe.HTTPGet.Path, ctr.LivenessProbe.HTTPGet.Path, d.Spec.Template.Metadata.Annotations["prometheus.io/path"]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			declared := mustLoad(t, tc.name, tc.env)

			stand := standRedis(t, declared.Redis)
			sim, err := wasim.Listen("127.0.0.1:0", wasim.Options{APIKey: declared.Provider.APIKey.Reveal(), Seed: wasim.DemoSeed()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sim.Close() })
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			t.Cleanup(hook.Close)

			stand.provider, stand.webhook = sim.URL(), hook.URL
			cfg := mustLoad(t, tc.name+" (localized)", localize(t, tc.env, stand))
			a, err := app.New(cfg, app.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				sctx, scancel := context.WithTimeout(context.Background(), cfg.Worker.ShutdownTimeout+stopMargin)
				defer scancel()
				if err := a.Stop(sctx); err != nil {
					t.Errorf("stop: %v", err)
				}
			})
			base := "http://" + a.Addr()

			for _, p := range tc.paths {
				if code := get(ctx, t, base+p, ""); code != http.StatusOK {
					t.Errorf("GET %s: %d; want 200", p, code)
				}
			}
			// Every configured token works, and the provider URL and key reach the simulator.
			for _, tok := range cfg.Admin.Tokens {
				if code := get(ctx, t, base+"/v1/stats", tok.Token.Reveal()); code != http.StatusOK {
					t.Errorf("GET /v1/stats as %s: %d; want 200", tok.Identity, code)
				}
			}
			if code := get(ctx, t, base+"/v1/provider/accounts/"+demoAccount, cfg.Admin.Tokens[0].Token.Reveal()); code != http.StatusOK {
				t.Errorf("GET /v1/provider/accounts/%s: %d; want 200 (provider URL or API key wrong?)", demoAccount, code)
			}
			if tc.name == "compose" {
				checkComposeSeedEnqueues(ctx, t, c, base)
			}
		})
	}
}

func get(ctx context.Context, t *testing.T, u, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// readEnvFile reads KEY=VALUE lines (# comments, blank lines) as the deploy/redis files use them.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s:%d: not KEY=VALUE", path, i+1)
		}
		out[k] = v
	}
	return out
}

func TestRedisSentinel(t *testing.T) {
	env := readEnvFile(t, filepath.Join(redisDir, "sentinel.env"))
	r, err := config.ParseRedisURL(env["SENDWORKER_REDIS_URL"])
	if err != nil {
		t.Fatalf("sentinel.env: SENDWORKER_REDIS_URL: %v", err)
	}
	if r.Mode != config.RedisSentinel {
		t.Fatalf("sentinel.env: mode %s; want sentinel", r.Mode)
	}

	conf, err := os.ReadFile(filepath.Join(redisDir, "sentinel.conf"))
	if err != nil {
		t.Fatal(err)
	}
	monitor := regexp.MustCompile(`(?m)^sentinel monitor (\S+) \S+ \d+ (\d+)$`).FindSubmatch(conf)
	if monitor == nil {
		t.Fatal("sentinel.conf: no `sentinel monitor <name> <host> <port> <quorum>` line")
	}
	if name := string(monitor[1]); r.MasterName != name {
		t.Errorf("the URL names master %q; sentinel.conf monitors %q", r.MasterName, name)
	}
	if quorum, _ := strconv.Atoi(string(monitor[2])); quorum > len(r.Addrs) {
		t.Errorf("quorum %d but the URL lists %d sentinels", quorum, len(r.Addrs))
	}
	if port := regexp.MustCompile(`(?m)^port (\d+)$`).FindSubmatch(conf); port != nil {
		for _, a := range r.Addrs {
			if !strings.HasSuffix(a, ":"+string(port[1])) {
				t.Errorf("sentinel %s: sentinel.conf listens on port %s", a, port[1])
			}
		}
	}
}

func TestRedisCluster(t *testing.T) {
	path := filepath.Join(redisDir, "cluster.env")
	env := readEnvFile(t, path)
	r, err := config.ParseRedisURL(env["SENDWORKER_REDIS_URL"])
	if err != nil {
		t.Fatalf("cluster.env: SENDWORKER_REDIS_URL: %v", err)
	}
	if r.Mode != config.RedisCluster || len(r.Addrs) < 2 {
		t.Fatalf("cluster.env: mode %s with %d seeds; want cluster with several seeds", r.Mode, len(r.Addrs))
	}
	prefix := env["SENDWORKER_KEY_PREFIX"]
	if prefix == "" {
		prefix = config.Defaults().KeyPrefix
	}
	stream := env["SENDWORKER_RESULTS_STREAM"]
	if want := "{" + prefix + "}"; !strings.HasPrefix(stream, want) {
		t.Errorf("cluster.env: SENDWORKER_RESULTS_STREAM %q must start with the ledger's hash tag %s", stream, want)
	}

	// The file as SENDWORKER_CONFIG_FILE under the compose environment (minus its Redis URL).
	base := workerEnv(t, loadCompose(t))
	delete(base, "SENDWORKER_REDIS_URL")
	base["SENDWORKER_CONFIG_FILE"] = path
	if _, err := load(base); err != nil {
		t.Fatalf("cluster.env does not load as SENDWORKER_CONFIG_FILE:\n%v", err)
	}
}

// ---- Dockerfile ----

type instruction struct {
	line int
	cmd  string // upper case
	args string
}

func dockerInstructions(t *testing.T) []instruction {
	t.Helper()
	data, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, cont := strings.CutSuffix(trimmed, `\`); cont {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// shellWords splits a simple shell command line: white space, single and double quotes.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

type goBuild struct {
	env      []string // KEY=VALUE before the command
	flags    []string // build flags, without -o
	packages []string
	outDir   string
}

// parseGoBuild reads a RUN line of the form [K=V ...] go build [flags] -o dir/ pkg...
func parseGoBuild(t *testing.T, run string) goBuild {
	t.Helper()
	words := shellWords(run)
	var b goBuild
	for len(words) > 0 && strings.HasPrefix(words[0], "--") { // RUN --mount=... options
		words = words[1:]
	}
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		b.env = append(b.env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("not a go build command: %q", run)
	}
	valued := map[string]bool{"-ldflags": true, "-tags": true, "-gcflags": true, "-o": true, "-mod": true}
	for i := 2; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-o" && i+1 < len(words):
			b.outDir = words[i+1]
			i++
		case strings.HasPrefix(w, "-") && valued[w] && i+1 < len(words):
			b.flags = append(b.flags, w, words[i+1])
			i++
		case strings.HasPrefix(w, "-"):
			b.flags = append(b.flags, w)
		case strings.Contains(w, "&&") || w == ";":
			t.Fatalf("the go build RUN line chains other commands; keep it one command: %q", run)
		default:
			b.packages = append(b.packages, w)
		}
	}
	return b
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	ins := dockerInstructions(t)
	var froms []instruction
	var build *goBuild
	var copied []string
	var entrypoint, user string
	var exposed []string
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in)
		case "RUN":
			if strings.Contains(in.args, "go build") {
				if build != nil {
					t.Fatalf("Dockerfile:%d: a second go build", in.line)
				}
				b := parseGoBuild(t, in.args)
				build = &b
			}
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) >= 3 && strings.HasPrefix(f[0], "--from=") {
				dst := f[len(f)-1]
				for _, src := range f[1 : len(f)-1] {
					copied = append(copied, filepath.Join(dst, filepath.Base(src)))
				}
			}
		case "USER":
			user = in.args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "ENTRYPOINT":
			f := shellWords(strings.Trim(in.args, "[]"))
			if len(f) > 0 {
				entrypoint = strings.Trim(f[0], ",")
			}
		case "HEALTHCHECK":
			t.Errorf("Dockerfile:%d: HEALTHCHECK cannot run in a distroless image (no shell, no curl)", in.line)
		}
	}

	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, found %d FROM", len(froms))
	}
	buildImage := strings.Fields(froms[0].args)[0]
	goMod, err := os.ReadFile(goModPath)
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if goVersion == nil || buildImage != "golang:"+string(goVersion[1]) {
		t.Errorf("build stage %q; go.mod wants golang:%s", buildImage, goVersion[1])
	}
	final := strings.Fields(froms[len(froms)-1].args)[0]
	if final != "scratch" && !strings.HasPrefix(final, "gcr.io/distroless/static") {
		t.Errorf("final stage %q: want distroless/static or scratch", final)
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0:") || user == "0" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if entrypoint != "/usr/local/bin/sendworker" || !slices.Contains(copied, entrypoint) {
		t.Errorf("ENTRYPOINT %q: want /usr/local/bin/sendworker, copied from the build stage (copied: %v)", entrypoint, copied)
	}
	cfg := mustLoad(t, composePath, workerEnv(t, loadCompose(t)))
	if want := strconv.Itoa(adminPort(t, cfg)); !slices.Contains(exposed, want) && !slices.Contains(exposed, want+"/tcp") {
		t.Errorf("EXPOSE %v; the admin API listens on %s", exposed, want)
	}
	// The entrypoints compose uses are binaries of the image.
	for name, s := range loadCompose(t).Services {
		if s.Build != nil && len(s.Entrypoint) > 0 && !slices.Contains(copied, s.Entrypoint[0]) {
			t.Errorf("compose service %s runs %s, which the image does not contain", name, s.Entrypoint[0])
		}
	}

	if build == nil {
		t.Fatal("no RUN ... go build in the Dockerfile")
	}
	if !slices.Contains(build.env, "CGO_ENABLED=0") || !slices.Contains(build.flags, "-trimpath") {
		t.Errorf("go build must run with CGO_ENABLED=0 and -trimpath (env %v, flags %v)", build.env, build.flags)
	}
	for _, p := range []string{"./cmd/sendworker", "./cmd/sendctl", "./cmd/wasim"} {
		if !slices.Contains(build.packages, p) {
			t.Errorf("the go build does not build %s", p)
		}
	}
	for _, p := range build.packages {
		if !slices.Contains(copied, filepath.Join("/usr/local/bin", filepath.Base(p))) {
			t.Errorf("%s is built but not copied to /usr/local/bin", p)
		}
	}

	t.Run("build", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds three binaries; skipped with -short")
		}
		t.Parallel()
		goTool, err := exec.LookPath("go")
		if err != nil {
			t.Fatal("go is not on PATH")
		}
		out := t.TempDir()
		args := append([]string{"build"}, build.flags...)
		args = append(args, "-o", out+string(filepath.Separator))
		args = append(args, build.packages...)
		cmd := exec.Command(goTool, args...)
		cmd.Dir = moduleRoot
		// The Dockerfile's settings decide, not this machine's (CGO_ENABLED defaults to 1 in golang:).
		env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "CGO_ENABLED=") })
		cmd.Env = append(env, build.env...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msg)
		}
		for _, p := range build.packages {
			checkStatic(t, filepath.Join(out, filepath.Base(p)))
		}
	})
}

// checkStatic fails unless path is an ELF executable with no interpreter and no shared
// libraries: it runs in an image with no libc.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: dynamically linked (%s)", filepath.Base(path), p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("%s: needs shared libraries %v", filepath.Base(path), libs)
	}
}
