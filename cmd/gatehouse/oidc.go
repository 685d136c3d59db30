package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/oidc"
	"github.com/gatehouse-id/gatehouse/internal/server"
)

// oidcCmd manages the OpenID Connect provider: its signing keys, and hashing a client
// secret for the config file.
func (c *cli) oidcCmd(args []string) error {
	if len(args) == 0 {
		return usagef("oidc: name a subcommand (hash-secret, keys, rotate-keys)")
	}
	fs := c.flags("oidc " + args[0])
	fromStdin := fs.Bool("secret-stdin", false, "read the client secret from standard input (hash-secret)")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if err := exactly(0, pos, "oidc "+args[0]+" with no arguments"); err != nil {
		return err
	}
	if args[0] == "hash-secret" {
		if !*fromStdin {
			return usagef("oidc hash-secret reads the secret from standard input: printf '%%s' \"$SECRET\" | gatehouse oidc hash-secret --secret-stdin")
		}
		b, err := io.ReadAll(io.LimitReader(c.stdin, 4096))
		if err != nil {
			return fmt.Errorf("reading the client secret from standard input: %w", err)
		}
		secret := strings.TrimRight(string(b), "\r\n")
		if len(secret) < 32 {
			return fmt.Errorf("client secret: %d characters is too short; use at least 32 random ones (e.g. openssl rand -hex 32)", len(secret))
		}
		hash, err := identity.NewHasher(1).Hash(c.ctx, secret)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.stdout, hash)
		return nil
	}
	cfg, st, closeStore, err := c.openStore()
	if err != nil {
		return err
	}
	defer closeStore()
	log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := server.ServerKey(c.ctx, st, &cfg, log)
	if err != nil {
		return err
	}
	p := &oidc.Provider{Store: st, Config: func() *config.Config { return &cfg }, Log: log}
	p.SetKey(key)
	switch args[0] {
	case "rotate-keys":
		id, err := p.RotateKeys(c.ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "new signing key %s (%s) is published now and signs in 6 minutes, once apps that cache the key set know it; the old keys stay published until their tokens expire\n", id, cfg.OIDC.SigningAlgorithm)
	case "keys":
		keys, err := st.OIDCKeys(c.ctx)
		if err != nil {
			return err
		}
		var created []time.Time
		for _, k := range keys {
			created = append(created, k.CreatedAt)
		}
		signing := -1
		if len(keys) > 0 {
			signing = oidc.SigningIndex(created, time.Now())
		}
		c.table("ID\tALGORITHM\tCREATED\tSTATE", func(w io.Writer) {
			for i, k := range keys {
				state := "retired (published until its tokens expire)"
				switch {
				case i == signing:
					state = "signing"
				case i < signing:
					state = "published, signs once apps have cached it"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.CreatedAt.Format("2006-01-02 15:04"), state)
			}
		})
	default:
		return usagef("oidc: unknown subcommand %q (hash-secret, keys, rotate-keys)", args[0])
	}
	return nil
}
