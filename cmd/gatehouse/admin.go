package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// actor names the CLI in audit events.
const actor = "cli"

// admin parses "NOUN SUB [flags] ARGS…" with the flags define adds, and opens the
// migrated store, for the user, group and session commands.
func (c *cli) admin(args []string, noun, subs string, define func(*flag.FlagSet)) (sub string, pos []string, dir *identity.Directory, st store.Store, closeStore func(), err error) {
	if len(args) == 0 {
		return "", nil, nil, nil, nil, usagef("%s: name a subcommand (%s)", noun, subs)
	}
	sub = args[0]
	fs := c.flags(noun + " " + sub)
	define(fs)
	if sub == "-h" || sub == "--help" {
		fs := c.flags(noun)
		define(fs)
		h := helpOf(fs).(helpShown)
		return "", nil, nil, nil, nil, helpShown{fmt.Sprintf("gatehouse %s SUBCOMMAND: one of %s\n", noun, subs) + h.text}
	}
	if pos, err = parse(fs, args[1:]); err != nil {
		return "", nil, nil, nil, nil, err
	}
	dir, st, closeStore, err = c.open()
	return sub, pos, dir, st, closeStore, err
}

// stringList is a repeatable flag (--group a --group b).
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (c *cli) user(args []string) error {
	var (
		email, name, fromStdin, noPassword, asJSON = new(string), new(string), new(bool), new(bool), new(bool)
		groups                                     stringList
	)
	sub, pos, dir, st, closeStore, err := c.admin(args, "user", "add, list, show, set-email, passwd, link, link-account, disable, enable, delete, credentials, mfa", func(fs *flag.FlagSet) {
		fs.StringVar(email, "email", "", "email address")
		fs.StringVar(name, "name", "", "display name")
		fs.BoolVar(fromStdin, "password-stdin", false, "read the password from standard input")
		fs.BoolVar(noPassword, "no-password", false, "create the user without a password")
		fs.BoolVar(asJSON, "json", false, "print JSON")
		fs.Var(&groups, "group", "add the user to this group (repeatable)")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := c.ctx
	switch sub {
	case "add":
		if err := exactly(1, pos, "user add USERNAME"); err != nil {
			return err
		}
		nu := identity.NewUser{Username: pos[0], Email: *email, DisplayName: *name, Groups: groups}
		if !*noPassword {
			if nu.Password, err = c.readPassword(*fromStdin); err != nil {
				return err
			}
		}
		u, err := dir.AddUser(ctx, actor, nu)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "created user %s (id %s)\n", u.Username, u.ID)
	case "list":
		users, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(c.stdout, users, userJSON)
		}
		c.table("USERNAME\tEMAIL\tNAME\tSTATUS\tCREATED", func(w io.Writer) {
			for _, u := range users {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Email, u.DisplayName, status(u), u.CreatedAt.Format(time.DateOnly))
			}
		})
	case "show":
		if err := exactly(1, pos, "user show USERNAME"); err != nil {
			return err
		}
		u, err := dir.User(ctx, pos[0])
		if err != nil {
			return err
		}
		direct, err := st.UserGroupIDs(ctx, u.ID)
		if err != nil {
			return err
		}
		all, err := st.ListGroups(ctx)
		if err != nil {
			return err
		}
		sessions, err := st.ListSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		emailLine := u.Email
		if u.EmailPending != "" {
			emailLine += fmt.Sprintf(" (they asked for %s: confirm with `gatehouse user set-email %s %s`)", u.EmailPending, u.Username, u.EmailPending)
		}
		fmt.Fprintf(c.stdout, "username:  %s\nid:        %s\nemail:     %s\nname:      %s\nstatus:    %s\npassword:  %s\ngroups:    %s\nsessions:  %d\ncreated:   %s\n",
			u.Username, u.ID, emailLine, u.DisplayName, status(u), yesNo(u.PasswordHash != "", "set", "not set"),
			strings.Join(identity.EffectiveGroups(direct, all), ", "), len(sessions), u.CreatedAt.Format(time.RFC3339))
	case "set-email":
		if err := exactly(2, pos, "user set-email USERNAME EMAIL (\"\" removes it)"); err != nil {
			return err
		}
		if err := dir.SetEmail(ctx, actor, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "email of %s set to %q (confirmed)\n", pos[0], pos[1])
	case "passwd":
		if err := exactly(1, pos, "user passwd USERNAME"); err != nil {
			return err
		}
		if _, err := dir.User(ctx, pos[0]); err != nil {
			return err
		}
		pw, err := c.readPassword(*fromStdin)
		if err != nil {
			return err
		}
		if err := dir.SetPassword(ctx, actor, pos[0], pw); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "password of %s changed; their sessions were ended\n", pos[0])
	case "link":
		// A person made with --no-password (or who lost every credential) signs in
		// once with it and sets a password or adds a passkey on their account page.
		if err := exactly(1, pos, "user link USERNAME"); err != nil {
			return err
		}
		cfg, err := c.loadConfig()
		if err != nil {
			return err
		}
		token, expires, err := dir.IssueSignInLink(ctx, actor, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s%s?token=%s\n", cfg.Server.PublicURL, identity.SignInLinkPath, token)
		fmt.Fprintf(c.stderr, "a one-time sign-in link for %s, valid until %s; pass it on privately: it signs them in once, to set a password or add a passkey\n",
			pos[0], expires.UTC().Format(time.RFC3339))
	case "link-account":
		// An admin's pre-link: the person's account at a login provider signs in to
		// this one from their first sign-in there.
		if err := exactly(3, pos, "user link-account USERNAME PROVIDER SUBJECT (the sub the provider names the person by)"); err != nil {
			return err
		}
		cfg, err := c.loadConfig()
		if err != nil {
			return err
		}
		if _, ok := cfg.ProviderByID(pos[1]); !ok {
			return fmt.Errorf("no login provider %q in the config (login_providers)", pos[1])
		}
		u, err := dir.User(ctx, pos[0])
		if err != nil {
			return err
		}
		if err := dir.LinkUpstream(ctx, actor, u.ID, identity.UpstreamClaims{Provider: pos[1], Subject: pos[2]}); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "linked %s account %s to %s; remove it with: gatehouse user credentials remove %s %s\n", pos[1], pos[2], u.Username, u.Username, identity.UpstreamCredentialID(pos[1], pos[2]))
	case "disable", "enable":
		if err := exactly(1, pos, "user "+sub+" USERNAME"); err != nil {
			return err
		}
		if err := dir.SetDisabled(ctx, actor, pos[0], sub == "disable"); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "user %s %sd\n", pos[0], sub)
	case "delete":
		if err := exactly(1, pos, "user delete USERNAME"); err != nil {
			return err
		}
		if err := dir.DeleteUser(ctx, actor, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "user %s deleted\n", pos[0])
	case "credentials":
		switch {
		case len(pos) == 2 && pos[0] == "list":
			creds, err := dir.Credentials(ctx, pos[1])
			if err != nil {
				return err
			}
			c.table("ID\tKIND\tDETAIL", func(w io.Writer) {
				for _, cr := range creds {
					fmt.Fprintf(w, "%s\t%s\t%s\n", cr.ID, cr.Kind, cr.Detail)
				}
			})
		case len(pos) == 3 && pos[0] == "remove":
			if err := dir.RemoveCredential(ctx, actor, pos[1], pos[2], true); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "removed credential %s of %s and ended their sessions\n", pos[2], pos[1])
		default:
			return usagef("expected user credentials list USERNAME, or user credentials remove USERNAME ID (IDs as the list shows them)")
		}
	case "mfa":
		if len(pos) != 2 || pos[0] != "reset" {
			return usagef("expected user mfa reset USERNAME")
		}
		if err := dir.ResetSecondFactors(ctx, actor, pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "second factors of %s removed and their sessions ended; they sign in with the password alone\n", pos[1])
	default:
		return usagef("user: unknown subcommand %q", sub)
	}
	return nil
}

func (c *cli) group(args []string) error {
	parent, asJSON := new(string), new(bool)
	sub, pos, dir, st, closeStore, err := c.admin(args, "group", "add, list, delete, members", func(fs *flag.FlagSet) {
		fs.StringVar(parent, "parent", "", "parent group")
		fs.BoolVar(asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := c.ctx
	switch sub {
	case "add":
		if err := exactly(1, pos, "group add NAME"); err != nil {
			return err
		}
		g, err := dir.AddGroup(ctx, actor, pos[0], *parent)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "created group %q\n", g.Name)
	case "list":
		groups, err := st.ListGroups(ctx)
		if err != nil {
			return err
		}
		names := map[string]string{}
		for _, g := range groups {
			names[g.ID] = g.Name
		}
		type row struct {
			Name, Parent string
			Members      int
			FromConfig   bool `json:"from_config"`
		}
		var rows []row
		for _, g := range groups {
			members, err := st.GroupMemberIDs(ctx, g.ID)
			if err != nil {
				return err
			}
			rows = append(rows, row{g.Name, names[g.ParentID], len(members), g.FromConfig})
		}
		if *asJSON {
			return writeJSON(c.stdout, rows, func(r row) any { return r })
		}
		c.table("NAME\tPARENT\tMEMBERS\tSOURCE", func(w io.Writer) {
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", r.Name, r.Parent, r.Members, yesNo(r.FromConfig, "config", "data"))
			}
		})
	case "delete":
		if err := exactly(1, pos, "group delete NAME"); err != nil {
			return err
		}
		if err := dir.DeleteGroup(ctx, actor, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "group %q deleted\n", pos[0])
	case "members":
		if len(pos) < 3 || (pos[0] != "add" && pos[0] != "remove") {
			return usagef("expected group members add|remove GROUP USERNAME...")
		}
		if pos[0] == "add" {
			err = dir.AddMembers(ctx, actor, pos[1], pos[2:])
		} else {
			err = dir.RemoveMembers(ctx, actor, pos[1], pos[2:])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "group %q: %sed %s\n", pos[1], strings.TrimSuffix(pos[0], "e"), strings.Join(pos[2:], ", "))
	default:
		return usagef("group: unknown subcommand %q", sub)
	}
	return nil
}

func (c *cli) session(args []string) error {
	username, asJSON := new(string), new(bool)
	sub, pos, dir, st, closeStore, err := c.admin(args, "session", "list, revoke", func(fs *flag.FlagSet) {
		fs.StringVar(username, "user", "", "only this user's sessions")
		fs.BoolVar(asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := c.ctx
	var u store.User
	if *username != "" {
		if u, err = dir.User(ctx, *username); err != nil {
			return err
		}
	}
	switch sub {
	case "list":
		sessions, err := st.ListSessions(ctx, u.ID)
		if err != nil {
			return err
		}
		users := map[string]string{}
		for _, s := range sessions {
			if _, ok := users[s.UserID]; !ok {
				if su, err := st.UserByID(ctx, s.UserID); err == nil {
					users[s.UserID] = su.Username
				}
			}
		}
		if *asJSON {
			return writeJSON(c.stdout, sessions, func(s store.Session) any {
				return map[string]any{"id": s.ID, "user": users[s.UserID], "method": s.AuthMethod, "ip": s.IP,
					"created_at": s.CreatedAt, "expires_at": s.ExpiresAt, "last_seen_at": s.LastSeenAt}
			})
		}
		c.table("ID\tUSER\tMETHOD\tIP\tLAST SEEN\tEXPIRES", func(w io.Writer) {
			for _, s := range sessions {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, users[s.UserID], s.AuthMethod, s.IP,
					s.LastSeenAt.Format(time.DateTime), s.ExpiresAt.Format(time.DateTime))
			}
		})
	case "revoke":
		switch {
		case *username != "" && len(pos) == 0:
			n, err := dir.RevokeUserSessions(ctx, actor, u.Username)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "revoked %d session(s) of %s\n", n, u.Username)
		case *username == "" && len(pos) > 0:
			for _, id := range pos {
				s, err := st.SessionByID(ctx, id)
				if err != nil {
					return fmt.Errorf("%w: list session ids with `gatehouse session list`", err)
				}
				if err := dir.RevokeSession(ctx, actor, s); err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "revoked session %s\n", s.ID)
			}
		default:
			return usagef("expected session revoke SESSION_ID... or session revoke --user USERNAME")
		}
	default:
		return usagef("session: unknown subcommand %q", sub)
	}
	return nil
}

// writeJSON prints items converted for output (so no field such as a password hash
// leaks by being added to a store type).
func writeJSON[T any](w io.Writer, items []T, conv func(T) any) error {
	out := make([]any, len(items))
	for i, item := range items {
		out[i] = conv(item)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func userJSON(u store.User) any {
	return map[string]any{"id": u.ID, "username": u.Username, "email": u.Email, "name": u.DisplayName,
		"disabled": u.Disabled, "created_at": u.CreatedAt}
}

func status(u store.User) string { return yesNo(u.Disabled, "disabled", "active") }

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
