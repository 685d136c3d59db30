package sqlstore

import (
	"context"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const mailColumns = "id, kind, to_addr, subject, text_body, html_body, state, attempts, created_at, next_at, finished_at, last_error"

func scanMail(r scanner) (store.Mail, error) {
	var m store.Mail
	var created, next, finished int64
	err := r.Scan(&m.ID, &m.Kind, &m.To, &m.Subject, &m.Text, &m.HTML, &m.State, &m.Attempts, &created, &next, &finished, &m.LastError)
	m.CreatedAt, m.NextAt, m.FinishedAt = fromDB(created), fromDB(next), fromDB(finished)
	return m, err
}

// EnqueueMail stores a mail to send, due now.
func (s *Store) EnqueueMail(ctx context.Context, m store.Mail) error {
	now := toDB(time.Now())
	_, err := s.conn().exec(ctx, "INSERT INTO mail_outbox (kind, to_addr, subject, text_body, html_body, created_at, next_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
		m.Kind, m.To, m.Subject, m.Text, m.HTML, now)
	return s.mapErr(err, "mail to "+quote(m.To))
}

// ClaimMails takes due mails for this caller alone until until, like
// ClaimWebhookDeliveries.
func (s *Store) ClaimMails(ctx context.Context, now, until time.Time, limit int) ([]store.Mail, error) {
	rows, err := s.conn().query(ctx, `UPDATE mail_outbox SET attempts = attempts + 1, next_at = $2
		WHERE state = 'pending' AND next_at <= $1 AND id IN (
			SELECT id FROM mail_outbox WHERE state = 'pending' AND next_at <= $1 ORDER BY next_at, id LIMIT $3)
		RETURNING `+mailColumns, toDB(now), toDB(until), limit)
	if err != nil {
		return nil, s.mapErr(err, "claiming mails")
	}
	return collect(rows, scanMail)
}

// FinishMail stores how an attempt went.
func (s *Store) FinishMail(ctx context.Context, m store.Mail) error {
	_, err := s.conn().exec(ctx, "UPDATE mail_outbox SET state = $1, next_at = $2, finished_at = $3, last_error = $4 WHERE id = $5",
		m.State, toDB(m.NextAt), toDB(m.FinishedAt), m.LastError, m.ID)
	return s.mapErr(err, "mail")
}

// PruneMails deletes mails that ended before before.
func (s *Store) PruneMails(ctx context.Context, before time.Time) (int, error) {
	n, err := s.conn().execAffected(ctx, "DELETE FROM mail_outbox WHERE state <> 'pending' AND finished_at < $1", toDB(before))
	return n, s.mapErr(err, "pruning mails")
}

// RecentMails lists mails newest first.
func (s *Store) RecentMails(ctx context.Context, limit int) ([]store.Mail, error) {
	rows, err := s.conn().query(ctx, "SELECT "+mailColumns+" FROM mail_outbox ORDER BY id DESC LIMIT $1", limit)
	if err != nil {
		return nil, s.mapErr(err, "listing mails")
	}
	return collect(rows, scanMail)
}
