package mail

import (
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// Every kind composes, with its link on the public URL, and HTML escaped as HTML;
// without smtp.host nothing is composed.
func TestCompose(t *testing.T) {
	cfg := config.Default()
	c := Composer{Config: func() *config.Config { return &cfg }}
	if _, ok := c.Compose("reset", "ann@example.com", nil); ok {
		t.Fatal("composed a mail with no SMTP server configured")
	}
	cfg.SMTP.Host, cfg.SMTP.From, cfg.Server.PublicURL = "mail.example.com", "Gatehouse <auth@example.com>", "https://auth.example.com"
	for _, kind := range []string{"invitation", "reset", "verify", "new_sign_in"} {
		m, ok := c.Compose(kind, "ann@example.com", map[string]string{"Name": "Ann <script>", "Username": "ann", "Path": "/x?token=t", "Code": "K7MQ-4XTR", "Detail": "password"})
		if !ok || m.Subject == "" || strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") && kind != "invitation" {
			t.Errorf("%s: %+v", kind, m)
		}
		if kind != "new_sign_in" && !strings.Contains(m.Text, "https://auth.example.com/x?token=t") {
			t.Errorf("%s: the text lacks its link:\n%s", kind, m.Text)
		}
	}
	if _, ok := c.Compose("no-such-kind", "ann@example.com", nil); ok {
		t.Error("composed an unknown kind")
	}
}

// A message is plain text and HTML alternatives, its subject encoded, readable by
// Go's own mail parser.
func TestMessage(t *testing.T) {
	cfg := config.Default()
	cfg.SMTP.Host, cfg.SMTP.From = "mail.example.com", "Gatehouse <auth@example.com>"
	m, _ := Composer{Config: func() *config.Config { return &cfg }}.Compose("reset", "ann@example.com", map[string]string{"Name": "Ännchen", "Username": "ann", "Path": "/r"})
	from, _ := netmail.ParseAddress(cfg.SMTP.From)
	msg, err := netmail.ReadMessage(strings.NewReader(string(Message(from, m))))
	if err != nil {
		t.Fatal(err)
	}
	if subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); subject != m.Subject || msg.Header.Get("To") != "<ann@example.com>" {
		t.Fatalf("headers %v", msg.Header)
	}
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	r := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(p)
		types = append(types, p.Header.Get("Content-Type"))
		if !strings.Contains(string(body), "Ännchen") {
			t.Errorf("a part lacks the name: %s", body)
		}
	}
	if strings.Join(types, ",") != "text/plain; charset=utf-8,text/html; charset=utf-8" {
		t.Fatalf("parts %v", types)
	}
}
