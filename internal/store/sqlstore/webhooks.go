package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

// CreateSignInLink stores the hash of a one-time sign-in link.
func (s *Store) CreateSignInLink(ctx context.Context, l store.SignInLink) error {
	if l.Purpose == "" {
		l.Purpose = store.LinkSignIn
	}
	_, err := s.conn().exec(ctx, "INSERT INTO signin_links (token_hash, user_id, created_by, created_at, expires_at, purpose) VALUES ($1, $2, $3, $4, $5, $6)",
		l.TokenHash, l.UserID, l.CreatedBy, toDB(l.CreatedAt), toDB(l.ExpiresAt), l.Purpose)
	return s.mapErr(err, "sign-in link")
}

const signInLinkColumns = "token_hash, user_id, created_by, created_at, expires_at, purpose"

func scanSignInLink(r scanner) (store.SignInLink, error) {
	var l store.SignInLink
	var created, expires int64
	err := r.Scan(&l.TokenHash, &l.UserID, &l.CreatedBy, &created, &expires, &l.Purpose)
	l.CreatedAt, l.ExpiresAt = fromDB(created), fromDB(expires)
	return l, err
}

// SignInLinkValid returns the unexpired link with this hash.
func (s *Store) SignInLinkValid(ctx context.Context, tokenHash string, now time.Time) (store.SignInLink, error) {
	l, err := scanSignInLink(s.conn().queryRow(ctx, "SELECT "+signInLinkColumns+" FROM signin_links WHERE token_hash = $1 AND expires_at > $2", tokenHash, toDB(now)))
	return l, s.mapErr(err, "sign-in link")
}

// UseSignInLink deletes the unexpired link with this hash and returns it, in one
// statement: two uses at once cannot both get it.
func (s *Store) UseSignInLink(ctx context.Context, tokenHash string, now time.Time) (store.SignInLink, error) {
	l, err := scanSignInLink(s.conn().queryRow(ctx, "DELETE FROM signin_links WHERE token_hash = $1 AND expires_at > $2 RETURNING "+signInLinkColumns, tokenHash, toDB(now)))
	return l, s.mapErr(err, "sign-in link")
}

// DeleteSignInLinks removes a person's links of purpose and every expired one.
func (s *Store) DeleteSignInLinks(ctx context.Context, userID, purpose string, now time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM signin_links WHERE (user_id = $1 AND purpose = $2) OR expires_at <= $3", userID, purpose, toDB(now))
	return n, s.mapErr(err, "sign-in links")
}

const deliveryColumns = "id, webhook, event_id, event_kind, body, state, attempts, created_at, next_at, finished_at, last_status, last_error"

func scanDelivery(r scanner) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var created, next, finished int64
	err := r.Scan(&d.ID, &d.Webhook, &d.EventID, &d.EventKind, &d.Body, &d.State, &d.Attempts, &created, &next, &finished, &d.LastStatus, &d.LastError)
	d.CreatedAt, d.NextAt, d.FinishedAt = fromDB(created), fromDB(next), fromDB(finished)
	return d, err
}

// QueueWebhooks claims events not yet routed (hooked_at 0) like ClaimUnloggedEvents
// does, and stores their deliveries in the same transaction: an event is routed once,
// and never claimed without its deliveries.
func (s *Store) QueueWebhooks(ctx context.Context, now time.Time, limit int, route func(store.Event) []store.WebhookDelivery) (int, error) {
	var pending int64
	switch err := s.conn().queryRow(ctx, "SELECT id FROM events WHERE hooked_at = 0 LIMIT 1").Scan(&pending); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, s.mapErr(err, "reading events for webhooks")
	}
	claimed := 0
	err := s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		rows, err := c.query(ctx, "UPDATE events SET hooked_at = $1 WHERE id IN (SELECT id FROM events WHERE hooked_at = 0 ORDER BY id LIMIT $2) AND hooked_at = 0 RETURNING "+eventColumns,
			toDB(now), limit)
		if err != nil {
			return s.mapErr(err, "claiming events for webhooks")
		}
		events, err := collect(rows, scanEvent)
		if err != nil {
			return s.mapErr(err, "claiming events for webhooks")
		}
		claimed = len(events)
		for _, e := range events {
			for _, d := range route(e) {
				if _, err := c.exec(ctx, "INSERT INTO webhook_deliveries (webhook, event_id, event_kind, body, created_at, next_at) VALUES ($1, $2, $3, $4, $5, $5)",
					d.Webhook, e.ID, e.Kind, d.Body, toDB(now)); err != nil {
					return s.mapErr(err, "webhook delivery of event "+fmt.Sprint(e.ID))
				}
			}
		}
		return nil
	})
	return claimed, err
}

// ClaimWebhookDeliveries takes pending deliveries that are due, for this caller alone
// until until; the outer next_at test is checked again on a row another replica
// claimed while this statement waited for its lock.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, now, until time.Time, limit int) ([]store.WebhookDelivery, error) {
	rows, err := s.conn().query(ctx, `UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = $2
		WHERE state = 'pending' AND next_at <= $1 AND id IN (
			SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_at <= $1 ORDER BY next_at, id LIMIT $3)
		RETURNING `+deliveryColumns, toDB(now), toDB(until), limit)
	if err != nil {
		return nil, s.mapErr(err, "claiming webhook deliveries")
	}
	return collect(rows, scanDelivery)
}

// FinishWebhookAttempt stores how an attempt went.
func (s *Store) FinishWebhookAttempt(ctx context.Context, d store.WebhookDelivery) error {
	_, err := s.conn().exec(ctx, "UPDATE webhook_deliveries SET state = $1, next_at = $2, finished_at = $3, last_status = $4, last_error = $5 WHERE id = $6",
		d.State, toDB(d.NextAt), toDB(d.FinishedAt), d.LastStatus, d.LastError, d.ID)
	return s.mapErr(err, "webhook delivery")
}

// WebhookDeliveries lists deliveries newest first.
func (s *Store) WebhookDeliveries(ctx context.Context, webhook string, beforeID int64, limit int) ([]store.WebhookDelivery, error) {
	q, args := "SELECT "+deliveryColumns+" FROM webhook_deliveries WHERE ($1 = '' OR webhook = $1)", []any{webhook}
	if beforeID > 0 {
		q += " AND id < $3"
	}
	q += " ORDER BY id DESC LIMIT $2"
	args = append(args, limit)
	if beforeID > 0 {
		args = append(args, beforeID)
	}
	rows, err := s.conn().query(ctx, q, args...)
	if err != nil {
		return nil, s.mapErr(err, "listing webhook deliveries")
	}
	return collect(rows, scanDelivery)
}

// PruneWebhookDeliveries deletes deliveries that finished before before.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND finished_at < $1", toDB(before))
	return n, s.mapErr(err, "pruning webhook deliveries")
}
