package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// AppPassword is an app password as the API shows it: never its secret, except in
// the answer to its creation.
type AppPassword struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Hosts      []string   `json:"hosts"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"` // null: never
	LastUsedAt *time.Time `json:"last_used_at"`
	Password   string     `json:"password,omitempty"`
}

func showAppPassword(p store.AppPassword) AppPassword {
	out := AppPassword{ID: p.ID, Name: p.Name, Hosts: strings.Fields(p.Hosts), CreatedAt: p.CreatedAt}
	if !p.ExpiresAt.IsZero() {
		out.ExpiresAt = &p.ExpiresAt
	}
	if !p.LastUsedAt.IsZero() {
		out.LastUsedAt = &p.LastUsedAt
	}
	return out
}

func (h *Handler) listAppPasswords(w http.ResponseWriter, r *http.Request, _ caller) {
	all, err := h.Directory.AppPasswords(r.Context(), r.PathValue("username"))
	listed(h, w, all, err, showAppPassword)
}

// NewAppPassword is the body of an app password's creation; ExpiresInDays 0 means
// it lasts until revoked, as a calendar app on a phone expects.
type NewAppPassword struct {
	Name          string   `json:"name"`
	Hosts         []string `json:"hosts"`
	ExpiresInDays int      `json:"expires_in_days"`
}

func (h *Handler) createAppPassword(w http.ResponseWriter, r *http.Request, c caller) {
	var in NewAppPassword
	err := decode(w, r, &in)
	if err == nil && (in.ExpiresInDays < 0 || in.ExpiresInDays > 3650) {
		err = invalid{"expires_in_days", "give 1 to 3650 days, or leave it out for an app password that lasts until revoked"}
	}
	if err != nil {
		h.fail(w, firstInvalid(err))
		return
	}
	username := r.PathValue("username")
	secret, p, err := h.Directory.CreateAppPassword(r.Context(), c.actor(), username, in.Name, in.Hosts, time.Duration(in.ExpiresInDays)*24*time.Hour)
	if err != nil {
		h.fail(w, err)
		return
	}
	shown := showAppPassword(p)
	shown.Password = secret
	w.Header().Set("Location", "/api/v1/users/"+username+"/app-passwords/"+p.ID)
	writeJSON(w, http.StatusCreated, shown)
}

// deleteAppPassword revokes one app password by its exact id (never by name here:
// the API takes ids, so a name that matches two things cannot remove the wrong one).
func (h *Handler) deleteAppPassword(w http.ResponseWriter, r *http.Request, c caller) {
	username, id := r.PathValue("username"), r.PathValue("id")
	all, err := h.Directory.AppPasswords(r.Context(), username)
	found := false
	for _, p := range all {
		found = found || p.ID == id
	}
	if err == nil && !found {
		err = fmt.Errorf("%s has no app password with the id %q (GET /api/v1/users/%s/app-passwords lists them): %w", username, id, username, store.ErrNotFound)
	}
	if err == nil {
		_, err = h.Directory.RevokeAppPassword(r.Context(), c.actor(), username, id)
	}
	h.done(w, err)
}

// Grant is an app's OpenID Connect grant as the API shows it.
type Grant struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Offline   bool      `json:"offline"`
}

func (h *Handler) listGrants(w http.ResponseWriter, r *http.Request, _ caller) {
	grants, err := h.Directory.Grants(r.Context(), r.PathValue("username"))
	listed(h, w, grants, err, func(g identity.Grant) Grant {
		return Grant{ID: g.ID, ClientID: g.ClientID, Scopes: strings.Fields(g.Scope), CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt, Offline: g.Offline}
	})
}

func (h *Handler) revokeGrant(w http.ResponseWriter, r *http.Request, c caller) {
	h.done(w, h.Directory.RevokeGrant(r.Context(), c.actor(), r.PathValue("username"), r.PathValue("id")))
}

// SignInLink is a one-time sign-in link, in the answer that made it only.
type SignInLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// createSignInLink makes a one-time sign-in link for a person, as `gatehouse user
// link` and the admin page do.
func (h *Handler) createSignInLink(w http.ResponseWriter, r *http.Request, c caller) {
	token, expires, err := h.Directory.IssueSignInLink(r.Context(), c.actor(), r.PathValue("username"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, SignInLink{URL: h.PublicURL() + identity.SignInLinkPath + "?token=" + token, ExpiresAt: expires.UTC()})
}
