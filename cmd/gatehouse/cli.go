package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-id/gatehouse/internal/config"
	"github.com/gatehouse-id/gatehouse/internal/identity"
	"github.com/gatehouse-id/gatehouse/internal/mail"
	"github.com/gatehouse-id/gatehouse/internal/server"
	"github.com/gatehouse-id/gatehouse/internal/store"
	"golang.org/x/term"
)

// cli carries what every command needs: where to read and write, and the environment.
type cli struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	env            []string
	configPath     string
}

// flags makes a FlagSet for a command with the shared --config flag.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.configPath, "config", "", "YAML config file")
	return fs
}

// parse accepts flags before, between and after positional arguments
// ("user add alice --email a@example.com").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, helpOf(fs)
		} else if err != nil {
			return nil, usagef("%s: %v (see gatehouse %s --help)", fs.Name(), err, fs.Name())
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// loadConfig reads the config named by --config, else by GATEHOUSE_CONFIG, else the
// first file of config.SearchPath that exists; with none, the built-in defaults.
func (c *cli) loadConfig() (config.Config, error) {
	if c.configPath == "" {
		c.configPath = envValue(c.env, config.ConfigEnv)
	}
	if c.configPath == "" {
		for _, p := range config.SearchPath {
			if _, err := os.Stat(p); err == nil {
				c.configPath = p
				break
			}
		}
	}
	return config.Load(c.configPath, c.env)
}

// envValue is the value of key in env, or "".
func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// open loads the config and opens the migrated store, for the admin commands.
func (c *cli) open() (*identity.Directory, store.Store, func(), error) {
	cfg, st, closeStore, err := c.openStore()
	if err != nil {
		return nil, nil, nil, err
	}
	d := identity.NewDirectory(st, identity.NewHasher(1), func() []string { return cfg.Access.AdminGroups })
	d.Mail = mail.Composer{Config: func() *config.Config { return &cfg }}.Compose // sent by the server, from the outbox
	return d, st, closeStore, nil
}

// openStore loads the config and opens the migrated store, returning both.
func (c *cli) openStore() (config.Config, store.Store, func(), error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return cfg, nil, nil, err
	}
	// Only serve and migrate make a database: a command pointed at the wrong place
	// must say so, not create an empty one that no server reads.
	where := c.databaseNamed(cfg)
	if path, ok := cfg.SQLitePath(); ok {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return cfg, nil, nil, fmt.Errorf("no Gatehouse database at %s: %s", where, notCreated)
		}
	}
	st, err := server.OpenStore(&cfg)
	if err != nil {
		return cfg, nil, nil, err
	}
	if v, _, err := st.SchemaVersion(c.ctx); err == nil && v == 0 {
		st.Close()
		return cfg, nil, nil, fmt.Errorf("the database at %s is empty, not a Gatehouse database: %s", where, notCreated)
	}
	if _, err := st.Migrate(c.ctx); err != nil {
		st.Close()
		return cfg, nil, nil, err
	}
	return cfg, st, func() { st.Close() }, nil
}

// notCreated says what to do when a command finds no database where it looked.
const notCreated = "this command does not create one. Point it at the server's database with --config FILE " +
	"(the server's config) or GATEHOUSE_DATABASE_URL, or create it with `gatehouse migrate` (or by starting `gatehouse serve` there)"

// databaseNamed names the database cfg points at, and where that came from, for
// errors a person reads.
func (c *cli) databaseNamed(cfg config.Config) string {
	what := cfg.Database.URL
	if path, ok := cfg.SQLitePath(); ok {
		if abs, err := filepath.Abs(path); err == nil {
			what = abs
		}
	} else if u, err := url.Parse(what); err == nil {
		u.User = nil // never print a password
		what = u.Redacted()
	}
	from := "the built-in default database.url"
	switch {
	case c.configPath != "":
		from = "database.url from " + c.configPath
	case envValue(c.env, "GATEHOUSE_DATABASE_URL") != "":
		from = "GATEHOUSE_DATABASE_URL"
	}
	return what + " (" + from + ")"
}

// exactly checks the number of positional arguments.
func exactly(n int, args []string, what string) error {
	if len(args) != n {
		return usagef("expected %s", what)
	}
	return nil
}

// readPassword takes a password from standard input (--password-stdin) or a prompt on
// a terminal: never from a flag, which would land in shell history and `ps`.
func (c *cli) readPassword(fromStdin bool) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(c.stdin, identity.MaxPasswordBytes+3))
		if err != nil {
			return "", fmt.Errorf("reading the password from standard input: %w", err)
		}
		pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if pw == "" {
			return "", errors.New("--password-stdin: standard input was empty; pipe the password in, e.g. `printf '%s' \"$PW\" | gatehouse …`")
		}
		return pw, identity.CheckPassword(pw)
	}
	f, ok := c.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no password given: pipe one with --password-stdin, or run in a terminal to be prompted")
	}
	fmt.Fprint(c.stderr, "Password: ")
	a, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(c.stderr, "Password again: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the two passwords differ")
	}
	return string(a), identity.CheckPassword(string(a))
}

func (c *cli) table(header string, rows func(w io.Writer)) {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	tw.Flush()
}

func (c *cli) config(args []string) error {
	if len(args) != 1 || args[0] != "reference" {
		return usagef("config: the only subcommand is `config reference`")
	}
	fmt.Fprint(c.stdout, config.Reference())
	return nil
}

func (c *cli) migrate(args []string) error {
	fs := c.flags("migrate")
	dry := fs.Bool("dry-run", false, "list pending migrations without applying them")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	st, err := server.OpenStore(&cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if *dry {
		pending, err := st.PendingMigrations(c.ctx)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			fmt.Fprintln(c.stdout, "database schema is up to date: nothing to apply")
		}
		for _, v := range pending {
			fmt.Fprintf(c.stdout, "would apply migration %d\n", v)
		}
		return nil
	}
	applied, err := st.Migrate(c.ctx)
	if err != nil {
		return err
	}
	db, _, _ := st.SchemaVersion(c.ctx)
	fmt.Fprintf(c.stdout, "applied %d migration(s); schema version is %d\n", len(applied), db)
	return nil
}

func (c *cli) healthcheck(args []string) error {
	fs := c.flags("healthcheck")
	u := fs.String("url", "", "readiness URL (default: from server.address)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *u == "" {
		cfg, err := c.loadConfig()
		if err != nil {
			return err
		}
		host, port, _ := net.SplitHostPort(cfg.Server.Address)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		*u = "http://" + net.JoinHostPort(host, port) + "/-/health/ready/"
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(*u)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d: %s", *u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	fmt.Fprintln(c.stdout, "ready")
	return nil
}

// helpShown is a --help that was answered: exit 0, nothing more to say.
type helpShown struct{ text string }

func (h helpShown) Error() string { return h.text }

// helpOf lists a command's flags, for --help.
func helpOf(fs *flag.FlagSet) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage of gatehouse %s (flags may come before, between or after the arguments):\n", fs.Name())
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return helpShown{b.String()}
}
