package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// token manages the admin API's tokens: create (the value is printed once), list and
// revoke. The CLI runs beside the database, so it may grant every scope.
func (c *cli) token(args []string) error {
	var scopes stringList
	expires, asJSON := new(string), new(bool)
	sub, pos, dir, st, closeStore, err := c.admin(args, "token", "create, list, revoke", func(fs *flag.FlagSet) {
		fs.Var(&scopes, "scope", "a scope the token may use (repeatable; default users:read and groups:read): "+strings.Join(identity.APIScopes, ", "))
		fs.StringVar(expires, "expires", "90d", `how long the token lasts ("30d", "12h"), or "never"`)
		fs.BoolVar(asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := c.ctx
	switch sub {
	case "create":
		if err := exactly(1, pos, "token create NAME [--scope S]... [--expires 90d|never]"); err != nil {
			return err
		}
		lifetime, err := parseLifetime(*expires)
		if err != nil {
			return err
		}
		value, t, err := dir.CreateAPIToken(ctx, actor, nil, pos[0], scopes, lifetime)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "token %q (id %s) with %s, %s. It is shown this once:\n", t.Name, t.ID, t.Scopes, expiry(t))
		fmt.Fprintln(c.stdout, value)
	case "list":
		tokens, err := st.ListAPITokens(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(c.stdout, tokens, func(t store.APIToken) any {
				return map[string]any{"id": t.ID, "name": t.Name, "scopes": strings.Fields(t.Scopes), "created_by": t.CreatedBy,
					"created_at": t.CreatedAt, "expires": expiry(t), "last_used_at": t.LastUsedAt, "last_used_ip": t.LastUsedIP}
			})
		}
		c.table("ID\tNAME\tSCOPES\tEXPIRES\tLAST USED", func(w io.Writer) {
			for _, t := range tokens {
				used := "never"
				if !t.LastUsedAt.IsZero() {
					used = t.LastUsedAt.Format(time.DateTime) + " from " + t.LastUsedIP
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Scopes, expiry(t), used)
			}
		})
	case "revoke":
		if err := exactly(1, pos, "token revoke ID|NAME"); err != nil {
			return err
		}
		if err := dir.RevokeAPIToken(ctx, actor, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "revoked token %s\n", pos[0])
	default:
		return usagef("token: unknown subcommand %q (create, list, revoke)", sub)
	}
	return nil
}

func expiry(t store.APIToken) string { return expiresText(t.ExpiresAt) }
