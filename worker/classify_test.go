package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/sendworker/sendworker/provider"
	"github.com/sendworker/sendworker/tasks"
)

// TestPermanentErrorInvalidArgument: a call the provider client refused itself (errors.Is
// provider.ErrInvalidArgument, no HTTP status) fails the send as invalid_payload; a refusal of
// the provider with no known slug fails it as provider_rejected. The check is by error
// identity, not by the error's text.
func TestPermanentErrorInvalidArgument(t *testing.T) {
	x := &execution{w: &Worker{opts: Options{Now: time.Now}}, op: tasks.OpSendMessage, rec: &tasks.Record{}}
	cases := []struct {
		name string
		err  error
		want tasks.Reason
	}{
		{"client refused", &provider.Error{Op: provider.OpChatsMessagesSend, Class: provider.ClassPermanent,
			Err: fmt.Errorf("%w: chat id is required", provider.ErrInvalidArgument)}, tasks.ReasonInvalidPayload},
		{"text alone is not the error", &provider.Error{Op: provider.OpChatsMessagesSend, Class: provider.ClassPermanent,
			Err: fmt.Errorf("invalid argument")}, tasks.ReasonProviderRejected},
		{"provider refused", &provider.Error{Op: provider.OpChatsMessagesSend, Class: provider.ClassPermanent, Status: 400,
			Err: provider.ErrStatus}, tasks.ReasonProviderRejected},
	}
	for _, c := range cases {
		o := x.permanentError(c.err)
		if o.kind != kindFinish || o.reason != c.want {
			t.Errorf("%s: got kind %v reason %q, want failed %q", c.name, o.kind, o.reason, c.want)
		}
	}
}
