package sqlstore

import (
	"context"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const invitationColumns = "id, code_hash, group_ids, max_uses, uses, email, domain, note, created_by, created_at, expires_at"

func scanInvitation(r scanner) (store.Invitation, error) {
	var inv store.Invitation
	var groups string
	var created, expires int64
	err := r.Scan(&inv.ID, &inv.CodeHash, &groups, &inv.MaxUses, &inv.Uses, &inv.Email, &inv.Domain, &inv.Note, &inv.CreatedBy, &created, &expires)
	inv.GroupIDs, inv.CreatedAt, inv.ExpiresAt = strings.Fields(groups), fromDB(created), fromDB(expires)
	return inv, err
}

// CreateInvitation stores a new invitation.
func (s *Store) CreateInvitation(ctx context.Context, inv store.Invitation) (store.Invitation, error) {
	inv.ID = NewID()
	if inv.CreatedAt.IsZero() {
		inv.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	}
	_, err := s.conn().exec(ctx, "INSERT INTO invitations ("+invitationColumns+") VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10)",
		inv.ID, inv.CodeHash, strings.Join(inv.GroupIDs, " "), inv.MaxUses, inv.Email, inv.Domain, inv.Note, inv.CreatedBy, toDB(inv.CreatedAt), toDB(inv.ExpiresAt))
	return inv, s.mapErr(err, "invitation")
}

// Invitations lists every invitation, newest first.
func (s *Store) Invitations(ctx context.Context) ([]store.Invitation, error) {
	rows, err := s.conn().query(ctx, "SELECT "+invitationColumns+" FROM invitations ORDER BY created_at DESC, id")
	if err != nil {
		return nil, s.mapErr(err, "listing invitations")
	}
	return collect(rows, scanInvitation)
}

// InvitationByCode finds an invitation by its code's hash.
func (s *Store) InvitationByCode(ctx context.Context, codeHash string) (store.Invitation, error) {
	inv, err := scanInvitation(s.conn().queryRow(ctx, "SELECT "+invitationColumns+" FROM invitations WHERE code_hash = $1", codeHash))
	return inv, s.mapErr(err, "invitation")
}

// UseInvitation counts a use in one statement whose condition is checked again on
// the row it locks: two uses of the last one cannot both pass.
func (s *Store) UseInvitation(ctx context.Context, codeHash string, now time.Time) (store.Invitation, error) {
	inv, err := scanInvitation(s.conn().queryRow(ctx, "UPDATE invitations SET uses = uses + 1 WHERE code_hash = $1 AND uses < max_uses AND expires_at > $2 RETURNING "+invitationColumns,
		codeHash, toDB(now)))
	inv.Uses--
	return inv, s.mapErr(err, "invitation")
}

// DeleteInvitation removes an invitation by its exact id and returns it.
func (s *Store) DeleteInvitation(ctx context.Context, id string) (store.Invitation, error) {
	inv, err := scanInvitation(s.conn().queryRow(ctx, "DELETE FROM invitations WHERE id = $1 RETURNING "+invitationColumns, id))
	return inv, s.mapErr(err, "invitation "+quote(id))
}
