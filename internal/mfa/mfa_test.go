package mfa

import (
	"encoding/base32"
	"net/url"
	"strings"
	"testing"
	"time"
)

// RFC 6238 Appendix B, SHA-1, truncated to our 6 digits (the RFC lists 8).
func TestRFC6238Vectors(t *testing.T) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))
	for unix, want8 := range map[int64]string{59: "94287082", 1111111109: "07081804", 1111111111: "14050471",
		1234567890: "89005924", 2000000000: "69279037", 20000000000: "65353130"} {
		got, err := Code(secret, Step(time.Unix(unix, 0)))
		if err != nil || got != want8[2:] {
			t.Errorf("T=%d: %s, want %s (%v)", unix, got, want8[2:], err)
		}
	}
}

func TestVerifySkewAndReplay(t *testing.T) {
	secret := NewSecret()
	now := time.Unix(1_800_000_000, 0)
	code := func(d time.Duration) string {
		c, _ := Code(secret, Step(now.Add(d)))
		return c
	}
	step, ok := Verify(secret, code(0), now, 0)
	if !ok || step != Step(now) {
		t.Fatalf("current code refused")
	}
	if _, ok := Verify(secret, code(0), now, step); ok {
		t.Fatal("a used code was accepted again (replay)")
	}
	if _, ok := Verify(secret, code(-Period), now, 0); !ok {
		t.Fatal("the previous step's code was refused (clock skew)")
	}
	if _, ok := Verify(secret, code(Period), now, 0); !ok {
		t.Fatal("the next step's code was refused (clock skew)")
	}
	if _, ok := Verify(secret, code(-Period), now, Step(now)-1); ok {
		t.Fatal("an older step than the last used one was accepted")
	}
	for _, bad := range []string{code(2 * Period), code(-2 * Period), "", "12345", "1234567", "abcdef"} {
		if bad == code(0) {
			continue
		}
		if _, ok := Verify(secret, bad, now, 0); ok {
			t.Errorf("code %q accepted", bad)
		}
	}
	spaced := code(0)[:3] + " " + code(0)[3:]
	if _, ok := Verify(secret, spaced, now, 0); !ok {
		t.Error("a code typed with a space was refused")
	}
	if _, ok := Verify("not base32!", "123456", now, 0); ok {
		t.Error("a broken secret verified")
	}
}

func TestURI(t *testing.T) {
	u, err := url.Parse(URI("Gatehouse", "alice@example.com", "JBSWY3DPEHPK3PXP"))
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != "JBSWY3DPEHPK3PXP" || u.Query().Get("issuer") != "Gatehouse" {
		t.Fatalf("URI: %v %v", u, err)
	}
	if !strings.HasPrefix(u.Path, "/Gatehouse:alice@example.com") {
		t.Fatalf("label: %q", u.Path)
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, hashes := NewRecoveryCodes()
	if len(codes) != RecoveryCodeCount || len(hashes) != RecoveryCodeCount {
		t.Fatalf("%d codes, %d hashes", len(codes), len(hashes))
	}
	seen := map[string]bool{}
	for i, c := range codes {
		if len(c) != 11 || c[5] != '-' || seen[c] || strings.ContainsAny(c, "01loI") {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
		if MatchRecoveryCode(c, hashes) != i {
			t.Fatalf("code %d does not match its hash", i)
		}
	}
	if MatchRecoveryCode(" "+strings.ToUpper(strings.ReplaceAll(codes[3], "-", ""))+" ", hashes) != 3 {
		t.Fatal("a code typed in capitals without the dash was refused")
	}
	if MatchRecoveryCode("aaaaa-aaaaa", hashes) != -1 {
		t.Fatal("an unknown code matched")
	}
	if hashes[0] == codes[0] || strings.Contains(strings.Join(hashes, ""), codes[0]) {
		t.Fatal("codes are stored in the clear")
	}
}

func TestQRSVG(t *testing.T) {
	svg, err := QRSVG(URI("Gatehouse", "alice", "JBSWY3DPEHPK3PXP"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg, "<svg ") || !strings.Contains(svg, `<path d="M`) {
		t.Fatalf("not an SVG: %.80s", svg)
	}
	if strings.Contains(svg, "JBSWY3DPEHPK3PXP") {
		t.Fatal("the SVG carries the secret as text")
	}
	if _, err := QRSVG(strings.Repeat("x", 8000)); err == nil {
		t.Fatal("content too long for a QR code was drawn")
	}
}

// HumanCode draws every letter equally often: 256 is no multiple of 20, and a plain
// modulo would give the first 16 letters 8% more weight.
func TestHumanCodeIsUniform(t *testing.T) {
	const letters = "BCDFGHJKLMNPQRSTVWXZ"
	if c := HumanCode(letters, 4, 4); len(c) != 9 || c[4] != '-' {
		t.Fatalf("code %q", c)
	}
	count := map[rune]int{}
	for range 1000 {
		for _, r := range HumanCode(letters, 1000) {
			count[r]++
		}
	}
	lo, hi := 1<<30, 0
	for _, r := range letters {
		lo, hi = min(lo, count[r]), max(hi, count[r])
	}
	if len(count) != len(letters) || float64(hi)/float64(lo) > 1.05 {
		t.Fatalf("letter counts from %d to %d over %d letters", lo, hi, len(count))
	}
}
