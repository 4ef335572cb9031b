package ledger

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{"", encodeCursor(1), encodeCursor(1 << 62), "czEuMA", "!!", "czEuLTE", strings.Repeat("A", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, c string) {
		seq, err := decodeCursor(c)
		if err != nil {
			return
		}
		if seq <= 0 || encodeCursor(seq) != c {
			t.Fatalf("decodeCursor(%q) = %d, which encodes as %q", c, seq, encodeCursor(seq))
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, seq := range []int64{1, 42, 1 << 53} {
		got, err := decodeCursor(encodeCursor(seq))
		if err != nil || got != seq {
			t.Fatalf("round trip %d: %d %v", seq, got, err)
		}
	}
}

// FuzzDecodeRecord feeds arbitrary field maps (encoded as alternating
// name/value lines) to decodeRecord: it must never panic, and what it
// accepts must marshal as JSON.
func FuzzDecodeRecord(f *testing.F) {
	good := strings.Join([]string{
		fReq, `{"send_id":"s1","operation":"chats_messages_send","account_id":"a","text":"hi"}`,
		fState, "sent", fSeq, "3", fAttempts, "1", fFinishedMs, "1700000000000", fMetadata, `{"k":1}`,
		fApprovedBy, "bob", fDecidedBy, "eve", fWaitReason, "rate_limit", fDryRun, "1",
	}, "\n")
	f.Add(good)
	f.Add(strings.Replace(good, "sent", "waiting", 1))
	f.Add(fReq + "\n{}\n" + fState + "\nnope")
	f.Add(fAttempts + "\n-1")
	f.Add(fMetadata + "\n{")
	chunked := strings.Join([]string{
		fReq, `{"send_id":"s1","operation":`, fReq + ".1", `"chats_messages_send","account_id":"a","text":"hi"}`,
		fReq + ".n", "2", fState, "approved",
	}, "\n")
	f.Add(chunked)
	// Create's form (storedRequest): the request without the fields the record holds
	f.Add(strings.Join([]string{fReq, `{"send_id":"s1","text":"hi"}`, fState, "pending_approval", fAccount, "a",
		fOp, "chats_messages_send", fChatID, "c1", fRequestedBy, "bob", fMetadata, `{"k":1}`, fCreatedMs, "5"}, "\n"))
	f.Add(strings.Replace(chunked, fReq+".n\n2", fReq+".n\n3", 1))
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		h := map[string]string{}
		for i := 0; i+1 < len(lines); i += 2 {
			h[lines[i]] = lines[i+1]
		}
		st, err := decodeRecord(h)
		if err != nil {
			return
		}
		if st.rec == nil || st.rec.SendID == "" || !st.rec.State.Valid() {
			t.Fatalf("accepted a record without id or state: %+v", st.rec)
		}
		if _, err := json.Marshal(st.rec); err != nil {
			t.Fatalf("accepted record does not marshal: %v", err)
		}
	})
}
