package oidc

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// formPostScript submits the page's form as soon as it loads; the page's CSP allows
// this script alone, by its hash.
const formPostScript = `document.forms[0].submit()`

var formPostCSP = func() string {
	sum := sha256.Sum256([]byte(formPostScript))
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; frame-ancestors 'none'"
}()

// formPostPage posts the authorization response to the app. With JavaScript off the
// button does what the script would.
var formPostPage = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Signing in…</title></head>
<body><form method="post" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<p>Returning you to the app…</p>
<button type="submit">Continue</button>
</form>
<script>` + formPostScript + `</script>
</body></html>
`))

type formField struct{ Name, Value string }

// writeFormPost answers with the page that posts params to redirect, a URI already
// matched against the client's registered ones (so a custom scheme is trusted here).
func writeFormPost(w http.ResponseWriter, redirect string, params url.Values) {
	var fields []formField
	for _, name := range slices.Sorted(maps.Keys(params)) {
		fields = append(fields, formField{name, params.Get(name)})
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", formPostCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = formPostPage.Execute(w, struct {
		Action template.URL
		Fields []formField
	}{template.URL(strings.TrimSpace(redirect)), fields})
}
