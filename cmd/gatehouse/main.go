// Command gatehouse is the identity provider and forward-auth service: `gatehouse serve`
// runs it, and the other subcommands manage users, groups, sessions and the schema.
// This file only parses the command line and wires packages together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/gatehouse-id/gatehouse/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError is a command-line mistake: exit code 2 and a hint.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usage = `Gatehouse: the identity provider and forward-auth service.

Usage:
  gatehouse serve [--config FILE] [--check-config]   run the server (default: SQLite in ./gatehouse-data, port 9000)
  gatehouse migrate [--dry-run]                      apply (or list) database migrations
  gatehouse user add USERNAME [--email E] [--name N] [--group G]... [--password-stdin | --no-password]
  gatehouse user list | show USERNAME | set-email USERNAME EMAIL | passwd USERNAME [--password-stdin]
  gatehouse user link USERNAME                       a one-time sign-in link, to set a password or add a passkey
  gatehouse user link-account USERNAME PROVIDER SUBJECT   link an account at a login provider
  gatehouse user disable USERNAME | enable USERNAME | delete USERNAME
  gatehouse user credentials list USERNAME | credentials remove USERNAME ID | mfa reset USERNAME
  gatehouse group add NAME [--parent GROUP] | list | delete NAME
  gatehouse group members add|remove GROUP USERNAME...
  gatehouse session list [--user USERNAME] | revoke SESSION_ID... | revoke --user USERNAME
  gatehouse token create NAME [--scope S]... [--expires 90d|never] | list | revoke ID|NAME
  gatehouse app-password create USERNAME NAME --host HOST... [--expires never|365d]
  gatehouse app-password list USERNAME | revoke USERNAME ID|NAME
  gatehouse invite create --group G... [--expires 7d] [--uses 1] [--email E | --domain D] [--note N]
  gatehouse invite list [--json] | revoke ID
  gatehouse access explain USERNAME|- URL [--two-factor] [--json]   what forward auth decides, and why
  gatehouse access kubernetes [--json]   the rules Kubernetes annotations make, and their problems
  gatehouse oidc hash-secret --secret-stdin | keys | rotate-keys
  gatehouse backup FILE                              a consistent copy of the SQLite database, while the server runs
  gatehouse restore FILE [--force]                   put a backup in place (the server stopped); the old file is kept
  gatehouse key export                               print the server secret an older Gatehouse stored in the database
  gatehouse config reference                         print the config reference (Markdown)
  gatehouse healthcheck [--url URL]                  exit 0 when the local server is ready
  gatehouse version

Every command takes --config FILE (before or after the command); without it the
config is GATEHOUSE_CONFIG, else ./gatehouse.yaml, else /etc/gatehouse/gatehouse.yaml,
else the built-in defaults. Every config key can also be set with an environment
variable GATEHOUSE_SECTION_KEY (see the README's config reference). Every command
takes --help.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ())
	stop()
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "gatehouse: %s\nRun `gatehouse help` for usage.\n", ue.msg)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "gatehouse: %s\n", err)
		os.Exit(1)
	}
}

// commands are the subcommands, for suggestions.
var commands = []string{"serve", "migrate", "user", "group", "oidc", "key", "session", "token", "app-password", "invite", "access", "backup", "restore", "config", "healthcheck", "version", "help"}

// run executes one command line; main's only job is the process around it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env []string) error {
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, env: env}
	// Global flags may come before the command, as with git, docker and kubectl.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && !slices.Contains([]string{"-h", "--help", "--version"}, args[0]) {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if name != "config" {
			return usagef("unknown flag %s before the command: only --config FILE may come first", args[0])
		}
		if !hasValue {
			if len(args) < 2 {
				return usagef("--config needs a file")
			}
			value, args = args[1], args[1:]
		}
		c.configPath, args = value, args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("name a command")
	}
	cmd, rest := args[0], args[1:]
	if c.configPath != "" {
		rest = append(rest, "--config", c.configPath) // after the subcommand, which comes first
	}
	var err error
	switch cmd {
	case "serve":
		err = c.serve(rest)
	case "migrate":
		err = c.migrate(rest)
	case "user":
		err = c.user(rest)
	case "group":
		err = c.group(rest)
	case "oidc":
		err = c.oidcCmd(rest)
	case "key":
		err = c.key(rest)
	case "session":
		err = c.session(rest)
	case "app-password":
		err = c.appPassword(rest)
	case "invite":
		err = c.invite(rest)
	case "access":
		err = c.accessCmd(rest)
	case "token":
		err = c.token(rest)
	case "backup":
		err = c.backup(rest)
	case "restore":
		err = c.restore(rest)
	case "config":
		err = c.config(rest)
	case "healthcheck":
		err = c.healthcheck(rest)
	case "version", "--version":
		fmt.Fprintf(stdout, "gatehouse %s\n", buildVersion())
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		if near := config.Nearest(cmd, commands); near != "" {
			return usagef("unknown command %q: did you mean %q?", cmd, near)
		}
		return usagef("unknown command %q", cmd)
	}
	var help helpShown
	if errors.As(err, &help) {
		fmt.Fprint(stdout, help.text)
		return nil
	}
	return err
}

// buildVersion is the version stamped at link time, else the module version and VCS
// revision Go records in the binary.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if version != "dev" || !ok {
		return version
	}
	v := info.Main.Version
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	switch {
	case v != "" && v != "(devel)" && rev != "":
		return v + " (" + rev + modified + ")"
	case v != "" && v != "(devel)":
		return v
	case rev != "":
		return "dev (" + rev + modified + ")"
	}
	return version
}
