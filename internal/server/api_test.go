package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"golang.org/x/oauth2"

	"github.com/gatehouse-id/gatehouse/internal/api"
	"github.com/gatehouse-id/gatehouse/internal/identity"
)

// apiClient calls the admin API over HTTP and checks every answer against the
// OpenAPI document Gatehouse serves.
type apiClient struct {
	h      *harness
	router routers.Router
}

func newAPIClient(t *testing.T, h *harness) *apiClient {
	t.Helper()
	resp, body := h.do(req{path: "/api/v1/openapi.json"})
	if resp.StatusCode != http.StatusOK || !bytes.Equal([]byte(body), api.OpenAPI) {
		t.Fatalf("/api/v1/openapi.json: %d", resp.StatusCode)
	}
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: h.srv.URL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{h: h, router: router}
}

// call sends one request and returns the status, the decoded body and the headers,
// failing the test if the answer is not what the document says.
func (c *apiClient) call(method, path, token string, body any, header ...string) (int, map[string]any, http.Header) {
	t := c.h.t
	t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	r, _ := http.NewRequest(method, c.h.srv.URL+path, rd)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	route, params, err := c.router.FindRoute(r)
	if err == nil {
		input := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: resp.StatusCode, Header: resp.Header, Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		input.SetBodyBytes(raw)
		if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
			t.Errorf("%s %s: the answer (%d) does not match the OpenAPI document: %v\n%s", method, path, resp.StatusCode, err, raw)
		}
	} else if resp.StatusCode != http.StatusNotFound {
		t.Errorf("%s %s is served (%d) but not in the OpenAPI document", method, path, resp.StatusCode)
	}
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s %s: an error answered as %q, not problem details", method, path, resp.Header.Get("Content-Type"))
	}
	out := map[string]any{}
	if len(raw) > 0 {
		json.Unmarshal(raw, &out)
	}
	return resp.StatusCode, out, resp.Header
}

func (c *apiClient) token(name string, scopes []string, lifetime time.Duration) string {
	c.h.t.Helper()
	value, _, err := c.h.app.Directory().CreateAPIToken(context.Background(), "cli", nil, name, scopes, lifetime)
	if err != nil {
		c.h.t.Fatal(err)
	}
	return value
}

// The admin API end to end on each database: tokens and their scopes, users with
// paging, ETags and If-Match, groups and members, sessions, tokens made through the API,
// and every refusal as problem details naming what is wrong; every answer is checked
// against the OpenAPI document.
func TestAdminAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("root", "Home Server Admins")
		c := newAPIClient(t, h)
		admin := c.token("terraform", identity.APIScopes, identity.DefaultAPITokenLifetime)
		reader := c.token("homepage widget", nil, identity.DefaultAPITokenLifetime)

		// Who may ask.
		if status, p, hd := c.call("GET", "/api/v1/users", "", nil); status != 401 || hd.Get("WWW-Authenticate") == "" || !strings.Contains(p["detail"].(string), "Bearer") {
			t.Fatalf("no token: %d %v", status, p)
		}
		if status, _, _ := c.call("GET", "/api/v1/users", "gatehouse_not-a-token", nil); status != 401 {
			t.Fatalf("an unknown token: %d", status)
		}
		if status, p, _ := c.call("POST", "/api/v1/users", reader, map[string]any{"username": "x"}); status != 403 || !strings.Contains(p["detail"].(string), "users:write") {
			t.Fatalf("a read-only token writing: %d %v", status, p)
		}

		// Users: create, refusals that name the field, paging.
		status, u, hd := c.call("POST", "/api/v1/users", admin, map[string]any{"username": "alice", "email": "alice@example.com",
			"display_name": "Alice", "groups": []string{"Allow Login Users"}, "password": "correct horse alice"})
		if status != 201 || hd.Get("Location") != "/api/v1/users/alice" || hd.Get("ETag") == "" || u["email"] != "alice@example.com" {
			t.Fatalf("creating alice: %d %v %v", status, u, hd)
		}
		for _, bad := range []struct {
			body        any
			status      int
			field, says string
		}{
			{map[string]any{"username": "bad name!"}, 422, "username", ""},
			{map[string]any{"username": "bob", "emial": "typo"}, 400, "emial", "unknown field"},
			{`{"username": "bob"`, 400, "body", ""},
			{`{"username": "bob"} {}`, 400, "body", "nothing after"},
			{map[string]any{"username": "ALICE"}, 409, "", "already exists"},
			{map[string]any{"username": "bob", "groups": []string{"Nope"}}, 404, "", "Nope"},
		} {
			status, p, _ := c.call("POST", "/api/v1/users", admin, bad.body)
			fields, _ := p["errors"].([]any)
			named := bad.field == "" || (len(fields) == 1 && fields[0].(map[string]any)["field"] == bad.field)
			if status != bad.status || !named || !strings.Contains(p["detail"].(string), bad.says) {
				t.Errorf("creating %v: %d %v, want %d naming %q", bad.body, status, p, bad.status, bad.field)
			}
		}
		if _, err := h.app.Directory().AddUser(context.Background(), "test", identityUser("bob")); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"carol", "dave", "erin"} {
			c.call("POST", "/api/v1/users", admin, map[string]any{"username": name})
		}
		var seen []string
		next := ""
		for pages := 0; ; pages++ {
			path := "/api/v1/users?limit=2"
			if next != "" {
				path += "&cursor=" + url.QueryEscape(next)
			}
			status, page, _ := c.call("GET", path, reader, nil)
			if status != 200 || pages > 5 {
				t.Fatalf("page %d: %d %v", pages, status, page)
			}
			for _, it := range page["items"].([]any) {
				seen = append(seen, it.(map[string]any)["username"].(string))
			}
			next, _ = page["next_cursor"].(string)
			if next == "" {
				break
			}
		}
		if strings.Join(seen, ",") != "alice,bob,carol,dave,erin,root" {
			t.Fatalf("paged through %v", seen)
		}
		if status, p, _ := c.call("GET", "/api/v1/users?limit=0", reader, nil); status != 422 || p["errors"] == nil {
			t.Fatalf("limit=0: %d", status)
		}
		if status, _, _ := c.call("GET", "/api/v1/users/nobody", reader, nil); status != 404 {
			t.Fatalf("an unknown user: %d", status)
		}

		// If-Match: a change to a version the caller did not read is refused.
		_, _, hd = c.call("GET", "/api/v1/users/alice", reader, nil)
		seenTag := hd.Get("ETag")
		if status, u, hd := c.call("PATCH", "/api/v1/users/alice", admin, map[string]any{"display_name": "Alice L."}, "If-Match", seenTag); status != 200 || u["display_name"] != "Alice L." || hd.Get("ETag") == seenTag {
			t.Fatalf("a change with the current ETag: %d %v", status, u)
		}
		if status, p, _ := c.call("PATCH", "/api/v1/users/alice", admin, map[string]any{"disabled": true}, "If-Match", seenTag); status != 412 {
			t.Fatalf("a change with a stale ETag: %d %v", status, p)
		}
		if u, _ := h.app.Store.UserByUsername(context.Background(), "alice"); u.Disabled {
			t.Fatal("a refused change was made")
		}
		if status, p, _ := c.call("PATCH", "/api/v1/users/root", admin, map[string]any{"disabled": true}); status != 409 || !strings.Contains(p["detail"].(string), "admin") {
			t.Fatalf("disabling the last admin: %d %v", status, p)
		}

		// Groups and members, direct and effective.
		if status, p, _ := c.call("PUT", "/api/v1/groups/Home%20Server%20Admins/members/alice", admin, nil); status != 204 {
			t.Fatalf("adding a member: %d %v", status, p)
		}
		c.call("PUT", "/api/v1/groups/Home%20Server%20Admins/members/alice", admin, nil) // again: still done
		_, m, _ := c.call("GET", "/api/v1/groups/Home%20Server%20Admins/members", reader, nil)
		if items := m["items"].([]any); len(items) != 2 {
			t.Fatalf("members: %v", m)
		}
		if status, _, _ := c.call("GET", "/api/v1/groups", reader, nil); status != 200 {
			t.Fatalf("groups: %d", status)
		}
		if status, _, _ := c.call("DELETE", "/api/v1/groups/Home%20Server%20Admins/members/alice", admin, nil); status != 204 {
			t.Fatalf("removing a member: %d", status)
		}

		// Sessions: listed, and revoked on every replica.
		_, sess := h.login("alice", "correct horse alice", "")
		status, list, _ := c.call("GET", "/api/v1/sessions?user=alice", admin, nil)
		items, _ := list["items"].([]any)
		if status != 200 || len(items) != 1 {
			t.Fatalf("alice's sessions: %d %v", status, list)
		}
		if status, _, _ := c.call("DELETE", "/api/v1/sessions/"+items[0].(map[string]any)["id"].(string), admin, nil); status != 204 {
			t.Fatalf("revoking: %d", status)
		}
		if resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik("https://app.example.com/"), cookies: []*http.Cookie{sess}}); resp.StatusCode == http.StatusOK {
			t.Fatal("a revoked session still passes forward auth")
		}

		// Tokens made through the API hold no more than their maker.
		limited := c.token("invite script", []string{"users:read", "tokens:write"}, identity.DefaultAPITokenLifetime)
		if status, p, _ := c.call("POST", "/api/v1/tokens", limited, map[string]any{"name": "escalated", "scopes": []string{"users:write"}}); status != 403 {
			t.Fatalf("a token granting more than it holds: %d %v", status, p)
		}
		status, made, _ := c.call("POST", "/api/v1/tokens", limited, map[string]any{"name": "reader too", "scopes": []string{"users:read"}, "expires_in_days": 7})
		value, _ := made["token"].(string)
		if status != 201 || !strings.HasPrefix(value, identity.APITokenPrefix) || made["expires_at"] == nil {
			t.Fatalf("making a token: %d %v", status, made)
		}
		if status, _, _ := c.call("GET", "/api/v1/users/alice", value, nil); status != 200 {
			t.Fatalf("the new token: %d", status)
		}
		_, listed, _ := c.call("GET", "/api/v1/tokens", admin, nil)
		if strings.Contains(fmt.Sprint(listed), value) {
			t.Fatal("a token listing shows a token's value")
		}
		if status, _, _ := c.call("DELETE", "/api/v1/tokens/"+made["id"].(string), admin, nil); status != 204 {
			t.Fatalf("revoking a token: %d", status)
		}
		if status, _, _ := c.call("GET", "/api/v1/users/alice", value, nil); status != 401 {
			t.Fatalf("a revoked token: %d", status)
		}

		// An expired token, and the rest of the API's edges.
		brief := c.token("brief", nil, time.Millisecond)
		waitFor(t, "the brief token to expire", func() bool {
			status, _, _ := c.call("GET", "/api/v1/users", brief, nil)
			return status == 401
		})
		if status, _, _ := c.call("GET", "/api/v1/nothing-here", admin, nil); status != 404 {
			t.Fatalf("an unknown endpoint: %d", status)
		}
		if status, _, _ := c.call("DELETE", "/api/v1/users/erin", admin, nil); status != 204 {
			t.Fatalf("deleting a user: %d", status)
		}
		waitFor(t, "the API's changes in the log under the token's name", func() bool {
			return strings.Contains(h.logText(), `"actor":"token:terraform"`)
		})
	})
}

// Wrong tokens are throttled per address like wrong passwords.
func TestAdminAPIThrottlesWrongTokens(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	c := newAPIClient(t, h)
	good := c.token("ops", nil, identity.DefaultAPITokenLifetime)
	throttled := false
	for range 30 {
		if status, _, hd := c.call("GET", "/api/v1/users", "gatehouse_guess", nil); status == 429 && hd.Get("Retry-After") != "" {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatal("30 wrong tokens from one address were not throttled")
	}
	if status, _, _ := c.call("GET", "/api/v1/users", good, nil); status != 429 {
		t.Fatalf("once throttled, the address waits even with a good token: %d", status)
	}
}

// Credentials are listed and removed by exact id (never the last way to sign in), and
// the audit log is read with exact filters and paging.
func TestAdminAPICredentialsAndAudit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		h.addUser("root", "Home Server Admins")
		h.addUser("fay", "Allow Login Users")
		c := newAPIClient(t, h)
		admin := c.token("ops", identity.APIScopes, identity.DefaultAPITokenLifetime)
		status, creds, _ := c.call("GET", "/api/v1/users/fay/credentials", admin, nil)
		items, _ := creds["items"].([]any)
		if status != 200 || len(items) != 1 || items[0].(map[string]any)["id"] != "password" {
			t.Fatalf("fay's credentials: %d %v", status, creds)
		}
		if status, p, _ := c.call("DELETE", "/api/v1/users/fay/credentials/password", admin, nil); status != 409 || !strings.Contains(p["detail"].(string), "only way") {
			t.Fatalf("removing the last credential: %d %v", status, p)
		}
		if status, _, _ := c.call("DELETE", "/api/v1/users/fay/credentials/pass", admin, nil); status != 404 {
			t.Fatalf("a credential id that is only a prefix: %d", status)
		}

		for range 3 {
			c.call("PATCH", "/api/v1/users/fay", admin, map[string]any{"disabled": true})
			c.call("PATCH", "/api/v1/users/fay", admin, map[string]any{"disabled": false})
		}
		var kinds []string
		next := ""
		for pages := 0; pages < 10; pages++ {
			path := "/api/v1/audit?limit=2&target=fay&actor=token%3Aops"
			if next != "" {
				path += "&cursor=" + url.QueryEscape(next)
			}
			status, page, _ := c.call("GET", path, admin, nil)
			if status != 200 {
				t.Fatalf("audit page: %d %v", status, page)
			}
			for _, it := range page["items"].([]any) {
				kinds = append(kinds, it.(map[string]any)["kind"].(string))
			}
			if next, _ = page["next_cursor"].(string); next == "" {
				break
			}
		}
		if strings.Join(kinds, ",") != "user.enabled,user.disabled,user.enabled,user.disabled,user.enabled,user.disabled" {
			t.Fatalf("fay's audit events by the token: %v", kinds)
		}
		if status, _, _ := c.call("GET", "/api/v1/audit?kind=user.created&since=2000-01-01T00:00:00Z", admin, nil); status != 200 {
			t.Fatalf("audit by kind and time: %d", status)
		}
		if status, p, _ := c.call("GET", "/api/v1/audit?since=yesterday", admin, nil); status != 422 || p["errors"] == nil {
			t.Fatalf("a bad time: %d %v", status, p)
		}
		reader := c.token("reader", nil, identity.DefaultAPITokenLifetime)
		if status, _, _ := c.call("GET", "/api/v1/audit", reader, nil); status != 403 {
			t.Fatalf("the audit log without audit:read: %d", status)
		}
	})
}

// A create sent again with the same Idempotency-Key (a retry after a lost answer) gets
// the first answer, not a conflict; the key with another request is refused.
func TestAdminAPIIdempotentCreate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		h := start(t, testConfig(dbURL))
		c := newAPIClient(t, h)
		admin := c.token("invites", identity.APIScopes, identity.DefaultAPITokenLifetime)
		body := map[string]any{"username": "gran", "groups": []string{"Allow Login Users"}}
		status, first, hd := c.call("POST", "/api/v1/users", admin, body, "Idempotency-Key", "4f9e1c2a-gran")
		if status != 201 {
			t.Fatalf("first create: %d %v", status, first)
		}
		status, again, hd2 := c.call("POST", "/api/v1/users", admin, body, "Idempotency-Key", "4f9e1c2a-gran")
		if status != 201 || again["id"] != first["id"] || hd2.Get("Location") != hd.Get("Location") || hd2.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("the repeat: %d %v", status, again)
		}
		if status, p, _ := c.call("POST", "/api/v1/users", admin, map[string]any{"username": "grandpa"}, "Idempotency-Key", "4f9e1c2a-gran"); status != 422 {
			t.Fatalf("the key with another request: %d %v", status, p)
		}
		if status, _, _ := c.call("POST", "/api/v1/users", admin, body); status != 409 {
			t.Fatalf("the same create without a key: %d, want 409", status)
		}
		// A refused create frees its key: the corrected retry may use it.
		if status, _, _ := c.call("POST", "/api/v1/users", admin, map[string]any{"username": "bad name!"}, "Idempotency-Key", "k2"); status != 422 {
			t.Fatalf("a refused create: %d", status)
		}
		if status, _, _ := c.call("POST", "/api/v1/users", admin, map[string]any{"username": "bad name!"}, "Idempotency-Key", "k2"); status != 422 {
			t.Fatalf("the refused create again: %d", status)
		}
		users, _ := h.app.Store.ListUsers(context.Background())
		if len(users) != 1 {
			t.Fatalf("%d users after repeats, want 1", len(users))
		}
	})
}

// App passwords and OpenID Connect grants through the API: an app password made for
// a person passes forward auth and stops once deleted by id; refusals name the field;
// a grant an app holds is listed with its client and scopes, and deleting it ends
// the app's access and refresh tokens at once.
func TestAdminAPIAppPasswordsAndGrants(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dbURL string) {
		cfg := oidcConfig(dbURL)
		cfg.Access.Rules = appPasswordConfig(dbURL).Access.Rules
		h := startSelf(t, cfg)
		h.addUser("alice", "Home Server Admins")
		h.addUser("fay", "Allow Login Users")
		c := newAPIClient(t, h)
		admin := c.token("ops", identity.APIScopes, identity.DefaultAPITokenLifetime)

		status, made, hdr := c.call("POST", "/api/v1/users/fay/app-passwords", admin, map[string]any{"name": "phone", "hosts": []string{"dav.example.com"}})
		secret, _ := made["password"].(string)
		if status != 201 || !strings.HasPrefix(secret, identity.AppPasswordPrefix) || hdr.Get("Location") == "" {
			t.Fatalf("creating an app password: %d %v", status, made)
		}
		if resp, _ := h.checkWith("https://dav.example.com/", basic("fay", secret)); resp.StatusCode != http.StatusOK {
			t.Fatalf("the app password from the API at forward auth: %d", resp.StatusCode)
		}
		for what, c2 := range map[string]struct {
			body   any
			status int
			field  string
		}{
			"no hosts":      {map[string]any{"name": "laptop", "hosts": []string{}}, 422, "hosts"},
			"a URL as host": {map[string]any{"name": "laptop", "hosts": []string{"https://dav.example.com"}}, 422, "hosts"},
			"no name":       {map[string]any{"name": "", "hosts": []string{"dav.example.com"}}, 422, "name"},
			"a name in use": {map[string]any{"name": "phone", "hosts": []string{"dav.example.com"}}, 409, ""},
			"unknown field": {map[string]any{"name": "laptop", "hosts": []string{"dav.example.com"}, "scopes": "all"}, 400, "scopes"},
		} {
			status, p, _ := c.call("POST", "/api/v1/users/fay/app-passwords", admin, c2.body)
			if status != c2.status || (c2.field != "" && !strings.Contains(fmt.Sprint(p["errors"]), c2.field)) {
				t.Errorf("%s: %d %v, want %d naming %q", what, status, p, c2.status, c2.field)
			}
		}
		status, list, _ := c.call("GET", "/api/v1/users/fay/app-passwords", admin, nil)
		items, _ := list["items"].([]any)
		if status != 200 || len(items) != 1 || items[0].(map[string]any)["password"] != nil {
			t.Fatalf("listing app passwords: %d %v", status, list)
		}
		id := items[0].(map[string]any)["id"].(string)
		if status, _, _ := c.call("DELETE", "/api/v1/users/fay/app-passwords/phone", admin, nil); status != 404 {
			t.Errorf("deleting by name, not id: %d, want 404", status)
		}
		if status, _, _ := c.call("DELETE", "/api/v1/users/alice/app-passwords/"+id, admin, nil); status != 404 {
			t.Errorf("deleting fay's app password as alice's: %d, want 404", status)
		}
		reader := c.token("reader", []string{"credentials:read"}, identity.DefaultAPITokenLifetime)
		if status, _, _ := c.call("DELETE", "/api/v1/users/fay/app-passwords/"+id, reader, nil); status != 403 {
			t.Errorf("deleting without credentials:write: %d, want 403", status)
		}
		if status, _, _ := c.call("DELETE", "/api/v1/users/fay/app-passwords/"+id, admin, nil); status != 204 {
			t.Fatalf("deleting the app password: %d", status)
		}
		if resp, _ := h.checkWith("https://dav.example.com/", basic("fay", secret)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a deleted app password at forward auth: %d, want 401", resp.StatusCode)
		}

		// A grant: Grafana signs alice in with offline_access.
		ctx := context.Background()
		provider, err := gooidc.NewProvider(ctx, h.srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, sess := h.login("alice", "correct horse alice", "")
		o := &oidcHarness{harness: h, provider: provider, ctx: ctx}
		conf := o.grafana()
		tok := o.signIn(conf, sess)
		status, grants, _ := c.call("GET", "/api/v1/users/alice/grants", admin, nil)
		gi, _ := grants["items"].([]any)
		if status != 200 || len(gi) != 1 || gi[0].(map[string]any)["client_id"] != "grafana" || gi[0].(map[string]any)["offline"] != true {
			t.Fatalf("alice's grants: %d %v", status, grants)
		}
		grant := gi[0].(map[string]any)["id"].(string)
		if status, _, _ := c.call("DELETE", "/api/v1/users/fay/grants/"+grant, admin, nil); status != 404 {
			t.Errorf("revoking alice's grant as fay's: %d, want 404", status)
		}
		if status, _, _ := c.call("DELETE", "/api/v1/users/alice/grants/"+grant, admin, nil); status != 204 {
			t.Fatalf("revoking the grant: %d", status)
		}
		if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
			t.Error("the access token of a revoked grant still works at userinfo")
		}
		if _, err := o.refreshes(conf, tok); oauthErrorCode(err) != "invalid_grant" {
			t.Errorf("refreshing a revoked grant: %v, want invalid_grant", err)
		}
		if status, grants, _ := c.call("GET", "/api/v1/users/alice/grants", admin, nil); status != 200 || len(grants["items"].([]any)) != 0 {
			t.Errorf("grants after revoking: %d %v", status, grants)
		}
	})
}

// The decision explorer answers what forward auth answers: for people signed in and
// nobody, on the config's rules, its result is the forward-auth endpoint's (checked
// on the endpoint itself with a real session), and a URL the endpoint refuses to
// decide on is refused here, naming why.
func TestAdminAPIExplain(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	h.addUser("root", "Home Server Admins")
	h.addUser("fay", "Allow Login Users")
	h.addUser("gus")
	c := newAPIClient(t, h)
	reader := c.token("reader", []string{"users:read"}, identity.DefaultAPITokenLifetime)
	sessions := map[string]*http.Cookie{"": nil}
	for _, name := range []string{"root", "fay", "gus"} {
		_, sessions[name] = h.login(name, "correct horse "+name, "")
	}
	for _, target := range []string{"https://grafana.example.com/d/1", "https://immich.example.com/api/assets", "https://immich.example.com/API/assets",
		"https://immich.example.com/photos", "https://other.example.org/", "https://app.example.com/a;b/c"} {
		for who, cookie := range sessions {
			status, report, _ := c.call("GET", "/api/v1/access/explain?"+url.Values{"username": {who}, "url": {target}}.Encode(), reader, nil)
			if status != 200 {
				t.Fatalf("explain %s %s: %d %v", who, target, status, report)
			}
			var cookies []*http.Cookie
			if cookie != nil {
				cookies = []*http.Cookie{cookie}
			}
			resp, _ := h.do(req{path: "/api/authz/forward-auth", header: traefik(target), cookies: cookies})
			want := map[string]int{"allow": 200, "login": 302, "deny": 403}[report["result"].(string)]
			if resp.StatusCode != want {
				t.Errorf("%q opening %s: explain says %v (%v), forward auth answers %d", who, target, report["result"], report["reason"], resp.StatusCode)
			}
		}
	}
	_, report, _ := c.call("GET", "/api/v1/access/explain?username=gus&url="+url.QueryEscape("https://grafana.example.com/"), reader, nil)
	if report["result"] != "deny" || !strings.Contains(fmt.Sprint(report["passing"]), "Home Server Admins") ||
		!strings.Contains(report["outcome"].(string), "gus may not open grafana.example.com") {
		t.Errorf("explain for a person refused: %v", report)
	}
	for what, c2 := range map[string]struct {
		query  string
		status int
	}{
		"an encoded dot":      {"username=fay&url=" + url.QueryEscape("https://app.example.com/a/%2e%2e/b"), 422},
		"not an absolute URL": {"username=fay&url=app.example.com/", 422},
		"no URL":              {"username=fay", 422},
		"a bad two_factor":    {"username=fay&two_factor=maybe&url=" + url.QueryEscape("https://app.example.com/"), 422},
		"nobody by that name": {"username=nobody&url=" + url.QueryEscape("https://app.example.com/"), 404},
	} {
		if status, p, _ := c.call("GET", "/api/v1/access/explain?"+c2.query, reader, nil); status != c2.status {
			t.Errorf("%s: %d %v, want %d", what, status, p, c2.status)
		}
	}
	if status, _, _ := c.call("GET", "/api/v1/access/explain?url="+url.QueryEscape("https://app.example.com/"), c.token("groups", []string{"groups:read"}, identity.DefaultAPITokenLifetime), nil); status != 403 {
		t.Errorf("explain without users:read: %d, want 403", status)
	}
}

// A sign-in link from the API signs its person in once, is shown in its answer only,
// and is refused for a disabled person with the reason.
func TestAdminAPISignInLink(t *testing.T) {
	h := start(t, testConfig(backends[0].url(t)))
	c := newAPIClient(t, h)
	admin := c.token("ops", identity.APIScopes, identity.DefaultAPITokenLifetime)
	if _, err := h.app.Directory().AddUser(context.Background(), "test", identity.NewUser{Username: "kim"}); err != nil {
		t.Fatal(err)
	}
	status, made, _ := c.call("POST", "/api/v1/users/kim/signin-link", admin, nil)
	link, _ := made["url"].(string)
	if status != 201 || !strings.HasPrefix(link, "https://auth.example.com/signin-link?token=") || made["expires_at"] == nil {
		t.Fatalf("making a link: %d %v", status, made)
	}
	u, _ := url.Parse(link)
	if resp, body := h.do(req{path: u.RequestURI()}); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign in as kim") {
		t.Fatalf("opening the API's link: %d", resp.StatusCode)
	}
	if status, p, _ := c.call("POST", "/api/v1/users/nobody/signin-link", admin, nil); status != 404 {
		t.Errorf("a link for nobody: %d %v", status, p)
	}
	if err := h.app.Directory().SetDisabled(context.Background(), "test", "kim", true); err != nil {
		t.Fatal(err)
	}
	if status, p, _ := c.call("POST", "/api/v1/users/kim/signin-link", admin, nil); status != 422 || !strings.Contains(fmt.Sprint(p["detail"]), "is disabled") {
		t.Errorf("a link for a disabled person: %d %v", status, p)
	}
	reader := c.token("reader", []string{"credentials:read"}, identity.DefaultAPITokenLifetime)
	if status, _, _ := c.call("POST", "/api/v1/users/kim/signin-link", reader, nil); status != 403 {
		t.Errorf("a link without credentials:write: %d", status)
	}
}
