package access

import (
	"slices"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// Explanation is a decision with its workings, for `gatehouse access explain` and the
// admin API: the answer Decide gives, every reading of the path it looked at and how
// each alone was decided, the deciding rule as configured, and who that rule lets
// through.
type Explanation struct {
	Decision
	// Readings are the readings of the path in the order Decide weighs them; the
	// decision is the strictest of theirs.
	Readings []Explained
	// Config is the deciding rule as the config file has it; nil when no rule matched.
	Config *config.Rule
	// Passing are the groups whose members the deciding rule lets through, the admin
	// groups (which pass every rule) included, sorted; empty for a public rule, which
	// lets everyone through, and for a deny rule, which lets only admins through.
	Passing []string
	// AdminGroups are access.admin_groups.
	AdminGroups []string
}

// Explained is how one reading of the path was decided.
type Explained struct {
	Reading  Reading
	Decision Decision
}

// Explain decides req for who exactly as Decide does (it calls it) and says why.
func (p *Policy) Explain(req Request, who *Identity) Explanation {
	e := Explanation{Decision: p.Decide(req, who), AdminGroups: slices.Clone(p.admins)}
	readings := []Reading{{Path: req.Path}}
	if p.foldAlways || !plainPath(req.Path) {
		readings = appendReadings(nil, req.Path, p.foldAlways)
	}
	for _, r := range readings {
		e.Readings = append(e.Readings, Explained{Reading: r, Decision: p.decideReading(req.Host, r, who)})
	}
	if e.Rule < 0 {
		return e
	}
	rule := p.config[e.Rule]
	e.Config = &rule
	if !rule.Public {
		if !rule.Deny {
			e.Passing = append(e.Passing, rule.Groups...)
		}
		e.Passing = append(e.Passing, p.admins...)
		slices.Sort(e.Passing)
		e.Passing = slices.Compact(e.Passing)
	}
	return e
}
