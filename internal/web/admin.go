package web

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// adminPageSize is how many rows an admin listing shows at once.
const adminPageSize = 50

// adminRoutes registers the admin pages, for members of access.admin_groups: the
// people (with their changes, adminchange.go), the groups, the audit log, the
// decision explorer, the webhook deliveries and a read-only view of what the config
// defines. Nothing here writes: every change calls identity.Directory.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/admin/users", http.StatusFound) })
	mux.HandleFunc("GET /admin/users", s.adminOnly(s.adminUsers))
	mux.HandleFunc("GET /admin/users/{username}", s.adminOnly(s.adminUser))
	mux.HandleFunc("GET /admin/audit", s.adminOnly(s.adminAudit))
	mux.HandleFunc("GET /admin/groups", s.adminOnly(s.adminGroups))
	mux.HandleFunc("GET /admin/groups/{name}", s.adminOnly(s.adminGroup))
	mux.HandleFunc("GET /admin/config", s.adminOnly(s.adminConfig))
	mux.HandleFunc("GET /admin/webhooks", s.adminOnly(s.adminWebhooks))
	s.adminChangeRoutes(mux)
}

// isAdmin says whether p is in one of access.admin_groups.
func (s *Server) isAdmin(p *session.Principal) bool {
	if p == nil {
		return false
	}
	for _, g := range s.cfg().Access.AdminGroups {
		if slices.Contains(p.Groups, g) {
			return true
		}
	}
	return false
}

// adminOnly lets admins through to fn; others sign in first, or are refused.
func (s *Server) adminOnly(fn func(http.ResponseWriter, *http.Request, *session.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.currentOrErr(r)
		switch {
		case err != nil:
			s.unavailable(w, "the admin page", "your session", err)
		case p == nil:
			http.Redirect(w, r, LoginURL("", s.cfg().Server.PublicURL+r.URL.RequestURI()), http.StatusFound)
		case !s.isAdmin(p):
			s.message(w, http.StatusForbidden, "Admins only", "The admin pages are for members of "+strings.Join(s.cfg().Access.AdminGroups, ", ")+".")
		default:
			fn(w, r, p)
		}
	}
}

// adminUserList is what the users page shows.
type adminUserList struct {
	Query, Match string
	Users        []store.User
	Next         string // the link to the next page; "" on the last
	// New is the form for a new person, as sent when it was refused; Groups are
	// the groups to choose from.
	New    identity.NewUser
	Groups []store.Group
}

// adminUsers lists people 50 at a time by username, or finds them: a username exactly
// (letter case aside), or every username starting with what was typed (letter case
// counting, as usernames sort).
func (s *Server) adminUsers(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	s.renderAdminUsers(w, r, p, "")
}

// renderAdminUsers shows the people page, with notice after a change.
func (s *Server) renderAdminUsers(w http.ResponseWriter, r *http.Request, p *session.Principal, notice string) {
	s.renderAdminUsersForm(w, r, p, http.StatusOK, identity.NewUser{}, notice)
}

// renderAdminUsersForm shows the people page with the new-person form as sent and
// what is wrong with it (status above 299), or a notice.
func (s *Server) renderAdminUsersForm(w http.ResponseWriter, r *http.Request, p *session.Principal, status int, nu identity.NewUser, msg string) {
	ctx, q := r.Context(), r.URL.Query()
	data := adminUserList{Query: strings.TrimSpace(q.Get("q")), Match: q.Get("match"), New: nu}
	if data.Match != "exact" {
		data.Match = "prefix"
	}
	var err error
	switch {
	case data.Query == "":
		data.Users, err = s.Store.ListUsersAfter(ctx, q.Get("after"), adminPageSize+1)
	case data.Match == "exact":
		var u store.User
		if u, err = s.Store.UserByUsername(ctx, data.Query); err == nil {
			data.Users = []store.User{u}
		} else if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
	default:
		data.Users, err = s.usersWithPrefix(r, data.Query, q.Get("after"))
	}
	if err == nil {
		data.Groups, err = s.Store.ListGroups(ctx)
	}
	if err != nil {
		s.adminFailed(w, "the users", err)
		return
	}
	if len(data.Users) > adminPageSize {
		data.Users = data.Users[:adminPageSize]
		next := url.Values{"after": {data.Users[adminPageSize-1].Username}}
		if data.Query != "" {
			next.Set("q", data.Query)
			next.Set("match", data.Match)
		}
		data.Next = "/admin/users?" + next.Encode()
	}
	pg := page{Title: "People", User: p, Extra: data, Wide: true, CSRF: s.csrfToken(w, r), NeedPassword: s.needPassword(r, p)}
	if status > 299 {
		pg.Error = msg
	} else {
		pg.Notice = msg
	}
	s.render(w, status, "admin_users.html", pg)
}

// usersWithPrefix is a page of the users whose username starts with prefix, after the
// username after: they follow one another in username order, from the prefix itself.
func (s *Server) usersWithPrefix(r *http.Request, prefix, after string) ([]store.User, error) {
	ctx := r.Context()
	var out []store.User
	if after == "" || after < prefix {
		if u, err := s.Store.UserByUsername(ctx, prefix); err == nil && u.Username == prefix {
			out = append(out, u)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		after = prefix
	}
	batch, err := s.Store.ListUsersAfter(ctx, after, adminPageSize+1)
	if err != nil {
		return nil, err
	}
	for _, u := range batch {
		if !strings.HasPrefix(u.Username, prefix) || len(out) > adminPageSize {
			break
		}
		out = append(out, u)
	}
	return out, nil
}

// adminUserView is what a person's admin page shows.
type adminUserView struct {
	Person      store.User
	Groups      []string
	OtherGroups []string // the groups they could be added to
	Sessions    []store.Session
	Credentials []identity.Credential
	Grants      []identity.Grant
	Events      []store.Event
	Link        string // a sign-in link just made, shown this once
	AdminGroups []string
}

func (s *Server) adminUser(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	s.renderAdminUser(w, r, p, r.PathValue("username"), http.StatusOK, "", "", "")
}

// needPassword says whether a dangerous change needs the admin's password in the
// form: they signed in too long ago, and have a password to give.
func (s *Server) needPassword(r *http.Request, p *session.Principal) bool {
	if time.Since(p.AuthenticatedAt) < RecentAuth {
		return false
	}
	me, err := s.Store.UserByID(r.Context(), p.UserID)
	return err == nil && me.PasswordHash != ""
}

// renderAdminUser shows a person's page with a notice or an error after a change,
// and the sign-in link just made.
func (s *Server) renderAdminUser(w http.ResponseWriter, r *http.Request, p *session.Principal, username string, status int, notice, errMsg, link string) {
	ctx := r.Context()
	u, err := s.Store.UserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		s.render(w, http.StatusNotFound, "message.html", page{Title: "No such person", User: p, Error: cmp.Or(errMsg, "Nobody is called "+strconv.Quote(username)+" here.")})
		return
	}
	data := adminUserView{Person: u, Link: link, AdminGroups: s.cfg().Access.AdminGroups}
	var ids []string
	var groups []store.Group
	if err == nil {
		ids, err = s.Store.UserGroupIDs(ctx, u.ID)
	}
	if err == nil {
		groups, err = s.Store.ListGroups(ctx)
	}
	if err == nil {
		data.Sessions, err = s.Store.ListSessions(ctx, u.ID)
	}
	if err == nil {
		data.Events, err = s.Store.FindEvents(ctx, store.EventQuery{Target: u.Username, Limit: 20})
	}
	if err == nil {
		data.Credentials, err = s.Directory.Credentials(ctx, u.Username)
	}
	if err == nil {
		data.Grants, err = s.Directory.Grants(ctx, u.Username)
	}
	if err != nil {
		s.adminFailed(w, "this person", err)
		return
	}
	for _, g := range groups {
		if slices.Contains(ids, g.ID) {
			data.Groups = append(data.Groups, g.Name)
		} else {
			data.OtherGroups = append(data.OtherGroups, g.Name)
		}
	}
	slices.Sort(data.Groups)
	slices.Sort(data.OtherGroups)
	s.render(w, status, "admin_user.html", page{Title: u.Username, User: p, Extra: data, Wide: true, Notice: notice, Error: errMsg,
		CSRF: s.csrfToken(w, r), NeedPassword: s.needPassword(r, p)})
}

// adminAuditView is what the audit page shows.
type adminAuditView struct {
	Kind, Actor, Target, Host, Since, Until string
	Events                                  []store.Event
	Next                                    string
}

// adminAudit shows the audit log newest first, 50 at a time, filtered by kind, who did
// it, what it was done to, the host it was about (refusals), and a day range (dates in
// UTC, both days included).
func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	q := r.URL.Query()
	data := adminAuditView{Kind: q.Get("kind"), Actor: q.Get("actor"), Target: q.Get("target"), Host: strings.ToLower(strings.TrimSpace(q.Get("host"))),
		Since: q.Get("since"), Until: q.Get("until")}
	query := store.EventQuery{Kind: data.Kind, Actor: data.Actor, Target: data.Target, Host: data.Host, Limit: adminPageSize + 1}
	pg := page{Title: "Audit log", User: p, Wide: true}
	if data.Since != "" {
		if d, err := time.Parse(time.DateOnly, data.Since); err != nil {
			pg.Error = "From: " + strconv.Quote(data.Since) + " is not a date written 2026-12-31."
		} else {
			query.Since = d
		}
	}
	if data.Until != "" {
		if d, err := time.Parse(time.DateOnly, data.Until); err != nil {
			pg.Error = "To: " + strconv.Quote(data.Until) + " is not a date written 2026-12-31."
		} else {
			query.Until = d.AddDate(0, 0, 1)
		}
	}
	if before, err := strconv.ParseInt(q.Get("before"), 10, 64); err == nil && before > 0 {
		query.BeforeID = before
	}
	if pg.Error == "" {
		events, err := s.Store.FindEvents(r.Context(), query)
		if err != nil {
			s.adminFailed(w, "the audit log", err)
			return
		}
		if len(events) > adminPageSize {
			events = events[:adminPageSize]
			next := url.Values{"before": {strconv.FormatInt(events[adminPageSize-1].ID, 10)}}
			for k, v := range map[string]string{"kind": data.Kind, "actor": data.Actor, "target": data.Target, "host": data.Host, "since": data.Since, "until": data.Until} {
				if v != "" {
					next.Set(k, v)
				}
			}
			data.Next = "/admin/audit?" + next.Encode()
		}
		data.Events = events
	}
	pg.Extra = data
	s.render(w, http.StatusOK, "admin_audit.html", pg)
}

// adminGroupRow is one group in the tree, indented under its parent.
type adminGroupRow struct {
	store.Group
	Depth   int
	Members int // direct members
}

// adminGroupView is a group's page: its direct members, and its effective ones (the
// members of its child groups too, who pass its rules).
type adminGroupView struct {
	Group             store.Group
	Parent            string
	Children          []string
	Direct, Effective []store.User
}

func (s *Server) adminGroups(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	groups, err := s.Store.ListGroups(r.Context())
	var rows []adminGroupRow
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, g := range groups {
			if g.ParentID != parent || err != nil {
				continue
			}
			var ids []string
			ids, err = s.Store.GroupMemberIDs(r.Context(), g.ID)
			rows = append(rows, adminGroupRow{Group: g, Depth: depth, Members: len(ids)})
			if depth < len(groups) { // a parent loop, which the store cannot rule out, ends here
				walk(g.ID, depth+1)
			}
		}
	}
	if err == nil {
		walk("", 0)
	}
	if err != nil {
		s.adminFailed(w, "the groups", err)
		return
	}
	s.render(w, http.StatusOK, "admin_groups.html", page{Title: "Groups", User: p, Extra: rows, Wide: true})
}

func (s *Server) adminGroup(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	ctx := r.Context()
	groups, err := s.Store.ListGroups(ctx)
	if err != nil {
		s.adminFailed(w, "the groups", err)
		return
	}
	i := slices.IndexFunc(groups, func(g store.Group) bool { return g.Name == r.PathValue("name") })
	if i < 0 {
		s.message(w, http.StatusNotFound, "No such group", "No group is called "+strconv.Quote(r.PathValue("name"))+".")
		return
	}
	data := adminGroupView{Group: groups[i]}
	// The group and every group below it: their members are its effective members.
	below := map[string]bool{data.Group.ID: true}
	for grew := true; grew; {
		grew = false
		for _, g := range groups {
			if below[g.ParentID] && !below[g.ID] {
				below[g.ID], grew = true, true
			}
		}
	}
	direct := map[string]bool{}
	var everyone []string
	for _, g := range groups {
		switch {
		case g.ID == data.Group.ParentID:
			data.Parent = g.Name
		case g.ParentID == data.Group.ID:
			data.Children = append(data.Children, g.Name)
		}
		if !below[g.ID] {
			continue
		}
		ids, err := s.Store.GroupMemberIDs(ctx, g.ID)
		if err != nil {
			s.adminFailed(w, "the group's members", err)
			return
		}
		for _, id := range ids {
			if g.ID == data.Group.ID {
				direct[id] = true
			}
			if !slices.Contains(everyone, id) {
				everyone = append(everyone, id)
			}
		}
	}
	for start := 0; start < len(everyone); start += 1000 { // UsersByIDs takes 1000 at a time
		users, err := s.Store.UsersByIDs(ctx, everyone[start:min(start+1000, len(everyone))])
		if err != nil {
			s.adminFailed(w, "the group's members", err)
			return
		}
		for _, u := range users {
			data.Effective = append(data.Effective, u)
			if direct[u.ID] {
				data.Direct = append(data.Direct, u)
			}
		}
	}
	byName := func(a, b store.User) int { return strings.Compare(a.Username, b.Username) }
	slices.SortFunc(data.Direct, byName)
	slices.SortFunc(data.Effective, byName)
	s.render(w, http.StatusOK, "admin_group.html", page{Title: data.Group.Name, User: p, Extra: data, Wide: true})
}

// configPage is the admin config page: the config file, and with access.kubernetes
// the rules the cluster's annotations make and how their watch stands.
type configPage struct {
	*config.Config
	KubeRules  []access.Sourced
	Kubernetes *KubernetesStatus
}

// adminConfig shows what the config file defines, read-only: the admin groups, the
// rules in order, the OpenID Connect clients (never their secrets), the declared
// groups and the apps; then the rules from Kubernetes after them.
func (s *Server) adminConfig(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	data := configPage{Config: s.cfg()}
	if s.Kubernetes != nil {
		status := s.Kubernetes()
		data.Kubernetes, data.KubeRules = &status, s.Policy().From(access.FromKubernetes)
	}
	s.render(w, http.StatusOK, "admin_config.html", page{Title: "Defined in the config file", User: p, Extra: data, Wide: true})
}

// adminFailed answers an admin page whose reads failed.
func (s *Server) adminFailed(w http.ResponseWriter, what string, err error) {
	s.unavailable(w, "an admin page", what, err)
}

// unavailable answers a page that could not read what it needed: logged with the
// page and what it read, and a 503 asking the person to try again.
func (s *Server) unavailable(w http.ResponseWriter, page, what string, err error) {
	s.Log.Error(page+": reading "+what+" failed", "error", err.Error())
	s.message(w, http.StatusServiceUnavailable, "Try again shortly", "Gatehouse could not read "+what+" right now. Try again in a moment.")
}

// adminWebhooksView is the delivery log: the webhooks the config defines and their
// deliveries, newest first, and the mail sent.
type adminWebhooksView struct {
	Webhook    string // the one shown; "" for all
	Webhooks   []config.Webhook
	Deliveries []store.WebhookDelivery
	Next       string
	// Mail is whether smtp is set, and Mails the newest of the mail outbox.
	Mail  bool
	Mails []store.Mail
}

func (s *Server) adminWebhooks(w http.ResponseWriter, r *http.Request, p *session.Principal) {
	q := r.URL.Query()
	data := adminWebhooksView{Webhook: q.Get("webhook"), Webhooks: s.cfg().Webhooks}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	list, err := s.Store.WebhookDeliveries(r.Context(), data.Webhook, before, adminPageSize+1)
	if err != nil {
		s.adminFailed(w, "the webhook deliveries", err)
		return
	}
	if len(list) > adminPageSize {
		list = list[:adminPageSize]
		next := url.Values{"before": {strconv.FormatInt(list[adminPageSize-1].ID, 10)}}
		if data.Webhook != "" {
			next.Set("webhook", data.Webhook)
		}
		data.Next = "/admin/webhooks?" + next.Encode()
	}
	data.Deliveries = list
	if data.Mail = s.cfg().SMTP.Host != ""; data.Mail {
		if data.Mails, err = s.Store.RecentMails(r.Context(), adminPageSize); err != nil {
			s.adminFailed(w, "the mail outbox", err)
			return
		}
	}
	s.render(w, http.StatusOK, "admin_webhooks.html", page{Title: "Webhooks and mail", User: p, Extra: data, Wide: true})
}
