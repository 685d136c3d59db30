package identity

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// invalidf is a validation error of field: a *FieldError, which every caller shows to
// whoever typed the value (the API's 422, the admin pages' message, the CLI's error).
func invalidf(field, format string, args ...any) error {
	return &FieldError{field, fmt.Sprintf(format, args...)}
}

// CheckUsername says what is wrong with a username, or nil. Usernames travel in
// headers and URLs and are typed on phones: letters, digits and . _ @ - only.
func CheckUsername(name string) error {
	if name == "" {
		return invalidf("username", "a username cannot be empty")
	}
	if len(name) > 64 {
		return invalidf("username", "username is longer than 64 characters")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return invalidf("username", "username %q contains a control character", name)
		}
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@-", r)) {
			return invalidf("username", "username %q contains %q: use letters, digits, \".\", \"_\", \"@\" and \"-\"", name, r)
		}
	}
	return nil
}

// CheckEmail says what is wrong with an email address, or nil; empty is allowed.
func CheckEmail(email string) error {
	if email == "" {
		return nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return invalidf("email", "%q is not a plain email address such as name@example.com", email)
	}
	return nil
}

// CheckDisplayName says what is wrong with a display name, or nil.
func CheckDisplayName(name string) error {
	if len(name) > 128 {
		return invalidf("display_name", "display name is longer than 128 bytes")
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return invalidf("display_name", "display name contains a control character")
	}
	return nil
}

// EffectiveGroups returns the names of the groups a user is in: their direct groups and
// every ancestor of those (a member of a child group is a member of its parent), sorted.
// A parent loop, which the store cannot rule out, ends the climb instead of spinning.
func EffectiveGroups(direct []string, all []store.Group) []string {
	byID := make(map[string]store.Group, len(all))
	for _, g := range all {
		byID[g.ID] = g
	}
	seen := map[string]bool{}
	var names []string
	for _, id := range direct {
		for g, ok := byID[id]; ok && !seen[g.ID]; g, ok = byID[g.ParentID] {
			seen[g.ID] = true
			names = append(names, g.Name)
		}
	}
	slices.Sort(names)
	return names
}
