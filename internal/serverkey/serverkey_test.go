package serverkey

import (
	"errors"
	"strings"
	"testing"
)

func TestSealedValuesOpenOnlyWithTheirKeyAndPurpose(t *testing.T) {
	k1, _ := New([]byte(strings.Repeat("a", 32)))
	k2, _ := New([]byte(strings.Repeat("b", 32)))
	sealed := k1.Sealer("totp").SealString("JBSWY3DPEHPK3PXP")
	if strings.Contains(sealed, "JBSWY3DP") || !strings.HasPrefix(sealed, "sealed:v1:") {
		t.Fatalf("sealed value shows its plaintext: %q", sealed)
	}
	if got, ok, err := k1.Sealer("totp").OpenString(sealed); err != nil || !ok || got != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open = %q %v %v", got, ok, err)
	}
	for name, s := range map[string]Sealer{"another key": k2.Sealer("totp"), "another purpose": k1.Sealer("oidc")} {
		if _, _, err := s.OpenString(sealed); !errors.Is(err, ErrWrongKey) {
			t.Errorf("%s opened the value: %v", name, err)
		}
	}
	if got, ok, err := k1.Sealer("totp").OpenString("PLAIN"); err != nil || ok || got != "PLAIN" {
		t.Fatalf("a value from before sealing: %q %v %v", got, ok, err)
	}
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
	if string(k1.Derive("a")) == string(k1.Derive("b")) || string(k1.Derive("a")) == string(k2.Derive("a")) {
		t.Fatal("derived keys collide")
	}
}
