package identity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// Invitation codes are read aloud and typed on phones: 8 symbols of Crockford's base32
// (no I, L, O or U), shown as two groups of four (K7MQ-4XTR). 40 bits: with wrong
// codes throttled per network, guessing one is hopeless; a code is also short-lived
// and limited in uses. Letter case, dashes and spaces do not matter, and the letters
// people mistake for digits (O, I, L) are read as those digits.
const (
	invitationAlphabet   = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	invitationCodeLength = 8
)

// Invitation limits: how long one lasts unless told (DefaultInvitationLifetime), and
// at most; how many accounts it may make at most.
const (
	DefaultInvitationLifetime = 7 * 24 * time.Hour
	MaxInvitationLifetime     = 90 * 24 * time.Hour
	MaxInvitationUses         = 1000
)

// InvitationPath is where an invitation link points on the public URL (?code=).
const InvitationPath = "/invite"

// ErrInvitationNotValid is a code that names no invitation that can be used now.
var ErrInvitationNotValid = errors.New("this invitation code is not valid: it may be mistyped, used up, expired or revoked; ask for a new one")

// NewInvitationCode makes a random code, dash-grouped.
func NewInvitationCode() string {
	var b [invitationCodeLength]byte
	_, _ = rand.Read(b[:])
	out := make([]byte, 0, invitationCodeLength+1)
	for i, v := range b {
		if i == invitationCodeLength/2 {
			out = append(out, '-')
		}
		out = append(out, invitationAlphabet[v&31])
	}
	return string(out)
}

// NormalizeInvitationCode reads a code as typed: it reports false for anything that
// cannot be a code.
func NormalizeInvitationCode(typed string) (string, bool) {
	var out []byte
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > 127 || !strings.ContainsRune(invitationAlphabet, r) || len(out) == invitationCodeLength {
			return "", false
		}
		out = append(out, byte(r))
	}
	return string(out), len(out) == invitationCodeLength
}

// hashInvitationCode is what is stored of a code: argon2id of its normal form, with
// one fixed salt so that a code is found by its hash, computed in one of the hasher's
// slots like a password. A code has only 40 bits, which a fast hash would give away
// to anyone with a copy of the database in minutes; at argon2id's cost, trying every
// code takes about a thousand CPU-years, and the database holds nothing that makes
// an account.
func (d *Directory) hashInvitationCode(ctx context.Context, normal string) (string, error) {
	if err := d.Hasher.acquire(ctx); err != nil {
		return "", err
	}
	defer d.Hasher.release()
	key := argon2.IDKey([]byte(normal), []byte("gatehouse invitation codes"), argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return hex.EncodeToString(key), nil
}

// NewInvitation describes an invitation to make.
type NewInvitation struct {
	Groups   []string      // by exact name; at least one
	Lifetime time.Duration // 0: DefaultInvitationLifetime
	MaxUses  int           // 0: 1
	Email    string        // the one address the new account may have
	Domain   string        // or the domain its address must be in
	Note     string        // for the admins: who it is for
}

// InvitationView is an invitation with its groups by name, for lists.
type InvitationView struct {
	store.Invitation
	Groups []string
}

// CreateInvitation validates and stores an invitation, and returns its code, which
// is shown this once.
func (d *Directory) CreateInvitation(ctx context.Context, actor string, ni NewInvitation) (string, store.Invitation, error) {
	if ni.Lifetime == 0 {
		ni.Lifetime = DefaultInvitationLifetime
	}
	if ni.MaxUses == 0 {
		ni.MaxUses = 1
	}
	ni.Email, ni.Domain = strings.TrimSpace(ni.Email), strings.ToLower(strings.TrimPrefix(strings.TrimSpace(ni.Domain), "@"))
	switch {
	case len(ni.Groups) == 0:
		return "", store.Invitation{}, invalidf("groups", "name the group (or groups) the invited person joins, such as Family")
	case ni.Lifetime < time.Minute || ni.Lifetime > MaxInvitationLifetime:
		return "", store.Invitation{}, invalidf("expires", "an invitation lasts from a minute to 90 days, not %s", ni.Lifetime)
	case ni.MaxUses < 1 || ni.MaxUses > MaxInvitationUses:
		return "", store.Invitation{}, invalidf("uses", "an invitation makes 1 to %d accounts, not %d", MaxInvitationUses, ni.MaxUses)
	case ni.Email != "" && ni.Domain != "":
		return "", store.Invitation{}, invalidf("email", "pin an invitation to one address or to a domain, not both")
	case len(ni.Note) > 200:
		return "", store.Invitation{}, invalidf("note", "keep the note to 200 characters")
	}
	if err := CheckEmail(ni.Email); err != nil {
		return "", store.Invitation{}, err
	}
	if ni.Domain != "" {
		if err := config.CheckDomain(ni.Domain); err != nil || !strings.Contains(ni.Domain, ".") {
			return "", store.Invitation{}, invalidf("domain", "%q is not a domain such as example.com", ni.Domain)
		}
	}
	code := NewInvitationCode()
	normal, _ := NormalizeInvitationCode(code)
	hash, err := d.hashInvitationCode(ctx, normal)
	if err != nil {
		return "", store.Invitation{}, err
	}
	inv := store.Invitation{CodeHash: hash, MaxUses: ni.MaxUses, Email: ni.Email, Domain: ni.Domain, Note: ni.Note,
		CreatedBy: actor, ExpiresAt: time.Now().Add(ni.Lifetime).UTC().Truncate(time.Microsecond)}
	err = d.write(ctx, false, func(d *Directory) error {
		for _, name := range slices.Compact(slices.Sorted(slices.Values(ni.Groups))) {
			g, err := d.Store.GroupByName(ctx, name)
			if err != nil {
				return fmt.Errorf("%w: create it first with `gatehouse group add`", err)
			}
			inv.GroupIDs = append(inv.GroupIDs, g.ID)
		}
		var err error
		if inv, err = d.Store.CreateInvitation(ctx, inv); err != nil {
			return err
		}
		// An invitation for one address is mailed there, when Gatehouse sends mail.
		if err := d.mail(ctx, "invitation", ni.Email, map[string]string{"Code": code, "Path": InvitationPath + "?code=" + code,
			"Groups": strings.Join(ni.Groups, ", "), "By": actor, "Until": inv.ExpiresAt.Format("2 Jan 2006 15:04 UTC")}); err != nil {
			return err
		}
		return d.Store.AppendEvent(ctx, store.Event{Kind: "invitation.created", Actor: actor, Target: "invitation " + inv.ID, TargetID: inv.ID,
			Detail: fmt.Sprintf("groups: %s; %d uses; until %s", strings.Join(ni.Groups, ", "), inv.MaxUses, inv.ExpiresAt.Format(time.RFC3339)),
			Fields: map[string]string{"groups": strings.Join(ni.Groups, ","), "max_uses": fmt.Sprint(inv.MaxUses), "expires": inv.ExpiresAt.Format(time.RFC3339)}})
	})
	if err != nil {
		return "", store.Invitation{}, err
	}
	return code, inv, nil
}

// Invitations lists the invitations, newest first, with their groups by name.
func (d *Directory) Invitations(ctx context.Context) ([]InvitationView, error) {
	list, err := d.Store.Invitations(ctx)
	if err != nil {
		return nil, err
	}
	groups, err := d.Store.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]InvitationView, 0, len(list))
	for _, inv := range list {
		out = append(out, InvitationView{Invitation: inv, Groups: groupNames(inv.GroupIDs, groups)})
	}
	return out, nil
}

// groupNames names the groups of ids that still exist.
func groupNames(ids []string, groups []store.Group) []string {
	var names []string
	for _, g := range groups {
		if slices.Contains(ids, g.ID) {
			names = append(names, g.Name)
		}
	}
	slices.Sort(names)
	return names
}

// RevokeInvitation deletes an invitation by its exact id: its code stops working.
func (d *Directory) RevokeInvitation(ctx context.Context, actor, id string) error {
	return d.write(ctx, false, func(d *Directory) error {
		inv, err := d.Store.DeleteInvitation(ctx, id)
		if err != nil {
			return err
		}
		return d.Store.AppendEvent(ctx, store.Event{Kind: "invitation.revoked", Actor: actor, Target: "invitation " + inv.ID, TargetID: inv.ID,
			Detail: fmt.Sprintf("used %d of %d times", inv.Uses, inv.MaxUses)})
	})
}

// InvitationFor returns the invitation a typed code names if it can be used now,
// with its groups by name; ErrInvitationNotValid otherwise.
func (d *Directory) InvitationFor(ctx context.Context, typed string) (InvitationView, error) {
	normal, ok := NormalizeInvitationCode(typed)
	if !ok {
		return InvitationView{}, ErrInvitationNotValid
	}
	hash, err := d.hashInvitationCode(ctx, normal)
	if err != nil {
		return InvitationView{}, err
	}
	inv, err := d.Store.InvitationByCode(ctx, hash)
	if errors.Is(err, store.ErrNotFound) || err == nil && (inv.Uses >= inv.MaxUses || !time.Now().Before(inv.ExpiresAt)) {
		return InvitationView{}, ErrInvitationNotValid
	}
	if err != nil {
		return InvitationView{}, err
	}
	groups, err := d.Store.ListGroups(ctx)
	if err != nil {
		return InvitationView{}, err
	}
	return InvitationView{Invitation: inv, Groups: groupNames(inv.GroupIDs, groups)}, nil
}

// AcceptInvitation makes nu's account with the invitation a typed code names, in its
// groups, in one transaction that also counts the use: an invitation for one is spent
// once however many replicas are asked at once, and a refused account (a taken
// username, an address the invitation does not allow) spends nothing. nu.Groups is
// ignored: the invitation says. An empty password makes an account that signs in
// now and adds a passkey next.
func (d *Directory) AcceptInvitation(ctx context.Context, typed string, nu NewUser) (store.User, error) {
	normal, ok := NormalizeInvitationCode(typed)
	if !ok {
		return store.User{}, ErrInvitationNotValid
	}
	u, err := d.newAccount(ctx, nu)
	if err != nil {
		return store.User{}, err
	}
	hash, err := d.hashInvitationCode(ctx, normal)
	if err != nil {
		return store.User{}, err
	}
	return d.join(ctx, hash, u, true, nil)
}

// newAccount validates what a person typed to make their own account and hashes its
// password (none: they add a passkey next), before any transaction.
func (d *Directory) newAccount(ctx context.Context, nu NewUser) (store.User, error) {
	nu.Email = strings.TrimSpace(nu.Email)
	if err := errors.Join(CheckUsername(nu.Username), CheckEmail(nu.Email), CheckDisplayName(nu.DisplayName)); err != nil {
		return store.User{}, err
	}
	u := store.User{Username: nu.Username, Email: nu.Email, DisplayName: nu.DisplayName}
	if nu.Password != "" {
		if err := CheckPassword(nu.Password); err != nil {
			return store.User{}, err
		}
		var err error
		if u.PasswordHash, err = d.Hasher.Hash(ctx, nu.Password); err != nil {
			return store.User{}, err
		}
	}
	return u, nil
}

// join makes account u with the invitation whose code hashes to hash, in its groups,
// counting the use, in one transaction; with link, the upstream identity is linked
// to the new account in it too. The invitation's address or domain pin is checked
// against u's email; emailProven false (an upstream address its provider does not
// call verified) refuses a pinned invitation. An address typed on the invitation page
// is taken as typed: Gatehouse sends no mail to prove it yet.
func (d *Directory) join(ctx context.Context, hash string, u store.User, emailProven bool, link *store.UpstreamIdentity) (store.User, error) {
	err := d.write(ctx, false, func(d *Directory) error {
		var inv store.Invitation
		var err error
		if hash == OpenSignUp {
			// No invitation: open sign-up (signup.open), into signup.groups.
			if inv.GroupIDs, err = d.openSignUpGroups(ctx); err != nil {
				return err
			}
			inv.ID, inv.MaxUses = "none (open sign-up)", 1
		} else if inv, err = d.Store.UseInvitation(ctx, hash, time.Now()); errors.Is(err, store.ErrNotFound) {
			return ErrInvitationNotValid
		} else if err != nil {
			return err
		}
		switch at := strings.LastIndex(strings.ToLower(u.Email), "@"); {
		case (inv.Email != "" || inv.Domain != "") && !emailProven:
			return invalidf("email", "this invitation is for a given address, and the provider does not say yours is verified: join with a password, or verify the address there first")
		case inv.Email != "" && !strings.EqualFold(u.Email, inv.Email):
			return invalidf("email", "this invitation is for %s: give that address", inv.Email)
		case inv.Domain != "" && (at < 0 || strings.ToLower(u.Email[at+1:]) != inv.Domain):
			return invalidf("email", "this invitation is for addresses at %s: give yours", inv.Domain)
		}
		if u, err = d.Store.CreateUser(ctx, u); err != nil {
			return err
		}
		groups, err := d.Store.ListGroups(ctx)
		if err != nil {
			return err
		}
		names := groupNames(inv.GroupIDs, groups)
		for _, g := range groups {
			if slices.Contains(inv.GroupIDs, g.ID) {
				if err := d.Store.AddMember(ctx, g.ID, u.ID); err != nil {
					return err
				}
			}
		}
		how := "by invitation " + inv.ID
		if link != nil {
			link.UserID = u.ID
			if err := d.Store.LinkUpstream(ctx, *link); err != nil {
				return err
			}
			how += " through " + link.Provider
		}
		if err := d.auditUser(ctx, "user.created", u.Username, u, how+"; groups: "+strings.Join(names, ", ")); err != nil {
			return err
		}
		if hash == OpenSignUp {
			return nil
		}
		return d.auditUser(ctx, "invitation.used", u.Username, u, fmt.Sprintf("invitation %s, use %d of %d", inv.ID, inv.Uses+1, inv.MaxUses),
			"invitation_id", inv.ID, "groups", strings.Join(names, ","), "created_by", inv.CreatedBy)
	})
	return u, err
}

// OpenSignUp stands for "no invitation" where join takes an invitation's hash: the
// open sign-up that signup.open allows.
const OpenSignUp = "open sign-up"

// ErrSignUpClosed is a sign-up without an invitation where signup.open is off.
var ErrSignUpClosed = errors.New("joining takes an invitation here: ask for one")

// SignUp is the open sign-up: nu's account in signup.groups, only when signup.open.
func (d *Directory) SignUp(ctx context.Context, nu NewUser) (store.User, error) {
	u, err := d.newAccount(ctx, nu)
	if err != nil {
		return store.User{}, err
	}
	return d.join(ctx, OpenSignUp, u, true, nil)
}

// openSignUpGroups are the ids of signup.groups, or ErrSignUpClosed.
func (d *Directory) openSignUpGroups(ctx context.Context) ([]string, error) {
	if d.SignUpGroups == nil {
		return nil, ErrSignUpClosed
	}
	names, open := d.SignUpGroups()
	if !open {
		return nil, ErrSignUpClosed
	}
	var ids []string
	for _, name := range names {
		g, err := d.Store.GroupByName(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("signup.groups: %w", err)
		}
		ids = append(ids, g.ID)
	}
	return ids, nil
}
