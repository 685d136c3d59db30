package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gatehouse-id/gatehouse/internal/testenv"
)

// zitadelEnv names the example OpenID provider of the zitadel/oidc library, which
// scripts/test.sh builds with go install.
const zitadelEnv = "TEST_GATEHOUSE_ZITADEL_OP"

// person is someone with a browser of their own: a cookie jar, and redirects followed
// as a browser follows them.
type person struct {
	t      *testing.T
	client *http.Client
}

func newPerson(t *testing.T) *person {
	jar, _ := cookiejar.New(nil)
	return &person{t: t, client: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

func (p *person) do(method, target string, form url.Values) (*http.Response, string) {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, target, body)
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var zitadelAuthRequest = regexp.MustCompile(`name="id" value="([^"]+)"`)

// atZitadel signs in on the example provider's login page the browser was sent to,
// and follows the redirects back to Gatehouse.
func (p *person) atZitadel(resp *http.Response, page, username string) (*http.Response, string) {
	p.t.Helper()
	m := zitadelAuthRequest.FindStringSubmatch(page)
	if m == nil {
		p.t.Fatalf("not the provider's login page (%s, %d):\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	login := *resp.Request.URL
	login.Path, login.RawQuery = "/login/username", ""
	return p.do(http.MethodPost, login.String(), url.Values{"id": {m[1]}, "username": {username}, "password": {"verysecure"}})
}

// TestUpstreamOpenIDProvider signs people in to Gatehouse through a real OpenID
// provider nobody here wrote — the example provider of the certified zitadel/oidc
// library, with its own login page — configured as a generic OIDC login provider:
// an account at the provider signs in only once linked, and links only by its owner
// proving the Gatehouse password in the same browser, by an invitation (a sign-up
// that lands in exactly the invitation's group), or by a verified email where the
// provider opts in. An unverified address equal to the admin's takes nothing; a
// domain gate checks the claim; an upstream sign-in lasts session.lifetime.
func TestUpstreamOpenIDProvider(t *testing.T) {
	op := fromEnv(t, zitadelEnv, "the zitadel/oidc example provider built with go install")
	ghPort, opPort := freePort(t), freePort(t)
	gh := fmt.Sprintf("http://127.0.0.1:%d", ghPort)
	issuer := fmt.Sprintf("http://localhost:%d/", opPort)
	dir := t.TempDir()
	users := map[string]map[string]any{}
	for id, u := range map[string][3]any{
		"u1": {"ann", "ann@example.com", true},
		"u2": {"bea", "bea@corp.example", true},
		"u3": {"mallory", "root@example.com", false}, // claims the admin's address, unverified
		"u4": {"carol", "carol@example.com", true},
	} {
		users[id] = map[string]any{"ID": id, "Username": u[0], "Password": "verysecure", "FirstName": u[0], "LastName": "Test",
			"Email": u[1], "EmailVerified": u[2], "PreferredLanguage": "en"}
	}
	usersFile, _ := json.Marshal(users)
	writeFile(t, filepath.Join(dir, "op-users.json"), string(usersFile))
	var callbacks []string
	for _, id := range []string{"zitadel", "zitadel-email", "zitadel-corp"} {
		callbacks = append(callbacks, gh+"/login/provider/"+id+"/callback")
	}
	cmd := exec.Command(op)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(opPort), "USERS_FILE="+filepath.Join(dir, "op-users.json"), "REDIRECT_URI="+strings.Join(callbacks, ","))
	startProxy(t, opPort, cmd, "")

	writeFile(t, filepath.Join(dir, "zitadel.secret"), "secret\n")
	cfg := filepath.Join(dir, "gatehouse.yaml")
	provider := func(id, extra string) string {
		return fmt.Sprintf("  - id: %s\n    type: oidc\n    name: Zitadel\n    issuer: %s\n    client_id: web\n    client_secret_file: %s\n%s", id, issuer, filepath.Join(dir, "zitadel.secret"), extra)
	}
	writeFile(t, cfg, fmt.Sprintf("server:\n  address: \"127.0.0.1:%d\"\n  public_url: %q\ngroups:\n  - name: Family\n  - name: admins\naccess:\n  admin_groups: [admins]\nlogin_providers:\n", ghPort, gh)+
		provider("zitadel", "")+provider("zitadel-email", "    link_by_email: true\n")+provider("zitadel-corp", "    allowed_domains: [corp.example]\n"))
	env := cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:" + filepath.Join(dir, "gh.db"))
	serve(t, dir, env, fmt.Sprintf("127.0.0.1:%d", ghPort), "--config", cfg)
	run := func(stdin string, args ...string) string {
		return ok(t, dir, env, stdin, append(args, "--config", cfg)...)
	}
	run("root-password\n", "user", "add", "root", "--email", "root@example.com", "--group", "admins", "--password-stdin")
	run("ann-password\n", "user", "add", "ann", "--email", "ann@example.com", "--group", "Family", "--password-stdin")
	run("carol-password\n", "user", "add", "carol", "--email", "carol@example.com", "--group", "Family", "--password-stdin")

	signInWith := func(who *person, provider, username string) (*http.Response, string) {
		t.Helper()
		resp, page := who.do(http.MethodGet, gh+"/login/provider/"+provider, nil)
		return who.atZitadel(resp, page, username)
	}

	// Not linked yet: the provider's sign-in alone opens no account.
	if resp, page := signInWith(newPerson(t), "zitadel", "ann"); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "no Gatehouse account is linked") {
		t.Fatalf("an unlinked sign-in: %d\n%s", resp.StatusCode, page)
	}
	// Ann links it, signed in with her password in the same browser.
	ann := newPerson(t)
	_, page := ann.do(http.MethodGet, gh+"/login", nil)
	if resp, _ := ann.do(http.MethodPost, gh+"/login", url.Values{"username": {"ann"}, "password": {"ann-password"}, "csrf_token": {csrfOf(t, page)}}); resp.Request.URL.Path != "/" {
		t.Fatalf("ann's password sign-in ended at %s", resp.Request.URL)
	}
	_, page = ann.do(http.MethodGet, gh+"/account", nil)
	resp, page := ann.do(http.MethodPost, gh+"/login/provider/zitadel", url.Values{"intent": {"link"}, "csrf_token": {csrfOf(t, page)}})
	if resp, page = ann.atZitadel(resp, page, "ann"); resp.Request.URL.Path != "/account" || !strings.Contains(page, "Linked: you can sign in with Zitadel") {
		t.Fatalf("linking: at %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	// Now the provider signs her in, in a fresh browser, for session.lifetime.
	again := newPerson(t)
	if resp, page := signInWith(again, "zitadel", "ann"); resp.Request.URL.Path != "/" || !strings.Contains(page, "signed in as <strong>ann</strong>") {
		t.Fatalf("ann through the provider: at %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	var sessions []struct {
		Method    string    `json:"method"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(run("", "session", "list", "--user", "ann", "--json")), &sessions); err != nil {
		t.Fatal(err)
	}
	upstreamLasts := time.Duration(0)
	for _, s := range sessions {
		if s.Method == "upstream:zitadel" {
			upstreamLasts = time.Until(s.ExpiresAt)
		}
	}
	if upstreamLasts < 27*24*time.Hour || upstreamLasts > 28*24*time.Hour {
		t.Fatalf("an upstream session lasts %s, want session.lifetime (28 days); sessions %+v", upstreamLasts, sessions)
	}

	// An invitation sign-up through the provider lands in exactly its group.
	code := strings.Fields(run("", "invite", "create", "--group", "Family"))[0]
	bea := newPerson(t)
	_, page = bea.do(http.MethodGet, gh+"/invite?code="+code, nil)
	resp, page = bea.do(http.MethodPost, gh+"/login/provider/zitadel", url.Values{"intent": {"join"}, "code": {code}, "csrf_token": {csrfOf(t, page)}})
	if resp, page = bea.atZitadel(resp, page, "bea"); resp.Request.URL.Path != "/" || !strings.Contains(page, "signed in as <strong>bea</strong>") {
		t.Fatalf("bea joining through the provider: at %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	if shown := run("", "user", "show", "bea"); !strings.Contains(shown, "Family") || strings.Contains(shown, "admins") || !strings.Contains(shown, "bea@corp.example") {
		t.Fatalf("bea after joining:\n%s", shown)
	}
	if listed := run("", "invite", "list"); !strings.Contains(listed, "1 of 1") {
		t.Fatalf("the invitation after bea joined:\n%s", listed)
	}
	// Her provider account is her only way in: it cannot be unlinked.
	_, page = bea.do(http.MethodGet, gh+"/account", nil)
	if resp, page := bea.do(http.MethodPost, gh+"/account/upstream/remove", url.Values{"id": {"upstream:zitadel:u2"}, "csrf_token": {csrfOf(t, page)}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "only way you can sign in") {
		t.Fatalf("bea unlinking her only sign-in: %d\n%s", resp.StatusCode, page)
	}

	// An admin's pre-link: dan's provider account signs in to the account made for him.
	run("", "user", "add", "dan", "--no-password", "--group", "Family")
	run("", "user", "link-account", "dan", "zitadel", "u4")
	if resp, page := signInWith(newPerson(t), "zitadel", "carol"); resp.Request.URL.Path != "/" || !strings.Contains(page, "signed in as <strong>dan</strong>") {
		t.Fatalf("the pre-linked account: at %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}

	// Linking by email, where the provider opts in: a verified address links, the
	// admin's address unverified takes nothing.
	if resp, page := signInWith(newPerson(t), "zitadel-email", "mallory"); resp.StatusCode != http.StatusForbidden || strings.Contains(page, "signed in as") {
		t.Fatalf("mallory with root's unverified address: %d\n%s", resp.StatusCode, page)
	}
	if creds := run("", "user", "credentials", "list", "root"); strings.Contains(creds, "upstream") {
		t.Fatalf("root's account gained a link:\n%s", creds)
	}
	if resp, page := signInWith(newPerson(t), "zitadel-email", "carol"); resp.Request.URL.Path != "/" || !strings.Contains(page, "signed in as <strong>carol</strong>") {
		t.Fatalf("carol by her verified address: at %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}

	// A domain gate on the claim.
	if resp, page := signInWith(newPerson(t), "zitadel-corp", "ann"); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "open to verified addresses at corp.example only") {
		t.Fatalf("ann at a corp-only provider: %d\n%s", resp.StatusCode, page)
	}

	// A callback that did not start in this browser is refused.
	intruder := newPerson(t)
	resp, _ = intruder.do(http.MethodGet, gh+"/login/provider/zitadel/callback?code=x&state=y", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a forged callback: %d", resp.StatusCode)
	}
}

// TestUpstreamInvitationInABrowser is the invitation sign-up through the real provider
// in headless Chromium, as the invited person does it: the invitation link, *Join with
// Zitadel*, the provider's own login page, and back on the apps page signed in, in
// exactly the invitation's group — the trip through the provider loses nothing.
func TestUpstreamInvitationInABrowser(t *testing.T) {
	exe := testenv.Tool(t, "chromium", "chromium")
	op := fromEnv(t, zitadelEnv, "the zitadel/oidc example provider built with go install")
	ghPort, opPort := freePort(t), freePort(t)
	gh := fmt.Sprintf("http://127.0.0.1:%d", ghPort)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "op-users.json"), `{"u1": {"ID": "u1", "Username": "grandma", "Password": "verysecure", "FirstName": "Grandma", "LastName": "Test",
		"Email": "grandma@example.com", "EmailVerified": true, "PreferredLanguage": "en"}}`)
	cmd := exec.Command(op)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(opPort), "USERS_FILE="+filepath.Join(dir, "op-users.json"), "REDIRECT_URI="+gh+"/login/provider/zitadel/callback")
	startProxy(t, opPort, cmd, "")
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, fmt.Sprintf("server:\n  address: \"127.0.0.1:%d\"\n  public_url: %q\ngroups:\n  - name: Family\n  - name: Friends\nlogin_providers:\n"+
		"  - id: zitadel\n    type: oidc\n    name: Zitadel\n    issuer: http://localhost:%d/\n    client_id: web\n    client_secret: secret\n", ghPort, gh, opPort))
	env := cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:" + filepath.Join(dir, "gh.db"))
	serve(t, dir, env, fmt.Sprintf("127.0.0.1:%d", ghPort), "--config", cfg)
	link := strings.Fields(ok(t, dir, env, "", "invite", "create", "--group", "Family", "--config", cfg))[1]

	b := newChromium(t, exe, gh)
	b.run("opening the invitation", chromedp.Navigate(link))
	b.waitText("This invitation makes your account in Family")
	b.run("joining with Zitadel", chromedp.Click(chromedp.CSS(`form[action="/login/provider/zitadel"] button`)))
	b.run("signing in at the provider", chromedp.WaitVisible(chromedp.CSS("#username")), chromedp.SendKeys(chromedp.CSS("#username"), "grandma"),
		chromedp.SendKeys(chromedp.CSS("#password"), "verysecure"), chromedp.Submit(chromedp.CSS("#password")))
	b.waitText("You are signed in as grandma")
	if loc := b.location(); loc != gh+"/" {
		t.Fatalf("after joining the browser is at %s", loc)
	}
	if shown := ok(t, dir, env, "", "user", "show", "grandma", "--config", cfg); !strings.Contains(shown, "Family") || strings.Contains(shown, "Friends") {
		t.Fatalf("grandma after joining:\n%s", shown)
	}
}
