package config

import (
	"fmt"
	"strings"
	"testing"
)

// Lint names every reference that can never match, with its key and a fix.
func TestLintFindsWhatCannotWork(t *testing.T) {
	c := Default()
	c.Session.CookieDomain = "example.com"
	c.Groups = []GroupDecl{{Name: "Family"}}
	c.Access.AdminGroups = []string{"Home Server Admins"}
	c.Access.Rules = []Rule{
		{Hosts: []string{"photos.example.com"}, Groups: []string{"Famliy"}},
		{Hosts: []string{"*.example.com"}, Groups: []string{"Allow Login Users"}},
		{Hosts: []string{"wiki.example.org"}, Public: true},
	}
	c.OIDC.Clients = []Client{{ID: "grafana", Groups: []string{"Grafana Users"}}}
	got := map[string]string{}
	for _, w := range Lint(&c, []string{"Home Server Admins", "Allow Login Users"}, true) {
		got[w.Key] = w.Message
	}
	for key, says := range map[string]string{
		"access.rules[0].groups[0]": `did you mean "Family"?`,
		"access.rules[2].hosts[0]":  `outside session.cookie_domain`,
		"oidc.clients[0].groups[0]": `nobody signs in to grafana`,
	} {
		if !strings.Contains(got[key], says) {
			t.Errorf("%s: %q, want it to say %q", key, got[key], says)
		}
	}
	if len(got) != 3 {
		t.Errorf("warnings %v, want exactly those three", got)
	}
	c.Access.AdminGroups = []string{"admins"} // made by the setup link, before anyone exists
	if w := Lint(&c, []string{}, false); len(w) != 4 || strings.Contains(fmt.Sprint(w), "admin_groups") {
		t.Errorf("before the first user: %v", w)
	}
	if w := Lint(&c, []string{}, true); !strings.Contains(fmt.Sprint(w), "access.admin_groups[0]") {
		t.Errorf("with users, an admin group that does not exist: %v", w)
	}
	if w := Lint(&c, nil, true); len(w) != 1 { // without the database's groups only the host is judged
		t.Errorf("without groups: %v", w)
	}
}
