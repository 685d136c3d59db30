package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/kuberules"
	"github.com/gatehouse-id/gatehouse/internal/server"
)

func (c *cli) serve(args []string) error {
	fs := c.flags("serve")
	check := fs.Bool("check-config", false, "validate the config and exit")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(c.stdout, "config is valid: %d access rule(s), database %s\n", len(cfg.Access.Rules), dbKind(&cfg))
		groups, people, noAdmin, why := c.existingGroups(cfg)
		if why != "" {
			fmt.Fprintf(c.stdout, "groups in the database not checked: %s\n", why)
		}
		for _, w := range config.Lint(&cfg, groups, people) {
			fmt.Fprintf(c.stdout, "warning: %s\n", w)
		}
		if noAdmin != "" {
			fmt.Fprintf(c.stdout, "warning: access.admin_groups: %s\n", noAdmin)
		}
		if cfg.Access.Kubernetes.Enabled {
			if _, err := kuberules.RESTConfig(cfg.Access.Kubernetes); err != nil {
				fmt.Fprintf(c.stdout, "warning: %v\n", err)
			}
			fmt.Fprintln(c.stdout, "access.kubernetes is on: `gatehouse access kubernetes` lists the rules the cluster's annotations make, and their problems")
		}
		return nil
	}
	log, level := server.NewLogger(&cfg, c.stderr)
	// The serving listener opens once the app can answer (see server.Run); a taken port
	// is still reported at once.
	listen := func() (net.Listener, error) {
		ln, err := net.Listen("tcp", cfg.Server.Address)
		if err != nil {
			return nil, fmt.Errorf("server.address: cannot listen on %s: %w", cfg.Server.Address, err)
		}
		return ln, nil
	}
	probe, err := listen()
	if err != nil {
		return err
	}
	probe.Close()
	var metrics net.Listener
	if cfg.Server.MetricsAddress != "" {
		if metrics, err = net.Listen("tcp", cfg.Server.MetricsAddress); err != nil {
			return fmt.Errorf("server.metrics_address: cannot listen on %s: %w (set another address, or \"\" for no metrics)", cfg.Server.MetricsAddress, err)
		}
	}
	if cfg.Server.DebugAddress != "" {
		go serveDebug(cfg.Server.DebugAddress, log)
	}
	log.Info("gatehouse is starting", "address", cfg.Server.Address, "metrics_address", cfg.Server.MetricsAddress,
		"public_url", cfg.Server.PublicURL, "database", dbKind(&cfg), "version", version)
	return server.Run(c.ctx, cfg, log, level, listen, metrics, func(app *server.App) error {
		if err := app.PrintSetupLink(c.ctx, c.stderr); err != nil {
			return fmt.Errorf("creating the setup link: %w", err)
		}
		if c.configPath != "" {
			go config.Watch(c.ctx, c.configPath, c.env, time.Second, cfg, log, func(next config.Config) {
				if err := app.Reload(c.ctx, next); err != nil {
					log.Error("applying the reloaded config failed", "error", err.Error())
				}
			})
		}
		return nil
	})
}

func dbKind(cfg *config.Config) string {
	if path, ok := cfg.SQLitePath(); ok {
		return "sqlite (" + path + ")"
	}
	return "postgres"
}

// serveDebug serves Go's profiler on its own listener, never on the public one.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	log.Info("profiler listening", "address", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("server.debug_address: the profiler could not listen", "address", addr, "error", err.Error())
	}
}

// existingGroups lists the groups of the database cfg names, without creating or
// migrating anything; with no database to read it says why (and the config's own
// groups are still checked).
func (c *cli) existingGroups(cfg config.Config) (groups []string, people bool, noAdmin, why string) {
	if path, ok := cfg.SQLitePath(); ok {
		if _, err := os.Stat(path); err != nil {
			return []string{}, false, "", "there is no database yet at " + path
		}
	}
	st, err := server.OpenStore(&cfg)
	if err != nil {
		return []string{}, false, "", err.Error()
	}
	defer st.Close()
	if v, _, err := st.SchemaVersion(c.ctx); err != nil || v == 0 {
		return []string{}, false, "", "the database has no Gatehouse schema yet"
	}
	names, err := server.GroupNames(c.ctx, st)
	if err != nil {
		return []string{}, false, "", err.Error()
	}
	users, err := st.ListUsersAfter(c.ctx, "", 1)
	return names, err == nil && len(users) > 0, server.NoAdminReason(c.ctx, st, cfg.Access.AdminGroups), ""
}
