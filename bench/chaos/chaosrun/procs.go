package chaosrun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const modulePath = "github.com/sendworker/sendworker"

// buildBinaries go-builds cmd/sendworker and cmd/wasim into dir. They are
// ordinary builds (no -race) whatever the caller was built with.
func buildBinaries(ctx context.Context, dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			goBin = filepath.Join(root, "bin", "go")
		} else {
			return errors.New("the go command is not on PATH (or pass prebuilt binaries with -bin-dir)")
		}
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(filepath.Separator),
		modulePath+"/cmd/sendworker", modulePath+"/cmd/wasim")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build (run from inside the sendworker module): %v\n%s", err, out.String())
	}
	return nil
}

// lineWatch is an io.Writer that copies to a file and calls match on each
// complete line until match returns true once.
type lineWatch struct {
	mu    sync.Mutex
	f     *os.File
	buf   []byte
	match func(line string) bool
	done  chan struct{}
	fired bool
}

func newLineWatch(f *os.File, match func(string) bool) *lineWatch {
	return &lineWatch{f: f, match: match, done: make(chan struct{})}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.f.Write(p)
	if w.fired {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if w.match(line) {
			w.fired = true
			w.buf = nil
			close(w.done)
			break
		}
	}
	return len(p), nil
}

// process is one started subprocess.
type process struct {
	cmd    *exec.Cmd
	log    *os.File
	ready  *lineWatch
	exited chan struct{}
	err    error // set before exited is closed
}

func startProcess(bin string, args, env []string, logPath string, ready func(string) bool) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	w := newLineWatch(f, ready)
	cmd.Stdout, cmd.Stderr = w, w
	// Own process group (a ^C to the chaos program does not reach them
	// first); Pdeathsig: they die with the chaos program.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	p := &process{cmd: cmd, log: f, ready: w, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// waitReady waits for the ready line, the process's exit or the timeout.
func (p *process) waitReady(timeout time.Duration) error {
	select {
	case <-p.ready.done:
		return nil
	case <-p.exited:
		return fmt.Errorf("exited before it was ready: %v", p.err)
	case <-time.After(timeout):
		return fmt.Errorf("not ready after %s", timeout)
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits up to grace, then SIGKILL.
func (p *process) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.kill()
	}
}

// childEnv is the environment of the subprocesses: the caller's, minus any
// SENDWORKER_* or WASIM_* variable (they would change the configuration),
// plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SENDWORKER_") || strings.HasPrefix(kv, "WASIM_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// startWasim runs the simulator on a free port and returns it with its base URL.
func startWasim(c Config, bin, dir, apiKey string) (*process, string, error) {
	args := []string{
		"-addr", "127.0.0.1:0",
		"-api-key", apiKey,
		"-generate-accounts", strconv.Itoa(c.Accounts),
		"-generate-chats", strconv.Itoa(c.ChatsPerAccount),
		"-error-500", strconv.FormatFloat(c.Error500, 'g', -1, 64),
		"-rate-limit", strconv.FormatFloat(c.RateLimit, 'g', -1, 64),
		"-retry-after", c.RetryAfter.String(),
		"-accept-then-drop", strconv.FormatFloat(c.AcceptThenDrop, 'g', -1, 64),
		"-late-store", strconv.FormatFloat(c.LateStore, 'g', -1, 64),
		"-late-store-delay", c.LateStoreDelay.String(),
		"-clock-offset", c.ProviderClockOffset.String(),
		"-latency-min", c.LatencyMin.String(),
		"-latency-max", c.LatencyMax.String(),
	}
	if c.Seed != 0 {
		args = append(args, "-rand-seed", strconv.FormatUint(c.Seed, 10))
	}
	var base string
	var mu sync.Mutex
	p, err := startProcess(bin, args, childEnv(), filepath.Join(dir, "wasim.log"), func(line string) bool {
		// "  base URL  http://127.0.0.1:41234  (clients use ...)"
		if !strings.Contains(line, "base URL") {
			return false
		}
		for f := range strings.FieldsSeq(line) {
			if strings.HasPrefix(f, "http://") {
				mu.Lock()
				base = f
				mu.Unlock()
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(30 * time.Second); err != nil {
		p.kill()
		return nil, "", fmt.Errorf("wasim: %w (log %s)", err, filepath.Join(dir, "wasim.log"))
	}
	mu.Lock()
	defer mu.Unlock()
	return p, base, nil
}

// Tokens of the daemons' admin API (unused by the chaos run, required by the config).
const (
	schedulerID = "chaos-sequencer"
	approverID  = "chaos-approver"
)

func workerEnv(c Config, redisURL, wasimURL, apiKey string) []string {
	var extra []string
	if c.ResendPolicy != "" {
		extra = append(extra, "SENDWORKER_RESEND_POLICY="+c.ResendPolicy)
	}
	return childEnv(append(extra,
		"SENDWORKER_REDIS_URL="+redisURL,
		"SENDWORKER_PROVIDER_BASE_URL="+wasimURL,
		"SENDWORKER_PROVIDER_API_KEY="+apiKey,
		"SENDWORKER_PROVIDER_TIMEOUT="+c.ProviderTimeout.String(),
		"SENDWORKER_ADMIN_ADDR=127.0.0.1:0",
		"SENDWORKER_ADMIN_TOKENS="+schedulerID+":scheduler:chaos-scheduler-token-0001,"+
			approverID+":approver:chaos-approver-token-00001,chaos-ops:admin:chaos-admin-token-000001",
		"SENDWORKER_CONCURRENCY="+strconv.Itoa(c.Concurrency),
		"SENDWORKER_SHUTDOWN_TIMEOUT=5s",
		"SENDWORKER_RECONCILE_DELAY="+c.ReconcileDelay.String(),
		"SENDWORKER_RECOVERY_GRACE="+c.RecoveryGrace.String(),
		"SENDWORKER_LATE_COMPLETION="+c.LateCompletion.String(),
		// Limits off: this run is about crashes, not pacing.
		"SENDWORKER_RATE_MIN_INTERVAL=0s",
		"SENDWORKER_RATE_JITTER=0s",
		"SENDWORKER_RATE_HOURLY_CAP=0",
		"SENDWORKER_RATE_DAILY_CAP=0",
		"SENDWORKER_RATE_NEW_CHATS_HOURLY_CAP=0",
		"SENDWORKER_RATE_NEW_CHATS_DAILY_CAP=0",
		"SENDWORKER_RATE_GLOBAL_RPS=0",
		"SENDWORKER_LOG_LEVEL=info",
		"SENDWORKER_LOG_FORMAT=json",
	)...)
}

// slot is one worker position: its current process, restarted whenever it
// exits until the run stops it.
type slot struct {
	n       int
	bin     string
	env     []string
	dir     string
	logf    func(format string, args ...any)
	mu      sync.Mutex
	cur     *process
	incarn  int
	killed  bool // the current process was killed on purpose
	stopped bool

	kills, unexpected int
	done              chan struct{}
}

func (s *slot) logPath(incarn int) string {
	return filepath.Join(s.dir, fmt.Sprintf("worker-%d.%03d.log", s.n, incarn))
}

func workerReady(line string) bool { return strings.Contains(line, `"sendworker started"`) }

// start launches incarnation 0 and waits until it runs.
func (s *slot) start() error {
	p, err := startProcess(s.bin, nil, s.env, s.logPath(0), workerReady)
	if err != nil {
		return err
	}
	if err := p.waitReady(30 * time.Second); err != nil {
		p.kill()
		return fmt.Errorf("worker %d: %w (log %s)", s.n, err, s.logPath(0))
	}
	s.cur = p
	s.done = make(chan struct{})
	go s.supervise()
	return nil
}

// supervise restarts the worker every time it exits, until stop.
func (s *slot) supervise() {
	defer close(s.done)
	for {
		s.mu.Lock()
		p := s.cur
		s.mu.Unlock()
		<-p.exited
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			return
		}
		if !s.killed {
			s.unexpected++
			s.logf("worker %d exited on its own (%v); restarting (log %s)", s.n, p.err, s.logPath(s.incarn))
		}
		s.killed = false
		s.incarn++
		incarn := s.incarn
		s.mu.Unlock()
		var np *process
		for {
			var err error
			np, err = startProcess(s.bin, nil, s.env, s.logPath(incarn), workerReady)
			if err == nil {
				break
			}
			s.logf("worker %d: restart failed: %v", s.n, err)
			time.Sleep(500 * time.Millisecond)
		}
		s.mu.Lock()
		s.cur = np
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			np.stop(10 * time.Second)
			return
		}
	}
}

// kill9 kills the current process with SIGKILL; supervise restarts it.
func (s *slot) kill9() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.cur == nil {
		return
	}
	select {
	case <-s.cur.exited:
		return // already gone; supervise is on it
	default:
	}
	s.killed = true
	s.kills++
	_ = s.cur.cmd.Process.Signal(syscall.SIGKILL)
	s.logf("SIGKILL worker %d (pid %d, log %s)", s.n, s.cur.cmd.Process.Pid, s.logPath(s.incarn))
}

// stop ends the supervision and stops the current process gracefully.
func (s *slot) stop() {
	s.mu.Lock()
	s.stopped = true
	p := s.cur
	s.mu.Unlock()
	if p != nil {
		p.stop(15 * time.Second)
	}
	if s.done != nil {
		<-s.done
	}
}
