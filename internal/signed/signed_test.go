package signed

import (
	"strings"
	"testing"
	"time"
)

func TestSignedValues(t *testing.T) {
	k := Key("0123456789abcdef0123456789abcdef")
	v := k.Sign("login-pending", time.Minute, "user-1", "https://app.example.com/")
	if f, ok := k.Open("login-pending", v, 2); !ok || f[0] != "user-1" || f[1] != "https://app.example.com/" {
		t.Fatalf("open: %v %v", f, ok)
	}
	for name, bad := range map[string]func() (string, string, int){
		"other purpose": func() (string, string, int) { return "totp-enrol", v, 2 },
		"other key": func() (string, string, int) {
			return "login-pending", Key("x").Sign("login-pending", time.Minute, "a", "b"), 2
		},
		"field count": func() (string, string, int) { return "login-pending", v, 1 },
		"expired": func() (string, string, int) {
			return "login-pending", k.Sign("login-pending", -time.Second, "a", "b"), 2
		},
		"tampered": func() (string, string, int) { return "login-pending", "x" + v, 2 },
		"no dot":   func() (string, string, int) { return "login-pending", "abc", 2 },
		"huge":     func() (string, string, int) { return "login-pending", strings.Repeat("a", MaxLen+1), 2 },
	} {
		purpose, value, want := bad()
		if _, ok := k.Open(purpose, value, want); ok {
			t.Errorf("%s: opened", name)
		}
	}
}
