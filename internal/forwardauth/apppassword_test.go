package forwardauth

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/identity"
)

var sampleAppPassword = identity.AppPasswordPrefix + strings.Repeat("abcd2345", 4)

func TestAppPasswordOf(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		header, user, secret string
		ok                   bool
	}{
		{"Basic " + b64("alice:"+sampleAppPassword), "alice", sampleAppPassword, true},
		{"basic  " + b64("Alice:"+sampleAppPassword) + " ", "Alice", sampleAppPassword, true},
		{"Bearer " + sampleAppPassword, "", sampleAppPassword, true},
		{"Basic " + b64(":"+sampleAppPassword), "", "", false},                              // no username
		{"Basic " + b64("alice:hunter2"), "", "", false},                                    // the app's own password
		{"Basic " + b64("alice:"+sampleAppPassword+"x"), "", "", false},                     // too long
		{"Basic " + b64("alice:"+strings.ToUpper(sampleAppPassword)), "", "", false},        // not the alphabet
		{"Basic " + strings.TrimRight(b64("alice:"+sampleAppPassword), "="), "", "", false}, // unpadded
		{"Basic " + b64("alice:" + sampleAppPassword)[1:], "", "", false},
		{"Bearer " + strings.Repeat("a", 43), "", "", false}, // a session token
		{"Digest username=alice", "", "", false},
		{"", "", "", false},
	}
	for _, c := range cases {
		user, secret, ok := AppPasswordOf(http.Header{"Authorization": {c.header}})
		if user != c.user || secret != c.secret || ok != c.ok {
			t.Errorf("%q: %q %q %v, want %q %q %v", c.header, user, secret, ok, c.user, c.secret, c.ok)
		}
	}
}

// The hand-written decoder reads Basic credentials exactly as encoding/base64 does:
// it may refuse more (what does not fit), never accept differently.
func FuzzAppPasswordOf(f *testing.F) {
	for _, s := range []string{"alice:" + sampleAppPassword, "a:b", "", "\x00:\xff"} {
		f.Add(base64.StdEncoding.EncodeToString([]byte(s)))
	}
	f.Add("YQ==")
	f.Add("YWI=")
	f.Add("Y===")
	f.Add("=AAA")
	f.Add("AA=A")
	f.Fuzz(func(t *testing.T, s string) {
		var buf [basicMax]byte
		n, ok := decodeBase64(buf[:], s)
		want, err := base64.StdEncoding.DecodeString(s)
		if ok && (err != nil || string(buf[:n]) != string(want)) {
			t.Fatalf("decodeBase64(%q) = %q; encoding/base64: %q, %v", s, buf[:n], want, err)
		}
		if !ok && err == nil && len(s)/4*3 <= basicMax && !strings.ContainsAny(s, "\r\n") {
			t.Fatalf("decodeBase64(%q) refused what encoding/base64 reads as %q", s, want)
		}
		if user, secret, found := AppPasswordOf(http.Header{"Authorization": {"Basic " + s}}); found && (user == "" || !identity.AppPasswordShape(secret)) {
			t.Fatalf("AppPasswordOf accepted %q as %q %q", s, user, secret)
		}
	})
}
