package access

import (
	"slices"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// checkExplanation fails unless Explain gives Decide's answer and its readings
// account for it: the decision is the strictest reading's, and the deciding rule is
// the one the explanation shows.
func checkExplanation(t *testing.T, p *Policy, req Request, who *Identity, want Decision) {
	t.Helper()
	e := p.Explain(req, who)
	if e.Decision != want {
		t.Fatalf("%+v: Explain decides %+v, Decide %+v", req, e.Decision, want)
	}
	strictest := -1
	for _, r := range e.Readings {
		strictest = max(strictest, r.Decision.Result.strictness())
	}
	if len(e.Readings) == 0 || strictest != want.Result.strictness() {
		t.Fatalf("%+v: the readings %+v do not account for %v", req, e.Readings, want.Result)
	}
	if (e.Config == nil) != (want.Rule < 0) {
		t.Fatalf("%+v: rule %d explained as %+v", req, want.Rule, e.Config)
	}
}

func TestExplain(t *testing.T) {
	p := NewPolicy(config.Access{AdminGroups: []string{"Home Server Admins"}, Rules: []config.Rule{
		{Hosts: []string{"app.example.com"}, Paths: []string{"/api/"}, Public: true},
		{Hosts: []string{"app.example.com"}, Paths: []string{"/Admin/"}, Groups: []string{"Ops", "Family"}, TwoFactor: true},
		{Hosts: []string{"app.example.com"}, Paths: []string{"/private/"}, Deny: true},
		{Hosts: []string{"*.example.com"}, Groups: []string{"Family"}},
	}})
	ann := &Identity{Username: "ann", Groups: []string{"Family"}}
	for _, c := range []struct {
		name     string
		path     string
		who      *Identity
		result   Result
		rule     int
		passing  []string
		readings int
	}{
		{"public path, nobody signed in (two readings: a rule path has upper case)", "/api/x", nil, Allow, 0, nil, 2},
		{"a folded reading falls under the two-factor rule", "/admin/x", ann, NeedSecondFactor, 1, []string{"Family", "Home Server Admins", "Ops"}, 2},
		{"deny rule: only admins pass", "/private/x", ann, Deny, 2, []string{"Home Server Admins"}, 2},
		{"catch-all wildcard", "/index.html", ann, Allow, 3, []string{"Family", "Home Server Admins"}, 2},
		{"nobody signed in", "/index.html", nil, NeedLogin, 3, []string{"Family", "Home Server Admins"}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := Request{Host: "app.example.com", Path: c.path}
			e := p.Explain(req, c.who)
			checkExplanation(t, p, req, c.who, p.Decide(req, c.who))
			if e.Result != c.result || e.Rule != c.rule || !slices.Equal(e.Passing, c.passing) || len(e.Readings) != c.readings {
				t.Fatalf("got %v by rule %d passing %v with %d readings (%+v); want %v by rule %d passing %v with %d",
					e.Result, e.Rule, e.Passing, len(e.Readings), e.Readings, c.result, c.rule, c.passing, c.readings)
			}
		})
	}
	e := p.Explain(Request{Host: "other.example.org", Path: "/"}, ann)
	if e.Result != Deny || e.Config != nil || e.Passing != nil || !slices.Equal(e.AdminGroups, []string{"Home Server Admins"}) {
		t.Fatalf("no rule matching: %+v", e)
	}
}
