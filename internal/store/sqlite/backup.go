package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/store/sqlstore"
)

// Backup writes a consistent copy of the open database to dest while it is in use:
// VACUUM INTO reads one snapshot, so what the running server commits meanwhile is
// either in the copy or not, never half. dest must not exist yet.
func Backup(ctx context.Context, db *sql.DB, dest string) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%s exists already: name a new file (a backup never overwrites)", dest)
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dest); err != nil {
		return fmt.Errorf("writing the backup to %s: %w", dest, err)
	}
	return os.Chmod(dest, 0o600)
}

// Checkpoint copies what the write-ahead log holds into the database file and empties
// the log when nobody is reading it, so the main file is never far behind.
func Checkpoint(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	return err
}

// Check opens a database file read-only and returns its schema version after an
// integrity check: what a restore verifies before it replaces anything.
func Check(ctx context.Context, path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("the backup %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
		return 0, fmt.Errorf("%s is not an intact SQLite database (%v%s): it cannot be restored", path, err, ok)
	}
	var version int
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM gatehouse_schema").Scan(&version); err != nil {
		return 0, fmt.Errorf("%s is not a Gatehouse database (%v): it cannot be restored", path, err)
	}
	return version, nil
}

// Restore puts the backup at src in place of the database at dest, which no server may
// be using. A database already at dest is kept beside it, renamed, never deleted; the
// copy is written next to dest and renamed over it, so a failure leaves dest as it was.
func Restore(src, dest string) (kept string, err error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return "", err
	}
	tmp := dest + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("copying %s: %w", src, err)
	}
	if _, err := os.Stat(dest); err == nil {
		kept = dest + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(dest, kept); err != nil {
			os.Remove(tmp)
			return "", err
		}
		for _, side := range []string{"-wal", "-shm"} { // the old log belongs to the old file
			if err := os.Rename(dest+side, kept+side); err != nil && !errors.Is(err, fs.ErrNotExist) {
				os.Remove(tmp)
				return kept, err
			}
		}
	}
	return kept, os.Rename(tmp, dest)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// BinaryVersion is the newest schema version this binary knows.
func BinaryVersion() int {
	m, err := sqlstore.LoadMigrations("INTEGER PRIMARY KEY AUTOINCREMENT")
	if err != nil || len(m) == 0 {
		return 0
	}
	return m[len(m)-1].Version
}
