package wasim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const maxControlBodyBytes = 1 << 20

// controlError is the body of every control endpoint error. These endpoints belong to the
// simulator, not the provider, so they use a plain shape rather than problem details.
type controlError struct {
	Error string `json:"error"`
}

type deliveriesResponse struct {
	Deliveries []Delivery `json:"deliveries"`
	LastSeq    int        `json:"last_seq"`
}

type statusRequest struct {
	Status string `json:"status"`
}

type statusResponse struct {
	AccountID string `json:"account_id"`
	Status    string `json:"status"`
}

type accountErrorRequest struct {
	Type string `json:"type"` // an account-level slug, "" to clear
}

type otherIDRequest struct {
	OtherID string `json:"other_id"`
}

type incomingRequest struct {
	Text string `json:"text"`
	At   string `json:"at,omitempty"` // ISO-8601 with milliseconds; now when absent
}

type incomingResponse struct {
	MessageID string `json:"message_id"`
}

// serveControl serves the /_sim/ endpoints, used by programs that run wasim as a separate
// process (the chaos test, benchmarks). They need no provider credentials.
//
//	GET  /_sim/faults                 current Faults
//	PUT  /_sim/faults                 replace Faults (absent keys are zero)
//	GET  /_sim/deliveries?since=N     deliveries with seq > N, and the last seq
//	PUT  /_sim/accounts/{id}/status   {"status":"CREDENTIALS"}
//	PUT  /_sim/accounts/{id}/error    {"type":"expired_credentials"}: its sending calls answer it ("" clears)
//	PUT  /_sim/accounts/{id}/contacts/{provider_id}/other_id  {"other_id":"…@lid"}: one person, two ids
//	POST /_sim/chats/{id}/incoming    {"text":"...","at":"..."}: the contact writes
//	GET  /_sim/stats                  request counts by operation and outcome
//	PUT  /_sim/webhook                {"url","header","secret","retry_delay":"1s"}: post webhook events there
//	GET  /_sim/webhook                the webhook (secret omitted)
func (s *Sim) serveControl(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/_sim/"), "/")
	fail := func(status int, format string, args ...any) {
		writeJSON(w, status, controlError{Error: fmt.Sprintf(format, args...)})
	}
	method := func(allowed string) bool {
		if r.Method == allowed {
			return true
		}
		w.Header().Set("Allow", allowed)
		fail(http.StatusMethodNotAllowed, "use %s", allowed)
		return false
	}
	switch {
	case len(segs) == 1 && segs[0] == "faults":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.Faults())
		case http.MethodPut:
			var f Faults
			if err := decodeControl(w, r, &f); err != nil {
				fail(http.StatusBadRequest, "%v", err)
				return
			}
			if err := s.UpdateFaults(f); err != nil {
				fail(http.StatusBadRequest, "%v", err)
				return
			}
			writeJSON(w, http.StatusOK, f)
		default:
			w.Header().Set("Allow", "GET, PUT")
			fail(http.StatusMethodNotAllowed, "use GET or PUT")
		}
	case len(segs) == 1 && segs[0] == "deliveries":
		if !method(http.MethodGet) {
			return
		}
		since := 0
		if v := r.URL.Query().Get("since"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				fail(http.StatusBadRequest, "since: want a non-negative integer, got %q", v)
				return
			}
			since = n
		}
		ds := s.deliveriesSince(since)
		last := since
		if len(ds) > 0 {
			last = ds[len(ds)-1].Seq
		}
		writeJSON(w, http.StatusOK, deliveriesResponse{Deliveries: ds, LastSeq: last})
	case len(segs) == 3 && segs[0] == "accounts" && segs[2] == "status":
		if !method(http.MethodPut) {
			return
		}
		var req statusRequest
		if err := decodeControl(w, r, &req); err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		if err := s.SetAccountStatus(segs[1], req.Status); err != nil {
			status := http.StatusBadRequest
			if validStatus(req.Status) {
				status = http.StatusNotFound // the status is fine, so the account is unknown
			}
			fail(status, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, statusResponse{AccountID: segs[1], Status: req.Status})
	case len(segs) == 3 && segs[0] == "accounts" && segs[2] == "error":
		if !method(http.MethodPut) {
			return
		}
		var req accountErrorRequest
		if err := decodeControl(w, r, &req); err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		if err := s.SetAccountError(segs[1], req.Type); err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, req)
	case len(segs) == 5 && segs[0] == "accounts" && segs[2] == "contacts" && segs[4] == "other_id":
		if !method(http.MethodPut) {
			return
		}
		var req otherIDRequest
		if err := decodeControl(w, r, &req); err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		if err := s.SetContactOtherID(segs[1], segs[3], req.OtherID); err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, req)
	case len(segs) == 3 && segs[0] == "chats" && segs[2] == "incoming":
		if !method(http.MethodPost) {
			return
		}
		var req incomingRequest
		if err := decodeControl(w, r, &req); err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		var at time.Time
		if req.At != "" {
			t, err := parseStamp(req.At)
			if err != nil {
				fail(http.StatusBadRequest, "at: %v", err)
				return
			}
			at = t
		}
		if !s.chatExists(segs[1]) {
			fail(http.StatusNotFound, "unknown chat %q", segs[1])
			return
		}
		id, err := s.AddIncomingMessage(segs[1], req.Text, at)
		if err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusCreated, incomingResponse{MessageID: id})
	case len(segs) == 1 && segs[0] == "webhook":
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, s.Webhook())
		case http.MethodPut:
			var c struct {
				WebhookConfig
				RetryDelay string `json:"retry_delay,omitempty"`
			}
			if err := decodeControl(w, r, &c); err != nil {
				fail(http.StatusBadRequest, "%v", err)
				return
			}
			if c.RetryDelay != "" {
				d, err := time.ParseDuration(c.RetryDelay)
				if err != nil {
					fail(http.StatusBadRequest, "retry_delay: %v", err)
					return
				}
				c.WebhookConfig.RetryDelay = d
			}
			if err := s.SetWebhook(c.WebhookConfig); err != nil {
				fail(http.StatusBadRequest, "%v", err)
				return
			}
			writeJSON(w, http.StatusOK, s.Webhook())
		default:
			w.Header().Set("Allow", "GET, PUT")
			fail(http.StatusMethodNotAllowed, "use GET or PUT")
		}
	case len(segs) == 1 && segs[0] == "stats":
		if !method(http.MethodGet) {
			return
		}
		writeJSON(w, http.StatusOK, s.Stats())
	default:
		fail(http.StatusNotFound, "no control endpoint %s %s", r.Method, r.URL.Path)
	}
}

func (s *Sim) chatExists(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.chats[id]
	return ok
}

// decodeControl decodes one JSON value strictly: unknown keys are errors, so typos in a chaos
// script fail loudly instead of silently doing nothing.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBodyBytes))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode body: %w", err)
	}
	if dec.More() {
		return errors.New("decode body: trailing data")
	}
	return nil
}
