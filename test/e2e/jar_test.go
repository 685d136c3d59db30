package e2e

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
)

// jar is a cookie jar that, like a browser, honours Domain=example.com for every host
// under it. Go's cookiejar does the same once given a public-suffix list; a nil list
// treats "example.com" as an ordinary registrable domain, which is what we need here.
type jar struct{ *cookiejar.Jar }

func newJar() *jar {
	j, _ := cookiejar.New(nil)
	return &jar{j}
}

// names lists the cookie names the jar would send to rawURL.
func (j *jar) names(rawURL string) []string {
	u, _ := url.Parse(rawURL)
	var out []string
	for _, c := range j.Cookies(u) {
		out = append(out, c.Name)
	}
	return out
}

var _ http.CookieJar = (*jar)(nil)
