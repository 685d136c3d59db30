// Package store owns Gatehouse's persistent data model: the domain types (users, groups,
// sessions, events, changes) and the Store interface that every backend implements.
//
// Backends live in sub-packages (sqlite, postgres) and share one SQL core (sqlstore);
// storetest is the conformance suite that defines what "a working backend" means. Nothing
// outside this tree writes SQL.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors every backend returns for the same situations, so callers map them to one
// answer (an HTTP status, a CLI message) without knowing which database is underneath.
var (
	// ErrNotFound means the exact name or id looked up does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique name (username, group name) is already taken.
	ErrConflict = errors.New("already exists")
	// ErrSchemaTooNew means the database was migrated by a newer Gatehouse.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// SchemaTooNewError says which schema the database has and which this binary knows, so
// an operator rolling back an image learns at once why it refused to start.
type SchemaTooNewError struct {
	Database int // the newest migration recorded in the database
	Binary   int // the newest migration this binary carries
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema is at version %d but this gatehouse binary only knows versions up to %d: "+
		"run a gatehouse release that includes migration %d (nothing was written)", e.Database, e.Binary, e.Database)
}

// Unwrap lets errors.Is(err, ErrSchemaTooNew) match.
func (e *SchemaTooNewError) Unwrap() error { return ErrSchemaTooNew }

// User is a person (or robot) who can log in. Username is unique regardless of case,
// and so is Email when set.
type User struct {
	ID       string
	Username string
	// Email is the confirmed address: the one identity headers and ID tokens carry.
	Email string
	// EmailPending is an address the person typed for themselves, waiting to be
	// confirmed; it is never sent to apps.
	EmailPending string
	DisplayName  string
	PasswordHash string // PHC-formatted argon2id hash; empty when no password is set
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// UserUpdate names the profile fields to change; nil fields stay as they are.
type UserUpdate struct {
	Email        *string
	EmailPending *string
	DisplayName  *string
	Disabled     *bool
}

// Group is a named set of users. A group may have a parent: members of a group are
// also members of its parent, grandparent, and so on (see identity.EffectiveGroups).
type Group struct {
	ID         string
	Name       string
	ParentID   string // empty for a top-level group
	FromConfig bool   // declared in the config file: read-only for the CLI and UI
	CreatedAt  time.Time
}

// Session is a login. The bearer token is never stored: only its SHA-256 hash.
type Session struct {
	ID         string // public identifier, shown in listings and used to revoke
	TokenHash  string // hex SHA-256 of the cookie value
	UserID     string
	AuthMethod string // "password", "setup", …: kept for the account page and audits
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastSeenAt time.Time
	IP         string
	UserAgent  string
	// SID is what apps know the sign-in by (the ID token's sid): a new session of the
	// same person in the same browser keeps its predecessor's. Empty at creation
	// means the session's own ID.
	SID string
}

// Passkey is a WebAuthn credential (a passkey or a security key) a user registered
// under a name of their choosing.
type Passkey struct {
	ID           string // Gatehouse's id, shown in listings and used to rename or remove
	UserID       string
	CredentialID string // the authenticator's credential id, base64url without padding
	Name         string
	Data         string // the credential record (public key, sign count, flags) as JSON
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero until first used to sign in
}

// OIDCKey is a signing key of the OpenID Connect provider. PrivateKey is encrypted
// (by the oidc package, with the server secret) before it reaches the store.
type OIDCKey struct {
	ID         string // the JWK "kid"
	Algorithm  string // RS256 or ES256
	PrivateKey string
	CreatedAt  time.Time
}

// OIDCToken is one credential of the OpenID Connect provider, stored by the hash of
// its value. Kind is "code", "access", "refresh", "device" or "user_code".
type OIDCToken struct {
	Hash      string
	Kind      string
	ClientID  string
	UserID    string // empty for client credentials and undecided device codes
	Family    string // the grant it belongs to
	Scope     string // space-separated
	Data      string // JSON the provider keeps with it (nonce, PKCE challenge, …)
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until spent (codes, refresh and device tokens)
}

// OIDCLogout is a back-channel logout owed to an app: when no unexpired session
// carries SID any more, ClientID is told that the sign-in ended.
type OIDCLogout struct {
	SID      string
	ClientID string
	UserID   string
	Attempts int // delivery attempts so far, this claim's included
}

// APIToken is a credential of the admin HTTP API. Only Hash, the SHA-256 of the
// token, is stored; the token itself is shown once, when it is made.
type APIToken struct {
	ID         string
	Name       string
	Hash       string
	Scopes     string // space-separated
	CreatedBy  string // who made it: "cli" or another token's name
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time
	LastUsedIP string
}

// AppPassword is a credential a person made for one client (a CalDAV app, a phone,
// a script): forward auth accepts it as HTTP Basic or Bearer on rules that opt in, for
// the hosts it names only. Only Hash, the SHA-256 of the secret, is stored.
type AppPassword struct {
	ID         string
	UserID     string
	Name       string
	Hash       string
	Hosts      string // space-separated host patterns: exact, or "*.example.com"
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time
}

// IdempotentRecord is the first answer to a request sent with an Idempotency-Key;
// Status 0 means it is still being answered.
type IdempotentRecord struct {
	RequestHash string
	Status      int
	Headers     string // JSON: the answer's Location and ETag
	Body        string
}

// Event is an audit record: a denied access decision, an admin's change, a login.
type Event struct {
	ID     int64
	At     time.Time
	Kind   string // e.g. "login.failed", "user.disabled"
	Actor  string // who did it: a username, "cli", or "anonymous"
	Target string // what it was done to, by name: a username, a group, a host
	Detail string // short free text, never secrets
	// TargetID is the id of what Target names, when it has one (a user's, a group's):
	// names can be reused, ids cannot.
	TargetID string
	// Fields are the event's data, for machines (the JSON log, webhooks); Detail says
	// the same for people.
	Fields map[string]string
}

// EventQuery selects audit events: each field given must match exactly; Since and
// Until bound the time (Until exclusive); BeforeID continues a listing (newest first).
type EventQuery struct {
	Kind, Actor, Target string
	// Host selects events about a host: a target that is the host, or starts with it
	// and a "/" (a refusal's target is host and path).
	Host         string
	Since, Until time.Time
	BeforeID     int64
	Limit        int
}

// ChangeKind says what a Change invalidates in other replicas' caches.
type ChangeKind string

// The kinds of Change, each naming what a replica must drop from its session cache.
const (
	ChangeSession ChangeKind = "session" // one session (Subject is the token hash)
	ChangeUser    ChangeKind = "user"    // every session of a user (Subject is the user id)
	ChangeAll     ChangeKind = "all"     // everything (group tree edits)
)

// Change is one row of the change feed that replicas poll to keep their caches true.
type Change struct {
	ID      int64
	Kind    ChangeKind
	Subject string
	At      time.Time
}

// ThrottleBucket is the count of failed guesses under one throttle key in its window.
type ThrottleBucket struct {
	Failures    int
	WindowStart time.Time
}

// Throttles is what the regulator (authn.Regulator) asks of the store: failure counts
// per key in fixed windows, shared by every replica.
type Throttles interface {
	// ThrottleBuckets returns the buckets of those keys whose window started after since.
	ThrottleBuckets(ctx context.Context, keys []string, since time.Time) (map[string]ThrottleBucket, error)
	// ThrottleFail counts one failure under each key in one transaction; a key whose
	// window started at or before windowFloor starts a new window at now.
	ThrottleFail(ctx context.Context, keys []string, now, windowFloor time.Time) error
	// ThrottleClear forgets the keys' failures.
	ThrottleClear(ctx context.Context, keys []string) error
	// DeleteExpiredThrottle sweeps buckets whose window started at or before windowFloor.
	DeleteExpiredThrottle(ctx context.Context, windowFloor time.Time) (int, error)
}

// SetupResult reports what CompleteSetup created.
type SetupResult struct {
	User  User
	Group Group
}

// The role interfaces below split Store by what it keeps, so that a package asks for
// the part it uses: the web pages get AccountReader and cannot write at all, and a
// service's constructor says which tables it touches.

// UserReader reads people.
type UserReader interface {
	UserByID(ctx context.Context, id string) (User, error)
	// UserByUsername matches the username exactly, except for letter case, which the
	// unique index already makes unambiguous.
	UserByUsername(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	ListUsersAfter(ctx context.Context, after string, limit int) ([]User, error) // a page, by username
	// UsersByIDs reads many at once (at most 1000 ids).
	UsersByIDs(ctx context.Context, ids []string) ([]User, error)
	// UsersByEmail finds the users whose confirmed email is email, letter case aside.
	UsersByEmail(ctx context.Context, email string) ([]User, error)
}

// Users keeps people.
type Users interface {
	UserReader
	CreateUser(ctx context.Context, u User) (User, error)
	UpdateUser(ctx context.Context, id string, upd UserUpdate) (User, error)
	SetPasswordHash(ctx context.Context, id, hash string) error
	DeleteUser(ctx context.Context, id string) error
}

// GroupReader reads groups, their tree and their members.
type GroupReader interface {
	GroupByName(ctx context.Context, name string) (Group, error)
	ListGroups(ctx context.Context) ([]Group, error)
	// UserGroupIDs returns the ids of the groups a user is a direct member of.
	UserGroupIDs(ctx context.Context, userID string) ([]string, error)
	// GroupMemberIDs returns the user ids of a group's direct members.
	GroupMemberIDs(ctx context.Context, groupID string) ([]string, error)
	// GroupIDsOfUsers reads the direct groups of many users at once (at most 1000).
	GroupIDsOfUsers(ctx context.Context, userIDs []string) (map[string][]string, error)
}

// Groups keeps groups, their tree and their members.
type Groups interface {
	GroupReader
	CreateGroup(ctx context.Context, g Group) (Group, error)
	SetGroupParent(ctx context.Context, id, parentID string) error
	DeleteGroup(ctx context.Context, id string) error
	AddMember(ctx context.Context, groupID, userID string) error
	RemoveMember(ctx context.Context, groupID, userID string) error
	// SyncConfigGroups makes the config-declared groups exist with the given parents
	// (by name) and marks them read-only; groups no longer declared become data again.
	SyncConfigGroups(ctx context.Context, parents map[string]string) error
}

// SessionReader reads sign-ins.
type SessionReader interface {
	SessionByTokenHash(ctx context.Context, tokenHash string) (Session, error)
	// SignedIn is a session's first sight on a replica in one statement: the session,
	// its user and the user's direct group ids (sorted). ErrNotFound when either is
	// missing.
	SignedIn(ctx context.Context, tokenHash string) (Session, User, []string, error)
	SessionByID(ctx context.Context, id string) (Session, error)
	SessionsBySID(ctx context.Context, sid string) ([]Session, error)   // expired ones too
	ListSessions(ctx context.Context, userID string) ([]Session, error) // userID "" = all
	CountActiveSessions(ctx context.Context, now time.Time) (int, error)
}

// Sessions keeps sign-ins.
type Sessions interface {
	SessionReader
	CreateSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
	// TouchSessions records last-seen times in one batch (token hash → time).
	TouchSessions(ctx context.Context, seen map[string]time.Time) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}

// Setup keeps the one-time links that create the first admin.
type Setup interface {
	CreateSetupToken(ctx context.Context, tokenHash string, expires time.Time) error
	// CompleteSetup atomically consumes a valid setup token, creates the first admin and
	// puts them in the admin group (created when missing), then deletes all setup tokens.
	CompleteSetup(ctx context.Context, tokenHash string, now time.Time, u User, adminGroup string) (SetupResult, error)
	// SetupTokenValid reports whether an unexpired setup token with this hash exists.
	SetupTokenValid(ctx context.Context, tokenHash string, now time.Time) (bool, error)
}

// Settings holds small shared values every replica must agree on. EnsureSetting
// stores value under key unless the key exists, and returns the stored value;
// Setting reads one (ErrNotFound when absent); DeleteSetting removes one.
type Settings interface {
	EnsureSetting(ctx context.Context, key, value string) (string, error)
	Setting(ctx context.Context, key string) (string, error)
	DeleteSetting(ctx context.Context, key string) error
}

// EventReader reads the audit log.
type EventReader interface {
	ListEvents(ctx context.Context, limit int) ([]Event, error)
	FindEvents(ctx context.Context, q EventQuery) ([]Event, error)
}

// Events keeps the audit log and the change feed replicas poll.
type Events interface {
	EventReader
	AppendEvent(ctx context.Context, e Event) error
	PruneEvents(ctx context.Context, keep int) (int, error)
	// ClaimUnloggedEvents marks up to limit events not yet logged as logged and
	// returns them, oldest first; no two calls get the same event.
	ClaimUnloggedEvents(ctx context.Context, now time.Time, limit int) ([]Event, error)
	AppendChange(ctx context.Context, kind ChangeKind, subject string) error
	// ChangesSince returns changes with an id above after, oldest first.
	ChangesSince(ctx context.Context, after int64) ([]Change, error)
	LatestChangeID(ctx context.Context) (int64, error)
	PruneChanges(ctx context.Context, before time.Time) (int, error)
}

// FactorReader reads a person's credentials besides the password.
type FactorReader interface {
	TOTP(ctx context.Context, userID string) (secret string, lastStep int64, err error)
	UnusedRecoveryCodes(ctx context.Context, userID string) (int, error)
	Passkeys(ctx context.Context, userID string) ([]Passkey, error)
	PasskeyByCredentialID(ctx context.Context, credentialID string) (Passkey, error)
	AppPasswords(ctx context.Context, userID string) ([]AppPassword, error) // by name
	AppPasswordByHash(ctx context.Context, hash string) (AppPassword, error)
}

// Factors keeps second factors, passkeys and app passwords. SetTOTP replaces a user's
// TOTP secret (sealed by the caller); TOTP returns it with the last accepted step
// (ErrNotFound when none); TOTPSecrets lists every user's stored secret, and
// ReplaceTOTPSecret swaps one stored value for another only if it is still old (sealing
// values on upgrade without losing a re-enrolment that happens meanwhile). UseTOTPStep
// records step as used if it is newer than the last one and reports whether it was
// (one statement, so two replicas cannot both accept one code). SetRecoveryCodes
// replaces a user's recovery codes with these hashes; UseRecoveryCode spends an unused
// one and reports whether it was there. PasskeyByCredentialID finds the passkey a
// passwordless sign-in answered with; UsePasskey stores the record after a sign-in
// (its sign count moves) and the time. Rename and delete take the owner too, so nobody
// touches another's key. SpendChallenge records a WebAuthn challenge as answered until
// expires and reports whether it was new; a second answer to one challenge is a replay.
type Factors interface {
	FactorReader
	SetTOTP(ctx context.Context, userID, secret string) error
	TOTPSecrets(ctx context.Context) (map[string]string, error)
	ReplaceTOTPSecret(ctx context.Context, userID, old, replacement string) (bool, error)
	UseTOTPStep(ctx context.Context, userID string, step int64) (bool, error)
	DeleteTOTP(ctx context.Context, userID string) error
	SetRecoveryCodes(ctx context.Context, userID string, hashes []string) error
	UseRecoveryCode(ctx context.Context, userID, hash string) (bool, error)

	AddPasskey(ctx context.Context, p Passkey) (Passkey, error)
	UsePasskey(ctx context.Context, id, data string, at time.Time) error
	RenamePasskey(ctx context.Context, userID, id, name string) error
	DeletePasskey(ctx context.Context, userID, id string) error
	SpendChallenge(ctx context.Context, hash string, expires time.Time) (bool, error)
	DeleteSpentChallenges(ctx context.Context, now time.Time) (int, error)

	CreateAppPassword(ctx context.Context, p AppPassword) (AppPassword, error)
	// DeleteAppPassword removes one by its exact id and owner, and returns it.
	DeleteAppPassword(ctx context.Context, userID, id string) (AppPassword, error)
	// TouchAppPasswords records last-use times in one batch (hash → time).
	TouchAppPasswords(ctx context.Context, used map[string]time.Time) error
}

// OIDC keeps the OpenID Connect provider's keys, tokens, consents and owed logouts.
// UseOIDCToken spends an unexpired, unspent token in one statement and reports whether
// this call did (so two replicas never both redeem a code). RevokeOIDCFamily deletes
// every token of a grant.
type OIDC interface {
	AddOIDCKey(ctx context.Context, k OIDCKey) error
	OIDCKeys(ctx context.Context) ([]OIDCKey, error) // newest first
	DeleteOIDCKey(ctx context.Context, id string) error
	AddOIDCToken(ctx context.Context, t OIDCToken) error
	OIDCToken(ctx context.Context, hash string) (OIDCToken, error)
	UseOIDCToken(ctx context.Context, hash string, now time.Time) (bool, error)
	// DecideOIDCToken records who decided a device authorization, and how, once: a
	// token someone decided already is ErrNotFound.
	DecideOIDCToken(ctx context.Context, hash, userID, data string) error
	DeleteOIDCToken(ctx context.Context, hash string) error
	RevokeOIDCFamily(ctx context.Context, family string) (int, error)
	// UserOIDCTokens lists the unexpired tokens issued to a user (every kind), for
	// listing their grants.
	UserOIDCTokens(ctx context.Context, userID string, now time.Time) ([]OIDCToken, error)
	// AddOIDCLogout, ClaimOIDCLogouts and DeleteOIDCLogout keep the back-channel
	// logouts owed to apps (see OIDCLogout); a claim is exclusive until its backoff.
	AddOIDCLogout(ctx context.Context, l OIDCLogout) error
	ClaimOIDCLogouts(ctx context.Context, now time.Time, backoff time.Duration, limit int) ([]OIDCLogout, error)
	DeleteOIDCLogout(ctx context.Context, sid, clientID string) error
	// RevokeUserOIDCTokens deletes every token issued to a user: a password change,
	// a revocation of all sessions, disabling or deleting ends the grants too.
	RevokeUserOIDCTokens(ctx context.Context, userID string) (int, error)
	DeleteExpiredOIDCTokens(ctx context.Context, now time.Time) (int, error)
	OIDCConsent(ctx context.Context, userID, clientID string) (scope string, err error)
	SetOIDCConsent(ctx context.Context, userID, clientID, scope string) error
}

// APITokens keeps the admin API's tokens and its idempotency keys. StartIdempotent
// claims a token's idempotency key (true), or returns the record another request made
// of it; a claim older than stale is taken over.
type APITokens interface {
	CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error)
	APITokenByHash(ctx context.Context, hash string) (APIToken, error)
	ListAPITokens(ctx context.Context) ([]APIToken, error)
	DeleteAPIToken(ctx context.Context, id string) error
	TouchAPIToken(ctx context.Context, id string, at time.Time, ip string) error
	StartIdempotent(ctx context.Context, tokenID, key, reqHash string, now, stale time.Time) (IdempotentRecord, bool, error)
	FinishIdempotent(ctx context.Context, tokenID, key string, rec IdempotentRecord) error
	AbandonIdempotent(ctx context.Context, tokenID, key string) error
	DeleteOldIdempotency(ctx context.Context, before time.Time) (int, error)
}

// Leases: TakeLease grants (or renews) the named lease to holder for ttl when it is
// free, expired, or already holder's, and reports whether holder has it now.
type Leases interface {
	TakeLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Schema is the database itself: migrations and health.
type Schema interface {
	// Migrate applies pending migrations and returns the versions it applied.
	Migrate(ctx context.Context) ([]int, error)
	// PendingMigrations lists the versions Migrate would apply, changing nothing.
	PendingMigrations(ctx context.Context) ([]int, error)
	// SchemaVersion returns the database's version and this binary's newest one.
	SchemaVersion(ctx context.Context) (database, binary int, err error)
	Ping(ctx context.Context) error
	// QueryCount returns how many statements this Store has sent since it was opened.
	QueryCount() uint64
	Close() error
}

// SignInLink is a one-time link for a person: it signs them in once.
type SignInLink struct {
	TokenHash, UserID, CreatedBy string
	// Purpose is LinkSignIn (an admin's), LinkReset (a forgotten password) or
	// LinkVerify (confirms the address waiting in EmailPending).
	Purpose              string
	CreatedAt, ExpiresAt time.Time
}

// What a one-time link is for.
const (
	LinkSignIn = "signin"
	LinkReset  = "reset"
	LinkVerify = "verify"
)

// Mail is an email on its way to the SMTP server.
type Mail struct {
	ID                int64
	Kind              string // invitation, reset, verify, new_sign_in
	To, Subject       string
	Text, HTML        string
	State             string // WebhookPending, WebhookDelivered or WebhookFailed
	Attempts          int
	CreatedAt, NextAt time.Time
	FinishedAt        time.Time
	LastError         string
}

// Mails is the outbox of email.
type Mails interface {
	EnqueueMail(ctx context.Context, m Mail) error
	// ClaimMails takes up to limit pending mails due at now, oldest first, counting an
	// attempt and keeping them from every other caller until until.
	ClaimMails(ctx context.Context, now, until time.Time, limit int) ([]Mail, error)
	// FinishMail stores an attempt's outcome: State, NextAt, FinishedAt, LastError.
	FinishMail(ctx context.Context, m Mail) error
	PruneMails(ctx context.Context, before time.Time) (int, error)
	MailReader
}

// MailReader lists the outbox for the admin pages.
type MailReader interface {
	// RecentMails lists mails newest first.
	RecentMails(ctx context.Context, limit int) ([]Mail, error)
}

// SignInLinks keeps admins' one-time sign-in links, by the hash of their token.
type SignInLinks interface {
	CreateSignInLink(ctx context.Context, l SignInLink) error
	// SignInLinkValid returns the unexpired link with this hash; ErrNotFound if none.
	SignInLinkValid(ctx context.Context, tokenHash string, now time.Time) (SignInLink, error)
	// UseSignInLink deletes the unexpired link with this hash and returns it: of two
	// uses at once, one gets it and the other ErrNotFound.
	UseSignInLink(ctx context.Context, tokenHash string, now time.Time) (SignInLink, error)
	// DeleteSignInLinks removes a person's links of one purpose, and every expired one.
	DeleteSignInLinks(ctx context.Context, userID, purpose string, now time.Time) (int, error)
}

// Invitation lets people make their own account into its groups, up to MaxUses times
// before ExpiresAt.
type Invitation struct {
	ID, CodeHash         string
	GroupIDs             []string
	MaxUses, Uses        int
	Email, Domain        string // when set, what the new account's address must be (or end in)
	Note, CreatedBy      string
	CreatedAt, ExpiresAt time.Time
}

// Invitations keeps invitations by the hash of their code.
type Invitations interface {
	CreateInvitation(ctx context.Context, inv Invitation) (Invitation, error)
	Invitations(ctx context.Context) ([]Invitation, error)
	// InvitationByCode returns the invitation whose code hashes to codeHash, spent or
	// expired too; ErrNotFound if none.
	InvitationByCode(ctx context.Context, codeHash string) (Invitation, error)
	// UseInvitation counts one use of the unexpired, unspent invitation whose code
	// hashes to codeHash and returns it as it was before; ErrNotFound when there is no
	// such invitation left. Of two uses of the last one at once, one gets it.
	UseInvitation(ctx context.Context, codeHash string, now time.Time) (Invitation, error)
	DeleteInvitation(ctx context.Context, id string) (Invitation, error)
}

// UpstreamIdentity is an account at another identity provider, linked to a user.
type UpstreamIdentity struct {
	Provider, Subject, UserID, Email string
	CreatedAt                        time.Time
}

// UpstreamFlow is a sign-in on its way through another provider.
type UpstreamFlow struct {
	StateHash, Provider string
	Intent              string // UpstreamSignIn, UpstreamLink or UpstreamJoin
	UserID              string // UpstreamLink: whose account to link
	Invitation          string // UpstreamJoin: the invitation code's hash
	Nonce, Verifier     string
	ReturnTo            string
	ExpiresAt           time.Time
}

// What an upstream flow is for.
const (
	UpstreamSignIn = "signin"
	UpstreamLink   = "link"
	UpstreamJoin   = "join"
)

// Upstream keeps linked upstream identities and the flows on their way.
type Upstream interface {
	UpstreamIdentityReader
	LinkUpstream(ctx context.Context, id UpstreamIdentity) error
	// UnlinkUpstream removes one of a user's linked identities.
	UnlinkUpstream(ctx context.Context, userID, provider, subject string) error
	CreateUpstreamFlow(ctx context.Context, f UpstreamFlow) error
	// TakeUpstreamFlow deletes the unexpired flow with this state hash and returns it:
	// a state is used once. It also deletes expired flows.
	TakeUpstreamFlow(ctx context.Context, stateHash string, now time.Time) (UpstreamFlow, error)
}

// UpstreamIdentityReader finds linked identities.
type UpstreamIdentityReader interface {
	UpstreamIdentity(ctx context.Context, provider, subject string) (UpstreamIdentity, error)
	UpstreamIdentities(ctx context.Context, userID string) ([]UpstreamIdentity, error)
}

// WebhookDelivery is one event on its way to one webhook.
type WebhookDelivery struct {
	ID         int64
	Webhook    string // the webhook's name in the config
	EventID    int64
	EventKind  string
	Body       string // the JSON sent, exactly as signed
	State      string // WebhookPending, WebhookDelivered or WebhookFailed
	Attempts   int
	CreatedAt  time.Time
	NextAt     time.Time // pending: when it may be tried (again)
	FinishedAt time.Time // delivered or given up
	LastStatus int       // the receiver's last HTTP status; 0: none (it could not be reached)
	LastError  string
}

// The states of a webhook delivery.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

// WebhookReader lists deliveries for the admin pages.
type WebhookReader interface {
	// WebhookDeliveries lists deliveries newest first, below beforeID when it is
	// above 0, of one webhook when webhook is not empty.
	WebhookDeliveries(ctx context.Context, webhook string, beforeID int64, limit int) ([]WebhookDelivery, error)
}

// Webhooks is the outbox of webhook deliveries.
type Webhooks interface {
	WebhookReader
	// QueueWebhooks claims up to limit events not yet routed to webhooks, oldest first,
	// and in the same transaction stores the deliveries route makes of each (none when
	// no webhook wants it). It returns how many events it claimed.
	QueueWebhooks(ctx context.Context, now time.Time, limit int, route func(Event) []WebhookDelivery) (int, error)
	// ClaimWebhookDeliveries takes up to limit pending deliveries due at now, oldest
	// first, counting an attempt and moving their next_at to until, so nobody else
	// takes them meanwhile.
	ClaimWebhookDeliveries(ctx context.Context, now, until time.Time, limit int) ([]WebhookDelivery, error)
	// FinishWebhookAttempt stores an attempt's outcome: d's State, NextAt,
	// FinishedAt, LastStatus and LastError.
	FinishWebhookAttempt(ctx context.Context, d WebhookDelivery) error
	// PruneWebhookDeliveries deletes finished deliveries that ended before before.
	PruneWebhookDeliveries(ctx context.Context, before time.Time) (int, error)
}

// AccountReader is what the pages may read — the sign-in and account pages, and the
// admin pages' views of people and the audit log; they have no store to write with,
// so every change they ask for goes through a service.
type AccountReader interface {
	UserReader
	GroupReader
	EventReader
	SessionReader
	FactorReader
	WebhookReader
	MailReader
	SetupTokenValid(ctx context.Context, tokenHash string, now time.Time) (bool, error)
	SignInLinkValid(ctx context.Context, tokenHash string, now time.Time) (SignInLink, error)
	InvitationByCode(ctx context.Context, codeHash string) (Invitation, error)
	Invitations(ctx context.Context) ([]Invitation, error)
	UpstreamIdentityReader
}

// Store is everything Gatehouse asks of its database. Every method is safe for
// concurrent use. Lookups that lead to a change take exact ids or names.
type Store interface {
	Throttles
	Users
	Groups
	Sessions
	Setup
	SignInLinks
	Invitations
	Upstream
	Mails
	Webhooks
	Settings
	Events
	Factors
	OIDC
	APITokens
	Leases
	Schema

	// InTx runs fn with a Store whose statements are one transaction, committed when
	// fn returns nil; inside it LockDirectory serializes guarded directory changes.
	InTx(ctx context.Context, fn func(Store) error) error
	LockDirectory(ctx context.Context) error
}
