package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// User is a user as the API shows one; its ETag versions these fields (memberships
// have endpoints of their own).
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	EmailPending string    `json:"email_pending"`
	DisplayName  string    `json:"display_name"`
	Disabled     bool      `json:"disabled"`
	HasPassword  bool      `json:"has_password"`
	Groups       []string  `json:"groups"` // direct memberships, by name
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// etag is the version of a user's own fields.
func etag(u store.User) string { return `"` + strconv.FormatInt(u.UpdatedAt.UnixMicro(), 36) + `"` }

// ifMatch reads If-Match as the version it names; zero when absent.
func ifMatch(r *http.Request) (time.Time, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.Trim(v, `"`), "W/"), 36, 64)
	if err != nil || !strings.HasPrefix(v, `"`) {
		return time.Time{}, malformed{"If-Match", "send the ETag of a GET of this user, quotes included"}
	}
	return time.UnixMicro(n).UTC(), nil
}

// users shows users with their direct groups, looking the group names up once.
func (h *Handler) users(r *http.Request, us []store.User) ([]User, error) {
	groups, err := h.Store.ListGroups(r.Context())
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, g := range groups {
		names[g.ID] = g.Name
	}
	userIDs := make([]string, len(us))
	for i, u := range us {
		userIDs[i] = u.ID
	}
	memberships, err := h.Store.GroupIDsOfUsers(r.Context(), userIDs)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(us))
	for _, u := range us {
		in := []string{}
		for _, id := range memberships[u.ID] {
			in = append(in, names[id])
		}
		slices.Sort(in)
		out = append(out, User{ID: u.ID, Username: u.Username, Email: u.Email, EmailPending: u.EmailPending, DisplayName: u.DisplayName,
			Disabled: u.Disabled, HasPassword: u.PasswordHash != "", Groups: in, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt})
	}
	return out, nil
}

func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request, _ caller) {
	after, limit, err := pageParams(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	us, err := h.Store.ListUsersAfter(r.Context(), after, limit+1)
	if err != nil {
		h.fail(w, err)
		return
	}
	page := Page[User]{}
	if len(us) > limit {
		us = us[:limit]
		page.NextCursor = cursor(us[len(us)-1].Username)
	}
	if page.Items, err = h.users(r, us); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// writeUser answers with one user and its ETag.
func (h *Handler) writeUser(w http.ResponseWriter, r *http.Request, status int, u store.User) {
	shown, err := h.users(r, []store.User{u})
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("ETag", etag(u))
	if status == http.StatusCreated {
		w.Header().Set("Location", "/api/v1/users/"+url.PathEscape(u.Username))
	}
	writeJSON(w, status, shown[0])
}

func (h *Handler) getUser(w http.ResponseWriter, r *http.Request, _ caller) {
	u, err := h.Store.UserByUsername(r.Context(), r.PathValue("username"))
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeUser(w, r, http.StatusOK, u)
}

// NewUser is the body of a user creation.
type NewUser struct {
	Username    string   `json:"username"`
	Email       string   `json:"email"`
	DisplayName string   `json:"display_name"`
	Groups      []string `json:"groups"`
	Password    string   `json:"password"`
}

func (h *Handler) createUser(w http.ResponseWriter, r *http.Request, c caller) {
	h.idempotent(w, r, c, func(w http.ResponseWriter, r *http.Request) { h.createUserOnce(w, r, c) })
}

func (h *Handler) createUserOnce(w http.ResponseWriter, r *http.Request, c caller) {
	var in NewUser
	err := decode(w, r, &in)
	if err == nil {
		err = errors.Join(check("username", identity.CheckUsername(in.Username)), check("email", identity.CheckEmail(in.Email)),
			check("display_name", identity.CheckDisplayName(in.DisplayName)))
	}
	if err == nil && in.Password != "" {
		err = check("password", identity.CheckPassword(in.Password))
	}
	if err != nil {
		h.fail(w, firstInvalid(err))
		return
	}
	u, err := h.Directory.AddUser(r.Context(), c.actor(), identity.NewUser{Username: in.Username, Email: in.Email,
		DisplayName: in.DisplayName, Password: in.Password, Groups: in.Groups})
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeUser(w, r, http.StatusCreated, u)
}

// firstInvalid keeps the first field error of a joined error, or err itself.
func firstInvalid(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
		return j.Unwrap()[0]
	}
	return err
}

// UserPatch is the body of a user change; absent fields stay as they are.
type UserPatch struct {
	Email       *string `json:"email"`
	DisplayName *string `json:"display_name"`
	Disabled    *bool   `json:"disabled"`
}

func (h *Handler) patchUser(w http.ResponseWriter, r *http.Request, c caller) {
	var in UserPatch
	since, err := ifMatch(r)
	if err == nil {
		err = decode(w, r, &in)
	}
	if err == nil && in.Email != nil {
		err = check("email", identity.CheckEmail(*in.Email))
	}
	if err == nil && in.DisplayName != nil {
		err = check("display_name", identity.CheckDisplayName(*in.DisplayName))
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	u, err := h.Directory.ChangeUser(r.Context(), c.actor(), r.PathValue("username"), since,
		identity.UserChange{Email: in.Email, DisplayName: in.DisplayName, Disabled: in.Disabled})
	if err != nil {
		h.fail(w, err)
		return
	}
	h.writeUser(w, r, http.StatusOK, u)
}

func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, c caller) {
	h.done(w, h.Directory.DeleteUser(r.Context(), c.actor(), r.PathValue("username")))
}

// Group is a group as the API shows one.
type Group struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Parent     string `json:"parent"` // the parent's name, or ""
	FromConfig bool   `json:"from_config"`
}

func (h *Handler) listGroups(w http.ResponseWriter, r *http.Request, _ caller) {
	groups, err := h.Store.ListGroups(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	names := map[string]string{}
	for _, g := range groups {
		names[g.ID] = g.Name
	}
	out := Page[Group]{Items: []Group{}}
	for _, g := range groups {
		out.Items = append(out.Items, Group{ID: g.ID, Name: g.Name, Parent: names[g.ParentID], FromConfig: g.FromConfig})
	}
	slices.SortFunc(out.Items, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, out)
}

// Member is a user in a group: directly, or through a child group (effective).
type Member struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Disabled bool   `json:"disabled"`
	Direct   bool   `json:"direct"`
}

// Members is a group's membership. It is never empty because a read failed: a failure
// is an error answer, so automation can tell "nobody" from "could not read".
type Members struct {
	Group string   `json:"group"`
	Items []Member `json:"items"`
}

func (h *Handler) groupMembers(w http.ResponseWriter, r *http.Request, _ caller) {
	effective := r.URL.Query().Get("effective")
	if effective != "" && effective != "true" && effective != "false" {
		h.fail(w, invalid{"effective", "give true (members through child groups too) or false"})
		return
	}
	ctx := r.Context()
	g, err := h.Store.GroupByName(ctx, r.PathValue("name"))
	if err != nil {
		h.fail(w, err)
		return
	}
	groups := []string{g.ID}
	if effective == "true" {
		all, err := h.Store.ListGroups(ctx)
		if err != nil {
			h.fail(w, err)
			return
		}
		for i := 0; i < len(groups); i++ { // breadth first through the children
			for _, c := range all {
				if c.ParentID == groups[i] && !slices.Contains(groups, c.ID) {
					groups = append(groups, c.ID)
				}
			}
		}
	}
	out := Members{Group: g.Name, Items: []Member{}}
	direct, seen, all := map[string]bool{}, map[string]bool{}, []string{}
	for i, gid := range groups {
		ids, err := h.Store.GroupMemberIDs(ctx, gid)
		if err != nil {
			h.fail(w, err)
			return
		}
		for _, id := range ids {
			if i == 0 {
				direct[id] = true
			}
			if !seen[id] {
				seen[id] = true
				all = append(all, id)
			}
		}
	}
	for chunk := range slices.Chunk(all, 1000) {
		users, err := h.Store.UsersByIDs(ctx, chunk)
		if err != nil {
			h.fail(w, err)
			return
		}
		for _, u := range users {
			out.Items = append(out.Items, Member{ID: u.ID, Username: u.Username, Disabled: u.Disabled, Direct: direct[u.ID]})
		}
	}
	slices.SortFunc(out.Items, func(a, b Member) int { return strings.Compare(a.Username, b.Username) })
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) addMember(w http.ResponseWriter, r *http.Request, c caller) {
	g, u := r.PathValue("name"), r.PathValue("username")
	members, err := h.directMembers(r, g)
	if err == nil && !slices.Contains(members, strings.ToLower(u)) { // PUT: already a member is done
		err = h.Directory.AddMembers(r.Context(), c.actor(), g, []string{u})
	}
	h.done(w, err)
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request, c caller) {
	h.done(w, h.Directory.RemoveMembers(r.Context(), c.actor(), r.PathValue("name"), []string{r.PathValue("username")}))
}

// directMembers lists a group's direct members' usernames, lower-cased.
func (h *Handler) directMembers(r *http.Request, group string) ([]string, error) {
	g, err := h.Store.GroupByName(r.Context(), group)
	if err != nil {
		return nil, err
	}
	ids, err := h.Store.GroupMemberIDs(r.Context(), g.ID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		u, err := h.Store.UserByID(r.Context(), id)
		if err != nil {
			return nil, err
		}
		out = append(out, strings.ToLower(u.Username))
	}
	return out, nil
}

// Session is a sign-in as the API shows one.
type Session struct {
	ID         string    `json:"id"`
	Username   string    `json:"username"`
	AuthMethod string    `json:"auth_method"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	IP         string    `json:"ip"`
	UserAgent  string    `json:"user_agent"`
}

func (h *Handler) listSessions(w http.ResponseWriter, r *http.Request, _ caller) {
	ctx := r.Context()
	userID := ""
	if name := r.URL.Query().Get("user"); name != "" {
		u, err := h.Store.UserByUsername(ctx, name)
		if err != nil {
			h.fail(w, err)
			return
		}
		userID = u.ID
	}
	all, err := h.Store.ListSessions(ctx, userID)
	if err != nil {
		h.fail(w, err)
		return
	}
	names := map[string]string{}
	out := Page[Session]{Items: []Session{}}
	for _, s := range all {
		if _, ok := names[s.UserID]; !ok {
			u, err := h.Store.UserByID(ctx, s.UserID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				h.fail(w, err)
				return
			}
			names[s.UserID] = u.Username
		}
		out.Items = append(out.Items, Session{ID: s.ID, Username: names[s.UserID], AuthMethod: s.AuthMethod, CreatedAt: s.CreatedAt,
			ExpiresAt: s.ExpiresAt, LastSeenAt: s.LastSeenAt, IP: s.IP, UserAgent: s.UserAgent})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request, c caller) {
	s, err := h.Store.SessionByID(r.Context(), r.PathValue("id"))
	if err == nil {
		err = h.Directory.RevokeSession(r.Context(), c.actor(), s)
	}
	h.done(w, err)
}

// Token is an API token as listings show it: never its value.
type Token struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"` // null: never
	LastUsedAt *time.Time `json:"last_used_at"`
	LastUsedIP string     `json:"last_used_ip"`
	// Token is the value, in the answer to its creation only.
	Token string `json:"token,omitempty"`
}

func showToken(t store.APIToken) Token {
	out := Token{ID: t.ID, Name: t.Name, Scopes: strings.Fields(t.Scopes), CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, LastUsedIP: t.LastUsedIP}
	if !t.ExpiresAt.IsZero() {
		out.ExpiresAt = &t.ExpiresAt
	}
	if !t.LastUsedAt.IsZero() {
		out.LastUsedAt = &t.LastUsedAt
	}
	return out
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request, _ caller) {
	all, err := h.Store.ListAPITokens(r.Context())
	listed(h, w, all, err, showToken)
}

// NewToken is the body of a token creation. ExpiresInDays 0 is the default (90);
// a token that never expires needs Never.
type NewToken struct {
	Name          string   `json:"name"`
	Scopes        []string `json:"scopes"`
	ExpiresInDays int      `json:"expires_in_days"`
	Never         bool     `json:"never_expires"`
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, c caller) {
	var in NewToken
	err := decode(w, r, &in)
	if err == nil {
		err = errors.Join(check("name", identity.CheckAPITokenName(in.Name)), check("scopes", identity.CheckAPIScopes(in.Scopes)))
	}
	if err == nil && (in.ExpiresInDays < 0 || in.ExpiresInDays > 3650 || (in.Never && in.ExpiresInDays != 0)) {
		err = invalid{"expires_in_days", "give 1 to 3650 days, or leave it out and set never_expires for a token that never expires"}
	}
	if err != nil {
		h.fail(w, firstInvalid(err))
		return
	}
	lifetime := identity.DefaultAPITokenLifetime
	switch {
	case in.Never:
		lifetime = 0
	case in.ExpiresInDays > 0:
		lifetime = time.Duration(in.ExpiresInDays) * 24 * time.Hour
	}
	value, t, err := h.Directory.CreateAPIToken(r.Context(), c.actor(), c.scopes, in.Name, in.Scopes, lifetime)
	if err != nil {
		h.fail(w, err)
		return
	}
	shown := showToken(t)
	shown.Token = value
	w.Header().Set("Location", "/api/v1/tokens/"+t.ID)
	writeJSON(w, http.StatusCreated, shown)
}

func (h *Handler) deleteToken(w http.ResponseWriter, r *http.Request, c caller) {
	id := r.PathValue("id")
	all, err := h.Store.ListAPITokens(r.Context())
	if err == nil && !slices.ContainsFunc(all, func(t store.APIToken) bool { return t.ID == id }) {
		err = fmt.Errorf("no API token has the id %q: %w", id, store.ErrNotFound)
	}
	if err == nil {
		err = h.Directory.RevokeAPIToken(r.Context(), c.actor(), id)
	}
	h.done(w, err)
}

// Credential is one way a user signs in, as the API shows it.
type Credential struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func (h *Handler) listCredentials(w http.ResponseWriter, r *http.Request, _ caller) {
	creds, err := h.Directory.Credentials(r.Context(), r.PathValue("username"))
	listed(h, w, creds, err, func(c identity.Credential) Credential { return Credential{ID: c.ID, Kind: c.Kind, Detail: c.Detail} })
}

// removeCredential removes one credential by its exact id, ending the user's sessions
// (an admin removing a lost key); the last way to sign in is refused.
func (h *Handler) removeCredential(w http.ResponseWriter, r *http.Request, c caller) {
	h.done(w, h.Directory.RemoveCredential(r.Context(), c.actor(), r.PathValue("username"), r.PathValue("id"), true))
}

// Event is an audit event as the API shows it.
type Event struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Actor  string    `json:"actor"`
	Target string    `json:"target"`
	Detail string    `json:"detail"`
}

func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request, _ caller) {
	q := r.URL.Query()
	eq := store.EventQuery{Kind: q.Get("kind"), Actor: q.Get("actor"), Target: q.Get("target")}
	after, limit, err := pageParams(r)
	if err == nil && after != "" {
		if eq.BeforeID, err = strconv.ParseInt(after, 10, 64); err != nil || eq.BeforeID < 1 {
			err = invalid{"cursor", "pass next_cursor from the previous page as it was"}
		}
	}
	for _, bound := range []struct {
		name string
		to   *time.Time
	}{{"since", &eq.Since}, {"until", &eq.Until}} {
		if v := q.Get(bound.name); v != "" && err == nil {
			if *bound.to, err = time.Parse(time.RFC3339, v); err != nil {
				err = invalid{bound.name, "give a time like 2026-12-01T09:00:00Z (RFC 3339)"}
			}
		}
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	eq.Limit = limit + 1
	events, err := h.Store.FindEvents(r.Context(), eq)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := Page[Event]{Items: []Event{}}
	if len(events) > limit {
		events = events[:limit]
		out.NextCursor = cursor(strconv.FormatInt(events[len(events)-1].ID, 10))
	}
	for _, e := range events {
		out.Items = append(out.Items, Event{ID: e.ID, At: e.At, Kind: e.Kind, Actor: e.Actor, Target: e.Target, Detail: e.Detail})
	}
	writeJSON(w, http.StatusOK, out)
}

// done answers a change that returns nothing: 204, or the error.
func (h *Handler) done(w http.ResponseWriter, err error) {
	if err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
