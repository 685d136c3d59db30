package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
)

// invite manages invitations: create (the code is printed once, with its link), list
// and revoke.
func (c *cli) invite(args []string) error {
	var groups stringList
	expires, email, domain, note, uses, asJSON := new(string), new(string), new(string), new(string), new(int), new(bool)
	sub, pos, dir, _, closeStore, err := c.admin(args, "invite", "create, list, revoke", func(fs *flag.FlagSet) {
		fs.Var(&groups, "group", "a group the invited person joins (repeatable, at least one)")
		fs.StringVar(expires, "expires", "7d", `how long the invitation lasts, up to 90d ("7d", "12h")`)
		fs.IntVar(uses, "uses", 1, "how many accounts it may make")
		fs.StringVar(email, "email", "", "the one address the new account may have")
		fs.StringVar(domain, "domain", "", "the domain the new account's address must be in")
		fs.StringVar(note, "note", "", "who it is for, for the admins")
		fs.BoolVar(asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := c.ctx
	switch sub {
	case "create":
		if err := exactly(0, pos, "invite create --group GROUP... [--expires 7d] [--uses 1] [--email E | --domain D] [--note N]"); err != nil {
			return err
		}
		lifetime, err := config.ParseDuration(*expires)
		if err != nil {
			return usagef("--expires %q: give a duration such as 7d or 12h", *expires)
		}
		cfg, err := c.loadConfig()
		if err != nil {
			return err
		}
		code, inv, err := dir.CreateInvitation(ctx, actor, identity.NewInvitation{Groups: groups, Lifetime: lifetime.D(), MaxUses: *uses,
			Email: *email, Domain: *domain, Note: *note})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "invitation %s into %s, for %d account(s), until %s. The code is shown this once:\n",
			inv.ID, strings.Join(groups, ", "), inv.MaxUses, inv.ExpiresAt.Format(time.RFC3339))
		fmt.Fprintln(c.stdout, code)
		fmt.Fprintf(c.stdout, "%s%s?code=%s\n", cfg.Server.PublicURL, identity.InvitationPath, code)
	case "list":
		if err := exactly(0, pos, "invite list"); err != nil {
			return err
		}
		all, err := dir.Invitations(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(c.stdout, all, func(v identity.InvitationView) any {
				return map[string]any{"id": v.ID, "groups": v.Groups, "uses": v.Uses, "max_uses": v.MaxUses, "email": v.Email, "domain": v.Domain,
					"note": v.Note, "created_by": v.CreatedBy, "created_at": v.CreatedAt, "expires_at": v.ExpiresAt}
			})
		}
		c.table("ID\tGROUPS\tUSED\tEXPIRES\tFOR\tNOTE", func(w io.Writer) {
			for _, v := range all {
				pin := v.Email + v.Domain
				if pin == "" {
					pin = "anyone"
				}
				fmt.Fprintf(w, "%s\t%s\t%d of %d\t%s\t%s\t%s\n", v.ID, strings.Join(v.Groups, ","), v.Uses, v.MaxUses, v.ExpiresAt.Format("2006-01-02 15:04"), pin, v.Note)
			}
		})
	case "revoke":
		if err := exactly(1, pos, "invite revoke ID"); err != nil {
			return err
		}
		if err := dir.RevokeInvitation(ctx, actor, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "invitation %s revoked: its code no longer works\n", pos[0])
	default:
		return usagef("invite: unknown subcommand %q", sub)
	}
	return nil
}
