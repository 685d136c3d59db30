package forwardauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Report answers "why may (or may not) this person open this URL": what forward auth
// would decide for a browser's page load by them, from the same parsing of the URL and
// the same Decide, with its workings. `gatehouse access explain` prints it and the
// admin API returns it.
type Report struct {
	Username    string          `json:"username"` // "" for nobody signed in
	URL         string          `json:"url"`
	Host        string          `json:"host"`
	Path        string          `json:"path"`
	Groups      []string        `json:"groups"`     // the person's effective groups
	TwoFactor   bool            `json:"two_factor"` // decided for a session signed in with a second factor
	Result      string          `json:"result"`     // allow, login, step_up or deny
	Reason      string          `json:"reason"`
	Rule        *RuleReport     `json:"rule"` // the deciding rule; null when none matched (default deny)
	Readings    []ReadingReport `json:"readings"`
	Passing     []string        `json:"passing"` // groups the deciding rule lets through, admin groups included
	AdminGroups []string        `json:"admin_groups"`
	Outcome     string          `json:"outcome"` // what the person sees
}

// RuleReport is a rule as it was defined, with where: its place in the policy, its id
// and its source (the config file, or the Kubernetes objects it was made from).
type RuleReport struct {
	Index  int    `json:"index"`  // from 0, in the policy: access.rules first, then Kubernetes rules
	ID     string `json:"id"`     // access.rules[2], or kubernetes:host/path
	From   string `json:"from"`   // config or kubernetes
	Source string `json:"source"` // config, or namespace/Kind/name of the objects

	Hosts             []string `json:"hosts"`
	Paths             []string `json:"paths"`
	Groups            []string `json:"groups"`
	Public            bool     `json:"public"`
	Deny              bool     `json:"deny"`
	TwoFactor         bool     `json:"two_factor"`
	AllowAppPasswords bool     `json:"allow_app_passwords"`
}

// ReportOf reports the rule at index in the policy.
func ReportOf(index int, r access.Sourced) RuleReport {
	c := r.Rule
	return RuleReport{Index: index, ID: r.Origin.ID, From: r.Origin.From, Source: r.Origin.Source, Hosts: nonNil(c.Hosts),
		Paths: nonNil(c.Paths), Groups: nonNil(c.Groups), Public: c.Public, Deny: c.Deny, TwoFactor: c.TwoFactor,
		AllowAppPasswords: c.AllowAppPasswords}
}

// ReadingReport is one reading of the path and how it alone was decided.
type ReadingReport struct {
	Path   string `json:"path"`
	Folded bool   `json:"folded"` // the lower-case reading a case-insensitive app makes
	Result string `json:"result"`
	Reason string `json:"reason"`
	Rule   int    `json:"rule"` // -1: no rule matched
}

// ExplainStore is what Explain reads: the person and the groups.
type ExplainStore interface {
	store.UserReader
	store.GroupReader
}

// Explain's errors for a username nobody has and for a URL forward auth would not
// decide on (the rest of the error says why).
var (
	ErrUnknownUser = errors.New("no such user")
	ErrBadURL      = errors.New("not a URL forward auth decides on")
)

// Explain reports what forward auth decides when username (empty: nobody signed in)
// opens rawURL in a browser, with a session signed in with a second factor when
// twoFactor is set. A disabled user's sessions are void, so they are explained as
// nobody signed in would be, and the reason says so. A URL forward auth would refuse
// to decide on is an error naming why.
func Explain(ctx context.Context, policy *access.Policy, st ExplainStore, username, rawURL string, twoFactor bool) (Report, error) {
	orig, err := OriginalOf(rawURL)
	if err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	r := Report{URL: orig.URL(), Host: orig.HostName(), Path: orig.Path, Groups: []string{}}
	var who *access.Identity
	disabled := false
	if username != "" {
		u, err := st.UserByUsername(ctx, username)
		if errors.Is(err, store.ErrNotFound) {
			return Report{}, fmt.Errorf("%w %q: check the name (gatehouse user list)", ErrUnknownUser, username)
		}
		if err != nil {
			return Report{}, err
		}
		direct, err := st.UserGroupIDs(ctx, u.ID)
		if err != nil {
			return Report{}, err
		}
		all, err := st.ListGroups(ctx)
		if err != nil {
			return Report{}, err
		}
		r.Username, r.Groups, r.TwoFactor, disabled = u.Username, nonNil(identity.EffectiveGroups(direct, all)), twoFactor, u.Disabled
		who = &access.Identity{Username: u.Username, Groups: r.Groups, TwoFactor: twoFactor}
	}
	if disabled {
		r = explained(policy, orig, nil, r)
		r.Reason = "the account is disabled, so its sessions are not valid: " + r.Reason
		return r, nil
	}
	return explained(policy, orig, who, r), nil
}

// ExplainFor is Explain for a person already signed in (the refusal page): the
// principal's own groups and factor, as the forward-auth check sees them.
func ExplainFor(policy *access.Policy, p *session.Principal, rawURL string) (Report, error) {
	orig, err := OriginalOf(rawURL)
	if err != nil {
		return Report{}, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	return reportFor(policy, orig, p), nil
}

// reportFor explains orig for a signed-in principal, as the forward-auth check sees it.
func reportFor(policy *access.Policy, orig Original, p *session.Principal) Report {
	r := Report{URL: orig.URL(), Host: orig.HostName(), Path: orig.Path, Username: p.Username, Groups: nonNil(p.Groups), TwoFactor: p.TwoFactor}
	return explained(policy, orig, identityOf(p), r)
}

// explained completes r with the policy's explanation of orig for who.
func explained(policy *access.Policy, orig Original, who *access.Identity, r Report) Report {
	e := policy.Explain(access.Request{Host: r.Host, Path: r.Path}, who)
	r.Result, r.Reason = e.Result.String(), e.Reason
	if e.Config != nil {
		rule := ReportOf(e.Rule, access.Sourced{Rule: *e.Config, Origin: e.Origin})
		r.Rule = &rule
	}
	for _, x := range e.Readings {
		r.Readings = append(r.Readings, ReadingReport{Path: x.Reading.Path, Folded: x.Reading.Folded, Result: x.Decision.Result.String(),
			Reason: x.Decision.Reason, Rule: x.Decision.Rule})
	}
	r.Passing, r.AdminGroups = nonNil(e.Passing), nonNil(e.AdminGroups)
	r.Outcome = Outcome(e.Decision, r.Username, orig.Host)
	return r
}

// nonNil keeps JSON lists lists: [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
