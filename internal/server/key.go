package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/serverkey"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// storedSecretKey is where Gatehouse before the key file kept a generated server
// secret: in the database, beside what it protects. It is moved out at start.
const storedSecretKey = "server_secret"

// errKeyConfig marks a server key problem only the operator can fix: a replica does not
// wait for it to go away, as it waits for a database.
var errKeyConfig = errors.New("server.secret is not set or does not match")

// KeyFilePath is where the server key lives when server.secret is not set: beside the
// SQLite file ("" for PostgreSQL, where every replica needs the same key from
// outside: server.secret).
func KeyFilePath(cfg *config.Config) string {
	if path, ok := cfg.SQLitePath(); ok {
		return filepath.Join(filepath.Dir(path), "gatehouse.key")
	}
	return ""
}

// ServerKey returns the server key — server.secret, or the key file — and makes sure
// no copy of it stays in the database: a secret an older Gatehouse generated and
// stored there is moved into the key file once (or, when server.secret is set to the
// same value, deleted), with a log line.
func ServerKey(ctx context.Context, st store.Store, cfg *config.Config, log *slog.Logger) (serverkey.Key, error) {
	stored, err := st.Setting(ctx, storedSecretKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return serverkey.Key{}, fmt.Errorf("reading the server secret an older Gatehouse stored: %w", err)
	}
	material, source := cfg.Server.Secret, "server.secret"
	if material == "" {
		path := KeyFilePath(cfg)
		if path == "" {
			hint := "generate one (openssl rand -hex 32), keep it in a Secret and pass it as GATEHOUSE_SERVER_SECRET_FILE (the Helm chart's serverKey.existingSecret)"
			if stored != "" {
				hint = "this database still holds the secret an older Gatehouse generated: print it with 'gatehouse key export', keep it in a Secret and pass it as GATEHOUSE_SERVER_SECRET_FILE, so signing keys and authenticator apps keep working"
			}
			return serverkey.Key{}, fmt.Errorf("%w: with PostgreSQL every replica needs the same server key from outside the database; %s", errKeyConfig, hint)
		}
		if material, err = keyFile(path, stored, log); err != nil {
			return serverkey.Key{}, err
		}
		source = path
	}
	if stored != "" {
		if stored != material {
			return serverkey.Key{}, fmt.Errorf("%w: %s differs from the server secret an older Gatehouse stored in this database; "+
				"signing keys and authenticator apps are sealed with the stored one: print it with 'gatehouse key export' and use it as %s", errKeyConfig, source, source)
		}
		if err := st.DeleteSetting(ctx, storedSecretKey); err != nil {
			return serverkey.Key{}, err
		}
		log.Info("moved the server secret out of the database: a copy of the database alone no longer opens what it protects", "now_in", source)
	}
	return serverkey.New([]byte(material))
}

// keyFile reads the key file, or makes it (mode 0600): from the secret an older
// Gatehouse stored, or new.
func keyFile(path, stored string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			log.Warn("the server key file can be read by other users: chmod 600 it", "path", path, "mode", info.Mode().Perm().String())
		}
		key := strings.TrimSpace(string(b))
		if len(key) < 32 {
			return "", fmt.Errorf("server key file %s holds %d characters, fewer than 32: restore it from your backup (or, on a new install, delete it)", path, len(key))
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("reading the server key file: %w", err)
	}
	key := stored
	if key == "" {
		key = serverkey.Generate()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("making the folder of the server key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it just now
		return keyFile(path, stored, log)
	}
	if err != nil {
		return "", fmt.Errorf("making the server key file: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("writing the server key file: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return "", fmt.Errorf("writing the server key file: %w", err)
	}
	if stored == "" {
		log.Info("made the server key file: back it up with the database, since sealed data cannot be opened without it", "path", path)
	}
	return key, nil
}

// sealTOTPSecrets seals the authenticator-app secrets an older Gatehouse stored in the
// clear, once; a re-enrolment meanwhile wins (the swap is conditional).
func sealTOTPSecrets(ctx context.Context, st store.Store, sealer serverkey.Sealer, log *slog.Logger) error {
	all, err := st.TOTPSecrets(ctx)
	if err != nil {
		return err
	}
	n := 0
	for userID, stored := range all {
		if _, sealed, _ := sealer.OpenString(stored); sealed {
			continue
		}
		if ok, err := st.ReplaceTOTPSecret(ctx, userID, stored, sealer.SealString(stored)); err != nil {
			return err
		} else if ok {
			n++
		}
	}
	if n > 0 {
		log.Info("sealed the authenticator-app secrets stored in the clear by an older Gatehouse", "count", n)
	}
	return nil
}
