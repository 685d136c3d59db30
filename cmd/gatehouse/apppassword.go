package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// appPassword manages a person's app passwords, which forward auth accepts on rules
// with allow_app_passwords: create (the secret is printed once), list and revoke.
func (c *cli) appPassword(args []string) error {
	var hosts stringList
	expires, asJSON := new(string), new(bool)
	sub, pos, dir, _, closeStore, err := c.admin(args, "app-password", "create, list, revoke", func(fs *flag.FlagSet) {
		fs.Var(&hosts, "host", "a host the app password may open, like dav.example.com or *.example.com (repeatable, at least one)")
		fs.StringVar(expires, "expires", "never", `how long it lasts ("365d", "12h"), or "never"`)
		fs.BoolVar(asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := c.ctx
	switch sub {
	case "create":
		if err := exactly(2, pos, "app-password create USERNAME NAME --host HOST... [--expires never|365d]"); err != nil {
			return err
		}
		if len(hosts) == 0 {
			return usagef("app-password create: name the hosts it may open with --host (for example --host dav.example.com)")
		}
		lifetime, err := parseLifetime(*expires)
		if err != nil {
			return err
		}
		secret, p, err := dir.CreateAppPassword(ctx, actor, pos[0], pos[1], hosts, lifetime)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "app password %q (id %s) of %s for %s, %s. It is shown this once:\n", p.Name, p.ID, pos[0], p.Hosts, expiresText(p.ExpiresAt))
		fmt.Fprintln(c.stdout, secret)
	case "list":
		if err := exactly(1, pos, "app-password list USERNAME"); err != nil {
			return err
		}
		all, err := dir.AppPasswords(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(c.stdout, all, func(p store.AppPassword) any {
				return map[string]any{"id": p.ID, "name": p.Name, "hosts": strings.Fields(p.Hosts), "created_at": p.CreatedAt,
					"expires": expiresText(p.ExpiresAt), "last_used_at": p.LastUsedAt}
			})
		}
		c.table("ID\tNAME\tHOSTS\tEXPIRES\tLAST USED", func(w io.Writer) {
			for _, p := range all {
				used := "never"
				if !p.LastUsedAt.IsZero() {
					used = p.LastUsedAt.Format(time.DateTime)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.Hosts, expiresText(p.ExpiresAt), used)
			}
		})
	case "revoke":
		if err := exactly(2, pos, "app-password revoke USERNAME ID|NAME"); err != nil {
			return err
		}
		if _, err := dir.RevokeAppPassword(ctx, actor, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "revoked app password %s of %s\n", pos[1], pos[0])
	default:
		return usagef("app-password: unknown subcommand %q (create, list, revoke)", sub)
	}
	return nil
}

// parseLifetime reads an --expires value: a duration, or "never" (0).
func parseLifetime(v string) (time.Duration, error) {
	if v == "never" {
		return 0, nil
	}
	d, err := config.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, usagef("--expires %q: give a duration such as 90d or 12h, or never", v)
	}
	return d.D(), nil
}

// expiresText says when a credential expires, for listings.
func expiresText(at time.Time) string {
	if at.IsZero() {
		return "never expires"
	}
	return "expires " + at.Format(time.DateTime)
}
