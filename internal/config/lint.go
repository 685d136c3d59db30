package config

import (
	"fmt"
	"slices"
	"strings"
)

// Warning is a config that is valid but cannot do what it seems to: a rule naming a
// group that does not exist lets nobody in, silently.
type Warning struct {
	Key     string // where, as in the config reference: access.rules[2].groups[0]
	Message string // what is wrong, and the fix
}

func (w Warning) String() string { return w.Key + ": " + w.Message }

// Lint finds what cannot work in c. groups are the group names that exist (declared
// here and, when the database could be read, created as data); nil skips those checks.
// people says whether the database has users: before the first one, the setup link
// creates the first admin group, so its absence is no mistake yet.
func Lint(c *Config, groups []string, people bool) []Warning {
	var out []Warning
	known := append(slices.Clone(groups), declaredGroups(c)...)
	group := func(key, name, effect string) {
		if groups == nil || slices.Contains(known, name) {
			return
		}
		hint := ""
		if near := Nearest(name, known); near != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", near)
		}
		out = append(out, Warning{key, fmt.Sprintf("group %q does not exist%s: %s; create it (gatehouse group add, or under groups:) or fix the name", name, hint, effect)})
	}
	for i, name := range c.Access.AdminGroups {
		if people {
			group(fmt.Sprintf("access.admin_groups[%d]", i), name, "nobody is an admin through it")
		}
	}
	domain := strings.ToLower(strings.TrimPrefix(c.Session.CookieDomain, "."))
	for i, r := range c.Access.Rules {
		for j, name := range r.Groups {
			group(fmt.Sprintf("access.rules[%d].groups[%d]", i, j), name, "the rule lets no one in through it")
		}
		for j, h := range r.Hosts {
			if OutsideCookieDomain(h, c.Session.CookieDomain) {
				out = append(out, Warning{fmt.Sprintf("access.rules[%d].hosts[%d]", i, j),
					fmt.Sprintf("%q is outside session.cookie_domain %q: the sign-in cookie never reaches it, so nobody signs in there; put the host under %s or change the cookie domain", h, c.Session.CookieDomain, domain)})
			}
		}
	}
	for i, cl := range c.OIDC.Clients {
		for j, name := range cl.Groups {
			group(fmt.Sprintf("oidc.clients[%d].groups[%d]", i, j), name, fmt.Sprintf("nobody signs in to %s through it", cl.ID))
		}
	}
	return out
}

func declaredGroups(c *Config) []string {
	var out []string
	for _, g := range c.Groups {
		out = append(out, g.Name)
	}
	return out
}
