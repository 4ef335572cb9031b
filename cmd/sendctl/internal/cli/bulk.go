package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/sendworker/sendworker/tasks"
)

// maxBulk is the most items one bulk call of the API takes; sendctl splits
// bigger batches into several calls.
const maxBulk = 500

// itemResult is one item of a bulk answer.
type itemResult struct {
	SendID string        `json:"send_id"`
	Status int           `json:"status"`
	Record *tasks.Record `json:"record,omitempty"`
	Error  *itemError    `json:"error,omitempty"`
}

// itemError is a bulk item's error object; a plain string is accepted too.
type itemError struct{ errorBody }

func (e *itemError) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		e.Message = s
		return nil
	}
	return json.Unmarshal(b, &e.errorBody)
}

// bulkAnswer keeps both the typed and the raw results, for -o json.
type bulkAnswer struct {
	items []itemResult
	raw   []json.RawMessage
}

// bulk posts items in chunks of maxBulk to path, wrapping each chunk with
// wrap, and gathers the per-item results.
func bulk[T any](ctx context.Context, c *client, path string, items []T, wrap func([]T) any) (*bulkAnswer, error) {
	out := &bulkAnswer{}
	for start := 0; start < len(items); start += maxBulk {
		end := min(start+maxBulk, len(items))
		var page struct {
			Results []json.RawMessage `json:"results"`
		}
		if _, _, err := c.send(ctx, http.MethodPost, path, wrap(items[start:end]), &page); err != nil {
			if start > 0 {
				return out, fmt.Errorf("after %d item(s) done: %w", start, err)
			}
			return out, err
		}
		for _, r := range page.Results {
			var it itemResult
			if err := json.Unmarshal(r, &it); err != nil {
				return out, &transportError{msg: fmt.Sprintf("POST %s: a result is not what sendctl expects: %v", path, err)}
			}
			out.items = append(out.items, it)
			out.raw = append(out.raw, r)
		}
	}
	return out, nil
}

// report prints a bulk answer and returns a *partialError when an item
// failed. okWord names what a 2xx item means, by status.
func (a *app) report(ans *bulkAnswer, okWord func(status int) string) error {
	failed := 0
	for _, it := range ans.items {
		if it.Status < 200 || it.Status > 299 {
			failed++
		}
	}
	if a.json() {
		b, err := json.Marshal(struct {
			Results []json.RawMessage `json:"results"`
		}{ans.raw})
		if err != nil {
			return err
		}
		if err := writePrettyJSON(a.stdout, b); err != nil {
			return err
		}
	} else {
		tw := newTable(a.stdout)
		row(tw, "SEND_ID", "RESULT", "STATE", "DETAIL")
		for _, it := range ans.items {
			state, detail := "-", ""
			if it.Record != nil {
				state = string(it.Record.State)
				detail = "digest " + shortDigest(it.Record.Digest)
			}
			result := ""
			if it.Status >= 200 && it.Status <= 299 {
				result = okWord(it.Status)
			} else {
				result = fmt.Sprintf("failed (%d)", it.Status)
				detail = itemErrorText(it)
			}
			row(tw, cell(it.SendID), result, state, cell(detail))
		}
		tw.Flush()
	}
	if failed > 0 {
		return &partialError{failed: failed, total: len(ans.items)}
	}
	return nil
}

func itemErrorText(it itemResult) string {
	if it.Error == nil {
		return http.StatusText(it.Status)
	}
	parts := []string{}
	if it.Error.Code != "" {
		parts = append(parts, it.Error.Code)
	}
	if it.Error.Message != "" {
		parts = append(parts, it.Error.Message)
	}
	for _, f := range it.Error.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	return strings.Join(parts, "; ")
}
