package adminapi

import (
	"net/http"

	"github.com/sendworker/sendworker/ledger"
)

type reviseBody struct {
	Digest string `json:"digest"`
	Text   string `json:"text"`
}

// POST /v1/sends/{send_id}/revise {"digest","text"}: a new revision of a
// pending send with the corrected text (docs/CONTRACTS.md, "Revisions").
func (a *api) revise(r *http.Request, c *caller, body []byte) (int, any, error) {
	id := r.PathValue("send_id")
	var b reviseBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	if err := a.visible(r.Context(), c, id); err != nil {
		return 0, nil, err
	}
	rec, err := a.svc.Revise(r.Context(), id, b.Digest, b.Text, c.identity)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}

type resolveBody struct {
	Resolution string `json:"resolution"`
	MessageID  string `json:"message_id"`
	Note       string `json:"note"`
}

// POST /v1/sends/{send_id}/resolve {"resolution":"sent|not_sent|cancel","message_id","note"}:
// an admin's finding on a send that needs review (docs/CONTRACTS.md).
func (a *api) resolve(r *http.Request, c *caller, body []byte) (int, any, error) {
	id := r.PathValue("send_id")
	var b resolveBody
	if err := decodeStrict(body, &b); err != nil {
		return 0, nil, err
	}
	if err := a.visible(r.Context(), c, id); err != nil {
		return 0, nil, err
	}
	rec, err := a.svc.ResolveReview(r.Context(), id, ledger.Resolution(b.Resolution), b.MessageID, c.identity, b.Note)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rec, nil
}
