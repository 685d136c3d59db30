package web

import (
	"net/url"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
	"github.com/gatehouse-id/gatehouse/internal/session"
)

// appLink is one app on the home page.
type appLink struct {
	Name, URL, Icon, Description string
	StepUp                       bool // its rule asks this session for a second factor first
}

// appsFor lists the apps p may open, in the config's order: each one's URL decided
// as forward auth decides a browser's visit to it (an app behind a two-factor rule is
// listed, marked, for a session without one). Without apps in the config, the list is
// the hosts of the rules that cover a whole host, without wildcards.
func (s *Server) appsFor(p *session.Principal) []appLink {
	cfg := s.cfg()
	apps := cfg.Apps
	if len(apps) == 0 {
		apps = ruleApps(cfg)
	}
	who := &access.Identity{Username: p.Username, Groups: p.Groups, TwoFactor: p.TwoFactor}
	policy := s.Policy()
	var out []appLink
	for _, a := range apps {
		orig, err := forwardauth.OriginalOf(a.URL)
		if err != nil {
			continue // validated as a URL, but not one forward auth decides on
		}
		switch policy.Decide(access.Request{Host: orig.HostName(), Path: orig.Path}, who).Result {
		case access.Allow:
			out = append(out, appLink{Name: a.Name, URL: a.URL, Icon: a.Icon, Description: a.Description})
		case access.NeedSecondFactor:
			out = append(out, appLink{Name: a.Name, URL: a.URL, Icon: a.Icon, Description: a.Description, StepUp: true})
		}
	}
	return out
}

// ruleApps are the apps a config without apps implies: every host named by a rule
// that covers the whole host (no paths) and lets someone in (not deny), once, on the
// scheme of Gatehouse's own address.
func ruleApps(cfg *config.Config) []config.App {
	scheme := "https"
	if u, err := url.Parse(cfg.Server.PublicURL); err == nil && u.Scheme != "" {
		scheme = u.Scheme
	}
	seen := map[string]bool{}
	var apps []config.App
	for _, r := range cfg.Access.Rules {
		if len(r.Paths) > 0 || r.Deny {
			continue
		}
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			if strings.Contains(h, "*") || seen[h] {
				continue
			}
			seen[h] = true
			apps = append(apps, config.App{Name: h, URL: scheme + "://" + h + "/"})
		}
	}
	return apps
}
