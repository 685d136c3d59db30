package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
	"github.com/gatehouse-id/gatehouse/internal/kuberules"
	"github.com/gatehouse-id/gatehouse/internal/server"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// accessCmd answers questions about the access rules: `access explain USERNAME URL`
// says what forward auth decides when that person opens that URL in a browser, and
// why, from the same function the server decides with; `access kubernetes` lists the
// rules the annotations in the cluster make, and their problems.
func (c *cli) accessCmd(args []string) error {
	if len(args) == 0 {
		return usagef("access: name a subcommand (explain, kubernetes)")
	}
	sub := args[0]
	fs := c.flags("access " + sub)
	twoFactor := fs.Bool("two-factor", false, "decide for a session signed in with a second factor")
	asJSON := fs.Bool("json", false, "print JSON")
	if sub == "-h" || sub == "--help" {
		return helpShown{"gatehouse access explain USERNAME|- URL [--two-factor] [--json]: what forward auth decides, and why\n" +
			"gatehouse access kubernetes [--json]: the rules the cluster's annotations make, and their problems (exit 1 on any)\n" + helpOf(fs).(helpShown).text}
	}
	if sub == "kubernetes" {
		pos, err := parse(fs, args[1:])
		if err != nil {
			return err
		}
		if err := exactly(0, pos, "access kubernetes"); err != nil {
			return err
		}
		return c.accessKubernetes(*asJSON)
	}
	if sub != "explain" {
		return usagef("access: unknown subcommand %q (explain, kubernetes)", sub)
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
	var kube []access.Sourced
	if cfg.Access.Kubernetes.Enabled {
		compiled, err := c.kubernetesRules(cfg, st)
		if err != nil {
			return err
		}
		kube = compiled.Rules
	}
	r, err := forwardauth.Explain(c.ctx, access.NewPolicy(cfg.Access, kube...), st, username, pos[1], *twoFactor)
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

// kubernetesRules reads the cluster's objects once and compiles them as the server
// does, against the groups in the database.
func (c *cli) kubernetesRules(cfg config.Config, st store.Store) (kuberules.Compiled, error) {
	objects, err := kuberules.List(c.ctx, cfg.Access.Kubernetes)
	if err != nil {
		return kuberules.Compiled{}, fmt.Errorf("access.kubernetes: %w", err)
	}
	groups, err := server.GroupNames(c.ctx, st)
	if err != nil {
		return kuberules.Compiled{}, err
	}
	return kuberules.Compile(objects, kuberules.OptionsFor(&cfg, groups)), nil
}

// kubeReport is `access kubernetes --json`.
type kubeReport struct {
	Objects  int                      `json:"objects"`
	Rules    []forwardauth.RuleReport `json:"rules"`
	Problems []kubeProblem            `json:"problems"`
}

type kubeProblem struct {
	Object  string `json:"object"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// accessKubernetes prints the rules from Kubernetes and their problems, like
// serve --check-config for the config file; any problem is exit status 1, so that a
// pipeline can stop on it.
func (c *cli) accessKubernetes(asJSON bool) error {
	cfg, st, closeStore, err := c.openStore()
	if err != nil {
		return err
	}
	defer closeStore()
	if !cfg.Access.Kubernetes.Enabled {
		return fmt.Errorf("access.kubernetes.enabled is false: turn it on to read rules from Kubernetes")
	}
	compiled, err := c.kubernetesRules(cfg, st)
	if err != nil {
		return err
	}
	report := kubeReport{Objects: compiled.Objects, Rules: []forwardauth.RuleReport{}, Problems: []kubeProblem{}}
	for i, r := range compiled.Rules {
		report.Rules = append(report.Rules, forwardauth.ReportOf(len(cfg.Access.Rules)+i, r))
	}
	for _, p := range compiled.Problems {
		report.Problems = append(report.Problems, kubeProblem{Object: p.Object.Ref(), Reason: p.Reason, Message: p.Message})
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "%d object(s) with %s annotations make %d rule(s), after the config file's %d\n",
			report.Objects, cfg.Access.Kubernetes.AnnotationPrefix, len(report.Rules), len(cfg.Access.Rules))
		for _, r := range report.Rules {
			fmt.Fprintf(c.stdout, "  %s: %s (from %s)\n", r.ID, describeRule(&r), r.Source)
		}
		for _, p := range compiled.Problems {
			fmt.Fprintf(c.stdout, "problem: %s\n", p)
		}
	}
	if n := len(compiled.Problems); n > 0 {
		return fmt.Errorf("%d problem(s) in Kubernetes annotations: the objects' hosts deny until they are fixed", n)
	}
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
		where := "defined in the config file"
		if r.Rule.From != access.FromConfig {
			where = "from the Kubernetes object " + r.Rule.Source
		}
		fmt.Fprintf(w, "  rule:      %s: %s (%s)\n", r.Rule.ID, describeRule(r.Rule), where)
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
