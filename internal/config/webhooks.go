package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Webhook is one receiver of Gatehouse's events.
type Webhook struct {
	Name     string   `yaml:"name" doc:"What the delivery log calls it: letters, digits, \"-\" and \"_\", unique. Deliveries are kept under this name, so renaming a webhook starts it afresh."`
	URL      string   `yaml:"url" doc:"Where each event is posted: an absolute http:// or https:// URL. Redirects are not followed."`
	Events   []string `yaml:"events" doc:"The event kinds to send: exact (user.created), a family (user.*), or * for every event. Empty: user.created, user.disabled, user.enabled, user.deleted, group.member_added, group.member_removed, credential.added, credential.removed, invitation.used, login.new_device and access.denied (at most one a minute per person and host)."`
	Secret   string   `yaml:"secret" secret:"true" doc:"The signing secret as Standard Webhooks write it: whsec_ and 24 to 64 random bytes in base64 (echo whsec_$(head -c 32 /dev/urandom | base64)); or secret_file: PATH. Required with format standard."`
	Format   string   `yaml:"format" doc:"standard (the default): a JSON event signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256); or slack: a {\"text\": …} body that a Slack, Mattermost or Discord (/slack) incoming webhook shows as a message."`
	RetryFor Duration `yaml:"retry_for" doc:"How long a failed delivery is tried again, with growing pauses (5s, 1m, 5m, 30m, 2h, then every 5h), before it is given up and marked failed in the delivery log. Empty: 24h."`
}

// DefaultWebhookEvents are the events a webhook without events gets.
var DefaultWebhookEvents = []string{"user.created", "user.disabled", "user.enabled", "user.deleted", "group.member_added", "group.member_removed",
	"credential.added", "credential.removed", "invitation.used", "login.new_device", "access.denied"}

// WebhookEventKinds are the event kinds Gatehouse records, which a webhook's events
// may name (TestWebhookEventKindsAreRecorded checks each is written somewhere).
var WebhookEventKinds = []string{
	"user.created", "user.disabled", "user.enabled", "user.deleted", "user.email_set", "user.name_set", "user.password_set",
	"user.password_changed", "user.profile_changed", "user.signin_link_created", "user.signin_link_used",
	"group.created", "group.deleted", "group.member_added", "group.member_removed",
	"credential.added", "credential.removed", "credential.renamed", "mfa.reset",
	"login.succeeded", "login.failed", "login.throttled", "login.new_device", "login.second_factor_failed",
	"session.revoked", "access.denied", "app_password.created", "app_password.revoked",
	"token.created", "token.revoked", "oidc.consent_given", "oidc.grant_revoked", "oidc.grants_revoked", "setup.completed",
	"invitation.created", "invitation.revoked", "invitation.used",
	"user.password_reset_requested", "user.password_reset_link_used", "user.email_confirmed",
}

// DefaultWebhookRetry is how long a failing delivery is retried when retry_for is empty.
const DefaultWebhookRetry = 24 * time.Hour

// Retry is how long a delivery to w is retried.
func (w Webhook) Retry() time.Duration {
	if w.RetryFor == 0 {
		return DefaultWebhookRetry
	}
	return w.RetryFor.D()
}

// Wants says whether w is sent events of kind.
func (w Webhook) Wants(kind string) bool {
	events := w.Events
	if len(events) == 0 {
		events = DefaultWebhookEvents
	}
	for _, e := range events {
		family, ok := strings.CutSuffix(e, "*")
		if e == kind || ok && strings.HasPrefix(kind, family) {
			return true
		}
	}
	return false
}

// SigningKey is the key w signs with: its secret without whsec_, base64-decoded.
func (w Webhook) SigningKey() []byte {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(w.Secret, "whsec_")) // validated
	return key
}

// WebhookByName returns the webhook called name.
func (c *Config) WebhookByName(name string) (Webhook, bool) {
	return find(c.Webhooks, func(w Webhook) bool { return w.Name == name })
}

// validateWebhooks checks the webhooks, reporting each problem through bad.
func (c *Config) validateWebhooks(bad func(key, format string, args ...any)) {
	names := map[string]bool{}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		checkName(bad, key+".name", w.Name, names, 64, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", `letters, digits, "-" or "_" (for example audit-archive)`)
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
			bad(key+".url", "%q is not an absolute http:// or https:// URL without credentials (for example https://hooks.example.com/gatehouse)", w.URL)
		}
		for j, e := range w.Events {
			family, isFamily := strings.CutSuffix(e, ".*")
			switch {
			case e == "*":
			case isFamily && slices.ContainsFunc(WebhookEventKinds, func(k string) bool { return strings.HasPrefix(k, family+".") }):
			case slices.Contains(WebhookEventKinds, e):
			default:
				hint := ""
				if near := Nearest(e, WebhookEventKinds); near != "" {
					hint = fmt.Sprintf(" (did you mean %q?)", near)
				}
				bad(fmt.Sprintf("%s.events[%d]", key, j), "%q is not an event kind Gatehouse records%s; write one of %s, a family such as user.*, or *",
					e, hint, strings.Join(DefaultWebhookEvents, ", "))
			}
		}
		switch w.Format {
		case "", "standard":
			if w.Secret == "" {
				bad(key+".secret", "a standard webhook is signed: give a secret (or secret_file) written whsec_ and base64, made with: echo whsec_$(head -c 32 /dev/urandom | base64)")
			}
		case "slack":
		default:
			bad(key+".format", "%q is neither standard nor slack", w.Format)
		}
		if w.Secret != "" {
			raw, ok := strings.CutPrefix(w.Secret, "whsec_")
			key2, err := base64.StdEncoding.DecodeString(raw)
			if !ok || err != nil || len(key2) < 24 || len(key2) > 64 {
				bad(key+".secret", "is not whsec_ followed by 24 to 64 bytes in base64; make one with: echo whsec_$(head -c 32 /dev/urandom | base64)")
			}
		}
		if d := w.RetryFor.D(); w.RetryFor != 0 && (d < time.Minute || d > 7*24*time.Hour) {
			bad(key+".retry_for", "%s is outside 1m to 7d", w.RetryFor)
		}
	}
}
