package web

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/authn"
	"github.com/gatehouse-id/gatehouse/internal/mfa"
	"github.com/gatehouse-id/gatehouse/internal/session"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// pendingLoginTTL is how long a correct password waits for its second factor.
const pendingLoginTTL = 5 * time.Minute

// secondFactors is what a user can finish a sign-in with after their password.
type secondFactors struct {
	TOTP     bool      // an authenticator app
	Recovery bool      // unused recovery codes
	Passkey  *ceremony // set when the user has passkeys
}

func (f secondFactors) any() bool { return f.TOTP || f.Passkey != nil }

// factorsOf says which second factors u has enrolled.
func (s *Server) factorsOf(r *http.Request, u store.User) (secondFactors, error) {
	var f secondFactors
	_, _, err := s.Store.TOTP(r.Context(), u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return f, err
	}
	f.TOTP = err == nil
	n, err := s.Store.UnusedRecoveryCodes(r.Context(), u.ID)
	if err != nil {
		return f, err
	}
	f.Recovery = n > 0
	keys, err := s.Store.Passkeys(r.Context(), u.ID)
	if err != nil {
		return f, err
	}
	if len(keys) > 0 {
		f.Passkey = s.loginCeremony()
	}
	return f, nil
}

// secondFactorPage asks the user behind pending for one of their second factors.
func (s *Server) secondFactorPage(w http.ResponseWriter, r *http.Request, status int, f secondFactors, pending, msg string) {
	s.render(w, status, "second_factor.html", page{Title: "Second factor", CSRF: s.csrfToken(w, r), Token: pending, Error: msg, Extra: f})
}

// stepUp asks a user signed in with one factor for their second, when a rule wants it.
// The user keeps their session until the code replaces it with a two-factor one.
func (s *Server) stepUp(w http.ResponseWriter, r *http.Request) {
	rd := s.safeRD(r.URL.Query().Get("rd"))
	p := s.current(r)
	if p == nil {
		http.Redirect(w, r, LoginURL("", rd), http.StatusFound)
		return
	}
	if p.TwoFactor {
		http.Redirect(w, r, orDefault(rd, "/"), http.StatusFound)
		return
	}
	u, err := s.Store.UserByID(r.Context(), p.UserID)
	if err != nil {
		s.loginError(w, err)
		return
	}
	f, err := s.factorsOf(r, u)
	if err != nil {
		s.loginError(w, err)
		return
	}
	if !f.any() {
		s.message(w, http.StatusForbidden, "Second factor needed",
			"This site asks for a second factor, and your account has none yet. Add a passkey or an authenticator app on your account page (/account), then open the site again.")
		return
	}
	s.secondFactorPage(w, r, http.StatusOK, f, s.sign("login-pending", pendingLoginTTL, u.ID, rd), "")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// secondFactor finishes a login whose password was right: a TOTP code, or one of the
// recovery codes, from the person holding the signed pending-login value.
func (s *Server) secondFactor(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	pending := r.PostFormValue("pending")
	fields, ok := s.unsign("login-pending", pending, 2)
	if !ok {
		s.message(w, http.StatusBadRequest, "Sign-in expired", "This sign-in took longer than 5 minutes or was altered. Sign in again.")
		return
	}
	userID, rd := fields[0], s.safeRD(fields[1])
	u, err := s.Store.UserByID(r.Context(), userID)
	if err != nil || u.Disabled {
		s.message(w, http.StatusBadRequest, "Sign-in expired", "This account cannot sign in any more. Ask an admin.")
		return
	}
	f, err := s.factorsOf(r, u)
	if err != nil {
		s.loginError(w, err)
		return
	}
	ip := s.clientIP(r)
	limits := authn.CodeLimits(hashOf(pending), authn.Network(ip), u.ID, s.knownDevice(r, u.ID))
	if wait, err := s.Regulator.Wait(r.Context(), limits...); err != nil {
		s.loginError(w, err)
		return
	} else if wait > 0 {
		s.throttled("second factor", u.Username, ip)
		s.message(w, http.StatusTooManyRequests, "Too many wrong codes",
			"This sign-in had too many wrong codes, or this account had too many from elsewhere. Sign in again in "+minutes(wait)+".")
		return
	}
	code := strings.TrimSpace(r.PostFormValue("code"))
	method, err := s.checkSecondFactor(r, u, code)
	if err != nil {
		s.loginError(w, err)
		return
	}
	if method == "" {
		if err := s.Regulator.Fail(r.Context(), limits...); err != nil {
			s.loginError(w, err)
			return
		}
		s.Metrics.Logins.WithLabelValues("failure").Inc()
		s.Audit(store.Event{Kind: "login.second_factor_failed", Actor: u.Username, Target: u.Username, Detail: "from " + ip})
		s.secondFactorPage(w, r, http.StatusUnauthorized, f, pending, "That code is wrong or was used already. Try the next one.")
		return
	}
	s.finishLogin(w, r, u, "password+"+method, rd)
}

// checkSecondFactor returns "totp" or "recovery" for a valid, unused code, "" for any
// other. Accepting spends the code in one statement, so no replica accepts it twice.
func (s *Server) checkSecondFactor(r *http.Request, u store.User, code string) (string, error) {
	if strings.ContainsRune(code, '-') || len(code) > mfa.Digits+1 {
		if ok, err := s.Directory.UseRecoveryCode(r.Context(), u, mfa.HashRecoveryCode(code)); !ok {
			return "", err
		}
		return "recovery", nil
	}
	stored, last, err := s.Store.TOTP(r.Context(), u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil // passkeys only: a code cannot be right
	}
	if err != nil {
		return "", err
	}
	secret, _, err := s.totp.OpenString(stored)
	if err != nil {
		return "", fmt.Errorf("the authenticator-app secret of %s does not open with this server key (was the key file or server.secret replaced?): %w", u.Username, err)
	}
	step, ok := mfa.Verify(secret, code, time.Now(), last)
	if !ok {
		return "", nil
	}
	if used, err := s.Directory.UseTOTPStep(r.Context(), u.ID, step); err != nil || !used {
		return "", err
	}
	return "totp", nil
}

// totpPage offers a new TOTP secret to the signed-in user. The secret travels signed in
// the form and is stored only once a code from it proves the app has it.
func (s *Server) totpPage(w http.ResponseWriter, r *http.Request) {
	p := s.current(r)
	if p == nil {
		http.Redirect(w, r, "/login?rd="+urlQueryEscape("/account/totp"), http.StatusFound)
		return
	}
	u, err := s.Store.UserByID(r.Context(), p.UserID)
	if err != nil {
		s.loginError(w, err)
		return
	}
	secret := mfa.NewSecret()
	s.render(w, http.StatusOK, "totp.html", page{Title: "Authenticator app", User: p, CSRF: s.csrfToken(w, r),
		Token: s.sign("totp-enrol", 15*time.Minute, p.UserID, secret),
		Extra: offer(p, u, secret)})
}

// totpOffer is what the enrolment page shows. URI is an otpauth: link, which
// html/template would otherwise neutralise as an unknown scheme; Gatehouse builds it.
type totpOffer struct {
	Secret string
	URI    template.URL
	QR     template.HTML // an inline SVG drawn by mfa.QRSVG from our own URI
	// NeedPassword asks for the current password: the sign-in is older than RecentAuth.
	NeedPassword bool
}

func offer(p *session.Principal, u store.User, secret string) totpOffer {
	uri := mfa.URI("Gatehouse", p.Username, secret)
	qr, _ := mfa.QRSVG(uri) // a 32-character secret always fits; the text secret stays as a fallback
	return totpOffer{Secret: groupsOf4(secret), URI: template.URL(uri), QR: template.HTML(qr),
		NeedPassword: u.PasswordHash != "" && time.Since(p.AuthenticatedAt) >= RecentAuth}
}

// totpConfirm stores the offered secret once the user types a code from it, and shows
// fresh recovery codes, once.
func (s *Server) totpConfirm(w http.ResponseWriter, r *http.Request, p *session.Principal, u store.User) (string, error) {
	fields, ok := s.unsign("totp-enrol", r.PostFormValue("enrol"), 2)
	if !ok || fields[0] != p.UserID {
		return "", userError{"The authenticator app set-up page expired. Open it again for a new secret."}
	}
	secret := fields[1]
	again := func(msg string) (string, error) {
		s.render(w, http.StatusBadRequest, "totp.html", page{Title: "Authenticator app", User: p, CSRF: s.csrfToken(w, r),
			Token: r.PostFormValue("enrol"), Error: msg, Extra: offer(p, u, secret)})
		return "", errAnswered
	}
	// Setting up (or replacing) the app needs a recent sign-in, like removing it: a
	// borrowed session must not be able to lock the owner out behind its own app.
	var bad userError
	if err := s.reauthenticate(r, p, u); errors.As(err, &bad) {
		return again(bad.msg)
	} else if err != nil {
		return "", err
	}
	step, ok := mfa.Verify(secret, r.PostFormValue("code"), time.Now(), 0)
	if !ok {
		return again("That code does not match. Check the app's clock and type the current code.")
	}
	codes, hashes := mfa.NewRecoveryCodes()
	if err := s.Directory.EnrolTOTP(r.Context(), p.UserID, s.totp.SealString(secret), step, hashes); err != nil {
		return "", err
	}
	s.showRecoveryCodes(w, p, codes)
	return "", errAnswered
}

func groupsOf4(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}
