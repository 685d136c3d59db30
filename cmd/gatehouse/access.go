package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
)

// accessCmd answers questions about the access rules: `access explain USERNAME URL`
// says what forward auth decides when that person opens that URL in a browser, and
// why, from the same function the server decides with.
func (c *cli) accessCmd(args []string) error {
	if len(args) == 0 {
		return usagef("access: name a subcommand (explain)")
	}
	sub := args[0]
	fs := c.flags("access " + sub)
	twoFactor := fs.Bool("two-factor", false, "decide for a session signed in with a second factor")
	asJSON := fs.Bool("json", false, "print JSON")
	if sub == "-h" || sub == "--help" {
		return helpShown{"gatehouse access explain USERNAME|- URL [--two-factor] [--json]: what forward auth decides, and why\n" + helpOf(fs).(helpShown).text}
	}
	if sub != "explain" {
		return usagef("access: unknown subcommand %q (explain)", sub)
	}
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if err := exactly(2, pos, "access explain USERNAME URL (USERNAME - for nobody signed in)"); err != nil {
		return err
	}
	cfg, st, closeStore, err := c.openStore()
	if err != nil {
		return err
	}
	defer closeStore()
	username := pos[0]
	if username == "-" {
		username = ""
	}
	r, err := forwardauth.Explain(c.ctx, access.NewPolicy(cfg.Access), st, username, pos[1], *twoFactor)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	writeReport(c, r)
	return nil
}

// writeReport prints an explanation for a person reading a terminal.
func writeReport(c *cli, r forwardauth.Report) {
	who := "nobody signed in"
	if r.Username != "" {
		who = r.Username
		if r.TwoFactor {
			who += " (signed in with a second factor)"
		}
	}
	w := c.stdout
	fmt.Fprintf(w, "%s opening %s\n", who, r.URL)
	if r.Username != "" {
		fmt.Fprintf(w, "  groups:    %s\n", orNone(r.Groups))
	}
	fmt.Fprintf(w, "  decision:  %s: %s\n", r.Result, r.Reason)
	if r.Rule == nil {
		fmt.Fprintf(w, "  rule:      none matches host %s and path %s; only the admin groups (%s) pass\n", r.Host, r.Path, orNone(r.AdminGroups))
	} else {
		fmt.Fprintf(w, "  rule:      access.rules[%d]: %s (defined in the config file)\n", r.Rule.Index, describeRule(r.Rule))
		if !r.Rule.Public {
			fmt.Fprintf(w, "  passes:    members of %s\n", orNone(r.Passing))
		}
	}
	if readingsDiffer(r.Readings) {
		fmt.Fprintln(w, "  readings:  the path as each kind of app may read it; the strictest decides")
		for _, x := range r.Readings {
			how := "as sent"
			if x.Folded {
				how = "in lower case"
			}
			fmt.Fprintf(w, "    %-40s %-14s %s (rule %d: %s)\n", x.Path, how, x.Result, x.Rule, x.Reason)
		}
	}
	fmt.Fprintf(w, "  they see:  the request %s\n", r.Outcome)
}

// readingsDiffer says whether the readings of the path were decided differently, the
// only case in which listing them explains anything.
func readingsDiffer(readings []forwardauth.ReadingReport) bool {
	for _, x := range readings[1:] {
		if x.Result != readings[0].Result || x.Rule != readings[0].Rule {
			return true
		}
	}
	return false
}

func describeRule(r *forwardauth.RuleReport) string {
	parts := []string{"hosts " + strings.Join(r.Hosts, ", ")}
	if len(r.Paths) > 0 {
		parts = append(parts, "paths "+strings.Join(r.Paths, ", "))
	}
	switch {
	case r.Public:
		parts = append(parts, "public")
	case r.Deny:
		parts = append(parts, "deny")
	default:
		parts = append(parts, "groups "+orNone(r.Groups))
	}
	if r.TwoFactor {
		parts = append(parts, "two_factor")
	}
	if r.AllowAppPasswords {
		parts = append(parts, "allow_app_passwords")
	}
	return strings.Join(parts, "; ")
}

func orNone(items []string) string {
	if len(items) == 0 {
		return "(none)"
	}
	return strings.Join(items, ", ")
}
