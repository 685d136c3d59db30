// Package mail owns Gatehouse's email: composing each mail from its plain-text and
// HTML templates, and sending them. A change that sends mail writes it to the outbox
// in its own transaction (identity.Directory); here one replica at a time (under the
// "mail" lease) hands what is due to the SMTP server, and tries a failure again with
// growing pauses for a day, so a slow or absent mail server never holds a request.
// Without smtp.host nothing is composed: every link is shown to the admin instead.
package mail

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/outbox"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

//go:embed templates/*.txt
var templateFiles embed.FS

// Composer makes mails from their templates with the config's name and public URL.
type Composer struct {
	Config func() *config.Config
}

// Compose makes the mail of kind (invitation, reset, verify, new_sign_in) to to, with
// data for its template; a value named Path becomes Link, on the public URL. It
// reports false when no SMTP server is configured.
func (c Composer) Compose(kind, to string, data map[string]string) (store.Mail, bool) {
	cfg := c.Config()
	if cfg.SMTP.Host == "" {
		return store.Mail{}, false
	}
	d := map[string]string{"App": cmp.Or(cfg.Branding.Name, "Gatehouse"), "Base": cfg.Server.PublicURL}
	for k, v := range data {
		d[k] = v
	}
	if p, ok := d["Path"]; ok {
		d["Link"] = cfg.Server.PublicURL + p
	}
	// Each kind's file defines its subject, text and html; the html is escaped as
	// HTML. The templates are ours and their data plain strings, so executing them
	// fails only on a programming error, which the tests would catch.
	tt, err := template.ParseFS(templateFiles, "templates/"+kind+".txt")
	if err != nil {
		return store.Mail{}, false
	}
	ht, _ := htmltemplate.ParseFS(templateFiles, "templates/"+kind+".txt")
	var subject, text, html bytes.Buffer
	_ = tt.ExecuteTemplate(&subject, "subject", d)
	_ = tt.ExecuteTemplate(&text, "text", d)
	_ = ht.ExecuteTemplate(&html, "html", d)
	return store.Mail{Kind: kind, To: to, Subject: strings.TrimSpace(subject.String()), Text: strings.TrimSpace(text.String()) + "\n", HTML: html.String()}, true
}

// Sending.

// PollInterval is how often the lease holder looks for mail to send.
const PollInterval = time.Second

const (
	leaseName = "mail"
	leaseTTL  = 30 * time.Second
	// Timeout bounds one SMTP conversation.
	Timeout  = 30 * time.Second
	batch    = 10
	claimFor = batch*Timeout + time.Minute
	// RetryFor is how long a mail is tried again before it is given up.
	RetryFor = 24 * time.Hour
	// KeepMails is how long sent and failed mails stay listed.
	KeepMails = 7 * 24 * time.Hour
)

// retry is mail's schedule: a mail server that is down for a day has lost it.
var retry = outbox.Retry{Pauses: []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour}, For: RetryFor}

// Sender hands the outbox's mail to the SMTP server.
type Sender struct {
	Store interface {
		store.Mails
		store.Leases
	}
	Config  func() *config.Config
	Log     *slog.Logger
	Holder  string
	Backoff func(int) time.Duration // nil: the schedule's pauses
	Poll    time.Duration           // 0: PollInterval

	pruned time.Time
}

// Run sends mail while this replica holds the lease, until ctx ends.
func (s *Sender) Run(ctx context.Context) { s.loop().Run(ctx, s.Work) }

func (s *Sender) loop() *outbox.Loop {
	return &outbox.Loop{Leases: s.Store, Lease: leaseName, Holder: s.Holder, TTL: leaseTTL, Poll: cmp.Or(s.Poll, PollInterval), Log: s.Log, What: "sending mail"}
}

// Work sends what is due, if this replica holds (or takes) the lease.
func (s *Sender) Work(ctx context.Context) error {
	if s.Config().SMTP.Host == "" {
		return nil
	}
	held, err := s.loop().Hold(ctx)
	if err != nil || !held {
		return err
	}
	for ctx.Err() == nil {
		now := time.Now()
		due, err := s.Store.ClaimMails(ctx, now, now.Add(claimFor), batch)
		if err != nil || len(due) == 0 {
			if err == nil && now.Sub(s.pruned) > time.Hour {
				if _, err = s.Store.PruneMails(ctx, now.Add(-KeepMails)); err == nil {
					s.pruned = now
				}
			}
			return err
		}
		for _, m := range due {
			s.attempt(ctx, m)
		}
	}
	return ctx.Err()
}

func (s *Sender) attempt(ctx context.Context, m store.Mail) {
	err := Send(ctx, s.Config().SMTP, m)
	m.State, m.NextAt, m.FinishedAt, m.LastError = retry.Outcome(m.CreatedAt, time.Now(), m.Attempts, err, false, s.Backoff)
	switch m.State {
	case store.WebhookFailed:
		s.Log.Error("mail given up", "kind", m.Kind, "to", m.To, "attempts", m.Attempts, "error", err.Error())
	case store.WebhookPending:
		s.Log.Warn("sending mail failed; it is tried again", "kind", m.Kind, "to", m.To, "attempt", m.Attempts, "error", err.Error())
	}
	if err := s.Store.FinishMail(context.WithoutCancel(ctx), m); err != nil {
		s.Log.Warn("storing a mail's attempt failed", "kind", m.Kind, "error", err.Error())
	}
}

// Send hands one mail to the SMTP server: implicit TLS on port 465, STARTTLS (which
// must then be offered) unless starttls is off, AUTH PLAIN when a username is set.
func Send(ctx context.Context, c config.SMTP, m store.Mail) error {
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return fmt.Errorf("smtp.from %q: %w", c.From, err)
	}
	msg := Message(from, m)
	addr := net.JoinHostPort(c.Host, strconv.Itoa(c.PortOr()))
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var conn net.Conn
	d := &net.Dialer{}
	if c.PortOr() == 465 {
		conn, err = (&tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: c.Host}}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	cl, err := smtp.NewClient(conn, c.Host)
	if err != nil {
		return err
	}
	defer cl.Close()
	if c.PortOr() != 465 && c.StartTLSOn() {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return fmt.Errorf("%s offers no STARTTLS: mail would go unencrypted (set smtp.starttls: false only for a relay on this machine)", addr)
		}
		if err := cl.StartTLS(&tls.Config{ServerName: c.Host}); err != nil {
			return err
		}
	}
	if c.Username != "" {
		if err := cl.Auth(smtp.PlainAuth("", c.Username, c.Password, c.Host)); err != nil {
			return err
		}
	}
	if err := cl.Mail(from.Address); err != nil {
		return err
	}
	if err := cl.Rcpt(m.To); err != nil {
		return err
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return cl.Quit()
}

// Message is m as an RFC 5322 message: plain text and HTML alternatives.
func Message(from *mail.Address, m store.Mail) []byte {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	var id [12]byte
	_, _ = rand.Read(id[:])
	at := from.Address[strings.LastIndex(from.Address, "@")+1:]
	h := []string{
		"From: " + from.String(),
		"To: " + (&mail.Address{Address: m.To}).String(),
		"Subject: " + mime.QEncoding.Encode("utf-8", m.Subject),
		"Date: " + time.Now().Format(time.RFC1123Z),
		"Message-ID: <" + hex.EncodeToString(id[:]) + "@" + at + ">",
		"MIME-Version: 1.0",
		"Auto-Submitted: auto-generated",
		"Content-Type: multipart/alternative; boundary=" + mw.Boundary(),
	}
	var out bytes.Buffer
	out.WriteString(strings.Join(h, "\r\n") + "\r\n\r\n")
	for _, part := range []struct{ typ, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		if part.body == "" {
			continue
		}
		pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {part.typ + "; charset=utf-8"}, "Content-Transfer-Encoding": {"quoted-printable"}})
		qp := quotedprintable.NewWriter(pw)
		qp.Write([]byte(part.body))
		qp.Close()
	}
	mw.Close()
	out.Write(b.Bytes())
	return out.Bytes()
}
