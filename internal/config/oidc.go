package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The OpenID Connect vocabulary a client may use.
var (
	// OIDCScopes are the scopes Gatehouse supports.
	OIDCScopes = []string{"openid", "profile", "email", "groups", "offline_access"}
	// OIDCGrantTypes are the grants a client may be given, by their short names.
	OIDCGrantTypes = []string{"authorization_code", "refresh_token", "client_credentials", "device_code"}
)

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,100}$`)

// Public reports whether the client is a public one (no secret, PKCE required).
func (c *Client) Public() bool { return c.Type == "public" }

// AllowedScopes returns the scopes the client may ask for.
func (c *Client) AllowedScopes() []string {
	if len(c.Scopes) == 0 {
		return OIDCScopes
	}
	return c.Scopes
}

// Grants returns the grant types the client may use.
func (c *Client) Grants() []string {
	if len(c.GrantTypes) == 0 {
		return []string{"authorization_code", "refresh_token"}
	}
	return c.GrantTypes
}

// HasGrant reports whether the client may use a grant type (short name).
func (c *Client) HasGrant(g string) bool { return slices.Contains(c.Grants(), g) }

// DisplayName is what people see for the client.
func (c *Client) DisplayName() string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// Lifetimes returns the client's access, ID and refresh token lifetimes, defaults filled in.
func (c *Client) Lifetimes() (access, id, refresh time.Duration) {
	access, id, refresh = c.AccessTokenLifetime.D(), c.IDTokenLifetime.D(), c.RefreshTokenLifetime.D()
	if access == 0 {
		access = time.Hour
	}
	if id == 0 {
		id = time.Hour
	}
	if refresh == 0 {
		refresh = 30 * 24 * time.Hour
	}
	return access, id, refresh
}

// ClientByID finds a configured client by exact id.
func (o *OIDC) ClientByID(id string) (*Client, bool) {
	for i := range o.Clients {
		if o.Clients[i].ID == id {
			return &o.Clients[i], true
		}
	}
	return nil, false
}

func (o *OIDC) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if o.SigningAlgorithm != "RS256" && o.SigningAlgorithm != "ES256" {
		bad("oidc.signing_algorithm", "%q is not RS256 or ES256", o.SigningAlgorithm)
	}
	if g := o.RefreshReuseGrace.D(); g < 0 || g > 10*time.Minute {
		bad("oidc.refresh_reuse_grace", "%s is outside 0s to 10m", o.RefreshReuseGrace.D())
	}
	if o.KeyRotation.D() < time.Hour {
		bad("oidc.key_rotation", "%s is too short; rotate keys every hour at most (30d suits most)", o.KeyRotation.D())
	}
	seen := map[string]bool{}
	for i := range o.Clients {
		c := &o.Clients[i]
		key := fmt.Sprintf("oidc.clients[%d]", i)
		if !clientIDPattern.MatchString(c.ID) {
			bad(key+".id", "%q is not a client id: use 1 to 100 letters, digits, \".\", \"-\", \"_\" or \"~\"", c.ID)
		}
		if seen[c.ID] {
			bad(key+".id", "client %q is declared twice", c.ID)
		}
		seen[c.ID] = true
		switch c.Type {
		case "", "confidential":
			if c.Secret == "" {
				bad(key+".secret", "a confidential client needs a secret (or secret_file); for a native app or CLI without one, say type: public")
			} else if !strings.HasPrefix(c.Secret, "$argon2id$") && len(c.Secret) < 32 {
				bad(key+".secret", "is %d characters long; use at least 32 random characters, or an argon2id hash from 'gatehouse oidc hash-secret'", len(c.Secret))
			} else if strings.HasPrefix(c.Secret, "$argon2id$") {
				if err := CheckArgon2idParameters(c.Secret); err != nil {
					bad(key+".secret", "%v", err)
				}
			}
		case "public":
			if c.Secret != "" {
				bad(key+".secret", "a public client has no secret (anyone can read it from the app); remove it, or say type: confidential")
			}
			if c.HasGrant("client_credentials") {
				bad(key+".grant_types", "client_credentials needs a confidential client (a secret proves who is asking)")
			}
		default:
			bad(key+".type", "%q is not confidential or public", c.Type)
		}
		signsInPeople := c.HasGrant("authorization_code") || c.HasGrant("device_code")
		if signsInPeople && len(c.Groups) == 0 && !c.AllUsers {
			bad(key, "say which groups may use %q (groups: [...]), or all_users: true for every signed-in user; no app is open to everyone by accident", c.ID)
		}
		if len(c.Groups) > 0 && c.AllUsers {
			bad(key, "say groups: [...] or all_users: true, not both")
		}
		for j, g := range c.Groups {
			if err := CheckGroupName(g); err != nil {
				bad(fmt.Sprintf("%s.groups[%d]", key, j), "%v", err)
			}
		}
		for j, g := range c.GrantTypes {
			if !slices.Contains(OIDCGrantTypes, g) {
				bad(fmt.Sprintf("%s.grant_types[%d]", key, j), "%q is not one of %s", g, strings.Join(OIDCGrantTypes, ", "))
			}
		}
		for j, sc := range c.Scopes {
			if !slices.Contains(OIDCScopes, sc) {
				bad(fmt.Sprintf("%s.scopes[%d]", key, j), "%q is not one of %s", sc, strings.Join(OIDCScopes, ", "))
			}
		}
		needsRedirect := c.HasGrant("authorization_code")
		if needsRedirect && len(c.RedirectURIs) == 0 {
			bad(key+".redirect_uris", "list where %q receives codes (its callback URL, as the app's documentation names it)", c.ID)
		}
		for j, u := range c.RedirectURIs {
			if err := checkRedirectURI(u); err != nil {
				bad(fmt.Sprintf("%s.redirect_uris[%d]", key, j), "%v", err)
			}
		}
		for j, u := range c.PostLogoutRedirectURIs {
			if err := checkRedirectURI(u); err != nil {
				bad(fmt.Sprintf("%s.post_logout_redirect_uris[%d]", key, j), "%v", err)
			}
		}
		if u := c.BackchannelLogoutURI; u != "" {
			if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.Fragment != "" || strings.Contains(u, "#") {
				bad(key+".backchannel_logout_uri", "%q must be an absolute http or https URL without a #fragment (the app's back-channel logout endpoint)", u)
			}
		}
		switch c.Consent {
		case "", "implicit", "explicit":
		default:
			bad(key+".consent", "%q is not implicit or explicit", c.Consent)
		}
		switch c.Subject {
		case "", "id", "username":
		default:
			bad(key+".subject", "%q is not id or username", c.Subject)
		}
		for name, d := range map[string]Duration{"access_token_lifetime": c.AccessTokenLifetime, "id_token_lifetime": c.IDTokenLifetime, "refresh_token_lifetime": c.RefreshTokenLifetime} {
			if d < 0 || (d > 0 && d.D() < time.Minute) {
				bad(key+"."+name, "%s is too short; use a minute or more", d.D())
			}
		}
	}
	return errs
}

// checkRedirectURI accepts an absolute URI without a fragment whose scheme cannot run
// code in the browser.
func checkRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%q is not an absolute URI without a #fragment", raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "file", "vbscript", "blob":
		return fmt.Errorf("%q uses the %s: scheme, which is never a redirect target", raw, u.Scheme)
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	}
	return nil
}

// Bounds on the parameters of an argon2id hash Gatehouse verifies. Every check of a
// hash runs with its own parameters on the shared hasher, so a hash asking for 4 GiB or
// 2^32 passes would take the server down at its first use; these allow every sensible
// setting (Gatehouse makes m=19456,t=2,p=1).
const (
	MinArgon2MemoryKiB = 1024
	MaxArgon2MemoryKiB = 256 * 1024
	MaxArgon2Time      = 16
	MaxArgon2Threads   = 16
)

// CheckArgon2idParameters reports whether a PHC-formatted argon2id hash
// ($argon2id$v=19$m=…,t=…,p=…$salt$key) asks for parameters within the bounds.
func CheckArgon2idParameters(hash string) error {
	parts := strings.Split(hash, "$")
	var m, t, p uint64
	if len(parts) != 6 || parts[2] != "v=19" {
		return errors.New("is not an argon2id hash of the form $argon2id$v=19$m=…,t=…,p=…$salt$key: make one with 'gatehouse oidc hash-secret'")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) != parts[3] {
		return fmt.Errorf("argon2id parameters %q are unreadable: make the hash with 'gatehouse oidc hash-secret'", parts[3])
	}
	if m < MinArgon2MemoryKiB || m > MaxArgon2MemoryKiB || t < 1 || t > MaxArgon2Time || p < 1 || p > MaxArgon2Threads {
		return fmt.Errorf("argon2id parameters %q are outside m=%d..%d (KiB), t=1..%d, p=1..%d: make the hash with 'gatehouse oidc hash-secret'",
			parts[3], MinArgon2MemoryKiB, MaxArgon2MemoryKiB, MaxArgon2Time, MaxArgon2Threads)
	}
	return nil
}
