package access

import (
	"strings"
	"unicode/utf8"
)

// The path model: how Gatehouse reads a request path so that no app behind the proxy
// can read the same bytes as a path under a weaker rule.
//
// A proxy hands the app the request target exactly as the client sent it, and every
// app framework then reads it its own way: Go's http.FileServer decodes %-escapes and
// cleans dot segments, Express routes on the still-encoded path, Tomcat and Spring drop
// ";name=value" parameters from every segment ("/public/..;/admin" is "/admin" there),
// and many routers ignore letter case. A rule decided on one reading while the app
// serves another is a way around the rule. Gatehouse closes it in two steps:
//
//  1. CheckPath refuses what no browser sends and servers disagree on: a raw "#", an
//     encoded "/", "\" or "." (%2f, %5c, %2e), a double-encoded escape (%25 followed by
//     two hex digits), a backslash, a dot segment ("." or ".." — also with parameters,
//     "..;x"), spaces, NUL and other control bytes (raw or encoded), and invalid UTF-8.
//     A browser normalises all of these away before it sends a request, so refusing
//     them costs real users nothing.
//  2. What stays ambiguous but legitimate — %-escapes of ordinary characters (an
//     encoded "?" or "#" may end the path for a server that decodes first), ";"
//     parameters, repeated slashes and letter case — is read every plausible way
//     (Readings), and Decide takes the strictest decision over all readings: a rule
//     that protects less (public, fewer groups) applies only when every reading falls
//     under it, and a rule that protects more applies when any reading does.
//
// Reading more ways can only make a decision stricter, never weaker, so an extra
// reading is always safe; a missing one is a hole. FuzzNoReadingIsWeaker checks that
// the way each known framework reads a path never gets a weaker decision than the path.

// PathError says why a request path was refused, in words an operator can act on.
type PathError struct {
	Reason string
}

func (e *PathError) Error() string {
	return "the path " + e.Reason + ", which apps read differently; refused"
}

// CheckPath reports whether a request target (path and query, as the client sent it)
// is one Gatehouse decides on, or why not. Only the path is checked (a query is the
// app's business), but a raw "#" is refused anywhere: browsers never send one, and
// servers disagree on whether it ends the path.
func CheckPath(target string) error {
	if strings.IndexByte(target, '#') >= 0 {
		return &PathError{`contains a raw "#"`}
	}
	p, _, _ := strings.Cut(target, "?")
	if !strings.HasPrefix(p, "/") {
		return &PathError{`does not start with "/"`}
	}
	if strings.HasPrefix(p, "//") {
		return &PathError{`starts with "//"`}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c == 0x7f:
			return &PathError{"contains a space or control character"}
		case c == '\\':
			return &PathError{`contains a backslash`}
		case c == '%':
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return &PathError{`contains an invalid %-escape`}
			}
			switch b := byte(unhex(p[i+1])<<4 | unhex(p[i+2])); {
			case b == '/':
				return &PathError{`contains an encoded "/" (%2f)`}
			case b == '\\':
				return &PathError{`contains an encoded "\" (%5c)`}
			case b == '.':
				return &PathError{`contains an encoded "." (%2e)`}
			case b < ' ' || b == 0x7f:
				return &PathError{"contains an encoded control character (" + p[i:i+3] + ")"}
			case b == '%' && i+4 < len(p) && unhex(p[i+3]) >= 0 && unhex(p[i+4]) >= 0:
				return &PathError{"contains a double-encoded character (" + p[i:i+5] + ")"}
			}
			i += 2
		}
	}
	if !utf8.ValidString(p) || !utf8.ValidString(decode(p)) {
		return &PathError{"is not valid UTF-8"}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return &PathError{`contains a dot segment ("` + seg + `")`}
		}
	}
	return nil
}

// maxReadings bounds the readings of one path: 3 (encoded, decoded, decoded and cut at
// an encoded "?" or "#") × 2 (";" parameters kept, dropped) × 2 (slashes as sent,
// merged) × 2 (case as sent, folded).
const maxReadings = 24

// Reading is one way an app may read a request path. Folded readings are lower case
// and are matched against lower-cased rule paths (a case-insensitive router).
type Reading struct {
	Path   string
	Folded bool
}

// Readings returns the distinct ways an app may read path (the path part of a target
// that passed CheckPath), the path as sent first. A folded reading is included when
// folding changes the path, or always when foldAlways is set (some rule path has upper
// case, so even a lower-case request may fall under it in a case-insensitive router).
func Readings(path string, foldAlways bool) []Reading {
	var buf [maxReadings]Reading
	return appendReadings(buf[:0], path, foldAlways)
}

func appendReadings(out []Reading, path string, foldAlways bool) []Reading {
	add := func(r Reading) {
		for _, have := range out {
			if have == r {
				return
			}
		}
		out = append(out, r)
	}
	add(Reading{Path: path})
	if strings.IndexByte(path, '%') >= 0 {
		decoded := decode(path)
		add(Reading{Path: decoded})
		// A server that decodes before it parses (nginx's proxy_pass with a URI, a
		// rewrite) reads an encoded "?" or "#" as the end of the path.
		if end := strings.IndexAny(decoded, "?#"); end > 0 {
			add(Reading{Path: decoded[:end]})
		}
	}
	for i := range len(out) {
		if strings.IndexByte(out[i].Path, ';') >= 0 {
			add(Reading{Path: dropParameters(out[i].Path)})
		}
	}
	for i := range len(out) {
		if strings.Contains(out[i].Path, "//") {
			add(Reading{Path: mergeSlashes(out[i].Path)})
		}
	}
	for i := range len(out) {
		if lower := strings.ToLower(out[i].Path); lower != out[i].Path || foldAlways {
			add(Reading{Path: lower, Folded: true})
		}
	}
	return out
}

// plainPath reports whether a path has only one reading: no %-escape, no ";", no
// repeated slash and no upper-case letter (ASCII; any other byte takes the full way).
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%' || c == ';' || c >= 'A' && c <= 'Z' || c >= 0x80:
			return false
		case c == '/' && i+1 < len(p) && p[i+1] == '/':
			return false
		}
	}
	return true
}

// decode percent-decodes a path that passed CheckPath (every escape is valid).
func decode(p string) string {
	if strings.IndexByte(p, '%') < 0 {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && unhex(p[i+1]) >= 0 && unhex(p[i+2]) >= 0 {
			b = append(b, byte(unhex(p[i+1])<<4|unhex(p[i+2])))
			i += 2
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// dropParameters removes ";name=value" from every segment, as Tomcat, Jetty and
// Spring do before routing.
func dropParameters(p string) string {
	var b strings.Builder
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		seg, _, _ = strings.Cut(seg, ";")
		b.WriteString(seg)
	}
	return b.String()
}

// mergeSlashes collapses runs of "/", as nginx, path.Clean and many routers do.
func mergeSlashes(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return p
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
