package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/server"
	"github.com/gatehouse-id/gatehouse/internal/store/sqlite"
)

// backup writes a consistent copy of the SQLite database while the server runs, and
// says what else must be kept: the server key, which never goes into the database.
func (c *cli) backup(args []string) error {
	fs := c.flags("backup")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := exactly(1, pos, "backup FILE"); err != nil {
		return err
	}
	cfg, st, closeStore, err := c.openStore()
	if err != nil {
		return err
	}
	defer closeStore()
	if _, ok := cfg.SQLitePath(); !ok {
		return fmt.Errorf("the database is PostgreSQL: back it up with its own tool, for example\n  pg_dump --format=custom --file=%s \"$GATEHOUSE_DATABASE_URL\"\nand keep server.secret (the server key) in your secret store beside it", pos[0])
	}
	db := st.(interface{ DB() *sql.DB }).DB()
	if err := sqlite.Backup(c.ctx, db, pos[0]); err != nil {
		return err
	}
	info, _ := os.Stat(pos[0])
	v, _, _ := st.SchemaVersion(c.ctx)
	fmt.Fprintf(c.stdout, "backup written to %s (%d bytes, schema %d)\n", pos[0], info.Size(), v)
	if cfg.Server.Secret == "" {
		fmt.Fprintf(c.stdout, "keep the server key too, apart from the backup: %s\nwithout it the authenticator-app secrets and signing keys in the backup cannot be opened\n", server.KeyFilePath(&cfg))
	}
	return nil
}

// restore puts a backup in place of the configured SQLite database, which no server
// may be using; the database it replaces is kept beside it.
func (c *cli) restore(args []string) error {
	fset := c.flags("restore")
	force := fset.Bool("force", false, "restore although a server seems to hold the database (it crashed less than 11 minutes ago)")
	pos, err := parse(fset, args)
	if err != nil {
		return err
	}
	if err := exactly(1, pos, "restore FILE"); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	dest, ok := cfg.SQLitePath()
	if !ok {
		return errors.New("the database is PostgreSQL: restore it with its own tool (pg_restore --clean --dbname=\"$GATEHOUSE_DATABASE_URL\" FILE) while no replica runs")
	}
	version, err := sqlite.Check(c.ctx, pos[0])
	if err != nil {
		return err
	}
	if binary := sqlite.BinaryVersion(); version > binary {
		return fmt.Errorf("the backup has schema %d, newer than this gatehouse (%d): restore it with the release that made it", version, sqlite.BinaryVersion())
	}
	if holder, until, err := housekeepingLease(c.ctx, dest); err != nil {
		return err
	} else if holder != "" && !*force {
		return fmt.Errorf("a Gatehouse server is using %s (it holds its housekeeping lease until %s): stop it first, or pass --force if it crashed", dest, until.Format(time.DateTime))
	}
	abs, _ := filepath.Abs(dest)
	kept, err := sqlite.Restore(pos[0], dest)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "restored %s (schema %d) to %s\n", pos[0], version, abs)
	if kept != "" {
		fmt.Fprintf(c.stdout, "the database it replaced is kept as %s\n", kept)
	}
	if cfg.Server.Secret == "" {
		if _, err := os.Stat(server.KeyFilePath(&cfg)); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(c.stdout, "put the server key file from the same installation at %s before starting the server\n", server.KeyFilePath(&cfg))
		}
	}
	fmt.Fprintln(c.stdout, "start the server; migrations newer than the backup are applied at start")
	return nil
}

// housekeepingLease reports who holds the housekeeping lease of the SQLite database at
// path, if anyone does now: a running server renews it every ten minutes.
func housekeepingLease(ctx context.Context, path string) (string, time.Time, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", time.Time{}, nil
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return "", time.Time{}, err
	}
	defer db.Close()
	var holder string
	var until int64
	err = db.QueryRowContext(ctx, "SELECT holder, expires_at FROM leases WHERE name = 'housekeeping' AND expires_at > ?", time.Now().UnixMicro()).Scan(&holder, &until)
	if errors.Is(err, sql.ErrNoRows) || (err != nil && !errors.Is(err, sql.ErrConnDone)) {
		return "", time.Time{}, nil // no lease, or no Gatehouse tables: nobody to wait for
	}
	return holder, time.UnixMicro(until), err
}
