package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mailpitEnv names Mailpit, the SMTP server scripts/test.sh builds with go install.
const mailpitEnv = "TEST_GATEHOUSE_MAILPIT"

// mailbox reads what reached Mailpit, by its HTTP API.
type mailbox struct {
	t   *testing.T
	api string
}

type mailpitMessage struct {
	ID      string
	Subject string
	To      []struct{ Address string }
}

// waitFor returns the text of the first mail to to whose subject contains subject.
func (m *mailbox) waitFor(to, subject string) string {
	m.t.Helper()
	var text string
	waitFor(m.t, 30*time.Second, "a mail to "+to+" about "+subject, func() bool {
		resp, err := http.Get(m.api + "/api/v1/messages")
		if err != nil {
			return false
		}
		var list struct{ Messages []mailpitMessage }
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, msg := range list.Messages {
			if len(msg.To) == 1 && msg.To[0].Address == to && strings.Contains(msg.Subject, subject) {
				resp, err := http.Get(m.api + "/api/v1/message/" + msg.ID)
				if err != nil {
					return false
				}
				var full struct{ Text, HTML string }
				json.NewDecoder(resp.Body).Decode(&full)
				resp.Body.Close()
				text = full.Text
				return strings.Contains(full.HTML, "<a href=")
			}
		}
		return false
	})
	return text
}

var mailLink = regexp.MustCompile(`http://127\.0\.0\.1:\d+/[^\s]+`)

// TestMailThroughMailpit sends Gatehouse's mail through a real SMTP server, Mailpit,
// and follows the links in what arrives, as their readers would: an invitation
// pinned to an address is mailed there and makes the cousin's account; a password
// reset mailed to the confirmed address signs its reader in once and ends the other
// sessions; a new address is confirmed by the link mailed to it; a sign-in from a new
// browser is told to the owner.
func TestMailThroughMailpit(t *testing.T) {
	mailpit := fromEnv(t, mailpitEnv, "Mailpit built with go install")
	smtpPort, apiPort, ghPort := freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(mailpit, "--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort), "--listen", fmt.Sprintf("127.0.0.1:%d", apiPort), "--database", filepath.Join(t.TempDir(), "mail.db"))
	startProxy(t, apiPort, cmd, "")
	box := &mailbox{t: t, api: fmt.Sprintf("http://127.0.0.1:%d", apiPort)}

	gh := fmt.Sprintf("http://127.0.0.1:%d", ghPort)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	writeFile(t, cfg, fmt.Sprintf(`server:
  address: "127.0.0.1:%d"
  public_url: %q
groups:
  - name: Family
  - name: admins
smtp:
  host: 127.0.0.1
  port: %d
  from: "Gatehouse <auth@example.com>"
  starttls: false # Mailpit on loopback
`, ghPort, gh, smtpPort))
	env := cleanEnv("GATEHOUSE_DATABASE_URL=sqlite:" + filepath.Join(dir, "gh.db"))
	serve(t, dir, env, fmt.Sprintf("127.0.0.1:%d", ghPort), "--config", cfg)
	run := func(stdin string, args ...string) string {
		return ok(t, dir, env, stdin, append(args, "--config", cfg)...)
	}
	run("ann-password\n", "user", "add", "ann", "--email", "ann@example.com", "--name", "Ann", "--group", "Family", "--password-stdin")

	// The invitation, mailed to the one address it is for.
	run("", "invite", "create", "--group", "Family", "--email", "cousin@example.com")
	text := box.waitFor("cousin@example.com", "invited")
	link := mailLink.FindString(text)
	cousin := newPerson(t)
	_, page := cousin.do(http.MethodGet, link, nil)
	if !strings.Contains(page, "makes your account in <strong>Family</strong>") {
		t.Fatalf("the invitation link from the mail (%s):\n%s", link, page)
	}
	code, _ := url.Parse(link)
	if resp, page := cousin.do(http.MethodPost, gh+"/invite", url.Values{"csrf_token": {csrfOf(t, page)}, "code": {code.Query().Get("code")}, "username": {"cousin"},
		"email": {"cousin@example.com"}, "password": {"cousin-password"}, "password_confirm": {"cousin-password"}}); resp.Request.URL.Path != "/" || !strings.Contains(page, "signed in as <strong>cousin</strong>") {
		t.Fatalf("joining with the mailed invitation: at %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}

	// A reset: the link signs its reader in once, and the other sessions end.
	laptop := newPerson(t)
	_, page = laptop.do(http.MethodGet, gh+"/login", nil)
	laptop.do(http.MethodPost, gh+"/login", url.Values{"username": {"ann"}, "password": {"ann-password"}, "csrf_token": {csrfOf(t, page)}})
	if resp, _ := laptop.do(http.MethodGet, gh+"/account", nil); resp.Request.URL.Path != "/account" {
		t.Fatalf("ann's laptop is not signed in: at %s", resp.Request.URL)
	}
	phone := newPerson(t)
	_, page = phone.do(http.MethodGet, gh+"/reset", nil)
	if resp, page := phone.do(http.MethodPost, gh+"/reset", url.Values{"who": {"ann@example.com"}, "csrf_token": {csrfOf(t, page)}}); !strings.Contains(page, "a link to reset its password is on its way") {
		t.Fatalf("asking for a reset: %d\n%s", resp.StatusCode, page)
	}
	_, page = phone.do(http.MethodGet, gh+"/reset", nil)
	if _, page := phone.do(http.MethodPost, gh+"/reset", url.Values{"who": {"nobody@example.com"}, "csrf_token": {csrfOf(t, page)}}); !strings.Contains(page, "a link to reset its password is on its way") {
		t.Fatalf("a reset for nobody says something else:\n%s", page)
	}
	link = mailLink.FindString(box.waitFor("ann@example.com", "password"))
	_, page = phone.do(http.MethodGet, link, nil)
	if resp, page := phone.do(http.MethodPost, gh+"/signin-link", url.Values{"csrf_token": {csrfOf(t, page)}, "token": {strings.TrimPrefix(link, gh+"/signin-link?token=")}}); resp.Request.URL.Path != "/account" || !strings.Contains(page, "every other session of yours has ended") {
		t.Fatalf("the reset link: at %s (%d)\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	if resp, _ := laptop.do(http.MethodGet, gh+"/account", nil); resp.Request.URL.Path != "/login" {
		t.Fatalf("the laptop's session outlived the reset: at %s", resp.Request.URL)
	}
	box.waitFor("ann@example.com", "New sign-in")

	// A new address waits until the link mailed to it is followed.
	_, page = phone.do(http.MethodGet, gh+"/account", nil)
	if _, page := phone.do(http.MethodPost, gh+"/account/profile", url.Values{"csrf_token": {csrfOf(t, page)}, "email": {"ann@new.example"}, "display_name": {"Ann"}}); !strings.Contains(page, "open the link just mailed to it") {
		t.Fatalf("changing the address:\n%s", page)
	}
	link = mailLink.FindString(box.waitFor("ann@new.example", "Confirm"))
	_, page = phone.do(http.MethodGet, link, nil)
	if _, page := phone.do(http.MethodPost, gh+"/verify-email", url.Values{"csrf_token": {csrfOf(t, page)}, "token": {strings.TrimPrefix(link, gh+"/verify-email?token=")}}); !strings.Contains(page, "ann@new.example is confirmed") {
		t.Fatalf("confirming the address:\n%s", page)
	}
	if shown := run("", "user", "show", "ann"); !strings.Contains(shown, "ann@new.example") {
		t.Fatalf("ann's address after confirming:\n%s", shown)
	}

	// An admin sees what was sent.
	run("root-password\n", "user", "add", "root", "--group", "admins", "--password-stdin")
	root := newPerson(t)
	_, page = root.do(http.MethodGet, gh+"/login", nil)
	root.do(http.MethodPost, gh+"/login", url.Values{"username": {"root"}, "password": {"root-password"}, "csrf_token": {csrfOf(t, page)}})
	if _, page := root.do(http.MethodGet, gh+"/admin/webhooks", nil); !strings.Contains(page, "<td>invitation</td><td>cousin@example.com</td><td>delivered</td>") ||
		!strings.Contains(page, "<td>verify</td><td>ann@new.example</td><td>delivered</td>") {
		t.Fatalf("the mail outbox on the admin page:\n%s", page)
	}
}
