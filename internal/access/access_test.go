package access

import (
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

func TestDecide(t *testing.T) {
	policy := NewPolicy(config.Access{
		AdminGroups: []string{"Home Server Admins"},
		Rules: []config.Rule{
			{Hosts: []string{"grafana.example.com", "prometheus.example.com"}, Groups: []string{"Home Server Admins"}}, // 0
			{Hosts: []string{"immich.example.com"}, Paths: []string{"/api/", "/.well-known"}, Public: true},            // 1
			{Hosts: []string{"wiki.example.com"}, Paths: []string{"/admin"}, Deny: true},                               // 2
			{Hosts: []string{"*.example.com"}, Groups: []string{"Allow Login Users", "Family"}},                        // 3
		},
	})
	admin := &Identity{Username: "root", Groups: []string{"Allow Login Users", "Home Server Admins"}}
	user := &Identity{Username: "ann", Groups: []string{"Allow Login Users"}}
	stranger := &Identity{Username: "sam", Groups: []string{"Guests"}}

	tests := []struct {
		name string
		host string
		path string
		who  *Identity
		want Result
		rule int
	}{
		{"anonymous on a protected host must log in", "grafana.example.com", "/", nil, NeedLogin, 0},
		{"member of the rule's group passes", "grafana.example.com", "/d/abc", admin, Allow, 0},
		{"first match wins over a later wildcard", "grafana.example.com", "/", user, Deny, 0},
		{"public path passes anonymous", "immich.example.com", "/api/assets", nil, Allow, 1},
		{"public folder prefix needs the slash", "immich.example.com", "/apix", nil, NeedLogin, 3},
		{"public segment prefix covers the exact path", "immich.example.com", "/.well-known", nil, Allow, 1},
		{"public segment prefix covers sub paths", "immich.example.com", "/.well-known/x", nil, Allow, 1},
		{"segment prefix is not a string prefix", "immich.example.com", "/.well-knownx", user, Allow, 3},
		{"non-public path of a public host needs login", "immich.example.com", "/photos", nil, NeedLogin, 3},
		{"wildcard covers a subdomain", "app.example.com", "/", user, Allow, 3},
		{"wildcard covers deep subdomains", "a.b.example.com", "/", user, Allow, 3},
		{"wildcard does not cover the bare domain", "example.com", "/", user, Deny, -1},
		{"wildcard is not a bare suffix", "badexample.com", "/", user, Deny, -1},
		{"outside every group is denied", "app.example.com", "/", stranger, Deny, 3},
		{"deny rule denies members", "wiki.example.com", "/admin/users", user, Deny, 2},
		{"admin passes a deny rule (break-glass)", "wiki.example.com", "/admin", admin, Allow, 2},
		{"no rule: default deny", "other.org", "/", user, Deny, -1},
		{"no rule: anonymous must log in first", "other.org", "/", nil, NeedLogin, -1},
		{"no rule: admin passes (break-glass)", "other.org", "/", admin, Allow, -1},
		{"logged in with no groups", "app.example.com", "/", &Identity{Username: "x"}, Deny, 3},
		{"group names are exact", "app.example.com", "/", &Identity{Groups: []string{"allow login users"}}, Deny, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := policy.Decide(Request{Host: tc.host, Path: tc.path}, tc.who)
			if d.Result != tc.want || d.Rule != tc.rule {
				t.Fatalf("Decide(%s%s) = %v by rule %d (%s), want %v by rule %d", tc.host, tc.path, d.Result, d.Rule, d.Reason, tc.want, tc.rule)
			}
		})
	}
}

func TestEmptyPolicyDeniesEverything(t *testing.T) {
	p := NewPolicy(config.Access{AdminGroups: []string{"admins"}})
	if d := p.Decide(Request{Host: "a.example.com", Path: "/"}, &Identity{Groups: []string{"users"}}); d.Result != Deny {
		t.Fatalf("empty policy: %v", d.Result)
	}
}

func BenchmarkDecide100Rules(b *testing.B) {
	var rules []config.Rule
	for i := range 99 {
		rules = append(rules, config.Rule{Hosts: []string{"app" + string(rune('a'+i%26)) + ".example.org"}, Groups: []string{"g"}})
	}
	rules = append(rules, config.Rule{Hosts: []string{"*.example.com"}, Groups: []string{"users"}})
	p := NewPolicy(config.Access{AdminGroups: []string{"admins"}, Rules: rules})
	who := &Identity{Username: "ann", Groups: []string{"users"}}
	req := Request{Host: "app.example.com", Path: "/index.html"}
	b.ReportAllocs()
	for b.Loop() {
		if p.Decide(req, who).Result != Allow {
			b.Fatal("denied")
		}
	}
}

// The host index must keep "first match wins" across exact and wildcard rules.
func TestFirstMatchAcrossExactAndWildcardRules(t *testing.T) {
	p := NewPolicy(config.Access{AdminGroups: []string{"admins"}, Rules: []config.Rule{
		{Hosts: []string{"*.example.com"}, Paths: []string{"/public/"}, Public: true},     // 0
		{Hosts: []string{"app.example.com", "app.example.com"}, Groups: []string{"app"}},  // 1
		{Hosts: []string{"*.b.example.com"}, Groups: []string{"deep"}},                    // 2
		{Hosts: []string{"*.example.com", "x.example.com"}, Groups: []string{"everyone"}}, // 3
	}})
	who := &Identity{Groups: []string{"everyone"}}
	for _, tc := range []struct {
		host, path string
		rule       int
	}{
		{"app.example.com", "/public/x", 0},
		{"app.example.com", "/private", 1},
		{"a.b.example.com", "/", 2},
		{"a.b.example.com", "/public/", 0},
		{"x.example.com", "/", 3},
		{"b.example.com", "/", 3},
		{".example.com", "/", -1},
		{"example.com", "/", -1},
	} {
		if d := p.Decide(Request{Host: tc.host, Path: tc.path}, who); d.Rule != tc.rule {
			t.Errorf("%s%s matched rule %d, want %d", tc.host, tc.path, d.Rule, tc.rule)
		}
	}
}

func TestTwoFactorRules(t *testing.T) {
	p := NewPolicy(config.Access{AdminGroups: []string{"admins"}, Rules: []config.Rule{
		{Hosts: []string{"vault.example.com"}, Groups: []string{"ops"}, TwoFactor: true},
		{Hosts: []string{"*.example.com"}, Groups: []string{"ops"}},
	}})
	vault := Request{Host: "vault.example.com", Path: "/"}
	for _, tc := range []struct {
		name string
		who  *Identity
		req  Request
		want Result
	}{
		{"member with one factor steps up", &Identity{Groups: []string{"ops"}}, vault, NeedSecondFactor},
		{"member with two factors passes", &Identity{Groups: []string{"ops"}, TwoFactor: true}, vault, Allow},
		{"admin with one factor steps up too", &Identity{Groups: []string{"admins"}}, vault, NeedSecondFactor},
		{"outsider is denied, not asked for a factor", &Identity{Groups: []string{"guests"}}, vault, Deny},
		{"anonymous logs in first", nil, vault, NeedLogin},
		{"other hosts need no second factor", &Identity{Groups: []string{"ops"}}, Request{Host: "app.example.com", Path: "/"}, Allow},
	} {
		if got := p.Decide(tc.req, tc.who).Result; got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
