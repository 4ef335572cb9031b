package luafn

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Runner runs scripts on one Redis client: by FCALL while the server takes
// it, and by EVALSHA for good once it has shown that it does not (a server
// without Functions: Redis < 7, miniredis; an ACL user without FCALL or
// FUNCTION LOAD). Its one piece of state, the choice, is per client, so a
// Ledger or Limiter keeps its own.
type Runner struct {
	rdb     redis.UniversalClient
	evalSha atomic.Bool
}

// MaxRecover is how many times a caller running a script in its own
// pipeline recovers (Recover) and runs it again: the FCALL refused for
// good, then the EVALSHA's NOSCRIPT.
const MaxRecover = 2

// NewRunner returns a Runner on rdb.
func NewRunner(rdb redis.UniversalClient) *Runner { return &Runner{rdb: rdb} }

// UsesEvalSha tells whether the runner has fallen back to EVALSHA.
func (r *Runner) UsesEvalSha() bool { return r.evalSha.Load() }

// Run runs s with keys and args, loading what the server lacks.
func (r *Runner) Run(ctx context.Context, s *Script, keys []string, args ...any) *redis.Cmd {
	c := r.Call(s)
	for try := 0; ; try++ {
		if c.viaEvalSha() {
			// Script.Run sends the whole script after a NOSCRIPT.
			return s.sha.Run(ctx, r.rdb, keys, args...)
		}
		cmd := r.rdb.FCall(ctx, s.Function(), keys, args...)
		if try == MaxRecover {
			return cmd
		}
		again, err := c.Recover(ctx, r.rdb, cmd)
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd
		}
		if !again {
			return cmd
		}
	}
}

// Call is one call of a script that its caller runs in a pipeline of its
// own (Queue), then, when Recover says so, queues and runs again.
type Call struct {
	r *Runner
	s *Script
	// evalSha: this call goes by EVALSHA even while the runner uses FCALL,
	// after the server refused its FCALL for want of memory (see Recover).
	evalSha bool
}

// Call returns a call of s.
func (r *Runner) Call(s *Script) *Call { return &Call{r: r, s: s} }

func (c *Call) viaEvalSha() bool { return c.evalSha || c.r.evalSha.Load() }

// Queue adds the call to pipe: FCALL, or EVALSHA once the runner has fallen
// back (or this call has, see Recover).
func (c *Call) Queue(ctx context.Context, pipe redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
	if c.viaEvalSha() {
		return pipe.EvalSha(ctx, c.s.sha.Hash(), keys, args...)
	}
	return pipe.FCall(ctx, c.s.Function(), keys, args...)
}

// Recover looks at the outcome of cmd, the call run by FCALL or EVALSHA (Run
// or Queue), and tells whether it ran nothing and may be run again now:
//   - FCALL unknown, or refused by ACL: the runner falls back to EVALSHA;
//   - the function not found (the library never loaded, or lost with a
//     restart without persistence, FUNCTION FLUSH, a Cluster node new to the
//     slot): loads the library on node (every master of a Cluster client);
//   - FCALL refused because the server is out of memory (maxmemory reached):
//     this call runs again by EVALSHA, the runner keeps FCALL for the others.
//     Redis refuses a function without the allow-oom flag before it runs,
//     where a script run by EVALSHA runs and only its commands that may add
//     memory are refused: a script that reads, or deletes (the retention's
//     trim), works as before. (In a MULTI a full server refuses every
//     command, EVALSHA too, so a MULTI fails there as it always did.) None of
//     the scripts is flagged allow-oom, which would also let their writes
//     grow a full server;
//   - EVALSHA's NOSCRIPT: loads the script on node.
//
// Every case is a refusal before the script ran: an error a script's own
// redis.call raised (refused, see refusedBeforeRun) is never run again.
// node is the client that ran cmd: the Runner's, or the node a caller
// pipelined on.
func (c *Call) Recover(ctx context.Context, node redis.UniversalClient, cmd *redis.Cmd) (bool, error) {
	err := cmd.Err()
	if err == nil || !refusedBeforeRun(err) {
		return false, nil
	}
	s := c.s
	switch cmd.Name() {
	case "evalsha":
		if !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return false, nil
		}
		if err := s.sha.Load(ctx, node).Err(); err != nil {
			return false, err
		}
		return true, nil
	case "fcall":
	default:
		return false, nil
	}
	switch {
	case noFunctions(err):
		c.r.evalSha.Store(true)
		return true, nil
	case redis.HasErrorPrefix(err, "OOM") && !c.evalSha:
		c.evalSha = true
		return true, nil
	case redis.HasErrorPrefix(err, "Function not found"):
		if err := s.lib.Load(ctx, node); err != nil {
			if noFunctions(err) {
				c.r.evalSha.Store(true)
				return true, nil
			}
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// refusedBeforeRun tells whether err is Redis refusing the command itself,
// not an error a script's own redis.call raised after part of the script ran:
// Redis adds "script: <name>, on @user_function:<line>." (or
// "@user_script") to the latter.
func refusedBeforeRun(err error) bool {
	msg := err.Error()
	return !strings.Contains(msg, "@user_function") && !strings.Contains(msg, "@user_script")
}

// noFunctions tells whether err says that this client cannot use Functions
// at all: FCALL or FUNCTION unknown (Redis < 7, miniredis) or not permitted
// to this user (ACL: NOPERM). The error must name FCALL or FUNCTION itself,
// not another command a script called.
func noFunctions(err error) bool {
	if !redis.HasErrorPrefix(err, "unknown command") && !redis.HasErrorPrefix(err, "unknown subcommand") &&
		!redis.HasErrorPrefix(err, "NOPERM") {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, name := range []string{"'fcall'", "`fcall`", "'function", "`function"} {
		if strings.Contains(msg, name) {
			return true
		}
	}
	return false
}
