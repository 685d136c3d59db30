package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// The server key lives outside the database: a key file made at first start beside a
// SQLite file, server.secret for PostgreSQL; a secret an older Gatehouse stored in the
// database is moved out once, and never silently replaced.
func TestServerKeyLivesOutsideTheDatabase(t *testing.T) {
	openMigrated := func(t *testing.T, cfg *config.Config) store.Store {
		st, err := OpenStore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st
	}
	ctx := context.Background()
	t.Run("sqlite makes a key file once", func(t *testing.T) {
		cfg := testConfig(backends[0].url(t))
		st := openMigrated(t, &cfg)
		k1, err := ServerKey(ctx, st, &cfg, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(KeyFilePath(&cfg))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("key file %s: %v %v, want mode 0600", KeyFilePath(&cfg), info, err)
		}
		k2, _ := ServerKey(ctx, st, &cfg, quietLogger())
		if string(k1.Derive("x")) != string(k2.Derive("x")) {
			t.Fatal("a second start made another key")
		}
		if _, err := st.Setting(ctx, "server_secret"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a key was stored in the database: %v", err)
		}
		// A key file that differs from a secret still stored in the database is refused.
		st.EnsureSetting(ctx, "server_secret", strings.Repeat("s", 40))
		if _, err := ServerKey(ctx, st, &cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "gatehouse key export") {
			t.Fatalf("a differing stored secret: %v", err)
		}
		os.WriteFile(KeyFilePath(&cfg), []byte("short\n"), 0o600)
		if _, err := ServerKey(ctx, st, &cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "fewer than 32") {
			t.Fatalf("a damaged key file: %v", err)
		}
		if filepath.Dir(KeyFilePath(&cfg)) != filepath.Dir(strings.TrimPrefix(cfg.Database.URL, "sqlite:")) {
			t.Fatal("the key file is not beside the database")
		}
	})
	t.Run("postgres needs server.secret", func(t *testing.T) {
		cfg := testConfig(backends[1].url(t))
		st := openMigrated(t, &cfg)
		cfg.Server.Secret = ""
		if _, err := ServerKey(ctx, st, &cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "GATEHOUSE_SERVER_SECRET_FILE") {
			t.Fatalf("no key on PostgreSQL: %v", err)
		}
		old := strings.Repeat("o", 43)
		st.EnsureSetting(ctx, "server_secret", old)
		if _, err := ServerKey(ctx, st, &cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "gatehouse key export") {
			t.Fatalf("an upgrade without the key: %v", err)
		}
		cfg.Server.Secret = old // the operator moved it into a Secret
		if _, err := ServerKey(ctx, st, &cfg, quietLogger()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Setting(ctx, "server_secret"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the stored secret stayed in the database: %v", err)
		}
	})
}
