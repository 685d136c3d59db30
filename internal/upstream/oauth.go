package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
)

// GitHub and Facebook sign people in with OAuth 2.0, not OpenID Connect: there is no
// ID token, so who signed in is read from their API with the access token, over TLS
// from the configured endpoints, and only what the API says is verified counts.

// The public services' endpoints.
const (
	GitHubAuthURL    = "https://github.com/login/oauth/authorize"
	GitHubTokenURL   = "https://github.com/login/oauth/access_token"
	GitHubAPIURL     = "https://api.github.com"
	FacebookAuthURL  = "https://www.facebook.com/v21.0/dialog/oauth"
	FacebookTokenURL = "https://graph.facebook.com/v21.0/oauth/access_token"
	FacebookAPIURL   = "https://graph.facebook.com/v21.0"
)

// ErrNotAllowed is a sign-in the provider's rules (allowed_orgs) refuse.
var ErrNotAllowed = errors.New("not allowed by the provider's rules")

// oauthToken trades a code for an access token at a plain OAuth 2.0 token endpoint.
func (c *Client) oauthToken(ctx context.Context, p config.LoginProvider, endpoint string, form url.Values) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	status, err := c.postForm(ctx, endpoint, form, &tok)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: exchanging the code: %w", p.ID, err)
	case status != http.StatusOK || tok.Error != "" || tok.AccessToken == "":
		return "", fmt.Errorf("%s refused the code (HTTP %d %s %s): check client_id, client_secret and the callback URL", p.ID, status, tok.Error, tok.Description)
	}
	return tok.AccessToken, nil
}

// github reads the person from GitHub's API: their numeric id (a login can be
// renamed and taken by someone else; the id cannot), and the primary address only if
// GitHub says it is verified.
func (c *Client) github(ctx context.Context, p config.LoginProvider, redirectURI, code, verifier string) (Result, error) {
	token, err := c.oauthToken(ctx, p, cmpOr(p.TokenURL, GitHubTokenURL), url.Values{"client_id": {p.ClientID}, "client_secret": {p.ClientSecret},
		"code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}})
	if err != nil {
		return Result{}, err
	}
	api := strings.TrimSuffix(cmpOr(p.APIURL, GitHubAPIURL), "/")
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if status, err := c.getBearer(ctx, api+"/user", token, &user); err != nil || status != http.StatusOK || user.ID == 0 {
		return Result{}, fmt.Errorf("%s: reading the user: HTTP %d %v", p.ID, status, err)
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if status, err := c.getBearer(ctx, api+"/user/emails", token, &emails); err != nil || status != http.StatusOK {
		return Result{}, fmt.Errorf("%s: reading the addresses (is user:email among the scopes?): HTTP %d %v", p.ID, status, err)
	}
	r := Result{UpstreamClaims: identity.UpstreamClaims{Provider: p.ID, Subject: strconv.FormatInt(user.ID, 10), Name: user.Name, PreferredUsername: user.Login}}
	for _, e := range emails {
		if e.Primary {
			r.Email, r.EmailVerified = e.Email, e.Verified
		}
	}
	if len(p.AllowedOrgs) > 0 {
		var orgs []struct {
			Login string `json:"login"`
		}
		if status, err := c.getBearer(ctx, api+"/user/orgs", token, &orgs); err != nil || status != http.StatusOK {
			return Result{}, fmt.Errorf("%s: reading the organizations (is read:org among the scopes?): HTTP %d %v", p.ID, status, err)
		}
		for _, o := range orgs {
			r.Orgs = append(r.Orgs, o.Login)
		}
		if !anyFold(r.Orgs, p.AllowedOrgs) {
			return r, fmt.Errorf("%w: %s is in none of the organizations %s", ErrNotAllowed, user.Login, strings.Join(p.AllowedOrgs, ", "))
		}
	}
	return r, nil
}

func anyFold(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if strings.EqualFold(h, w) {
				return true
			}
		}
	}
	return false
}

// facebook reads the person's Graph profile: their app-scoped id, name and address.
// Facebook does not say whether an address is verified, so it never counts as one.
func (c *Client) facebook(ctx context.Context, p config.LoginProvider, redirectURI, code string) (Result, error) {
	token, err := c.oauthToken(ctx, p, cmpOr(p.TokenURL, FacebookTokenURL), url.Values{"client_id": {p.ClientID}, "client_secret": {p.ClientSecret},
		"code": {code}, "redirect_uri": {redirectURI}})
	if err != nil {
		return Result{}, err
	}
	var me struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	api := strings.TrimSuffix(cmpOr(p.APIURL, FacebookAPIURL), "/")
	if status, err := c.getBearer(ctx, api+"/me?fields=id,name,email", token, &me); err != nil || status != http.StatusOK || me.ID == "" {
		return Result{}, fmt.Errorf("%s: reading the profile: HTTP %d %v", p.ID, status, err)
	}
	return Result{UpstreamClaims: identity.UpstreamClaims{Provider: p.ID, Subject: me.ID, Name: me.Name, Email: me.Email}}, nil
}
