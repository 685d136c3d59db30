package config

import (
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
)

// LoginProvider is an upstream identity provider people may sign in with.
type LoginProvider struct {
	ID             string   `yaml:"id" doc:"Names the provider in URLs and in linked identities: lower-case letters, digits and \"-\". Its redirect URI, to register at the provider, is server.public_url + /login/provider/ID/callback."`
	Type           string   `yaml:"type" doc:"oidc: any OpenID Connect provider, found by discovery from its issuer; google: Google's OpenID Connect, with its hd claim checked against allowed_domains; github: GitHub's OAuth app flow (the primary verified address, allowed_orgs); facebook: Facebook Login, by its Graph profile (its addresses are never taken as verified)."`
	Name           string   `yaml:"name" doc:"The button's text: \"Sign in with NAME\". Empty: the id."`
	Issuer         string   `yaml:"issuer" doc:"type oidc: the issuer URL; its /.well-known/openid-configuration is read (and read again hourly). type google: https://accounts.google.com unless set."`
	AuthURL        string   `yaml:"auth_url" doc:"types github and facebook: the authorization page, for GitHub Enterprise (https://github.example.com/login/oauth/authorize). Empty: the public service's."`
	TokenURL       string   `yaml:"token_url" doc:"types github and facebook: the token endpoint. Empty: the public service's."`
	APIURL         string   `yaml:"api_url" doc:"types github and facebook: the API the profile is read from (https://github.example.com/api/v3). Empty: the public service's."`
	AllowedOrgs    []string `yaml:"allowed_orgs" doc:"type github: only members of one of these organizations may sign in with it (read with the read:org scope)."`
	ClientID       string   `yaml:"client_id" doc:"The client id the provider gave Gatehouse."`
	ClientSecret   string   `yaml:"client_secret" secret:"true" doc:"Its client secret, or client_secret_file: PATH."`
	Scopes         []string `yaml:"scopes" doc:"Scopes to ask for. Empty: openid, profile, email."`
	AllowedDomains []string `yaml:"allowed_domains" doc:"When set, only people whose email the provider says is verified, at one of these domains, may sign in with it (checked on the answer, never only asked for)."`
	LinkByEmail    bool     `yaml:"link_by_email" doc:"Sign someone in to the account whose confirmed email is the one the provider says is verified, linking the two, when nothing is linked yet. Off: a provider's account is linked only by its owner signed in to Gatehouse (the account page), by an admin, or by an invitation. Turn it on only for a provider that verifies addresses and that nobody else controls."`
	EnforcesMFA    bool     `yaml:"enforces_mfa" doc:"The provider asks for a second factor: a sign-in whose amr claim names one (mfa, otp, hwk, swk, sms) counts as two factors for rules with two_factor. Off: one factor."`
}

// Button is the provider's sign-in button text.
func (p LoginProvider) Button() string {
	if p.Name != "" {
		return "Sign in with " + p.Name
	}
	return "Sign in with " + p.ID
}

// ScopeList is what to ask the provider for.
func (p LoginProvider) ScopeList() []string {
	switch {
	case len(p.Scopes) > 0:
		return p.Scopes
	case p.Type == "github" && len(p.AllowedOrgs) > 0:
		return []string{"read:user", "user:email", "read:org"}
	case p.Type == "github":
		return []string{"read:user", "user:email"}
	case p.Type == "facebook":
		return []string{"public_profile", "email"}
	}
	return []string{"openid", "profile", "email"}
}

// GoogleIssuer is Google's OpenID Connect issuer.
const GoogleIssuer = "https://accounts.google.com"

// IssuerURL is the OpenID Connect issuer of an oidc or google provider.
func (p LoginProvider) IssuerURL() string {
	if p.Type == "google" && p.Issuer == "" {
		return GoogleIssuer
	}
	return p.Issuer
}

// ProviderByID returns the login provider called id.
func (c *Config) ProviderByID(id string) (LoginProvider, bool) {
	return find(c.LoginProviders, func(p LoginProvider) bool { return p.ID == id })
}

// find returns the first item that matches.
func find[T any](items []T, match func(T) bool) (T, bool) {
	if i := slices.IndexFunc(items, match); i >= 0 {
		return items[i], true
	}
	var none T
	return none, false
}

// validateProviders checks the login providers, reporting each problem through bad.
func (c *Config) validateProviders(bad func(key, format string, args ...any)) {
	seen := map[string]bool{}
	for i, p := range c.LoginProviders {
		key := fmt.Sprintf("login_providers[%d]", i)
		checkName(bad, key+".id", p.ID, seen, 32, "abcdefghijklmnopqrstuvwxyz0123456789-", `lower-case letters, digits or "-" (for example google)`)
		switch p.Type {
		case "oidc", "google":
			if p.Issuer != "" || p.Type == "oidc" {
				checkProviderURL(bad, key+".issuer", p.Issuer)
			}
		case "github", "facebook":
			for k, v := range map[string]string{"auth_url": p.AuthURL, "token_url": p.TokenURL, "api_url": p.APIURL} {
				if v != "" {
					checkProviderURL(bad, key+"."+k, v)
				}
			}
		default:
			bad(key+".type", "%q is not a provider type Gatehouse knows: use oidc, google, github or facebook", p.Type)
		}
		if p.Type == "facebook" && p.LinkByEmail {
			bad(key+".link_by_email", "Facebook does not say whether an address is verified, so its addresses never link accounts: remove link_by_email")
		}
		if len(p.AllowedOrgs) > 0 && p.Type != "github" {
			bad(key+".allowed_orgs", "only a github provider has organizations")
		}
		if p.ClientID == "" {
			bad(key+".client_id", "give the client id the provider gave Gatehouse")
		}
		if p.ClientSecret == "" {
			bad(key+".client_secret", "give the client secret (or client_secret_file) the provider gave Gatehouse")
		}
		if len(p.Scopes) > 0 && (p.Type == "oidc" || p.Type == "google") && !slices.Contains(p.Scopes, "openid") {
			bad(key+".scopes", "an OpenID Connect sign-in asks for openid")
		}
		for j, d := range p.AllowedDomains {
			if err := CheckDomain(strings.ToLower(d)); err != nil || !strings.Contains(d, ".") {
				bad(fmt.Sprintf("%s.allowed_domains[%d]", key, j), "%q is not a domain such as example.com", d)
			}
		}
	}
}

// checkProviderURL reports a provider URL that is not https (or http on localhost).
func checkProviderURL(bad func(key, format string, args ...any), key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "":
		bad(key, "%q is not a URL such as https://accounts.example.com", raw)
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		bad(key, "%q: a provider is reached over https (http only on localhost)", raw)
	}
}

func loopbackHost(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }

// SMTP is the mail server Gatehouse sends through.
type SMTP struct {
	Host     string `yaml:"host" doc:"The mail server's host name. Empty: no mail."`
	Port     int    `yaml:"port" doc:"Its port: 587 (submission with STARTTLS) unless set; 465 is implicit TLS."`
	Username string `yaml:"username" doc:"The account to sign in to it with (AUTH PLAIN, over TLS only). Empty: no sign-in."`
	Password string `yaml:"password" secret:"true" doc:"Its password, or password_file: PATH."`
	From     string `yaml:"from" doc:"The sender, such as \"Gatehouse <auth@example.com>\"."`
	StartTLS bool   `yaml:"starttls" doc:"Ask for STARTTLS, and refuse to send when the server does not offer it. Off only for a relay on this machine (or a test server)."`
}

// PortOr is the port to connect to.
func (s SMTP) PortOr() int {
	if s.Port == 0 {
		return 587
	}
	return s.Port
}

// StartTLSOn says whether STARTTLS is required.
func (s SMTP) StartTLSOn() bool { return s.StartTLS }

func (s SMTP) validate(bad func(key, format string, args ...any)) {
	if s.Host == "" {
		return
	}
	if s.Port < 0 || s.Port > 65535 {
		bad("smtp.port", "%d is not a port", s.Port)
	}
	if a, err := mail.ParseAddress(s.From); err != nil || !strings.Contains(a.Address, "@") {
		bad("smtp.from", "%q is not a sender address such as \"Gatehouse <auth@example.com>\"", s.From)
	}
	if s.Username != "" && !s.StartTLSOn() && s.PortOr() != 465 && !loopbackHost(s.Host) {
		bad("smtp.starttls", "off with a username would send the password in the clear to %s: keep starttls on, or use port 465", s.Host)
	}
}

// SignUp says whether people may make their own account without an invitation.
type SignUp struct {
	Open   bool     `yaml:"open" doc:"Let anyone make an account on the invitation page without a code, or by signing in with a login provider no account is linked to yet. Off: joining takes an invitation."`
	Groups []string `yaml:"groups" doc:"The groups such an account is put in; with open, at least one."`
}

func (s SignUp) validate(bad func(key, format string, args ...any)) {
	if s.Open && len(s.Groups) == 0 {
		bad("signup.groups", "with open sign-up, name the groups new people get (for example [Friends]), or leave signup.open off")
	}
}

// checkName reports a name in a list of the config that is empty, longer than max,
// holds a character outside alphabet (said as allowed), or was used before (seen).
func checkName(bad func(key, format string, args ...any), key, name string, seen map[string]bool, max int, alphabet, allowed string) {
	switch {
	case name == "" || len(name) > max || strings.Trim(name, alphabet) != "":
		bad(key, "%q: give 1 to %d %s", name, max, allowed)
	case seen[name]:
		bad(key, "%q is used twice; give each its own", name)
	}
	seen[name] = true
}
