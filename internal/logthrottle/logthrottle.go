// Package logthrottle keeps a repeated log message from flooding the logs: while Redis is down,
// every loop of every replica would otherwise log the same failure several times a second. A
// Throttle lets one line per key through per interval and counts the ones it held back, so the
// next line says how many were dropped. It also adapts the loggers of go-redis and asynq to zap,
// throttled, so that their lines are structured JSON like the daemon's.
//
// It never drops the first occurrence of a message, and never holds lines back: a dropped line
// is only counted.
package logthrottle

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// DefaultInterval is how often a Throttle lets one key through by default.
const DefaultInterval = 30 * time.Second

// maxKeys bounds the keys remembered; beyond it the oldest are forgotten (a forgotten key logs
// again at once, which is safe).
const maxKeys = 256

// Throttle decides which repeated lines to log. The zero value is not usable: use New.
type Throttle struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*state
}

type state struct {
	last       time.Time
	suppressed int
}

// New returns a Throttle that lets each key through at most once per every (DefaultInterval
// when every <= 0). now is the clock (time.Now when nil).
func New(every time.Duration, now func() time.Time) *Throttle {
	if every <= 0 {
		every = DefaultInterval
	}
	if now == nil {
		now = time.Now
	}
	return &Throttle{every: every, now: now, keys: map[string]*state{}}
}

// Allow reports whether a line of key may be logged now and, if so, how many lines of that key
// were held back since the last one logged.
func (t *Throttle) Allow(key string) (ok bool, suppressed int) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.keys[key]
	if s == nil {
		if len(t.keys) >= maxKeys {
			t.forgetOldest()
		}
		t.keys[key] = &state{last: now}
		return true, 0
	}
	if now.Sub(s.last) < t.every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}

func (t *Throttle) forgetOldest() {
	var oldest string
	var at time.Time
	for k, s := range t.keys {
		if oldest == "" || s.last.Before(at) {
			oldest, at = k, s.last
		}
	}
	delete(t.keys, oldest)
}

// Warn logs msg at warn level through t (keyed by msg), with a "suppressed" field when
// earlier lines were held back.
func (t *Throttle) Warn(log *zap.Logger, msg string, fields ...zap.Field) {
	t.log(log.Warn, msg, msg, fields)
}

func (t *Throttle) log(fn func(string, ...zap.Field), key, msg string, fields []zap.Field) {
	ok, n := t.Allow(key)
	if !ok {
		return
	}
	if n > 0 {
		fields = append(fields, zap.Int("suppressed", n))
	}
	fn(msg, fields...)
}

// key is what identifies "the same message": its first line, cut short, so lines that differ
// only in a long tail (an address, a count) still count as one.
func key(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// RedisLogger is go-redis's internal logger (redis.SetLogger) writing through log: each line is
// a structured warning "redis client" with the client's text in "detail", throttled per
// message.
type RedisLogger struct {
	log *zap.Logger
	t   *Throttle
}

// NewRedisLogger returns a RedisLogger writing to log, throttled by t.
func NewRedisLogger(log *zap.Logger, t *Throttle) *RedisLogger { return &RedisLogger{log: log, t: t} }

// Printf implements go-redis's internal.Logging.
func (l *RedisLogger) Printf(_ context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	// go-redis prefixes "file.go:line: ": the key skips it, so one failure from several call
	// sites counts as one message.
	k := msg
	if i := strings.Index(msg, ": "); i > 0 && strings.Contains(msg[:i], ".go:") {
		k = msg[i+2:]
	}
	l.t.log(l.log.Warn, "redis:"+key(k), "redis client", []zap.Field{zap.String("detail", msg)})
}

// AsynqLogger is an asynq.Logger writing through log, with warnings and errors throttled per
// message. Fatal logs at error level and does not exit: the daemon decides when to stop.
type AsynqLogger struct {
	log *zap.Logger
	t   *Throttle
}

// NewAsynqLogger returns an AsynqLogger writing to log, throttled by t.
func NewAsynqLogger(log *zap.Logger, t *Throttle) *AsynqLogger { return &AsynqLogger{log: log, t: t} }

func (l *AsynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l *AsynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l *AsynqLogger) Warn(args ...any)  { l.throttled(l.log.Warn, args) }
func (l *AsynqLogger) Error(args ...any) { l.throttled(l.log.Error, args) }
func (l *AsynqLogger) Fatal(args ...any) { l.throttled(l.log.Error, args) }

func (l *AsynqLogger) throttled(fn func(string, ...zap.Field), args []any) {
	msg := fmt.Sprint(args...)
	l.t.log(fn, "asynq:"+key(msg), msg, nil)
}
