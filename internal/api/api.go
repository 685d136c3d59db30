// Package api owns the admin HTTP API at /api/v1: JSON over the same Directory the
// CLI and the pages use for every change, and the store for reads. Callers are
// scoped API tokens; errors are RFC 9457 problem details from one mapping of coded
// errors to statuses; the contract is openapi.json (OpenAPI 3.1), embedded, served at
// /api/v1/openapi.json and checked against every response in the tests.
//
// Lookups are by exact name or id, never by search; listings page with cursors; a
// user's If-Match must be the ETag of the version the caller read.
package api

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/access"
	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// OpenAPI is the API's contract.
//
//go:embed openapi.json
var OpenAPI []byte

// Handler serves /api/v1.
type Handler struct {
	Store     Store
	Directory *identity.Directory
	// Policy is the access rules in force (they change on reload).
	Policy    func() *access.Policy
	Regulator *authn.Regulator
	// ClientAddress is the caller's address, believing only trusted proxies.
	ClientAddress func(*http.Request) string
	// PublicURL is server.public_url, where sign-in links point.
	PublicURL func() string
	// Provider says whether login_providers has one with this id.
	Provider func(id string) bool
	Log      *slog.Logger
}

// Store is what the API reads; every change goes through the Directory. The API's own
// bookkeeping is the one thing it writes: its tokens' last use and idempotency keys.
type Store interface {
	store.UserReader
	store.GroupReader
	store.SessionReader
	store.EventReader
	store.APITokens
}

// Routes registers the API on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(OpenAPI)
	})
	for _, r := range []struct {
		pattern, scope string
		fn             func(http.ResponseWriter, *http.Request, caller)
	}{
		{"GET /api/v1/users", "users:read", h.listUsers},
		{"POST /api/v1/users", "users:write", h.createUser},
		{"GET /api/v1/users/{username}", "users:read", h.getUser},
		{"PATCH /api/v1/users/{username}", "users:write", h.patchUser},
		{"DELETE /api/v1/users/{username}", "users:write", h.deleteUser},
		{"GET /api/v1/users/{username}/credentials", "credentials:read", h.listCredentials},
		{"DELETE /api/v1/users/{username}/credentials/{id}", "credentials:write", h.removeCredential},
		{"PUT /api/v1/users/{username}/linked-accounts/{provider}/{subject...}", "credentials:write", h.linkAccount},
		{"GET /api/v1/users/{username}/app-passwords", "credentials:read", h.listAppPasswords},
		{"POST /api/v1/users/{username}/app-passwords", "credentials:write", h.createAppPassword},
		{"DELETE /api/v1/users/{username}/app-passwords/{id}", "credentials:write", h.deleteAppPassword},
		{"POST /api/v1/users/{username}/signin-link", "credentials:write", h.createSignInLink},
		{"GET /api/v1/users/{username}/grants", "sessions:read", h.listGrants},
		{"DELETE /api/v1/users/{username}/grants/{id}", "sessions:revoke", h.revokeGrant},
		{"GET /api/v1/groups", "groups:read", h.listGroups},
		{"GET /api/v1/groups/{name}/members", "groups:read", h.groupMembers},
		{"PUT /api/v1/groups/{name}/members/{username}", "groups:write", h.addMember},
		{"DELETE /api/v1/groups/{name}/members/{username}", "groups:write", h.removeMember},
		{"GET /api/v1/sessions", "sessions:read", h.listSessions},
		{"DELETE /api/v1/sessions/{id}", "sessions:revoke", h.revokeSession},
		{"GET /api/v1/audit", "audit:read", h.listEvents},
		{"GET /api/v1/tokens", "tokens:read", h.listTokens},
		{"POST /api/v1/tokens", "tokens:write", h.createToken},
		{"DELETE /api/v1/tokens/{id}", "tokens:write", h.deleteToken},
		{"GET /api/v1/access/explain", "users:read", h.explain},
		{"GET /api/v1/invitations", "users:read", h.listInvitations},
		{"POST /api/v1/invitations", "users:write", h.createInvitation},
		{"DELETE /api/v1/invitations/{id}", "users:write", h.revokeInvitation},
	} {
		mux.HandleFunc(r.pattern, h.authorized(r.scope, r.fn))
	}
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "No such endpoint", fmt.Sprintf("%s %s is not part of the API: see /api/v1/openapi.json", r.Method, r.URL.Path))
	})
}

// caller is who a request comes from: a token and what it may do.
type caller struct {
	token  store.APIToken
	scopes []string
}

func (c caller) actor() string { return "token:" + c.token.Name }

// authorized checks the bearer token and its scope before fn runs.
func (h *Handler) authorized(scope string, fn func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, value, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		value = strings.TrimSpace(value)
		if !strings.EqualFold(scheme, "Bearer") || value == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
			problem(w, http.StatusUnauthorized, "API token needed", "send an API token: Authorization: Bearer TOKEN (make one with `gatehouse token create NAME --scope …`)")
			return
		}
		ctx := r.Context()
		limits := authn.APITokenLimits(authn.Network(h.ClientAddress(r)))
		if wait, err := h.Regulator.Wait(ctx, limits...); err != nil {
			h.failed(w, err)
			return
		} else if wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			problem(w, http.StatusTooManyRequests, "Too many wrong tokens", "this address sent too many unknown API tokens; wait and check the token")
			return
		}
		t, err := h.Store.APITokenByHash(ctx, identity.HashAPIToken(value))
		if errors.Is(err, store.ErrNotFound) {
			if err := h.Regulator.Fail(ctx, limits...); err != nil {
				h.failed(w, err)
				return
			}
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.failed(w, err)
			return
		}
		if err != nil || (!t.ExpiresAt.IsZero() && !time.Now().Before(t.ExpiresAt)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
			problem(w, http.StatusUnauthorized, "API token not valid", "the token is unknown, revoked or expired: make a new one with `gatehouse token create`")
			return
		}
		c := caller{token: t, scopes: strings.Fields(t.Scopes)}
		if !slices.Contains(c.scopes, scope) {
			problem(w, http.StatusForbidden, "Scope missing", fmt.Sprintf("token %q lacks the scope %s that %s needs", t.Name, scope, r.Pattern))
			return
		}
		if err := h.Store.TouchAPIToken(ctx, t.ID, time.Now(), h.ClientAddress(r)); err != nil {
			h.Log.Warn("recording an API token's use failed", "token", t.Name, "error", err.Error())
		}
		fn(w, r, c)
	}
}

// Problem is an RFC 9457 problem details answer.
type Problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail"`
	Errors []FieldProblem `json:"errors,omitempty"`
}

// FieldProblem names one field of a request body that is wrong, and how.
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func problem(w http.ResponseWriter, status int, title, detail string, fields ...FieldProblem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: title, Status: status, Detail: detail, Errors: fields})
}

// fail answers err with the status its code maps to: the one mapping of the API.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var se *http.MaxBytesError
	var bad invalid
	var unreadable malformed
	var refused *identity.FieldError
	switch {
	case errors.Is(err, store.ErrNotFound):
		problem(w, http.StatusNotFound, "Not found", err.Error())
	case errors.Is(err, identity.ErrStale):
		problem(w, http.StatusPreconditionFailed, "Changed since read", err.Error()+"; GET it again for its new ETag and decide again")
	case errors.Is(err, store.ErrConflict), errors.Is(err, identity.ErrLockout), errors.Is(err, identity.ErrLastCredential), errors.Is(err, identity.ErrLinkedElsewhere):
		problem(w, http.StatusConflict, "Refused", err.Error())
	case errors.Is(err, identity.ErrScopeNotHeld):
		problem(w, http.StatusForbidden, "Scope not held", err.Error())
	case errors.As(err, &se):
		problem(w, http.StatusRequestEntityTooLarge, "Body too large", fmt.Sprintf("send at most %d bytes", se.Limit))
	case errors.As(err, &unreadable):
		problem(w, http.StatusBadRequest, "Unreadable request", unreadable.Error(), FieldProblem(unreadable))
	case errors.As(err, &bad):
		problem(w, http.StatusUnprocessableEntity, "Invalid request", bad.Error(), FieldProblem(bad))
	case errors.As(err, &refused):
		problem(w, http.StatusUnprocessableEntity, "Invalid request", refused.Field+": "+refused.Detail, FieldProblem{refused.Field, refused.Detail})
	default:
		h.failed(w, err)
	}
}

// failed answers an error that is Gatehouse's, not the caller's.
func (h *Handler) failed(w http.ResponseWriter, err error) {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		problem(w, http.StatusServiceUnavailable, "Database unavailable", "Gatehouse cannot reach its database right now; nothing was changed; try again shortly")
		return
	}
	h.Log.Error("admin API request failed", "error", err.Error())
	problem(w, http.StatusServiceUnavailable, "Request failed", "Gatehouse could not complete this request (see its log); nothing was changed; try again shortly")
}

// invalid is a field of the request that is wrong.
type invalid FieldProblem

func (e invalid) Error() string { return e.Field + ": " + e.Detail }

// malformed is a request body (or header) that cannot be read as the API's.
type malformed FieldProblem

func (e malformed) Error() string { return e.Field + ": " + e.Detail }

// check turns a validation error of field into an invalid one.
func check(field string, err error) error {
	if err != nil {
		return invalid{field, err.Error()}
	}
	return nil
}

// maxBody bounds a request body: the API's are small.
const maxBody = 64 << 10

// decode reads a JSON object into v, refusing unknown fields and trailing data.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return malformed{"Content-Type", fmt.Sprintf("send application/json, not %q", ct)}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *http.MaxBytesError
		if errors.As(err, &se) {
			return err
		}
		field, detail := "body", err.Error()
		if f, ok := strings.CutPrefix(detail, "json: unknown field "); ok {
			field, detail = strings.Trim(f, `"`), "unknown field: see /api/v1/openapi.json for the fields this takes"
		}
		return malformed{field, detail}
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed{"body", "send one JSON object and nothing after it"}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Page is one page of a listing; NextCursor, when set, fetches the next.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// listed answers a whole listing (one page, no cursor): every item of all, shown.
// A failed read is an error answer, never an empty page.
func listed[S, T any](h *Handler, w http.ResponseWriter, all []S, err error, show func(S) T) {
	if err != nil {
		h.fail(w, err)
		return
	}
	out := Page[T]{Items: make([]T, 0, len(all))}
	for _, item := range all {
		out.Items = append(out.Items, show(item))
	}
	writeJSON(w, http.StatusOK, out)
}

// pageParams reads ?limit= (1–1000, default 100) and ?cursor=.
func pageParams(r *http.Request) (after string, limit int, err error) {
	limit = 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, invalid{"limit", "give a whole number from 1 to 1000"}
		}
		limit = n
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(b) == 0 {
			return "", 0, invalid{"cursor", "pass next_cursor from the previous page as it was"}
		}
		after = string(b)
	}
	return after, limit, nil
}

func cursor(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }
