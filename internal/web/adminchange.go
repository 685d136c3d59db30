package web

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The admin pages' changes. Each form posts to one handler here, which checks the
// CSRF token and that the sender is an admin, asks for a recent sign-in (RecentAuth)
// or the admin's password for the dangerous ones, and calls the one service every
// caller uses (identity.Directory): the page validates nothing of its own and writes
// nothing itself. The answer is the page again, with what was done or why not.

// adminChangeRoutes registers the admin pages' forms.
func (s *Server) adminChangeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/users", s.adminPost(false, s.adminCreateUser))
	for _, c := range []struct {
		action    string
		dangerous bool
		fn        func(*http.Request, *session.Principal, string) (string, error)
	}{
		{"profile", false, s.adminSetProfile},
		{"enable", false, s.adminEnable},
		{"disable", true, s.adminDisable},
		{"groups/add", false, s.adminAddToGroup},
		{"groups/remove", false, s.adminRemoveFromGroup},
		{"credentials/remove", true, s.adminRemoveCredential},
		{"sessions/revoke", false, s.adminRevokeSessions},
		{"grants/revoke", false, s.adminRevokeGrant},
		{"signin-link", true, s.adminSignInLink},
		{"link-account", true, s.adminLinkAccount},
		{"delete", true, s.adminDeleteUser},
	} {
		mux.HandleFunc("POST /admin/users/{username}/"+c.action, s.adminPost(c.dangerous, func(w http.ResponseWriter, r *http.Request, p *session.Principal) {
			username := r.PathValue("username")
			notice, err := c.fn(r, p, username)
			if link, ok := errors.AsType[shownLink](err); ok { // a sign-in link: shown once, on the page
				s.renderAdminUser(w, r, p, username, http.StatusOK, "", "", link.url)
				return
			}
			if errors.Is(err, errUserDeleted) {
				s.renderAdminUsers(w, r, p, notice)
				return
			}
			s.adminAnswer(w, r, p, username, notice, err)
		}))
	}
	mux.HandleFunc("GET /admin/explain", s.adminOnly(s.adminExplain))
	mux.HandleFunc("GET /admin/invitations", s.adminOnly(s.adminInvitations))
	mux.HandleFunc("POST /admin/invitations", s.adminPost(false, s.adminCreateInvitation))
	mux.HandleFunc("POST /admin/invitations/revoke", s.adminPost(false, s.adminRevokeInvitation))
}

// adminPost runs an admin form: CSRF, an admin signed in, and for a dangerous change
// a sign-in within RecentAuth or the admin's current password in the form.
func (s *Server) adminPost(dangerous bool, fn func(http.ResponseWriter, *http.Request, *session.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.parseForm(w, r) {
			return
		}
		s.adminOnly(func(w http.ResponseWriter, r *http.Request, p *session.Principal) {
			if dangerous {
				me, err := s.Store.UserByID(r.Context(), p.UserID)
				if err == nil {
					err = s.reauthenticate(r, p, me)
				}
				if err != nil {
					s.adminAnswer(w, r, p, r.PathValue("username"), "", err)
					return
				}
			}
			fn(w, r, p)
		})(w, r)
	}
}

// adminAnswer shows the person's page again after a change: with notice when it was
// made, with what is wrong when it was refused, or a 503 when Gatehouse failed.
func (s *Server) adminAnswer(w http.ResponseWriter, r *http.Request, p *session.Principal, username, notice string, err error) {
	if err == nil {
		s.renderAdminUser(w, r, p, username, http.StatusOK, notice, "", "")
		return
	}
	msg, status := refusedChange(err)
	if status == 0 {
		s.adminFailed(w, "what the change needed", err)
		return
	}
	if username == "" {
		s.renderAdminUsers(w, r, p, "")
		return
	}
	s.renderAdminUser(w, r, p, username, status, "", msg+" Nothing was changed.", "")
}

// refusedChange says what a person asked for that a service refused, and with which status;
// 0 for an error that is Gatehouse's (a database failure).
func refusedChange(err error) (string, int) {
	var bad userError
	var field *identity.FieldError
	switch {
	case errors.As(err, &bad):
		return bad.msg, http.StatusBadRequest
	case errors.As(err, &field):
		return upper(field.Detail) + ".", http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		return upper(err.Error()) + ".", http.StatusNotFound
	case errors.Is(err, store.ErrConflict), errors.Is(err, identity.ErrLockout), errors.Is(err, identity.ErrLastCredential), errors.Is(err, identity.ErrStale):
		return upper(err.Error()) + ".", http.StatusConflict
	}
	return "", 0
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// errUserDeleted tells the route a person is gone: the list is shown, not their page.
var errUserDeleted = errors.New("deleted")

// shownLink carries a new sign-in link to the page that shows it once.
type shownLink struct{ url string }

func (shownLink) Error() string { return "a sign-in link to show" }

func (s *Server) adminCreateUser(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	nu := identity.NewUser{Username: strings.TrimSpace(r.PostFormValue("username")), Email: strings.TrimSpace(r.PostFormValue("email")),
		DisplayName: strings.TrimSpace(r.PostFormValue("display_name")), Password: r.PostFormValue("password"), Groups: r.PostForm["group"]}
	for _, g := range nu.Groups {
		// Making an admin is as dangerous as any change here.
		if err := s.membershipChange(r, p, g); err != nil {
			msg, status := refusedChange(err)
			if status == 0 {
				s.adminFailed(w, "what creating the person needed", err)
				return
			}
			s.renderAdminUsersForm(w, r, p, status, nu, "Putting someone in "+g+", whose members are admins: "+msg)
			return
		}
	}
	u, err := s.Directory.AddUser(r.Context(), p.Username, nu)
	if err != nil {
		msg, status := refusedChange(err)
		if status == 0 {
			s.adminFailed(w, "what creating the person needed", err)
			return
		}
		s.renderAdminUsersForm(w, r, p, status, nu, msg+" Nobody was created.")
		return
	}
	notice := "Created " + u.Username + "."
	if u.PasswordHash == "" {
		notice += " They have no password: make a sign-in link below and pass it on, so they can set one or add a passkey."
	}
	s.renderAdminUser(w, r, p, u.Username, http.StatusOK, notice, "", "")
}

// makesAdmins says whether members of group are admins: it is one of
// access.admin_groups, or below one (a member of a child group is a member of its
// parent).
func (s *Server) makesAdmins(r *http.Request, group string) (bool, error) {
	groups, err := s.Store.ListGroups(r.Context())
	if err != nil {
		return false, err
	}
	i := slices.IndexFunc(groups, func(g store.Group) bool { return g.Name == group })
	if i < 0 {
		return false, nil // the service says it does not exist
	}
	return slices.ContainsFunc(identity.EffectiveGroups([]string{groups[i].ID}, groups), s.isAdminGroup), nil
}

func (s *Server) isAdminGroup(name string) bool {
	return slices.Contains(s.cfg().Access.AdminGroups, name)
}

func (s *Server) adminSetProfile(r *http.Request, p *session.Principal, username string) (string, error) {
	email, name := strings.TrimSpace(r.PostFormValue("email")), strings.TrimSpace(r.PostFormValue("display_name"))
	var since time.Time
	if v, err := strconv.ParseInt(r.PostFormValue("updated"), 10, 64); err == nil {
		since = time.UnixMicro(v) // two admins editing at once: the second is told, not overwritten
	}
	_, err := s.Directory.ChangeUser(r.Context(), p.Username, username, since, identity.UserChange{Email: &email, DisplayName: &name})
	return "Saved the profile.", err
}

func (s *Server) adminEnable(r *http.Request, p *session.Principal, username string) (string, error) {
	return "Enabled " + username + ": they can sign in again.", s.Directory.SetDisabled(r.Context(), p.Username, username, false)
}

func (s *Server) adminDisable(r *http.Request, p *session.Principal, username string) (string, error) {
	return "Disabled " + username + ": their sessions and app grants ended, and they cannot sign in.", s.Directory.SetDisabled(r.Context(), p.Username, username, true)
}

// membershipChange takes a recent sign-in for a group whose members are admins — an
// admin group, or a group below one — as for any dangerous change.
func (s *Server) membershipChange(r *http.Request, p *session.Principal, group string) error {
	admin, err := s.makesAdmins(r, group)
	if err != nil || !admin {
		return err
	}
	me, err := s.Store.UserByID(r.Context(), p.UserID)
	if err != nil {
		return err
	}
	return s.reauthenticate(r, p, me)
}

func (s *Server) adminAddToGroup(r *http.Request, p *session.Principal, username string) (string, error) {
	group := r.PostFormValue("group")
	if err := s.membershipChange(r, p, group); err != nil {
		return "", err
	}
	return "Added " + username + " to " + group + ".", s.Directory.AddMembers(r.Context(), p.Username, group, []string{username})
}

func (s *Server) adminRemoveFromGroup(r *http.Request, p *session.Principal, username string) (string, error) {
	group := r.PostFormValue("group")
	if err := s.membershipChange(r, p, group); err != nil {
		return "", err
	}
	return "Removed " + username + " from " + group + ".", s.Directory.RemoveMembers(r.Context(), p.Username, group, []string{username})
}

// adminRemoveCredential removes one credential by its exact id, never by a pattern,
// and ends the person's sessions (a lost key's sessions must not go on).
func (s *Server) adminRemoveCredential(r *http.Request, p *session.Principal, username string) (string, error) {
	id := r.PostFormValue("id")
	return "Removed the credential " + id + " and ended " + username + "'s sessions.", s.Directory.RemoveCredential(r.Context(), p.Username, username, id, true)
}

// adminRevokeSessions ends one session by its exact id, or all of them ("all").
func (s *Server) adminRevokeSessions(r *http.Request, p *session.Principal, username string) (string, error) {
	ctx, id := r.Context(), r.PostFormValue("id")
	if id == "all" {
		n, err := s.Directory.RevokeUserSessions(ctx, p.Username, username)
		return "Ended all " + strconv.Itoa(n) + " of " + username + "'s sessions.", err
	}
	u, err := s.Store.UserByUsername(ctx, username)
	if err != nil {
		return "", err
	}
	sessions, err := s.Store.ListSessions(ctx, u.ID)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(sessions, func(ss store.Session) bool { return ss.ID == id })
	if i < 0 {
		return "", userError{"That session has ended already."}
	}
	return "Ended the session.", s.Directory.RevokeSession(ctx, p.Username, sessions[i])
}

func (s *Server) adminRevokeGrant(r *http.Request, p *session.Principal, username string) (string, error) {
	return "Revoked the app's grant.", s.Directory.RevokeGrant(r.Context(), p.Username, username, r.PostFormValue("id"))
}

func (s *Server) adminSignInLink(r *http.Request, p *session.Principal, username string) (string, error) {
	token, _, err := s.Directory.IssueSignInLink(r.Context(), p.Username, username)
	if err != nil {
		return "", err
	}
	return "", shownLink{s.cfg().Server.PublicURL + identity.SignInLinkPath + "?token=" + token}
}

// adminLinkAccount is an admin's pre-link of the person's account at a login
// provider, by the subject the provider names them by.
func (s *Server) adminLinkAccount(r *http.Request, p *session.Principal, username string) (string, error) {
	provider, subject := r.PostFormValue("provider"), strings.TrimSpace(r.PostFormValue("subject"))
	if _, ok := s.cfg().ProviderByID(provider); !ok || subject == "" {
		return "", userError{"Choose a login provider and give the subject it names the person by."}
	}
	u, err := s.Store.UserByUsername(r.Context(), username)
	if err != nil {
		return "", err
	}
	if err := s.Directory.LinkUpstream(r.Context(), p.Username, u.ID, identity.UpstreamClaims{Provider: provider, Subject: subject}); errors.Is(err, identity.ErrLinkedElsewhere) {
		return "", userError{"That " + provider + " account is linked to another Gatehouse account already."}
	} else if err != nil {
		return "", err
	}
	return "Linked the " + provider + " account " + subject + ": it signs in to " + username + " from now on.", nil
}

// adminDeleteUser deletes a person once their username is typed again exactly.
func (s *Server) adminDeleteUser(r *http.Request, p *session.Principal, username string) (string, error) {
	if r.PostFormValue("confirm") != username {
		return "", userError{"To delete " + username + ", type their username exactly in the box."}
	}
	if err := s.Directory.DeleteUser(r.Context(), p.Username, username); err != nil {
		return "", err
	}
	return "Deleted " + username + ", with their sessions, credentials and app grants.", errUserDeleted
}

// adminExplainView is the decision explorer's form and answer.
type adminExplainView struct {
	Username, URL string
	TwoFactor     bool
	Report        *forwardauth.Report
}

// adminExplain answers "why was this person refused this URL?" with the report
// `gatehouse access explain` prints: from the same function forward auth decides with.
func (s *Server) adminExplain(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	q := r.URL.Query()
	data := adminExplainView{Username: strings.TrimSpace(q.Get("username")), URL: strings.TrimSpace(q.Get("url")), TwoFactor: q.Get("two_factor") == "1"}
	pg := page{Title: "Why: the decision explorer", User: p, Wide: true}
	status := http.StatusOK
	if data.URL != "" {
		report, err := forwardauth.Explain(r.Context(), s.Policy(), s.Store, data.Username, data.URL, data.TwoFactor)
		switch {
		case errors.Is(err, forwardauth.ErrUnknownUser), errors.Is(err, forwardauth.ErrBadURL):
			pg.Error, status = upper(err.Error())+".", http.StatusBadRequest
		case err != nil:
			s.adminFailed(w, "the person and their groups", err)
			return
		default:
			data.Report = &report
		}
	}
	pg.Extra = data
	s.render(w, status, "admin_explain.html", pg)
}

// adminInvitationsView is the invitations page: the invitations, the groups to invite
// into, and a code just made (shown this once).
type adminInvitationsView struct {
	Invitations []identity.InvitationView
	Groups      []store.Group
	Code, Link  string
}

func (s *Server) adminInvitations(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	s.renderAdminInvitations(w, r, p, http.StatusOK, "", "", "")
}

func (s *Server) renderAdminInvitations(w http.ResponseWriter, r *http.Request, p *session.Principal, status int, notice, errMsg, code string) {
	data := adminInvitationsView{Code: code}
	if code != "" {
		data.Link = s.cfg().Server.PublicURL + identity.InvitationPath + "?code=" + code
	}
	var err error
	if data.Invitations, err = s.Directory.Invitations(r.Context()); err == nil {
		data.Groups, err = s.Store.ListGroups(r.Context())
	}
	if err != nil {
		s.adminFailed(w, "the invitations", err)
		return
	}
	s.render(w, status, "admin_invitations.html", page{Title: "Invitations", User: p, Extra: data, Wide: true, Notice: notice, Error: errMsg,
		CSRF: s.csrfToken(w, r), NeedPassword: s.needPassword(r, p)})
}

// adminCreateInvitation makes an invitation; into a group whose members are admins,
// it takes a recent sign-in like any dangerous change.
func (s *Server) adminCreateInvitation(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	days, _ := strconv.Atoi(r.PostFormValue("days"))
	uses, _ := strconv.Atoi(r.PostFormValue("uses"))
	ni := identity.NewInvitation{Groups: r.PostForm["group"], Lifetime: time.Duration(max(days, 0)) * 24 * time.Hour, MaxUses: max(uses, 0),
		Email: r.PostFormValue("email"), Domain: r.PostFormValue("domain"), Note: strings.TrimSpace(r.PostFormValue("note"))}
	var err error
	for _, g := range ni.Groups {
		if err = s.membershipChange(r, p, g); err != nil {
			break
		}
	}
	code := ""
	if err == nil {
		code, _, err = s.Directory.CreateInvitation(r.Context(), p.Username, ni)
	}
	s.adminInvitationAnswer(w, r, p, "", code, err)
}

func (s *Server) adminRevokeInvitation(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	err := s.Directory.RevokeInvitation(r.Context(), p.Username, r.PostFormValue("id"))
	s.adminInvitationAnswer(w, r, p, "Revoked the invitation: its code no longer works.", "", err)
}

func (s *Server) adminInvitationAnswer(w http.ResponseWriter, r *http.Request, p *session.Principal, notice, code string, err error) {
	if err == nil {
		s.renderAdminInvitations(w, r, p, http.StatusOK, notice, "", code)
		return
	}
	msg, status := refusedChange(err)
	if status == 0 {
		s.adminFailed(w, "what the invitation needed", err)
		return
	}
	s.renderAdminInvitations(w, r, p, status, "", msg+" Nothing was changed.", "")
}
