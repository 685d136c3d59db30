package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// oauth2ProxyEnv names the oauth2-proxy binary scripts/test.sh builds with go install
// into a cache folder outside the repository.
const oauth2ProxyEnv = "TEST_GATEHOUSE_OAUTH2_PROXY"

// oauth2-proxy 7 with its default OpenID Connect settings (no flag that skips a check:
// the email must be verified, the ID token signed by the issuer's keys) signs a person
// in through Gatehouse, hands the app their user, email and groups, refreshes with
// --cookie-refresh while four requests arrive at once without losing the grant, and
// its sign-out (--backend-logout-url) ends the Gatehouse sign-in too.
func TestOAuth2Proxy(t *testing.T) {
	bin := fromEnv(t, oauth2ProxyEnv, "oauth2-proxy built with go install")
	addr, metrics := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + addr
	proxyPort := freePort(t)
	proxy := fmt.Sprintf("http://127.0.0.1:%d", proxyPort)
	const secret = "oauth2-proxy-secret-0123456789abcdef0123456789"
	dir, env, cfgPath := staffSite(t, "sqlite:"+t.TempDir()+"/gh.db", fmt.Sprintf(`server:
  address: %q
  public_url: %q
oidc:
  clients:
    - id: oauth2-proxy
      secret: %q
      redirect_uris: [%q]
      groups: [staff]
`, addr, base, secret, proxy+"/oauth2/callback"))
	env = append(env, "GATEHOUSE_SERVER_METRICS_ADDRESS="+metrics)
	serve(t, dir, env, addr, "--config", cfgPath)
	ok(t, dir, env, "correct horse alice\n", "user", "add", "alice", "--email", "alice@example.com", "--group", "staff", "--password-stdin", "--config", cfgPath)

	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s email=%s groups=%s", r.Header.Get("X-Forwarded-User"), r.Header.Get("X-Forwarded-Email"), r.Header.Get("X-Forwarded-Groups"))
	}))
	t.Cleanup(app.Close)
	cmd := exec.Command(bin, "--provider=oidc", "--oidc-issuer-url="+base, "--client-id=oauth2-proxy", "--client-secret="+secret,
		"--redirect-url="+proxy+"/oauth2/callback", "--http-address="+strings.TrimPrefix(proxy, "http://"), "--upstream="+app.URL+"/",
		"--cookie-secret=0123456789abcdef0123456789abcdef", "--cookie-secure=false", "--email-domain=*",
		"--skip-provider-button=true", "--cookie-refresh=2s", "--scope=openid email profile groups",
		"--backend-logout-url="+base+"/oauth2/logout?id_token_hint={id_token}")
	startProxy(t, proxyPort, cmd, "")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	gatehouseCookie := loginThrough(t, base, "alice", "correct horse alice")
	name, value, _ := strings.Cut(gatehouseCookie, "=")
	u, _ := url.Parse(base)
	jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
	get := func(path string) (int, string) {
		resp, err := browser.Get(proxy + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/")
	if code != http.StatusOK || !strings.Contains(body, "email=alice@example.com") || !strings.Contains(body, "groups=staff") {
		t.Fatalf("signing in through oauth2-proxy: %d %q", code, body)
	}

	// Past --cookie-refresh, requests four at a time: oauth2-proxy refreshes from
	// several of them at once. Every one must pass, and the grant must live on.
	before := refreshesIssued(t, metrics)
	var failed []string
	var mu sync.Mutex
	waitFor(t, 60*time.Second, "oauth2-proxy to refresh the session", func() bool {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if code, body := get("/"); code != http.StatusOK || !strings.Contains(body, "user=") {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%d %q", code, body))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return refreshesIssued(t, metrics) >= before+2
	})
	if len(failed) > 0 {
		t.Fatalf("requests failed while oauth2-proxy refreshed: %v", failed)
	}
	if code, body := get("/"); code != http.StatusOK {
		t.Fatalf("after the refreshes: %d %q", code, body)
	}

	// Sign out of the app: oauth2-proxy calls Gatehouse with the ID token, which
	// ends the Gatehouse sign-in as well.
	if code, _ := get("/oauth2/sign_out"); code == 0 {
		t.Fatal("sign out failed")
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/authz/forward-auth", nil)
	for k, v := range traefikHeaders("https://app.example.com/") {
		req.Header[k] = v
	}
	req.Header.Set("Cookie", gatehouseCookie)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("oauth2-proxy's sign-out left the Gatehouse sign-in alive")
	}
}

// refreshesIssued reads how many refresh grants Gatehouse answered with tokens.
func refreshesIssued(t *testing.T, metrics string) int {
	t.Helper()
	n, _ := metricValue(metrics, `gatehouse_oidc_token_requests_total{grant_type="refresh_token",result="issued"}`)
	return int(n)
}

// metricValue reads one sample from the metrics listener at metrics; false when it
// cannot be read.
func metricValue(metrics, sample string) (float64, bool) {
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n, err == nil
		}
	}
	return 0, false
}
