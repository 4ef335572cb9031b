// Package redisproc starts and stops throwaway redis-server processes on free
// loopback ports. Tests, benchmarks and the chaos program use it so they never
// depend on (or disturb) a Redis that happens to run on the machine.
package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options says how to run the server.
type Options struct {
	// Dir holds the server's files (AOF, RDB, log). Required.
	Dir string
	// AppendOnly turns on AOF with fsync every second, so a restart keeps data.
	AppendOnly bool
	// Port to listen on; 0 picks a free one.
	Port int
	// Binary is the redis-server executable; default "redis-server" from PATH.
	Binary string
	// Cluster runs the server as a Redis Cluster node (see StartCluster).
	Cluster bool
	// ReplicaOf ("host:port") runs the server as a replica of that master.
	ReplicaOf string
	// Args are more redis-server arguments, e.g. "--requirepass", "pw".
	Args []string
	// Wrapper is a command the server runs under, its binary and arguments
	// following it: e.g. valgrind and its options, to count the server's
	// instructions (bench/throughput -redis-instructions). The server then
	// starts far slower: Start waits up to a minute for it.
	Wrapper []string
}

// Proc is a running redis-server.
type Proc struct {
	opts Options
	port int
	bus  int // the cluster bus port (cluster nodes only)
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

// ErrNoBinary reports that redis-server is not installed.
var ErrNoBinary = errors.New("redis-server not found in PATH (install it: apt-get install -y redis-server)")

// Start launches redis-server and waits until it answers PING.
func Start(ctx context.Context, opts Options) (*Proc, error) {
	if opts.Dir == "" {
		return nil, errors.New("redisproc: Options.Dir is required")
	}
	if opts.Binary == "" {
		opts.Binary = "redis-server"
	}
	if _, err := exec.LookPath(opts.Binary); err != nil {
		return nil, ErrNoBinary
	}
	if len(opts.Wrapper) > 0 {
		if _, err := exec.LookPath(opts.Wrapper[0]); err != nil {
			return nil, fmt.Errorf("redisproc: wrapper %s: %w", opts.Wrapper[0], err)
		}
	}
	p := &Proc{opts: opts, port: opts.Port}
	// A port picked by closing a listener can be taken by someone else before
	// redis binds it, so try a few times.
	var lastErr error
	for range 5 {
		if opts.Port == 0 {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			p.port = port
		}
		p.bus = 0 // a fresh bus port too, should the last one have been taken
		if lastErr = p.launch(ctx); lastErr == nil {
			return p, nil
		}
		if opts.Port != 0 {
			break
		}
	}
	return nil, lastErr
}

// Addr is host:port of the server.
func (p *Proc) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// PID is the server's process id (the wrapper's, which valgrind shares with
// the server it runs); 0 when the server is not running.
func (p *Proc) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// URL is a redis:// URL for the server's database 0.
func (p *Proc) URL() string { return "redis://" + p.Addr() + "/0" }

// Stop shuts the server down gracefully (SIGTERM) and waits for it.
func (p *Proc) Stop() error { return p.signal(syscall.SIGTERM) }

// Kill ends the server at once (SIGKILL), like a crash.
func (p *Proc) Kill() error { return p.signal(syscall.SIGKILL) }

// Restart stops the server gracefully and starts it again on the same port
// and directory, so an AOF-backed server comes back with its data.
func (p *Proc) Restart(ctx context.Context) error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.launch(ctx)
}

// CrashRestart kills the server (SIGKILL: no shutdown, no final fsync) and
// starts it again on the same port and directory: what survives is what its
// persistence settings had put on disk.
func (p *Proc) CrashRestart(ctx context.Context) error {
	if err := p.Kill(); err != nil {
		return err
	}
	return p.launch(ctx)
}

func (p *Proc) signal(sig syscall.Signal) error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
	return nil
}

func (p *Proc) launch(ctx context.Context) error {
	args := []string{
		"--port", strconv.Itoa(p.port),
		"--bind", "127.0.0.1",
		"--dir", p.opts.Dir,
		"--save", "",
		"--maxmemory-policy", "noeviction",
		"--logfile", filepath.Join(p.opts.Dir, "redis.log"),
		"--protected-mode", "no",
		// A replica's first sync starts at once, not after Redis's default 5 s.
		"--repl-diskless-sync-delay", "0",
	}
	if host, port, ok := strings.Cut(p.opts.ReplicaOf, ":"); ok {
		args = append(args, "--replicaof", host, port)
	}
	if p.opts.Cluster {
		// The bus port defaults to port+10000, past 65535 for high ports: pick one.
		if p.bus == 0 {
			bus, err := freePort()
			if err != nil {
				return err
			}
			p.bus = bus
		}
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", "--cluster-port", strconv.Itoa(p.bus))
	}
	if p.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, p.opts.Args...)
	argv := append(append(append([]string{}, p.opts.Wrapper...), p.opts.Binary), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// Own process group: a ^C to the test does not reach redis before
	// cleanup. Pdeathsig: a test binary killed outright (fuzz workers, a
	// timeout) takes its redis-server with it instead of leaking it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisproc: start: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done

	wait := 10 * time.Second
	if len(p.opts.Wrapper) > 0 {
		wait = time.Minute
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if pingOnce(p.Addr()) == nil {
			return nil
		}
		select {
		case <-done:
			p.cmd = nil
			log, _ := os.ReadFile(filepath.Join(p.opts.Dir, "redis.log"))
			return fmt.Errorf("redisproc: redis-server on port %d exited early: %s", p.port, lastLines(string(log), 5))
		case <-ctx.Done():
			_ = p.Kill()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = p.Kill()
	return fmt.Errorf("redisproc: redis-server on port %d did not answer PING within %s", p.port, wait)
}

// Sentinel is a redis-server in sentinel mode started by StartSentinel.
type Sentinel struct {
	cmd  *exec.Cmd
	done chan struct{}
	port int
}

// Addr is host:port of the sentinel.
func (s *Sentinel) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Kill ends the sentinel.
func (s *Sentinel) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// SentinelAuth are the passwords of a Sentinel setup; empty ones are not set.
type SentinelAuth struct {
	MasterPassword   string // the monitored master's (sentinel auth-pass)
	SentinelPassword string // the Sentinel's own (requirepass)
}

// StartSentinel runs a Sentinel (quorum 1) that monitors the master at
// masterAddr under masterName, with fast failure detection (1 s) and
// failover, and waits until it answers for that master.
func StartSentinel(ctx context.Context, dir, masterName, masterAddr string, auth SentinelAuth) (*Sentinel, error) {
	host, mport, err := net.SplitHostPort(masterAddr)
	if err != nil {
		return nil, fmt.Errorf("redisproc: sentinel: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites its file
	content := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
		"sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
		port, dir, filepath.Join(dir, "sentinel.log"), masterName, host, mport, masterName, masterName, masterName)
	if auth.MasterPassword != "" {
		content += fmt.Sprintf("sentinel auth-pass %s %s\n", masterName, auth.MasterPassword)
	}
	if auth.SentinelPassword != "" {
		content += fmt.Sprintf("requirepass %s\n", auth.SentinelPassword)
	}
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		return nil, fmt.Errorf("redisproc: sentinel: %w", err)
	}
	cmd := exec.Command("redis-server", conf, "--sentinel")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redisproc: sentinel: %w", err)
	}
	s := &Sentinel{cmd: cmd, done: make(chan struct{}), port: port}
	go func() { _ = cmd.Wait(); close(s.done) }()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), Protocol: 2, Password: auth.SentinelPassword})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if addr, err := c.GetMasterAddrByName(ctx, masterName).Result(); err == nil && len(addr) == 2 {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, fmt.Errorf("redisproc: sentinel on port %d does not know %s after 10s", port, masterName)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cluster is a Redis Cluster of masters started by StartCluster.
type Cluster struct {
	Nodes []*Proc
}

// URL is a redis-cluster:// URL naming every node.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// Kill ends every node at once.
func (c *Cluster) Kill() {
	for _, n := range c.Nodes {
		_ = n.Kill()
	}
}

// clusterSlots is the number of hash slots of Redis Cluster.
const clusterSlots = 16384

// StartCluster starts n cluster nodes (masters, no replicas) in subdirectories
// of dir, splits the hash slots between them, joins them and waits until every
// node reports the cluster ok. Only commands are used (no redis-cli).
func StartCluster(ctx context.Context, dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("redisproc: a cluster needs at least one node")
	}
	c := &Cluster{}
	fail := func(err error) (*Cluster, error) {
		c.Kill()
		return nil, err
	}
	for i := range n {
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return fail(err)
		}
		p, err := Start(ctx, Options{Dir: nodeDir, Cluster: true})
		if err != nil {
			return fail(err)
		}
		c.Nodes = append(c.Nodes, p)
	}
	clients := make([]*redis.Client, n)
	for i, p := range c.Nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: p.Addr(), Protocol: 2})
		defer clients[i].Close()
	}
	for i, cl := range clients {
		from, to := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", from, to).Err(); err != nil {
			return fail(fmt.Errorf("redisproc: cluster slots %d-%d: %w", from, to, err))
		}
	}
	for _, p := range c.Nodes[1:] {
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", p.port, p.bus).Err(); err != nil {
			return fail(fmt.Errorf("redisproc: cluster meet: %w", err))
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, cl := range clients {
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("redisproc: cluster not ok after 30s: %q %v", info, err))
			}
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return c, nil
}

func pingOnce(addr string) error {
	// A plain dial first: go-redis logs every refused dial, and a server
	// under valgrind refuses for seconds.
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	_ = conn.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = c.Ping(ctx).Err()
	if err != nil && redis.HasErrorPrefix(err, "NOAUTH") {
		return nil // a server with a password answers: it is up
	}
	return err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisproc: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
