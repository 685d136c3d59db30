package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// idempotencyStale is how long a claimed key may stay unanswered before a retry takes
// it over (its request died with its replica).
const idempotencyStale = time.Minute

// IdempotencyRetention is how long an answer is kept for repeats (housekeeping sweeps).
const IdempotencyRetention = 24 * time.Hour

// idempotent answers a create at most once per token and Idempotency-Key: the same
// request sent again — a retry after a lost answer — gets the first answer again,
// never a second object or a conflict. Without the header create just runs.
func (h *Handler) idempotent(w http.ResponseWriter, r *http.Request, c caller, create func(http.ResponseWriter, *http.Request)) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		create(w, r)
		return
	}
	if len(key) > 255 || !printable(key) {
		h.fail(w, malformed{"Idempotency-Key", "give 1 to 255 printable ASCII characters, such as a UUID"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		h.fail(w, err)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(append([]byte(r.Method+" "+r.URL.Path+"\n"), body...))
	reqHash := hex.EncodeToString(sum[:])
	now := time.Now()
	rec, started, err := h.Store.StartIdempotent(r.Context(), c.token.ID, key, reqHash, now, now.Add(-idempotencyStale))
	switch {
	case err != nil:
		h.fail(w, err)
	case !started && rec.RequestHash != reqHash:
		h.fail(w, invalid{"Idempotency-Key", "this key was used for a different request: use a new key for each new request"})
	case !started && rec.Status == 0:
		problem(w, http.StatusConflict, "Request in progress", "a request with this Idempotency-Key is still being answered; retry shortly")
	case !started:
		var headers map[string]string
		_ = json.Unmarshal([]byte(rec.Headers), &headers)
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(rec.Status)
		io.WriteString(w, rec.Body)
	default:
		rw := httptest.NewRecorder()
		create(rw, r)
		res := rw.Result()
		if res.StatusCode/100 == 2 {
			kept, _ := json.Marshal(map[string]string{"Location": res.Header.Get("Location"), "ETag": res.Header.Get("ETag")})
			if err := h.Store.FinishIdempotent(r.Context(), c.token.ID, key, store.IdempotentRecord{Status: res.StatusCode, Headers: string(kept), Body: rw.Body.String()}); err != nil {
				h.Log.Warn("keeping an idempotent answer failed; a repeat of the request will be refused as a conflict", "error", err.Error())
			}
		} else if err := h.Store.AbandonIdempotent(r.Context(), c.token.ID, key); err != nil {
			h.Log.Warn("freeing an idempotency key failed; a retry waits a minute", "error", err.Error())
		}
		for k, v := range res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(res.StatusCode)
		w.Write(rw.Body.Bytes())
	}
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
