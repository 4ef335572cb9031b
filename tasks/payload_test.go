package tasks

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
)

var testDigest = strings.Repeat("ab", 32)

func TestDecodePayload(t *testing.T) {
	good := `{"send_id":"seq-1:step-2","digest":"` + testDigest + `","gen":3}`
	p, err := DecodePayload([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p != (Payload{SendID: "seq-1:step-2", Digest: testDigest, Gen: 3}) {
		t.Fatalf("got %+v", p)
	}
	if p.TaskID() != "seq-1:step-2/r3" || TaskID("a", 12) != "a/r12" {
		t.Fatalf("task ids %q %q", p.TaskID(), TaskID("a", 12))
	}
	if b, err := p.Encode(); err != nil || string(b) != good {
		t.Fatalf("encode: %s, %v", b, err)
	}
	// The account hint: optional, encoded when set, of the provider id grammar.
	hinted := `{"send_id":"s-1","digest":"` + testDigest + `","gen":2,"account_id":"acc_1-A"}`
	if p, err := DecodePayload([]byte(hinted)); err != nil || p.AccountID != "acc_1-A" || p.Gen != 2 {
		t.Fatalf("payload with account: %+v, %v", p, err)
	} else if b, err := p.Encode(); err != nil || string(b) != hinted {
		t.Fatalf("encode with account: %s, %v", b, err)
	}
	bad := []string{
		`{"send_id":"a","digest":"` + testDigest + `","gen":1,"account_id":""}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":1,"account_id":"a b"}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":1,"account_id":"` + strings.Repeat("a", 257) + `"}`,
		`{"send_id":"..","digest":"` + testDigest + `","gen":1}`,
		``, `null`, `[]`, `{}`, `"x"`,
		`{"send_id":"a","digest":"` + testDigest + `"}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":0}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":-1}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":1.5}`,
		`{"send_id":"a","digest":"` + strings.ToUpper(testDigest) + `","gen":1}`,
		`{"send_id":"a b","digest":"` + testDigest + `","gen":1}`,
		`{"send_id":"","digest":"` + testDigest + `","gen":1}`,
		`{"send_id":"` + strings.Repeat("a", 129) + `","digest":"` + testDigest + `","gen":1}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":1,"text":"hi"}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":1} {}`,
		`{"send_id":"a","digest":"` + testDigest + `","gen":"1"}`,
		`{"send_id":null,"digest":"` + testDigest + `","gen":1}`,
	}
	for _, b := range bad {
		if _, err := DecodePayload([]byte(b)); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%q: err = %v, want ErrBadPayload", b, err)
		}
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(`{"send_id":"s-1","digest":"` + testDigest + `","gen":1}`))
	f.Add([]byte(`{"send_id":"s-1","digest":"` + testDigest + `","gen":9223372036854775807}`))
	f.Add([]byte(`{"send_id":"\u0000","digest":"","gen":1e300}`))
	f.Add([]byte(`{"send_id":"a","send_id":"b","digest":"` + testDigest + `","gen":1}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`{"send_id":"s-1","digest":"` + testDigest + `","gen":1,"account_id":"acc-1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodePayload(data)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("error not marked ErrBadPayload: %v", err)
			}
			return
		}
		// Anything accepted is a well-formed identifier triple that round-trips.
		if !ValidSendID(p.SendID) || !ValidDigest(p.Digest) || p.Gen <= 0 {
			t.Fatalf("accepted invalid payload %+v", p)
		}
		b, _ := json.Marshal(p)
		q, err := DecodePayload(b)
		if err != nil || q != p {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", p, b, q, err)
		}
	})
}

// TestIDGrammars checks ValidSendID and ValidDigest (byte by byte) against the regular
// expressions of their grammars.
func TestIDGrammars(t *testing.T) {
	sendID := regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
	digest := regexp.MustCompile(`^[0-9a-f]{64}$`)
	hex64 := strings.Repeat("0123456789abcdef", 4)
	cases := []string{
		"", ".", "..", "...", "a", "A.b_c:d-e", ".a", "a.", "seq:42", "a b", "a/b", "a\x00", "é", "a+b",
		"_", "-", ":", strings.Repeat("x", MaxSendIDLen), strings.Repeat("x", MaxSendIDLen+1),
		strings.Repeat(".", MaxSendIDLen), hex64, strings.ToUpper(hex64), hex64[:63], hex64 + "0",
		hex64[:63] + "g", hex64[:63] + " ",
	}
	for _, s := range cases {
		wantID := sendID.MatchString(s) && len(s) <= MaxSendIDLen && strings.Trim(s, ".") != ""
		if got := ValidSendID(s); got != wantID {
			t.Errorf("ValidSendID(%q) = %v, want %v", s, got, wantID)
		}
		if got, want := ValidDigest(s), digest.MatchString(s); got != want {
			t.Errorf("ValidDigest(%q) = %v, want %v", s, got, want)
		}
	}
}
