package config

import (
	"errors"
	"log/slog"
)

// redactedText replaces every secret wherever configuration is printed.
const redactedText = "<secret>"

// Secret is a configuration value that must never be printed: every formatting path (fmt verbs
// including %#v, JSON, text marshalling, slog) yields "<secret>". Reveal is the only way to get the
// value, so each use of a secret is a visible, searchable call.
type Secret string

// Reveal returns the secret value. Call it only where the value is handed to the outside world
// (an Authorization header, an HMAC key, a Redis AUTH).
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redactedText }

// GoString implements fmt.GoStringer, so %#v of a struct holding a Secret stays redacted.
func (s Secret) GoString() string { return redactedText }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redactedText), nil }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redactedText + `"`), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redactedText) }

// FieldError is one configuration problem, named by its environment variable.
type FieldError struct {
	// Var is the environment variable at fault, e.g. SENDWORKER_CONCURRENCY.
	Var string
	// Value is the offending value as given, or "<secret>" (or a URL with its credentials
	// removed) when the variable holds a secret.
	Value string
	// Problem says what is wrong, in words an operator can act on. It never contains a secret.
	Problem string
}

func (e *FieldError) Error() string { return e.Var + ": " + e.Problem }

// FieldErrors returns the FieldErrors inside err (as returned by Load or Validate), in order.
func FieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	var out []*FieldError
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			out = append(out, FieldErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}

// closest returns the candidate nearest to name when it is close enough to be a likely typo.
func closest(name string, candidates []string) (string, bool) {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(name, c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	// Variable names share the long SENDWORKER_ prefix, so allow a few edits in the rest.
	return best, bestDist >= 0 && bestDist <= 3
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
