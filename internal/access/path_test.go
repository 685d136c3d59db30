package access

import (
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// Each class of request target that apps and Gatehouse could read differently is
// refused, with a reason that names it.
func TestCheckPathRefusesWhatServersDisagreeOn(t *testing.T) {
	for _, tc := range []struct{ target, reason string }{
		{"/photos/%2e%2e/api/x", `encoded "."`},
		{"/photos/%2E%2E/api/x", `encoded "."`},
		{"/photos/.%2e/api/x", `encoded "."`},
		{"/api%2fadmin", `encoded "/"`},
		{"/api%2Fadmin", `encoded "/"`},
		{"/api%5cadmin", `encoded "\"`},
		{"/api%255c..%255cadmin", "double-encoded"},
		{"/api/%252e%252e/admin", "double-encoded"},
		{"/api\\..\\admin", "backslash"},
		{"/api/../admin", "dot segment"},
		{"/api/./admin", "dot segment"},
		{"/api/..", "dot segment"},
		{"/public/..;/admin", "dot segment"},
		{"/public/..;jsessionid=1/admin", "dot segment"},
		{"/public/.;x/admin", "dot segment"},
		{"/api/x#/../admin", `raw "#"`},
		{"/api/x?y=1#frag", `raw "#"`},
		{"/a%00b", "control"},
		{"/a%0d%0aSet-Cookie:x", "control"},
		{"/a%7f", "control"},
		{"/a\x00b", "control"},
		{"/a\tb", "control"},
		{"/a b", "space"},
		{"/a%zz", "invalid %-escape"},
		{"/a%4", "invalid %-escape"},
		{"/a%", "invalid %-escape"},
		{"/caf%c3", "UTF-8"},
		{"/caf\xc3", "UTF-8"},
		{"//evil.example/x", `starts with "//"`},
		{"x", `does not start with "/"`},
		{"", `does not start with "/"`},
	} {
		err := CheckPath(tc.target)
		if err == nil || !strings.Contains(err.Error(), tc.reason) || !strings.HasSuffix(err.Error(), "which apps read differently; refused") {
			t.Errorf("CheckPath(%q) = %v, want a refusal naming %q", tc.target, err, tc.reason)
		}
	}
}

// What browsers and apps send every day passes.
func TestCheckPathAcceptsOrdinaryTargets(t *testing.T) {
	for _, target := range []string{
		"/", "/photos/42?size=large", "/api/v1/items?q=a%2fb#", "/search?q=../x", "/a/b/", "/.well-known/openid-configuration",
		"/files/my%20doc.pdf", "/caf%C3%A9", "/café", "/a;jsessionid=123/b", "/a//b", "/..foo/x", "/x/...", "/100%25",
		"/%41dmin",
	} {
		if target == "/api/v1/items?q=a%2fb#" {
			continue // a raw "#" is refused anywhere, even after the query
		}
		if err := CheckPath(target); err != nil {
			t.Errorf("CheckPath(%q) = %v, want it accepted", target, err)
		}
	}
}

func TestReadings(t *testing.T) {
	for _, tc := range []struct {
		path string
		want []string // "~" marks a folded reading
	}{
		{"/photos/42", []string{"/photos/42"}},
		{"/Photos", []string{"/Photos", "~/photos"}},
		{"/%61pi/x", []string{"/%61pi/x", "/api/x"}},
		{"/admin;x=1/y", []string{"/admin;x=1/y", "/admin/y"}},
		{"/a//b", []string{"/a//b", "/a/b"}},
		{"/%41dmin;v", []string{"/%41dmin;v", "/Admin;v", "/%41dmin", "/Admin", "~/admin;v", "~/admin"}},
	} {
		var got []string
		for _, r := range Readings(tc.path, false) {
			s := r.Path
			if r.Folded {
				s = "~" + s
			}
			got = append(got, s)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Readings(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if r := Readings("/admin", true); len(r) != 2 || !r[1].Folded {
		t.Errorf("a rule path with upper case must fold even lower-case requests: %v", r)
	}
}

// The README's rule shape: a few public paths on a host, the rest protected, and a
// protected folder under a public host. Every class of ambiguity is decided on its
// strictest reading.
func TestStrictestReadingDecides(t *testing.T) {
	p := NewPolicy(config.Access{AdminGroups: []string{"admins"}, Rules: []config.Rule{
		{Hosts: []string{"photos.example.com"}, Paths: []string{"/api/", "/public"}, Public: true},        // 0
		{Hosts: []string{"wiki.example.com"}, Paths: []string{"/admin"}, Groups: []string{"admins-only"}}, // 1
		{Hosts: []string{"wiki.example.com"}, Public: true},                                               // 2
		{Hosts: []string{"tomcat.example.com"}, Paths: []string{"/Manager/"}, Deny: true},                 // 3
		{Hosts: []string{"tomcat.example.com"}, Groups: []string{"family"}},                               // 4
		{Hosts: []string{"*.example.com"}, Groups: []string{"family"}},                                    // 5
	}})
	family := &Identity{Username: "ann", Groups: []string{"family"}}
	for _, tc := range []struct {
		name, host, path string
		who              *Identity
		want             Result
	}{
		{"public path is public", "photos.example.com", "/api/x", nil, Allow},
		{"encoded letters are not public (Express routes on the encoded path)", "photos.example.com", "/%61pi/x", nil, NeedLogin},
		{"public with an encoded ordinary character stays public", "photos.example.com", "/api/my%20file", nil, Allow},
		{"parameters on a public segment are not public (Tomcat drops them, Express does not)", "photos.example.com", "/public;x/y", nil, NeedLogin},
		{"a public segment is public", "photos.example.com", "/public/y", nil, Allow},
		{"case: /API/ is not public for a case-sensitive app", "photos.example.com", "/API/x", nil, NeedLogin},
		{"repeated slashes before a public folder", "photos.example.com", "/api//x", nil, Allow},
		{"protected folder under a public host", "wiki.example.com", "/admin/users", nil, NeedLogin},
		{"protected folder, upper case (case-insensitive routers)", "wiki.example.com", "/ADMIN/users", nil, NeedLogin},
		{"protected folder, encoded letter", "wiki.example.com", "/%61dmin", nil, NeedLogin},
		{"protected folder, path parameter (Tomcat)", "wiki.example.com", "/admin;jsessionid=1", nil, NeedLogin},
		{"protected folder, encoded ? (a server that decodes first ends the path there)", "wiki.example.com", "/admin%3f/x", nil, NeedLogin},
		{"protected folder, encoded #", "wiki.example.com", "/admin%23x", nil, NeedLogin},
		{"protected folder, repeated slash", "wiki.example.com", "/admin//users", nil, NeedLogin},
		{"a name that starts with dots is no dot segment", "wiki.example.com", "/x/..admin", nil, Allow},
		{"protected folder, member of another group", "wiki.example.com", "/Admin", family, Deny},
		{"the rest of the public host", "wiki.example.com", "/page/Admin", nil, Allow},
		{"deny rule with upper case in config, lower-case request", "tomcat.example.com", "/manager/html", family, Deny},
		{"deny rule with parameters", "tomcat.example.com", "/Manager;x/html", family, Deny},
		{"the rest of the host", "tomcat.example.com", "/app", family, Allow},
	} {
		if err := CheckPath(tc.path); err != nil {
			t.Fatalf("%s: %q refused: %v", tc.name, tc.path, err)
		}
		d := p.Decide(Request{Host: tc.host, Path: tc.path}, tc.who)
		if d.Result != tc.want {
			t.Errorf("%s: Decide(%s%s) = %v by rule %d on reading %+v, want %v", tc.name, tc.host, tc.path, d.Result, d.Rule, d.Reading, tc.want)
		}
	}
}

// appReadings are the ways real frameworks read a path before routing it: each must
// never get a weaker decision than Gatehouse gives the path itself.
var appReadings = map[string]func(string) Reading{
	"Express (routes on the encoded path)": func(p string) Reading { return Reading{Path: p} },
	"Express, case-insensitive routing":    func(p string) Reading { return Reading{Path: strings.ToLower(p), Folded: true} },
	// path.Clean on a path without dot segments only merges slashes (FileServer
	// redirects away a trailing slash, and the redirected request is checked anew).
	"Go net/http and http.FileServer (decode, clean)": func(p string) Reading {
		return Reading{Path: mergeSlashes(decode(p))}
	},
	"Tomcat and Spring (drop ;parameters, decode, merge slashes)": func(p string) Reading {
		return Reading{Path: mergeSlashes(decode(dropParameters(p)))}
	},
	"a proxy that decodes before parsing (nginx proxy_pass with a URI)": func(p string) Reading {
		d := decode(p)
		if end := strings.IndexAny(d, "?#"); end > 0 {
			d = d[:end]
		}
		return Reading{Path: mergeSlashes(d)}
	},
	"a case-insensitive router (decode, fold)": func(p string) Reading {
		return Reading{Path: strings.ToLower(mergeSlashes(decode(p))), Folded: true}
	},
}

// FuzzNoReadingIsWeaker: whatever path passes CheckPath, no framework's reading of the
// same bytes gets a weaker decision than Gatehouse's, for anonymous, member and admin
// alike, under rules that mix public and protected paths on one host.
func FuzzNoReadingIsWeaker(f *testing.F) {
	for _, seed := range []string{"/photos/%2e%2e/api/x", "/public/..;/admin", "/ADMIN", "/api//x", "/%61pi/x", "/Api;a/x",
		"/admin%3bx", "/a;b/c;d", "/API/../admin", "/api/x#", "/caf%C3%A9/admin"} {
		f.Add(seed)
	}
	p := NewPolicy(config.Access{AdminGroups: []string{"admins"}, Rules: []config.Rule{
		{Hosts: []string{"app.example.com"}, Paths: []string{"/api/", "/public", "/Static/"}, Public: true},
		{Hosts: []string{"app.example.com"}, Paths: []string{"/admin", "/Manager/"}, Groups: []string{"admins-only"}, TwoFactor: true},
		{Hosts: []string{"app.example.com"}, Paths: []string{"/private/"}, Deny: true},
		{Hosts: []string{"app.example.com"}, Groups: []string{"family"}},
	}})
	people := []*Identity{nil, {Username: "ann", Groups: []string{"family"}}, {Username: "root", Groups: []string{"admins"}}}
	f.Fuzz(func(t *testing.T, target string) {
		if CheckPath(target) != nil {
			return
		}
		path, _, _ := strings.Cut(target, "?")
		if strings.Contains(target, "#") || strings.Contains(path, "\\") { // the query is the app's business
			t.Fatalf("CheckPath accepted %q", target)
		}
		for _, who := range people {
			got := p.Decide(Request{Host: "app.example.com", Path: path}, who)
			checkExplanation(t, p, Request{Host: "app.example.com", Path: path}, who, got)
			for app, read := range appReadings {
				theirs := p.decideReading("app.example.com", read(path), who)
				if theirs.Result.strictness() > got.Result.strictness() {
					t.Fatalf("%q: Gatehouse decides %v (rule %d), but %s reads %q and gets the stricter %v (rule %d)",
						path, got.Result, got.Rule, app, read(path).Path, theirs.Result, theirs.Rule)
				}
			}
		}
	})
}

// The shortcut for plain paths gives the same decision as reading them every way.
func TestPlainPathShortcut(t *testing.T) {
	for _, p := range []string{"/", "/index.html", "/a/b/", "/api/x-y_z.~1"} {
		if !plainPath(p) || len(Readings(p, false)) != 1 {
			t.Errorf("%q: plain %v, %d readings", p, plainPath(p), len(Readings(p, false)))
		}
	}
	for _, p := range []string{"/A", "/a%20", "/a;b", "/a//b", "/café"} {
		if plainPath(p) {
			t.Errorf("%q taken for a plain path", p)
		}
	}
}
