package config

import (
	"errors"
	"fmt"
	"strings"
)

// envEntry is one KEY=VALUE line of an env file.
type envEntry struct {
	Key   string
	Value string
	Line  int
}

// parseEnvFile reads the env-file syntax of SENDWORKER_CONFIG_FILE:
//
//	# comment
//	KEY=value                  unquoted: surrounding spaces trimmed; " #" starts a comment
//	export KEY=value           "export " is allowed and ignored
//	KEY="va lue # not a comment"  double quotes: \" \\ and \n are escapes
//	KEY='literal $value\n'     single quotes: no escapes
//
// It returns the good entries and, joined, one error per bad line. Errors name the line but never
// quote its content, which may be a secret. A key given twice is an error.
func parseEnvFile(data string) ([]envEntry, error) {
	var entries []envEntry
	var errs []error
	seen := make(map[string]int)
	for i, line := range strings.Split(data, "\n") {
		n := i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimSpace(rest)
		}
		key, raw, ok := strings.Cut(line, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: expected KEY=VALUE", n))
			continue
		}
		key = strings.TrimSpace(key)
		if !validEnvKey(key) {
			errs = append(errs, fmt.Errorf("line %d: invalid variable name", n))
			continue
		}
		value, err := parseEnvValue(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %w", n, key, err))
			continue
		}
		if first, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("line %d: %s already set on line %d", n, key, first))
			continue
		}
		seen[key] = n
		entries = append(entries, envEntry{Key: key, Value: value, Line: n})
	}
	return entries, errors.Join(errs...)
}

func validEnvKey(k string) bool {
	return validName(k, "_") && !('0' <= k[0] && k[0] <= '9')
}

// parseEnvValue decodes the part of a line after '='.
func parseEnvValue(raw string) (string, error) {
	raw = strings.TrimLeft(raw, " \t")
	if raw == "" {
		return "", nil
	}
	var value, after string
	switch raw[0] {
	case '"':
		var b strings.Builder
		closed := false
		i := 1
		for ; i < len(raw); i++ {
			c := raw[i]
			if c == '"' {
				closed = true
				i++
				break
			}
			if c == '\\' && i+1 < len(raw) {
				switch raw[i+1] {
				case '"', '\\':
					b.WriteByte(raw[i+1])
					i++
					continue
				case 'n':
					b.WriteByte('\n')
					i++
					continue
				}
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", errors.New("missing closing double quote")
		}
		value, after = b.String(), raw[i:]
	case '\'':
		end := strings.IndexByte(raw[1:], '\'')
		if end < 0 {
			return "", errors.New("missing closing single quote")
		}
		value, after = raw[1:1+end], raw[2+end:]
	default:
		// An unquoted value ends at a '#' that follows white space (an inline comment).
		for i := 1; i < len(raw); i++ {
			if raw[i] == '#' && (raw[i-1] == ' ' || raw[i-1] == '\t') {
				raw = raw[:i]
				break
			}
		}
		return strings.TrimRight(raw, " \t"), nil
	}
	after = strings.TrimLeft(after, " \t")
	if after != "" && after[0] != '#' {
		return "", errors.New("unexpected text after the closing quote")
	}
	return value, nil
}

// formatEnvFile writes entries in the syntax parseEnvFile reads, quoting values when needed.
func formatEnvFile(entries []envEntry) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Key + "=" + quoteEnvValue(e.Value) + "\n")
	}
	return b.String()
}

func quoteEnvValue(v string) string {
	if v == "" || validName(v, "_-./:@,+=%") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}
