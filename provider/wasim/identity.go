package wasim

import (
	"fmt"
	"net/http"
	"path"
	"strings"
)

// idForm is the form of a WhatsApp user id: "phone" (<digits>@s.whatsapp.net), "lid" (<…>@lid)
// or "".
func idForm(id string) string {
	switch {
	case strings.HasSuffix(id, "@s.whatsapp.net"):
		return "phone"
	case strings.HasSuffix(id, "@lid"):
		return "lid"
	}
	return ""
}

// chatProviderID is the provider_id of the contact's single chat: the person's other id when
// both are known (so that the chat shows both forms: provider_id one, attendee_provider_id the
// other), else their id.
func (at *attendee) chatProviderID() string {
	if at.otherID != "" {
		return at.otherID
	}
	return at.providerID
}

// SetContactOtherID makes a contact of the account one person under both id forms: otherID is
// their id of the other form. chats_create then accepts either, and their single chat (if any)
// shows otherID as its provider_id.
func (s *Sim) SetContactOtherID(accountID, providerID, otherID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[accountID]
	if !ok {
		return fmt.Errorf("unknown account %q", accountID)
	}
	at, ok := a.contacts[providerID]
	if !ok || at.providerID != providerID {
		return fmt.Errorf("%q is not a contact of account %q", providerID, accountID)
	}
	if !validProviderID(otherID) || idForm(otherID) == idForm(providerID) {
		return fmt.Errorf("other_id: want the other form of %q, got %q", providerID, otherID)
	}
	if other, taken := a.contacts[otherID]; taken && other != at {
		return fmt.Errorf("other_id %q is another contact of account %q", otherID, accountID)
	}
	if at.otherID != "" {
		delete(a.contacts, at.otherID)
	}
	at.otherID = otherID
	a.contacts[otherID] = at
	if c := a.singles[at.providerID]; c != nil {
		c.providerID = otherID
	}
	return nil
}

// rejectedMedia is the simulator's stand-in for the media WhatsApp refuses (the provider's 415
// "the media has been rejected"): executables and installers. Every other file goes out.
func rejectedMedia(filename, contentType string) bool {
	switch strings.ToLower(path.Ext(filename)) {
	case ".exe", ".msi", ".bat", ".cmd", ".scr", ".apk":
		return true
	}
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	return ct == "application/x-msdownload" || ct == "application/vnd.microsoft.portable-executable"
}

// accountProblem is the answer an account-level fault makes every sending call of the account
// give: the provider's answers that say the account or its session cannot act (see
// SetAccountError).
func accountProblem(slug, accountID string) *problem {
	status, ok := accountErrorStatus[slug]
	if !ok {
		return nil
	}
	return newProblem(status, slug, "injected: account %q answers %s", accountID, slug)
}

// accountErrorStatus lists the account-level problem types SetAccountError can inject, with the
// status the provider documents for each.
var accountErrorStatus = map[string]int{
	"disconnected_account": http.StatusUnauthorized,
	"expired_credentials":  http.StatusUnauthorized,
	"disconnected_feature": http.StatusUnauthorized,
	"wrong_account":        http.StatusUnauthorized,
	"multiple_sessions":    http.StatusUnauthorized,
	"no_client_session":    http.StatusServiceUnavailable,
	"no_channel":           http.StatusServiceUnavailable,
}

// AccountErrorTypes lists the slugs SetAccountError accepts.
func AccountErrorTypes() []string {
	return []string{"disconnected_account", "expired_credentials", "disconnected_feature", "wrong_account",
		"multiple_sessions", "no_client_session", "no_channel"}
}

// SetAccountError makes every sending call of the account answer the account-level problem slug
// (one of AccountErrorTypes) until it is cleared with "". Reads still answer, and the account's
// status is left as it is: the provider may list the account as OK and still refuse its sends.
func (s *Sim) SetAccountError(accountID, slug string) error {
	if _, ok := accountErrorStatus[slug]; !ok && slug != "" {
		return fmt.Errorf("unknown account-level error type %q (want one of %s)", slug, strings.Join(AccountErrorTypes(), ", "))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[accountID]
	if !ok {
		return fmt.Errorf("unknown account %q", accountID)
	}
	a.errorType = slug
	return nil
}
