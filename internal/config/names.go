package config

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
)

// CheckGroupName says what is wrong with a group name, or nil. Commas and pipes are
// refused because Remote-Groups joins names with "," and X-authentik-groups with "|":
// a name containing them would read as two groups to the app.
func CheckGroupName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a group name cannot be empty")
	case len(name) > 128:
		return fmt.Errorf("group name %q is longer than 128 bytes", name[:32]+"…")
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("group name %q starts or ends with a space", name)
	case strings.ContainsAny(name, ",|"):
		return fmt.Errorf("group name %q contains \",\" or \"|\", which separate groups in identity headers", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("group name %q contains a control or invalid character", name)
		}
	}
	return nil
}

// CheckDomain says what is wrong with a DNS name (or IP address), or nil.
func CheckDomain(d string) error {
	if _, err := netip.ParseAddr(d); err == nil {
		return nil
	}
	if d == "" || len(d) > 253 {
		return fmt.Errorf("%q is not a valid domain name", d)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a valid domain name", d)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q is not a valid domain name (use lower-case letters, digits and \"-\")", d)
			}
		}
	}
	return nil
}

// CheckHostPattern says what is wrong with a rule's host pattern, or nil.
func CheckHostPattern(p string) error {
	base := strings.TrimPrefix(p, "*.")
	if strings.Contains(base, "*") {
		return fmt.Errorf("%q is not a valid host pattern (only a leading \"*.\" wildcard is allowed)", p)
	}
	if err := CheckDomain(base); err != nil {
		return fmt.Errorf("%q is not a valid host pattern (write a lower-case host name such as app.example.com or *.example.com)", p)
	}
	return nil
}
