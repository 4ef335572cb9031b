// Package callgrind counts the instructions a server process executes, with
// valgrind's callgrind tool, so that benchmarks can compare the Redis work of
// two pipelines by a count that does not move with the machine's load: on
// these shared 2-CPU machines a CPU time varies by tens of percent between
// runs, while the same binary given the same commands executes the same
// instructions, give or take what the data's growth changes.
//
// The count is of user space only (the server's own code and its libraries):
// the kernel's share of a round trip is not in it.
package callgrind

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Wrapper is the command to run a server under: valgrind's callgrind,
// writing its dumps into dir, collecting from the start.
func Wrapper(dir string) []string {
	return []string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + filepath.Join(dir, "callgrind.%p.out")}
}

// Available reports whether valgrind and callgrind_control are installed.
func Available() error {
	for _, bin := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("callgrind: %s not found (install it: apt-get install -y valgrind): %w", bin, err)
		}
	}
	return nil
}

// Counter reads the instruction count of one process started under Wrapper(Dir).
type Counter struct {
	PID int
	Dir string
}

// Zero sets the process's count to zero.
func (c Counter) Zero(ctx context.Context) error {
	return c.control(ctx, "--zero")
}

// Dump returns the instructions executed since the last Zero (or the start).
// label names the dump file's trigger, for whoever reads the files.
func (c Counter) Dump(ctx context.Context, label string) (int64, error) {
	before, err := c.dumps()
	if err != nil {
		return 0, err
	}
	if err := c.control(ctx, "--dump="+label); err != nil {
		return 0, err
	}
	after, err := c.dumps()
	if err != nil {
		return 0, err
	}
	for name := range after {
		if !before[name] {
			return readSummary(filepath.Join(c.Dir, name))
		}
	}
	return 0, errors.New("callgrind: the dump wrote no new file")
}

// control runs callgrind_control, which returns once the process has acted
// (a process idle in a system call acts at its next timer tick).
func (c Counter) control(ctx context.Context, arg string) error {
	out, err := exec.CommandContext(ctx, "callgrind_control", arg, strconv.Itoa(c.PID)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("callgrind: callgrind_control %s %d: %w: %s", arg, c.PID, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dumps is the set of the process's dump files ("callgrind.<pid>.out.<k>").
func (c Counter) dumps() (map[string]bool, error) {
	m, err := filepath.Glob(filepath.Join(c.Dir, "callgrind."+strconv.Itoa(c.PID)+".out.*"))
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(m))
	for _, p := range m {
		set[filepath.Base(p)] = true
	}
	return set, nil
}

// readSummary reads a dump file's instruction total (its "summary:" line,
// "totals:" in older formats).
func readSummary(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("callgrind: %w", err)
	}
	defer f.Close()
	n, err := parseSummary(f)
	if err != nil {
		return 0, fmt.Errorf("callgrind: %s: %w", path, err)
	}
	return n, nil
}

// parseSummary reads the instruction total of a callgrind dump.
func parseSummary(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var total int64 = -1
	for sc.Scan() {
		line := sc.Text()
		for _, prefix := range []string{"summary:", "totals:"} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				fields := strings.Fields(v)
				if len(fields) == 0 {
					return 0, fmt.Errorf("empty %s line", prefix)
				}
				n, err := strconv.ParseInt(fields[0], 10, 64)
				if err != nil || n < 0 {
					return 0, fmt.Errorf("%s %q is not a count", prefix, fields[0])
				}
				if prefix == "summary:" || total < 0 {
					total = n
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if total < 0 {
		return 0, errors.New("no summary line")
	}
	return total, nil
}
