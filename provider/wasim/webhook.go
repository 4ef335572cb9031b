package wasim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Webhook emission: like the provider, wasim can POST webhook events to a URL (new messages
// written by a contact through the control API, account status changes), with the custom header
// given when the webhook is set (the shared secret), and retries when the answer is not 200
// within 30 s: up to WebhookRetries more attempts, each delay longer than the last.

// WebhookRetries is how many times an event is retried after its first attempt.
const WebhookRetries = 5

const webhookTimeout = 30 * time.Second

// WebhookConfig says where wasim posts its webhook events. The zero value posts nothing.
type WebhookConfig struct {
	URL    string `json:"url"`
	Header string `json:"header,omitempty"` // the custom header carrying Secret; default X-Sendworker-Inbound-Secret
	Secret string `json:"secret,omitempty"`
	// RetryDelay is the delay before the first retry; the n-th waits n times as long. Default 1s.
	RetryDelay time.Duration `json:"retry_delay,omitempty"`
}

// WebhookAttempt is one POST of an event, for tests.
type WebhookAttempt struct {
	Event  string `json:"event"`
	Status int    `json:"status"` // 0: no answer
}

type webhooks struct {
	mu       sync.Mutex
	cfg      WebhookConfig
	attempts []WebhookAttempt
	client   *http.Client
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func newWebhooks() *webhooks {
	ctx, cancel := context.WithCancel(context.Background())
	return &webhooks{client: &http.Client{Timeout: webhookTimeout}, ctx: ctx, cancel: cancel}
}

// SetWebhook sets (or, with an empty URL, removes) where events are posted.
func (s *Sim) SetWebhook(c WebhookConfig) error {
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("url: want an http(s) URL")
		}
	}
	if c.Header == "" {
		c.Header = "X-Sendworker-Inbound-Secret"
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	s.hooks.cfg = c
	return nil
}

// Webhook returns the webhook configuration, secret removed.
func (s *Sim) Webhook() WebhookConfig {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	c := s.hooks.cfg
	c.Secret = ""
	return c
}

// WebhookAttempts returns every POST made so far.
func (s *Sim) WebhookAttempts() []WebhookAttempt {
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return append([]WebhookAttempt(nil), s.hooks.attempts...)
}

// CloseWebhooks stops retrying and waits for the posts in flight.
func (s *Sim) CloseWebhooks() {
	s.hooks.cancel()
	s.hooks.wg.Wait()
}

// emit posts an event in the background (never under the Sim's mutex).
func (s *Sim) emit(event string, payload any) {
	s.hooks.mu.Lock()
	cfg := s.hooks.cfg
	s.hooks.mu.Unlock()
	if cfg.URL == "" || s.hooks.ctx.Err() != nil {
		return
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return
	}
	s.hooks.wg.Add(1)
	go func() {
		defer s.hooks.wg.Done()
		for attempt := 0; attempt <= WebhookRetries; attempt++ {
			if attempt > 0 {
				t := time.NewTimer(time.Duration(attempt) * cfg.RetryDelay)
				select {
				case <-s.hooks.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			status := s.post(cfg, body)
			s.hooks.mu.Lock()
			s.hooks.attempts = append(s.hooks.attempts, WebhookAttempt{Event: event, Status: status})
			s.hooks.mu.Unlock()
			if status == http.StatusOK {
				return
			}
		}
	}()
}

func (s *Sim) post(cfg WebhookConfig, body []byte) int {
	req, err := http.NewRequestWithContext(s.hooks.ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Secret != "" {
		req.Header.Set(cfg.Header, cfg.Secret)
	}
	resp, err := s.hooks.client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// The provider's payloads (docs/PROVIDER-EVENTS.md).
type hookAttendee struct {
	ID         string `json:"attendee_id"`
	Name       string `json:"attendee_name"`
	ProviderID string `json:"attendee_provider_id"`
}

type hookMessage struct {
	AccountID   string `json:"account_id"`
	AccountType string `json:"account_type"`
	AccountInfo struct {
		UserID string `json:"user_id"`
	} `json:"account_info"`
	Event       string         `json:"event"`
	ChatID      string         `json:"chat_id"`
	Timestamp   string         `json:"timestamp"`
	WebhookName string         `json:"webhook_name"`
	MessageID   string         `json:"message_id"`
	Message     string         `json:"message"`
	Sender      hookAttendee   `json:"sender"`
	Attendees   []hookAttendee `json:"attendees"`
	IsSender    bool           `json:"is_sender"`
}

type hookStatus struct {
	AccountStatus struct {
		AccountID   string `json:"account_id"`
		AccountType string `json:"account_type"`
		Message     string `json:"message"`
	} `json:"AccountStatus"`
}

// incomingPayload is the message_received event of m (called under the Sim's mutex).
func (s *Sim) incomingPayload(c *chat, m *message, sender *attendee) hookMessage {
	p := hookMessage{AccountID: c.accountID, AccountType: "WHATSAPP", Event: "message_received", ChatID: c.id,
		Timestamp: m.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"), WebhookName: "wasim", MessageID: m.ID,
		Message: m.Text, Sender: hookAttendee{ID: sender.id, Name: sender.name, ProviderID: sender.providerID}}
	if a := s.accounts[c.accountID]; a != nil && a.self != nil {
		p.AccountInfo.UserID = a.self.providerID
	}
	for _, at := range c.contacts {
		p.Attendees = append(p.Attendees, hookAttendee{ID: at.id, Name: at.name, ProviderID: at.providerID})
	}
	return p
}

func statusPayload(accountID, status string) hookStatus {
	var p hookStatus
	p.AccountStatus.AccountID, p.AccountStatus.AccountType, p.AccountStatus.Message = accountID, "WHATSAPP", status
	return p
}

func (c WebhookConfig) String() string { return fmt.Sprintf("webhook %s (header %s)", c.URL, c.Header) }
