package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// LoginProvider is an upstream identity provider people may sign in with.
type LoginProvider struct {
	ID             string   `yaml:"id" doc:"Names the provider in URLs and in linked identities: lower-case letters, digits and \"-\". Its redirect URI, to register at the provider, is server.public_url + /login/provider/ID/callback."`
	Type           string   `yaml:"type" doc:"oidc: any OpenID Connect provider, found by discovery from its issuer."`
	Name           string   `yaml:"name" doc:"The button's text: \"Sign in with NAME\". Empty: the id."`
	Issuer         string   `yaml:"issuer" doc:"type oidc: the issuer URL; its /.well-known/openid-configuration is read (and read again hourly)."`
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
	if len(p.Scopes) == 0 {
		return []string{"openid", "profile", "email"}
	}
	return p.Scopes
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
		switch {
		case p.ID == "" || len(p.ID) > 32 || strings.Trim(p.ID, "abcdefghijklmnopqrstuvwxyz0123456789-") != "":
			bad(key+".id", "%q: give 1 to 32 lower-case letters, digits or \"-\" (for example google)", p.ID)
		case seen[p.ID]:
			bad(key+".id", "%q is used twice", p.ID)
		}
		seen[p.ID] = true
		if p.Type != "oidc" {
			bad(key+".type", "%q is not a provider type Gatehouse knows: use oidc", p.Type)
		}
		u, err := url.Parse(p.Issuer)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "":
			bad(key+".issuer", "%q is not an issuer URL such as https://accounts.example.com", p.Issuer)
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			bad(key+".issuer", "%q: an issuer is reached over https (http only on localhost)", p.Issuer)
		}
		if p.ClientID == "" {
			bad(key+".client_id", "give the client id the provider gave Gatehouse")
		}
		if p.ClientSecret == "" {
			bad(key+".client_secret", "give the client secret (or client_secret_file) the provider gave Gatehouse")
		}
		if len(p.Scopes) > 0 && !slices.Contains(p.Scopes, "openid") {
			bad(key+".scopes", "an OpenID Connect sign-in asks for openid")
		}
		for j, d := range p.AllowedDomains {
			if err := CheckDomain(strings.ToLower(d)); err != nil || !strings.Contains(d, ".") {
				bad(fmt.Sprintf("%s.allowed_domains[%d]", key, j), "%q is not a domain such as example.com", d)
			}
		}
	}
}

func loopbackHost(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }
