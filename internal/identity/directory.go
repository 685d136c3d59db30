package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// ErrLockout means a change was refused because it would leave no enabled member of an
// admin group: Gatehouse never locks its owner out.
var ErrLockout = errors.New("refused: this would leave no enabled admin")

// Directory performs the changes to users, groups, credentials and sessions that the
// CLI, the account pages and the OpenID Connect provider make. Each change is
// validated, looks its target up by exact name, and runs as one transaction with its
// change-feed rows (so every replica's cache follows) and its audit events: all of it
// commits, or none. Changes that could leave no admin, or a user with no way to sign
// in, take the directory lock first, so two at once cannot both pass their guard.
type Directory struct {
	Store       store.Store
	Hasher      *Hasher
	AdminGroups func() []string // current access.admin_groups
	// Applied, when set, gets each change-feed row a change wrote, once committed: the
	// server drops what it invalidates from its own cache at once, instead of at its
	// next poll of the feed (which is how the other replicas learn of it).
	Applied func(store.Change)
	// Mail composes a mail of kind to an address from its template data; false when
	// Gatehouse sends no mail (mail.Composer.Compose).
	Mail func(kind, to string, data map[string]string) (store.Mail, bool)
	// SignUpGroups are signup.groups, and whether signup.open lets people make their
	// own account without an invitation; nil: it does not.
	SignUpGroups func() (groups []string, open bool)

	changes *[]store.Change // inside write: the change-feed rows to apply once committed
}

// change appends a change-feed row in the current write.
func (d *Directory) change(ctx context.Context, kind store.ChangeKind, subject string) error {
	if err := d.Store.AppendChange(ctx, kind, subject); err != nil {
		return err
	}
	if d.changes != nil {
		*d.changes = append(*d.changes, store.Change{Kind: kind, Subject: subject})
	}
	return nil
}

// NewDirectory is the directory service the server and the CLI both use: the same
// validation, guards and transactions whichever of them a change comes from.
// adminGroups returns the current access.admin_groups.
func NewDirectory(st store.Store, hasher *Hasher, adminGroups func() []string) *Directory {
	return &Directory{Store: st, Hasher: hasher, AdminGroups: adminGroups}
}

// write runs fn on a Directory whose store is one transaction, and applies the
// change-feed rows fn wrote to this replica once it has committed. guarded takes the
// directory lock first.
func (d *Directory) write(ctx context.Context, guarded bool, fn func(tx *Directory) error) error {
	if d.changes != nil { // already inside a write
		if guarded {
			if err := d.Store.LockDirectory(ctx); err != nil {
				return err
			}
		}
		return fn(d)
	}
	var changes []store.Change
	err := d.Store.InTx(ctx, func(s store.Store) error {
		changes = changes[:0]
		tx := *d
		tx.Store, tx.changes = s, &changes
		if guarded {
			if err := s.LockDirectory(ctx); err != nil {
				return err
			}
		}
		return fn(&tx)
	})
	if err == nil && d.Applied != nil {
		for _, c := range changes {
			d.Applied(c)
		}
	}
	return err
}

// NewUser describes a user to create.
type NewUser struct {
	Username, Email, DisplayName string
	Password                     string // empty: no password yet
	Groups                       []string
}

// AddUser validates and creates a user, with a password and groups when given.
func (d *Directory) AddUser(ctx context.Context, actor string, nu NewUser) (store.User, error) {
	if err := errors.Join(CheckUsername(nu.Username), CheckEmail(nu.Email), CheckDisplayName(nu.DisplayName)); err != nil {
		return store.User{}, err
	}
	var groups []store.Group
	for _, name := range nu.Groups {
		g, err := d.Store.GroupByName(ctx, name)
		if err != nil {
			return store.User{}, fmt.Errorf("%w: create it first with `gatehouse group add`", err)
		}
		groups = append(groups, g)
	}
	u := store.User{Username: nu.Username, Email: nu.Email, DisplayName: nu.DisplayName}
	if nu.Password != "" { // hashed before the transaction: it takes a while
		if err := CheckPassword(nu.Password); err != nil {
			return store.User{}, err
		}
		var err error
		if u.PasswordHash, err = d.Hasher.Hash(ctx, nu.Password); err != nil {
			return store.User{}, err
		}
	}
	err := d.write(ctx, false, func(d *Directory) error {
		var err error
		if u, err = d.Store.CreateUser(ctx, u); err != nil {
			return err
		}
		for _, g := range groups {
			if err := d.Store.AddMember(ctx, g.ID, u.ID); err != nil {
				return err
			}
		}
		detail := "in no group"
		if len(nu.Groups) > 0 {
			detail = "groups: " + strings.Join(nu.Groups, ", ")
		}
		return d.auditUser(ctx, "user.created", actor, u, detail)
	})
	return u, err
}

// User looks a user up by exact username.
func (d *Directory) User(ctx context.Context, username string) (store.User, error) {
	return d.Store.UserByUsername(ctx, username)
}

// SetPassword replaces a user's password and ends their sessions.
func (d *Directory) SetPassword(ctx context.Context, actor, username, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return err
	}
	hash, err := d.Hasher.Hash(ctx, password) // before the transaction: it takes a while
	if err != nil {
		return err
	}
	return d.write(ctx, false, func(d *Directory) error {
		if err := d.Store.SetPasswordHash(ctx, u.ID, hash); err != nil {
			return err
		}
		if err := d.endSessions(ctx, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.password_set", actor, u, "")
	})
}

// SetDisabled disables (ending every session) or re-enables a user. Disabling the last
// enabled admin is refused.
func (d *Directory) SetDisabled(ctx context.Context, actor, username string, disabled bool) error {
	return d.write(ctx, disabled, func(d *Directory) error {
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		if disabled {
			if err := d.guardAdmins(ctx, func(id string) bool { return id == u.ID }, nil); err != nil {
				return err
			}
		}
		if _, err := d.Store.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: &disabled}); err != nil {
			return err
		}
		if err := d.endSessions(ctx, u.ID); err != nil {
			return err
		}
		kind := "user.enabled"
		if disabled {
			kind = "user.disabled"
		}
		return d.auditUser(ctx, kind, actor, u, "")
	})
}

// DeleteUser deletes a user, their sessions and OpenID Connect grants; deleting the last enabled admin is refused.
func (d *Directory) DeleteUser(ctx context.Context, actor, username string) error {
	return d.write(ctx, true, func(d *Directory) error {
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		if err := d.guardAdmins(ctx, func(id string) bool { return id == u.ID }, nil); err != nil {
			return err
		}
		if _, err := d.Store.RevokeUserOIDCTokens(ctx, u.ID); err != nil {
			return err
		}
		if err := d.Store.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		if err := d.change(ctx, store.ChangeUser, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.deleted", actor, u, "")
	})
}

// ChangeOwnProfile applies a person's own profile change from the account page. A new
// email address they typed waits as pending until it is confirmed (an admin sets it,
// or — with email — a verification link): apps keep seeing the confirmed one, so
// nobody can make an app take them for the owner of someone else's address. It
// reports whether the address is now pending.
func (d *Directory) ChangeOwnProfile(ctx context.Context, userID, email, displayName string) (pending bool, err error) {
	if err := errors.Join(CheckEmail(email), CheckDisplayName(displayName)); err != nil {
		return false, err
	}
	err = d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		upd := store.UserUpdate{DisplayName: &displayName}
		switch {
		case strings.EqualFold(email, u.Email):
			none := ""
			upd.EmailPending = &none // back to the confirmed address
		default:
			upd.EmailPending, pending = &email, email != ""
			if email == "" { // removing one's address needs no confirmation
				upd.Email = &email
			}
		}
		if _, err := d.Store.UpdateUser(ctx, u.ID, upd); err != nil {
			return err
		}
		if err := d.change(ctx, store.ChangeUser, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.profile_changed", u.Username, u, "")
	})
	return pending, err
}

// SetEmail sets a user's email address as confirmed (an admin's change), clearing a
// pending one; another account's address is refused (store.ErrConflict).
func (d *Directory) SetEmail(ctx context.Context, actor, username, email string) error {
	return d.write(ctx, false, func(d *Directory) error {
		if err := CheckEmail(email); err != nil {
			return err
		}
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		none := ""
		if _, err := d.Store.UpdateUser(ctx, u.ID, store.UserUpdate{Email: &email, EmailPending: &none}); err != nil {
			return err
		}
		if err := d.change(ctx, store.ChangeUser, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "user.email_set", actor, u, email)
	})
}

// ErrLastCredential means a removal was refused because the user would have no way
// left to sign in.
var ErrLastCredential = errors.New("refused: this is the last way this user can sign in")

// Credential is one way a user proves who they are, as `gatehouse user credentials
// list` shows it.
type Credential struct {
	ID     string // what `credentials remove` takes: the kind, or a passkey's id
	Kind   string // "password", "passkey", "totp", "recovery-codes"
	Detail string
}

// The credential ids that are not passkeys.
const (
	CredentialPassword      = "password"
	CredentialTOTP          = "totp"
	CredentialRecoveryCodes = "recovery-codes"
)

// Credentials lists a user's credentials, found by exact username.
func (d *Directory) Credentials(ctx context.Context, username string) ([]Credential, error) {
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return nil, err
	}
	return d.credentialsOf(ctx, u)
}

func (d *Directory) credentialsOf(ctx context.Context, u store.User) ([]Credential, error) {
	var out []Credential
	if u.PasswordHash != "" {
		out = append(out, Credential{CredentialPassword, "password", "set " + u.UpdatedAt.Format("2006-01-02")})
	}
	keys, err := d.Store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		used := "never used"
		if !k.LastUsedAt.IsZero() {
			used = "last used " + k.LastUsedAt.Format("2006-01-02")
		}
		out = append(out, Credential{k.ID, "passkey", fmt.Sprintf("%q, added %s, %s", k.Name, k.CreatedAt.Format("2006-01-02"), used)})
	}
	if _, _, err := d.Store.TOTP(ctx, u.ID); err == nil {
		out = append(out, Credential{CredentialTOTP, "totp", "authenticator app"})
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	n, err := d.Store.UnusedRecoveryCodes(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		out = append(out, Credential{CredentialRecoveryCodes, "recovery-codes", fmt.Sprintf("%d unused", n)})
	}
	linked, err := d.Store.UpstreamIdentities(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	for _, l := range linked {
		detail := l.Provider + " account " + l.Subject
		if l.Email != "" {
			detail += " (" + l.Email + ")"
		}
		out = append(out, Credential{UpstreamCredentialID(l.Provider, l.Subject), "upstream", detail + ", linked " + l.CreatedAt.Format("2006-01-02")})
	}
	return out, nil
}

// UpstreamCredentialID is how a linked account is named among credentials.
func UpstreamCredentialID(provider, subject string) string {
	return "upstream:" + provider + ":" + subject
}

// signsIn says whether a credential of kind signs in on its own.
func signsIn(kind string) bool { return kind == "password" || kind == "passkey" || kind == "upstream" }

// RemoveCredential removes one credential of a user (exact username) by the id
// Credentials shows. Removing the password or a passkey is refused with
// ErrLastCredential when nothing else could sign the user in; removing the
// authenticator app removes its recovery codes too. With endSessions the user's
// sessions end as well (an admin removing a lost key); the user removing their own
// keeps the session they are using.
func (d *Directory) RemoveCredential(ctx context.Context, actor, username, id string, endSessions bool) error {
	return d.write(ctx, true, func(d *Directory) error {
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		creds, err := d.credentialsOf(ctx, u)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(creds, func(c Credential) bool { return c.ID == id })
		if i < 0 {
			return fmt.Errorf("user %q has no credential %q (list them with: gatehouse user credentials list %s): %w", u.Username, id, u.Username, store.ErrNotFound)
		}
		gone := creds[i]
		signIns := 0
		for _, c := range creds {
			if signsIn(c.Kind) {
				signIns++
			}
		}
		if signsIn(gone.Kind) && signIns == 1 {
			return fmt.Errorf("%w: %s is the only way %q can sign in; add a passkey or set a password first (gatehouse user passwd %s)",
				ErrLastCredential, gone.Kind, u.Username, u.Username)
		}
		switch gone.Kind {
		case "password":
			err = d.Store.SetPasswordHash(ctx, u.ID, "")
		case "passkey":
			err = d.Store.DeletePasskey(ctx, u.ID, gone.ID)
		case "totp":
			if err = d.Store.DeleteTOTP(ctx, u.ID); err == nil {
				err = d.Store.SetRecoveryCodes(ctx, u.ID, nil)
			}
		case "recovery-codes":
			err = d.Store.SetRecoveryCodes(ctx, u.ID, nil)
		case "upstream":
			provider, subject, _ := strings.Cut(strings.TrimPrefix(gone.ID, "upstream:"), ":")
			err = d.Store.UnlinkUpstream(ctx, u.ID, provider, subject)
		}
		if err == nil && endSessions {
			err = d.endSessions(ctx, u.ID)
		}
		if err != nil {
			return err
		}
		return d.auditUser(ctx, "credential.removed", actor, u, gone.Kind+" "+gone.Detail, "credential_id", gone.ID, "credential_kind", gone.Kind)
	})
}

// ResetSecondFactors removes a user's authenticator app and recovery codes (for a lost
// phone), ends their sessions, and records who did it. The password and passkeys stay.
func (d *Directory) ResetSecondFactors(ctx context.Context, actor, username string) error {
	return d.write(ctx, false, func(d *Directory) error {
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		if err := d.Store.DeleteTOTP(ctx, u.ID); err != nil {
			return err
		}
		if err := d.Store.SetRecoveryCodes(ctx, u.ID, nil); err != nil {
			return err
		}
		if err := d.endSessions(ctx, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "mfa.reset", actor, u, "")
	})
}

// AddGroup creates a group as data, under an existing parent when given.
func (d *Directory) AddGroup(ctx context.Context, actor, name, parent string) (store.Group, error) {
	if err := config.CheckGroupName(name); err != nil {
		return store.Group{}, err
	}
	g := store.Group{Name: name}
	if parent != "" {
		p, err := d.Store.GroupByName(ctx, parent)
		if err != nil {
			return g, fmt.Errorf("parent %w", err)
		}
		g.ParentID = p.ID
	}
	err := d.write(ctx, false, func(d *Directory) error {
		var err error
		if g, err = d.Store.CreateGroup(ctx, g); err != nil {
			return err
		}
		return d.audit(ctx, "group.created", actor, name, g.ID, "parent: "+parent)
	})
	return g, err
}

// DeleteGroup deletes a data group. Config-declared groups are refused (edit the file),
// and so is a group whose removal would leave no enabled admin.
func (d *Directory) DeleteGroup(ctx context.Context, actor, name string) error {
	return d.write(ctx, true, func(d *Directory) error {
		g, err := d.Store.GroupByName(ctx, name)
		if err != nil {
			return err
		}
		if g.FromConfig {
			return fmt.Errorf("group %q is declared in the config file: remove it there", name)
		}
		if err := d.guardAdmins(ctx, nil, map[string]bool{g.ID: true}); err != nil {
			return err
		}
		if err := d.Store.DeleteGroup(ctx, g.ID); err != nil {
			return err
		}
		if err := d.change(ctx, store.ChangeAll, ""); err != nil {
			return err
		}
		return d.audit(ctx, "group.deleted", actor, name, g.ID, "")
	})
}

// AddMembers adds users (exact usernames) to a group; all names are checked first.
func (d *Directory) AddMembers(ctx context.Context, actor, group string, usernames []string) error {
	return d.write(ctx, false, func(d *Directory) error {
		g, users, err := d.groupAndUsers(ctx, group, usernames)
		if err != nil {
			return err
		}
		for _, u := range users {
			if err := d.Store.AddMember(ctx, g.ID, u.ID); err != nil {
				return err
			}
			if err := d.change(ctx, store.ChangeUser, u.ID); err != nil {
				return err
			}
			if err := d.auditUser(ctx, "group.member_added", actor, u, "group: "+g.Name, "group", g.Name, "group_id", g.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

// RemoveMembers removes users from a group; removing the last enabled admin is refused.
func (d *Directory) RemoveMembers(ctx context.Context, actor, group string, usernames []string) error {
	return d.write(ctx, true, func(d *Directory) error {
		g, users, err := d.groupAndUsers(ctx, group, usernames)
		if err != nil {
			return err
		}
		leaving := map[string]bool{}
		for _, u := range users {
			leaving[u.ID] = true
		}
		// Simulate the removal: the leaving users lose this one membership.
		members, err := d.Store.GroupMemberIDs(ctx, g.ID)
		if err != nil {
			return err
		}
		for _, u := range users {
			if !slices.Contains(members, u.ID) {
				return fmt.Errorf("user %q is not a direct member of group %q", u.Username, g.Name)
			}
		}
		if err := d.guardAdminsAfter(ctx, func(groupID, userID string) bool { return groupID == g.ID && leaving[userID] }); err != nil {
			return err
		}
		for _, u := range users {
			if err := d.Store.RemoveMember(ctx, g.ID, u.ID); err != nil {
				return err
			}
			if err := d.change(ctx, store.ChangeUser, u.ID); err != nil {
				return err
			}
			if err := d.auditUser(ctx, "group.member_removed", actor, u, "group: "+g.Name, "group", g.Name, "group_id", g.ID); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *Directory) groupAndUsers(ctx context.Context, group string, usernames []string) (store.Group, []store.User, error) {
	g, err := d.Store.GroupByName(ctx, group)
	if err != nil {
		return g, nil, err
	}
	if len(usernames) == 0 {
		return g, nil, errors.New("name at least one user")
	}
	var users []store.User
	for _, name := range usernames {
		u, err := d.Store.UserByUsername(ctx, name)
		if err != nil {
			return g, nil, err
		}
		users = append(users, u)
	}
	return g, users, nil
}

// AdminUserIDs returns the enabled users who are in an admin group, directly or through
// a child group.
func (d *Directory) AdminUserIDs(ctx context.Context) (map[string]bool, error) {
	return d.adminsWithout(ctx, nil, nil, nil)
}

// guardAdmins refuses a change if, without the users matched by goneUser and the groups
// in goneGroups, no enabled admin would remain.
func (d *Directory) guardAdmins(ctx context.Context, goneUser func(string) bool, goneGroups map[string]bool) error {
	return d.check(ctx, func() (map[string]bool, error) { return d.adminsWithout(ctx, goneUser, goneGroups, nil) })
}

// guardAdminsAfter refuses a change if, without the memberships matched by gone, no
// enabled admin would remain.
func (d *Directory) guardAdminsAfter(ctx context.Context, gone func(groupID, userID string) bool) error {
	return d.check(ctx, func() (map[string]bool, error) { return d.adminsWithout(ctx, nil, nil, gone) })
}

// check refuses when there is an enabled admin now and none would be left after. With
// no admin at all (before the setup link is used) there is nobody to lock out.
func (d *Directory) check(ctx context.Context, after func() (map[string]bool, error)) error {
	before, err := d.AdminUserIDs(ctx)
	if err != nil || len(before) == 0 {
		return err
	}
	admins, err := after()
	if err != nil {
		return err
	}
	if len(admins) == 0 {
		return fmt.Errorf("%w (a member of %s): add or enable another admin first", ErrLockout, strings.Join(quoteAll(d.AdminGroups()), " or "))
	}
	return nil
}

func (d *Directory) adminsWithout(ctx context.Context, goneUser func(string) bool, goneGroups map[string]bool, goneMembership func(string, string) bool) (map[string]bool, error) {
	groups, err := d.Store.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	children := map[string][]string{}
	var queue []string
	admin := map[string]bool{}
	for _, name := range d.AdminGroups() {
		admin[name] = true
	}
	for _, g := range groups {
		if goneGroups[g.ID] {
			continue
		}
		if g.ParentID != "" && !goneGroups[g.ParentID] {
			children[g.ParentID] = append(children[g.ParentID], g.ID)
		}
		if admin[g.Name] {
			queue = append(queue, g.ID)
		}
	}
	out := map[string]bool{}
	seen := map[string]bool{}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		queue = append(queue, children[id]...)
		members, err := d.Store.GroupMemberIDs(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, uid := range members {
			if out[uid] || (goneUser != nil && goneUser(uid)) || (goneMembership != nil && goneMembership(id, uid)) {
				continue
			}
			u, err := d.Store.UserByID(ctx, uid)
			if err != nil {
				return nil, err
			}
			if !u.Disabled {
				out[uid] = true
			}
		}
	}
	return out, nil
}

func (d *Directory) endSessions(ctx context.Context, userID string) error {
	_, err := d.endAllSessions(ctx, userID)
	return err
}

// endAllSessions ends a user's sessions and, with them, the user's OpenID Connect
// grants: a refresh token must not outlive the revocation that was meant to lock
// someone out.
func (d *Directory) endAllSessions(ctx context.Context, userID string) (int, error) {
	n, err := d.Store.DeleteUserSessions(ctx, userID)
	if err != nil {
		return 0, err
	}
	if _, err := d.Store.RevokeUserOIDCTokens(ctx, userID); err != nil {
		return n, err
	}
	return n, d.change(ctx, store.ChangeUser, userID)
}

// EndOIDCGrants ends every OpenID Connect grant of a user (exact id), as a password
// change on the account page does while keeping the session it was made in.
func (d *Directory) EndOIDCGrants(ctx context.Context, actor, userID string) error {
	return d.write(ctx, false, func(d *Directory) error {
		n, err := d.Store.RevokeUserOIDCTokens(ctx, userID)
		if err != nil || n == 0 {
			return err
		}
		return d.audit(ctx, "oidc.grants_revoked", actor, d.username(ctx, userID), userID, fmt.Sprintf("%d tokens", n))
	})
}

// RevokeSession ends one session on every replica: the row goes, and the change feed
// tells each replica's cache. Revoking one that is already gone is not an error.
func (d *Directory) RevokeSession(ctx context.Context, actor string, s store.Session) error {
	return d.write(ctx, false, func(d *Directory) error {
		if err := d.Store.DeleteSession(ctx, s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := d.change(ctx, store.ChangeSession, s.TokenHash); err != nil {
			return err
		}
		return d.audit(ctx, "session.revoked", actor, d.username(ctx, s.UserID), s.UserID, "session "+s.ID)
	})
}

// RevokeUserSessions ends every session of a user (exact username) and says how many.
func (d *Directory) RevokeUserSessions(ctx context.Context, actor, username string) (int, error) {
	u, err := d.Store.UserByUsername(ctx, username)
	if err != nil {
		return 0, err
	}
	var n int
	err = d.write(ctx, false, func(d *Directory) error {
		var err error
		if n, err = d.endAllSessions(ctx, u.ID); err != nil {
			return err
		}
		return d.auditUser(ctx, "session.revoked", actor, u, fmt.Sprintf("all %d sessions", n))
	})
	return n, err
}

// username names a user in audit events, as every event does (the id if the user is
// gone).
func (d *Directory) username(ctx context.Context, id string) string {
	if u, err := d.Store.UserByID(ctx, id); err == nil {
		return u.Username
	}
	return id
}

// audit records an event in the change's transaction, to be logged once it commits.
func (d *Directory) audit(ctx context.Context, kind, actor, target, targetID, detail string) error {
	return d.Store.AppendEvent(ctx, store.Event{Kind: kind, Actor: actor, Target: target, TargetID: targetID, Detail: detail})
}

// auditUser records an event about a user, by name and id, with fields given as
// name, value pairs. The event is the change's record in the same transaction, and
// the outbox the JSON log (and webhooks) read once it commits.
func (d *Directory) auditUser(ctx context.Context, kind, actor string, u store.User, detail string, fields ...string) error {
	e := store.Event{Kind: kind, Actor: actor, Target: u.Username, TargetID: u.ID, Detail: detail}
	for i := 0; i+1 < len(fields); i += 2 {
		if e.Fields == nil {
			e.Fields = map[string]string{}
		}
		e.Fields[fields[i]] = fields[i+1]
	}
	return d.Store.AppendEvent(ctx, e)
}

func quoteAll(items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// ErrStale means a change was refused because the record changed since the caller read
// it (an HTTP If-Match that no longer matches): read it again and decide again.
var ErrStale = errors.New("refused: the record changed since it was read")

// UserChange names the fields of a user an admin changes at once; nil fields stay.
type UserChange struct {
	Email       *string
	DisplayName *string
	Disabled    *bool
}

// ChangeUser applies an admin's change to a user (exact username) in one transaction,
// and only if the user was last updated at ifUpdated (zero: whenever) — so two
// automations cannot overwrite each other. It returns the user as it now is.
func (d *Directory) ChangeUser(ctx context.Context, actor, username string, ifUpdated time.Time, c UserChange) (store.User, error) {
	var out store.User
	err := d.write(ctx, true, func(d *Directory) error {
		u, err := d.Store.UserByUsername(ctx, username)
		if err != nil {
			return err
		}
		if !ifUpdated.IsZero() && !u.UpdatedAt.Equal(ifUpdated) {
			return fmt.Errorf("%w: user %q was changed at %s", ErrStale, u.Username, u.UpdatedAt.Format(time.RFC3339Nano))
		}
		if c.Email != nil && *c.Email != u.Email {
			if err := d.SetEmail(ctx, actor, u.Username, *c.Email); err != nil {
				return err
			}
		}
		if c.DisplayName != nil && *c.DisplayName != u.DisplayName {
			if err := CheckDisplayName(*c.DisplayName); err != nil {
				return err
			}
			if _, err := d.Store.UpdateUser(ctx, u.ID, store.UserUpdate{DisplayName: c.DisplayName}); err != nil {
				return err
			}
			if err := d.change(ctx, store.ChangeUser, u.ID); err != nil {
				return err
			}
			if err := d.auditUser(ctx, "user.name_set", actor, u, *c.DisplayName); err != nil {
				return err
			}
		}
		if c.Disabled != nil && *c.Disabled != u.Disabled {
			if err := d.SetDisabled(ctx, actor, u.Username, *c.Disabled); err != nil {
				return err
			}
		}
		out, err = d.Store.UserByID(ctx, u.ID)
		return err
	})
	return out, err
}
