package api

import (
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
)

// Invitation is an invitation as the API shows it: its code and link only in the
// answer to its creation.
type Invitation struct {
	ID        string    `json:"id"`
	Groups    []string  `json:"groups"`
	MaxUses   int       `json:"max_uses"`
	Uses      int       `json:"uses"`
	Email     string    `json:"email,omitempty"`
	Domain    string    `json:"domain,omitempty"`
	Note      string    `json:"note,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Code      string    `json:"code,omitempty"`
	URL       string    `json:"url,omitempty"`
}

func showInvitation(v identity.InvitationView) Invitation {
	return Invitation{ID: v.ID, Groups: nonNil(v.Groups), MaxUses: v.MaxUses, Uses: v.Uses, Email: v.Email, Domain: v.Domain, Note: v.Note,
		CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt, ExpiresAt: v.ExpiresAt}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NewInvitation is the body of an invitation's creation.
type NewInvitation struct {
	Groups        []string `json:"groups"`
	ExpiresInDays int      `json:"expires_in_days"` // 0: 7
	MaxUses       int      `json:"max_uses"`        // 0: 1
	Email         string   `json:"email"`
	Domain        string   `json:"domain"`
	Note          string   `json:"note"`
}

func (h *Handler) listInvitations(w http.ResponseWriter, r *http.Request, _ caller) {
	all, err := h.Directory.Invitations(r.Context())
	listed(h, w, all, err, showInvitation)
}

func (h *Handler) createInvitation(w http.ResponseWriter, r *http.Request, c caller) {
	var in NewInvitation
	err := decode(w, r, &in)
	if err == nil && (in.ExpiresInDays < 0 || in.ExpiresInDays > 90) {
		err = invalid{"expires_in_days", "give 1 to 90 days, or leave it out for 7"}
	}
	if err != nil {
		h.fail(w, firstInvalid(err))
		return
	}
	code, inv, err := h.Directory.CreateInvitation(r.Context(), c.actor(), identity.NewInvitation{Groups: in.Groups,
		Lifetime: time.Duration(in.ExpiresInDays) * 24 * time.Hour, MaxUses: in.MaxUses, Email: in.Email, Domain: in.Domain, Note: in.Note})
	if err != nil {
		h.fail(w, err)
		return
	}
	shown := showInvitation(identity.InvitationView{Invitation: inv, Groups: slices.Compact(slices.Sorted(slices.Values(in.Groups)))})
	shown.Code, shown.URL = code, h.PublicURL()+identity.InvitationPath+"?code="+code
	w.Header().Set("Location", "/api/v1/invitations/"+inv.ID)
	writeJSON(w, http.StatusCreated, shown)
}

func (h *Handler) revokeInvitation(w http.ResponseWriter, r *http.Request, c caller) {
	h.done(w, h.Directory.RevokeInvitation(r.Context(), c.actor(), r.PathValue("id")))
}

// linkAccount is an admin's pre-link: the person's account at a login provider (by
// the subject the provider names them by) signs in to theirs from its first sign-in.
// It is removed like any credential, by the id the credentials list shows.
func (h *Handler) linkAccount(w http.ResponseWriter, r *http.Request, c caller) {
	provider, subject := r.PathValue("provider"), r.PathValue("subject")
	if !h.Provider(provider) {
		h.fail(w, invalid{"provider", "no login provider " + provider + " in the config (login_providers)"})
		return
	}
	u, err := h.Directory.User(r.Context(), r.PathValue("username"))
	if err == nil {
		err = h.Directory.LinkUpstream(r.Context(), c.actor(), u.ID, identity.UpstreamClaims{Provider: provider, Subject: subject})
	}
	h.done(w, err)
}
