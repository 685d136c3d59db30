package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gatehouse-id/gatehouse/internal/forwardauth"
)

// explain answers GET /api/v1/access/explain?username=&url=[&two_factor=]: what
// forward auth decides when that person (none: nobody signed in) opens that URL in a
// browser, and why; the same report as `gatehouse access explain --json`.
func (h *Handler) explain(w http.ResponseWriter, r *http.Request, _ caller) {
	q := r.URL.Query()
	target := q.Get("url")
	if target == "" {
		h.fail(w, invalid{"url", "required: the URL to explain, as https://host/path"})
		return
	}
	twoFactor := false
	if v := q.Get("two_factor"); v != "" {
		var err error
		if twoFactor, err = strconv.ParseBool(v); err != nil {
			h.fail(w, invalid{"two_factor", "must be true or false"})
			return
		}
	}
	report, err := forwardauth.Explain(r.Context(), h.Policy(), h.Store, q.Get("username"), target, twoFactor)
	switch {
	case errors.Is(err, forwardauth.ErrUnknownUser):
		problem(w, http.StatusNotFound, "Not found", err.Error())
	case errors.Is(err, forwardauth.ErrBadURL):
		h.fail(w, invalid{"url", err.Error()})
	case err != nil:
		h.fail(w, err)
	default:
		writeJSON(w, http.StatusOK, report)
	}
}
