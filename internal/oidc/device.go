package oidc

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/mfa"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The device authorization grant (RFC 8628): a CLI shows a short code, its user types
// it at /device in a browser where they are signed in, and the CLI's polling turns
// into tokens once they approve.

const (
	deviceTTL       = 10 * time.Minute
	devicePoll      = 5 * time.Second
	userCodeLetters = "BCDFGHJKLMNPQRSTVWXZ" // no vowels (no words), no look-alikes
)

// newUserCode returns a code like "WDJB-MJHT": 8 letters of 20, about 34 bits,
// enough for a code that lives 10 minutes and whose guesses are throttled by login.
func newUserCode() string { return mfa.HumanCode(userCodeLetters, 4, 4) }

// normalUserCode accepts what people type: any case, with or without the dash or spaces.
func normalUserCode(s string) string {
	var sb strings.Builder
	for _, r := range strings.ToUpper(s) {
		if strings.ContainsRune(userCodeLetters, r) {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

func (p *Provider) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	c, ok := p.backChannel(w, r, true)
	if !ok {
		return
	}
	if !c.HasGrant("device_code") {
		p.writeError(w, badRequest("unauthorized_client", "this client may not use the device_code grant (see its grant_types)"))
		return
	}
	scopes := grantedScopes(c, r.PostForm.Get("scope"))
	device, deviceHash := newToken()
	_, family := newToken()
	userCode := newUserCode()
	now := time.Now()
	scope := strings.Join(scopes, " ")
	err := p.Store.AddOIDCToken(r.Context(), store.OIDCToken{Hash: deviceHash, Kind: "device", ClientID: c.ID,
		Family: family, Scope: scope, Data: grantData{}.encode(), CreatedAt: now, ExpiresAt: now.Add(deviceTTL)})
	if err == nil {
		err = p.Store.AddOIDCToken(r.Context(), store.OIDCToken{Hash: hashToken(normalUserCode(userCode)), Kind: "user_code",
			ClientID: c.ID, Family: family, Scope: scope, Data: grantData{Device: deviceHash}.encode(), CreatedAt: now, ExpiresAt: now.Add(deviceTTL)})
	}
	if err != nil {
		p.serverError(w, err)
		return
	}
	verify := p.issuer() + PathDevice
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code": device, "user_code": userCode, "verification_uri": verify,
		"verification_uri_complete": verify + "?user_code=" + url.QueryEscape(userCode),
		"expires_in":                int(deviceTTL.Seconds()), "interval": int(devicePoll.Seconds()),
	})
}

// devicePage asks the signed-in user for the code their device shows.
func (p *Provider) devicePage(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("user_code")
	if p.Pages.Current(r) == nil {
		back := PathDevice
		if code != "" {
			back += "?user_code=" + url.QueryEscape(code)
		}
		http.Redirect(w, r, p.Pages.LoginURL(back), http.StatusFound)
		return
	}
	p.Pages.Device(w, r, DeviceView{UserCode: clip(code)})
}

// pendingDevice finds the undecided, unexpired device authorization a user code names.
func (p *Provider) pendingDevice(r *http.Request, userCode string) (store.OIDCToken, error) {
	uc, err := p.Store.OIDCToken(r.Context(), hashToken(normalUserCode(userCode)))
	if err == nil && (uc.Kind != "user_code" || time.Now().After(uc.ExpiresAt)) {
		err = store.ErrNotFound
	}
	if err != nil {
		return uc, err
	}
	dev, err := p.Store.OIDCToken(r.Context(), decodeGrant(uc.Data).Device)
	if err == nil && (time.Now().After(dev.ExpiresAt) || decodeGrant(dev.Data).Decision != "") {
		err = store.ErrNotFound
	}
	return dev, err
}

// deviceDecide takes a typed code (and shows what it is for), or the decision on it.
func (p *Provider) deviceDecide(w http.ResponseWriter, r *http.Request) {
	if !p.Pages.CheckForm(w, r) {
		return
	}
	user := p.Pages.Current(r)
	if user == nil {
		http.Redirect(w, r, p.Pages.LoginURL(PathDevice), http.StatusSeeOther)
		return
	}
	code := r.PostFormValue("user_code")
	limits := authn.DeviceCodeLimits(authn.Network(p.Pages.ClientAddress(r)), user.UserID)
	if wait, err := p.Regulator.Wait(r.Context(), limits...); err != nil || wait > 0 {
		if err != nil {
			p.Pages.Message(w, r, http.StatusServiceUnavailable, "Unavailable", "Gatehouse cannot reach its database right now. Try again in a moment.")
			return
		}
		p.Pages.Device(w, r, DeviceView{Status: http.StatusTooManyRequests, Error: fmt.Sprintf("Too many wrong codes from your address or your account. Try again in %d minutes.", int(wait.Minutes())+1)})
		return
	}
	dev, err := p.pendingDevice(r, code)
	if errors.Is(err, store.ErrNotFound) {
		if err := p.Regulator.Fail(r.Context(), limits...); err != nil {
			p.Pages.Message(w, r, http.StatusServiceUnavailable, "Unavailable", "Gatehouse cannot reach its database right now. Try again in a moment.")
			return
		}
		p.Pages.Device(w, r, DeviceView{Error: "That code is unknown, expired or used already. Check the code on your device, or start again there."})
		return
	}
	if err != nil {
		p.Pages.Message(w, r, http.StatusServiceUnavailable, "Unavailable", "Gatehouse cannot reach its database right now. Try again in a moment.")
		return
	}
	c, ok := p.cfg().OIDC.ClientByID(dev.ClientID)
	if !ok {
		p.Pages.Device(w, r, DeviceView{Error: "The app that asked for this code is no longer configured."})
		return
	}
	if !p.allowed(c, user.Groups) {
		p.Pages.Message(w, r, http.StatusForbidden, "Not allowed",
			"Your account ("+user.Username+") may not use "+c.DisplayName()+". If you should, ask an admin to add you to one of its groups: "+strings.Join(c.Groups, ", ")+".")
		return
	}
	if c.TwoFactor && !user.TwoFactor {
		http.Redirect(w, r, p.Pages.StepUpURL(PathDevice+"?user_code="+url.QueryEscape(code)), http.StatusSeeOther)
		return
	}
	decision := r.PostFormValue("decision")
	if decision != "approve" && decision != "deny" {
		p.Pages.Device(w, r, DeviceView{UserCode: code, Client: c.DisplayName(), Scopes: strings.Fields(dev.Scope)})
		return
	}
	d := decodeGrant(dev.Data)
	d.Decision = "denied"
	if decision == "approve" {
		d.Decision = "approved"
		d.AuthTime = user.AuthenticatedAt.Unix()
		d.AMR = amrOf(user)
	}
	if err := p.Store.DecideOIDCToken(r.Context(), dev.Hash, user.UserID, d.encode()); errors.Is(err, store.ErrNotFound) {
		p.Pages.Device(w, r, DeviceView{Error: "That code was answered already."})
		return
	} else if err != nil {
		p.Pages.Message(w, r, http.StatusServiceUnavailable, "Unavailable", "Gatehouse cannot reach its database right now. Try again in a moment.")
		return
	}
	p.Audit(store.Event{Kind: "oidc.device_" + d.Decision, Actor: user.Username, Target: c.ID})
	if decision == "approve" {
		p.Pages.Message(w, r, http.StatusOK, "Device signed in", c.DisplayName()+" on your device is signed in as "+user.Username+". You can close this page.")
		return
	}
	p.Pages.Message(w, r, http.StatusOK, "Device refused", "The device was not signed in. You can close this page.")
}

// deviceToken answers a device's poll: pending, slow down, denied, expired, or tokens
// (once: the device code is spent by the answer that carries them).
func (p *Provider) deviceToken(r *http.Request, c *config.Client) (map[string]any, error) {
	ctx := r.Context()
	t, err := p.Store.OIDCToken(ctx, hashToken(r.PostForm.Get("device_code")))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (t.Kind != "device" || t.ClientID != c.ID)) {
		return nil, badRequest("invalid_grant", "the device code is unknown or was issued to another client")
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if now.After(t.ExpiresAt) || !t.UsedAt.IsZero() {
		return nil, badRequest("expired_token", "the device code expired; start again")
	}
	d := decodeGrant(t.Data)
	switch d.Decision {
	case "denied":
		if _, err := p.Store.RevokeOIDCFamily(ctx, t.Family); err != nil {
			return nil, err
		}
		return nil, badRequest("access_denied", "the user refused")
	case "approved":
		fresh, err := p.Store.UseOIDCToken(ctx, t.Hash, now)
		if err != nil {
			return nil, err
		}
		if !fresh {
			return nil, badRequest("expired_token", "the device code was used already")
		}
		return p.issue(ctx, c, t.UserID, strings.Fields(t.Scope), t.Family, d, true)
	}
	// No slow_down: recording each poll would be a write racing the user's answer, and
	// a poll costs one indexed read.
	return nil, badRequest("authorization_pending", "the user has not answered yet")
}
