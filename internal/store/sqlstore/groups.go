package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store"
)

const groupColumns = "id, name, parent_id, from_config, created_at"

func scanGroup(r scanner) (store.Group, error) {
	var g store.Group
	var parent sql.NullString
	var fromConfig int
	var created int64
	err := r.Scan(&g.ID, &g.Name, &parent, &fromConfig, &created)
	g.ParentID, g.FromConfig, g.CreatedAt = parent.String, fromConfig != 0, fromDB(created)
	return g, err
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// CreateGroup inserts g with a new id; ErrConflict when the name is taken.
func (s *Store) CreateGroup(ctx context.Context, g store.Group) (store.Group, error) {
	return s.createGroup(ctx, s.conn(), g)
}

func (s *Store) createGroup(ctx context.Context, c counted, g store.Group) (store.Group, error) {
	g.ID, g.CreatedAt = NewID(), time.Now().UTC().Truncate(time.Microsecond)
	_, err := c.exec(ctx, "INSERT INTO usergroups ("+groupColumns+") VALUES ($1, $2, $3, $4, $5)",
		g.ID, g.Name, nullable(g.ParentID), boolDB(g.FromConfig), toDB(g.CreatedAt))
	return g, s.mapErr(err, "group "+quote(g.Name))
}

// GroupByName looks a group up by its exact name.
func (s *Store) GroupByName(ctx context.Context, name string) (store.Group, error) {
	return s.groupByName(ctx, s.conn(), name)
}

func (s *Store) groupByName(ctx context.Context, c counted, name string) (store.Group, error) {
	g, err := scanGroup(c.queryRow(ctx, "SELECT "+groupColumns+" FROM usergroups WHERE name = $1", name))
	return g, s.mapErr(err, "group "+quote(name))
}

// ListGroups returns every group ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]store.Group, error) {
	rows, err := s.conn().query(ctx, "SELECT "+groupColumns+" FROM usergroups ORDER BY name")
	if err != nil {
		return nil, s.mapErr(err, "listing groups")
	}
	return collect(rows, scanGroup)
}

// SetGroupParent sets (or, with "", clears) a group's parent.
func (s *Store) SetGroupParent(ctx context.Context, id, parentID string) error {
	return s.mustAffect(ctx, "group id "+quote(id), "UPDATE usergroups SET parent_id = $1 WHERE id = $2", nullable(parentID), id)
}

// DeleteGroup removes a group and its memberships; its children become top-level.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	return s.mustAffect(ctx, "group id "+quote(id), "DELETE FROM usergroups WHERE id = $1", id)
}

// AddMember makes a user a direct member of a group; adding twice is not an error.
func (s *Store) AddMember(ctx context.Context, groupID, userID string) error {
	_, err := s.conn().exec(ctx, "INSERT INTO memberships (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", groupID, userID)
	return s.mapErr(err, "membership")
}

// RemoveMember removes a direct membership; ErrNotFound when there was none.
func (s *Store) RemoveMember(ctx context.Context, groupID, userID string) error {
	return s.mustAffect(ctx, "membership", "DELETE FROM memberships WHERE group_id = $1 AND user_id = $2", groupID, userID)
}

func scanString(r scanner) (string, error) {
	var v string
	err := r.Scan(&v)
	return v, err
}

// UserGroupIDs returns the ids of the groups a user is directly in.
func (s *Store) UserGroupIDs(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.conn().query(ctx, "SELECT group_id FROM memberships WHERE user_id = $1 ORDER BY group_id", userID)
	if err != nil {
		return nil, s.mapErr(err, "groups of user")
	}
	return collect(rows, scanString)
}

// GroupMemberIDs returns the user ids of a group's direct members.
func (s *Store) GroupMemberIDs(ctx context.Context, groupID string) ([]string, error) {
	rows, err := s.conn().query(ctx, "SELECT user_id FROM memberships WHERE group_id = $1 ORDER BY user_id", groupID)
	if err != nil {
		return nil, s.mapErr(err, "members of group")
	}
	return collect(rows, scanString)
}

// SyncConfigGroups creates the declared groups, sets their parents, marks them as
// config-owned, and hands groups that are no longer declared back to data.
func (s *Store) SyncConfigGroups(ctx context.Context, parents map[string]string) error {
	return s.inTx(ctx, func(c counted, _ *sql.Tx) error {
		ids := map[string]string{}
		for name := range parents {
			g, err := s.groupByName(ctx, c, name)
			if err != nil {
				g, err = s.createGroup(ctx, c, store.Group{Name: name, FromConfig: true})
			}
			if err != nil {
				return err
			}
			ids[name] = g.ID
		}
		if _, err := c.exec(ctx, "UPDATE usergroups SET from_config = 0 WHERE from_config = 1"); err != nil {
			return s.mapErr(err, "config groups")
		}
		for name, parent := range parents {
			var parentID any
			if parent != "" {
				parentID = ids[parent]
				if parentID == "" {
					p, err := s.groupByName(ctx, c, parent)
					if err != nil {
						return err
					}
					parentID = p.ID
				}
			}
			if _, err := c.exec(ctx, "UPDATE usergroups SET from_config = 1, parent_id = $1 WHERE id = $2", parentID, ids[name]); err != nil {
				return s.mapErr(err, "group "+quote(name))
			}
		}
		return nil
	})
}
