package main

import (
	"errors"
	"fmt"

	"github.com/gatehouse-id/gatehouse/internal/server"
	"github.com/gatehouse-id/gatehouse/internal/store"
)

// key helps move the server key out of the database when upgrading a PostgreSQL
// install: an older Gatehouse generated a server secret and stored it there, and a
// replica now refuses to start until it is given from outside (server.secret).
func (c *cli) key(args []string) error {
	if len(args) == 0 || args[0] != "export" {
		return usagef("key: the subcommand is export (print the server secret an older Gatehouse stored in the database)")
	}
	fs := c.flags("key export")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if err := exactly(0, pos, "key export with no arguments"); err != nil {
		return err
	}
	cfg, st, closeStore, err := c.openStore()
	if err != nil {
		return err
	}
	defer closeStore()
	stored, err := st.Setting(c.ctx, "server_secret")
	if errors.Is(err, store.ErrNotFound) {
		where := "server.secret"
		if path := server.KeyFilePath(&cfg); path != "" && cfg.Server.Secret == "" {
			where = "the key file " + path
		}
		return fmt.Errorf("the database holds no server secret: the key is %s (it was moved out of the database already, or never was in it)", where)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, stored)
	return nil
}
