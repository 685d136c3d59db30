// Package authn owns the parts of proving who someone is that every sign-in method
// shares: which address a request comes from (only proxies the operator named may say
// otherwise), and the Regulator, which throttles every secret a client can guess —
// passwords, second-factor codes, client secrets, device codes, setup links — in the
// database, so that every replica counts the same guesses.
package authn

import (
	"context"
	"net/netip"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Window is how long failures count: a key that reached its limit opens again when
// its window, which started with its first failure, ends.
const Window = 15 * time.Minute

// Limit is a key and how many failures it may collect in one Window.
type Limit struct {
	Key string
	Max int
}

// Regulator counts failed guesses in the store and says when a key has had enough.
// Its keys never name an account alone unless the caller also gives a way around it
// (see PasswordLimits): an attacker must never be able to lock the owner out.
type Regulator struct {
	Store store.Throttles
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (g *Regulator) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Wait returns how long until every limit allows another attempt: zero when one may be
// made now.
func (g *Regulator) Wait(ctx context.Context, limits ...Limit) (time.Duration, error) {
	now := g.now()
	keys := make([]string, len(limits))
	for i, l := range limits {
		keys[i] = l.Key
	}
	buckets, err := g.Store.ThrottleBuckets(ctx, keys, now.Add(-Window))
	if err != nil {
		return 0, err
	}
	var wait time.Duration
	for _, l := range limits {
		if b, ok := buckets[l.Key]; ok && b.Failures >= l.Max {
			wait = max(wait, b.WindowStart.Add(Window).Sub(now), time.Second)
		}
	}
	return wait, nil
}

// Fail counts one failed guess under every limit.
func (g *Regulator) Fail(ctx context.Context, limits ...Limit) error {
	now := g.now()
	keys := make([]string, len(limits))
	for i, l := range limits {
		keys[i] = l.Key
	}
	return g.Store.ThrottleFail(ctx, keys, now, now.Add(-Window))
}

// Forget clears the failures under these limits, after a success.
func (g *Regulator) Forget(ctx context.Context, limits ...Limit) error {
	keys := make([]string, len(limits))
	for i, l := range limits {
		keys[i] = l.Key
	}
	return g.Store.ThrottleClear(ctx, keys)
}

// Sweep deletes buckets whose window has ended; housekeeping calls it.
func (g *Regulator) Sweep(ctx context.Context) (int, error) {
	return g.Store.DeleteExpiredThrottle(ctx, g.now().Add(-Window))
}

// Network is the part of a client address that one party controls: the whole IPv4
// address, or the /64 of an IPv6 address (one home or one server gets a whole /64, so
// counting per /128 would give an attacker 2^64 budgets).
func Network(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// The limits, per Window, for each secret a client can guess. Per address: one
// address (or /64) cannot try many accounts. Per account: many addresses cannot try
// one account much more than one address could — but that bucket would let an
// attacker lock the owner out, so a browser that signed in as the account before (it
// holds a signed device cookie) is counted on its own budget instead.
const (
	passwordPerAccountAndNetwork = 10
	passwordPerNetwork           = 100
	passwordPerAccount           = 50
	passwordPerDevice            = 10
	codePerPendingLogin          = 5
	codePerAccount               = 20
	codePerDevice                = 10
	reauthPerSession             = 5
	clientSecretPerClientNetwork = 20
	clientSecretPerNetwork       = 200
	deviceCodePerNetwork         = 10
	deviceCodePerUser            = 20
	setupLinkPerNetwork          = 10
	passkeyPerNetwork            = 100
	apiTokenPerNetwork           = 20
	appPasswordPerNetwork        = 30
)

// PasswordLimits are the limits of a password sign-in to username from network;
// device is the id in the browser's device cookie for this account, or "".
func PasswordLimits(network, username, device string) []Limit {
	if device != "" {
		return []Limit{{"password|device:" + device + "|user:" + username, passwordPerDevice}}
	}
	return []Limit{
		{"password|net:" + network + "|user:" + username, passwordPerAccountAndNetwork},
		{"password|net:" + network, passwordPerNetwork},
		{"password|user:" + username, passwordPerAccount},
	}
}

// PasswordSuccess is what a correct password clears: the pair and the device budget,
// never the per-address or per-account buckets (one known account must not reset
// an attacker's budget for the others).
func PasswordSuccess(network, username, device string) []Limit {
	if device != "" {
		return PasswordLimits(network, username, device)
	}
	return PasswordLimits(network, username, "")[:1]
}

// CodeLimits are the limits of a second-factor code for a pending login (identified
// by a hash of its signed value): it dies after a few wrong codes, and the account
// takes a bounded number of codes from everyone but its known browsers.
func CodeLimits(pendingLogin, network, userID, device string) []Limit {
	ls := []Limit{{"code|pending:" + pendingLogin, codePerPendingLogin}}
	if device != "" {
		return append(ls, Limit{"code|device:" + device + "|user:" + userID, codePerDevice})
	}
	return append(ls, Limit{"code|user:" + userID, codePerAccount}, Limit{"code|net:" + network, passwordPerNetwork})
}

// ReauthLimits are the limits of typing the current password again on the account
// page, per session: a borrowed session gets a few tries, the owner's others none less.
func ReauthLimits(sessionID string) []Limit {
	return []Limit{{"reauth|session:" + sessionID, reauthPerSession}}
}

// ClientSecretLimits are the limits of an OpenID Connect client secret: per client and
// address, and per address. Never per client alone, which would let anyone stop an app
// from signing people in.
func ClientSecretLimits(network, clientID string) []Limit {
	return []Limit{
		{"client|net:" + network + "|client:" + clientID, clientSecretPerClientNetwork},
		{"client|net:" + network, clientSecretPerNetwork},
	}
}

// DeviceCodeLimits are the limits of typing a device's user code, per address and per
// signed-in user.
func DeviceCodeLimits(network, userID string) []Limit {
	return []Limit{{"devicecode|net:" + network, deviceCodePerNetwork}, {"devicecode|user:" + userID, deviceCodePerUser}}
}

// SetupLinkLimits are the limits of guessing the first-admin setup link.
func SetupLinkLimits(network string) []Limit {
	return []Limit{{"setup|net:" + network, setupLinkPerNetwork}}
}

// SignInLinkLimits are the limits of guessing an admin's one-time sign-in links: the
// same budget as setup links, kept apart so one never spends the other's.
func SignInLinkLimits(network string) []Limit {
	return []Limit{{"signinlink|net:" + network, setupLinkPerNetwork}}
}

// InvitationLimits are the limits of guessing invitation codes from one network.
func InvitationLimits(network string) []Limit {
	return []Limit{{"invitation|net:" + network, setupLinkPerNetwork}}
}

// ResetLimits bound the password resets asked for from one network (each may send a
// mail).
func ResetLimits(network string) []Limit {
	return []Limit{{"reset|net:" + network, setupLinkPerNetwork}}
}

// PasskeyLimits are the limits of failed passkey sign-ins from one address.
func PasskeyLimits(network string) []Limit {
	return []Limit{{"passkey|net:" + network, passkeyPerNetwork}}
}

// APITokenLimits are the limits of sending wrong admin API tokens from one address.
// Only unknown tokens count: a real token is 256 random bits, so this only slows a
// script with a typo and an attacker alike.
func APITokenLimits(network string) []Limit {
	return []Limit{{"apitoken|net:" + network, apiTokenPerNetwork}}
}

// AppPasswordLimits are the limits of sending wrong app passwords to forward auth
// from one address. As with API tokens only wrong ones count (the secret is 160
// random bits); the budget is a little larger because a phone or a calendar app keeps
// retrying a password that was revoked.
func AppPasswordLimits(network string) []Limit {
	return []Limit{{"apppassword|net:" + network, appPasswordPerNetwork}}
}
