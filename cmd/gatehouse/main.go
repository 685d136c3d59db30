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
	"syscall"
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
  gatehouse user disable USERNAME | enable USERNAME | delete USERNAME
  gatehouse user credentials list USERNAME | credentials remove USERNAME ID | mfa reset USERNAME
  gatehouse group add NAME [--parent GROUP] | list | delete NAME
  gatehouse group members add|remove GROUP USERNAME...
  gatehouse session list [--user USERNAME] | revoke SESSION_ID... | revoke --user USERNAME
  gatehouse token create NAME [--scope S]... [--expires 90d|never] | list | revoke ID|NAME
  gatehouse oidc hash-secret --secret-stdin | keys | rotate-keys
  gatehouse backup FILE                              a consistent copy of the SQLite database, while the server runs
  gatehouse restore FILE [--force]                   put a backup in place (the server stopped); the old file is kept
  gatehouse key export                               print the server secret an older Gatehouse stored in the database
  gatehouse config reference                         print the config reference (Markdown)
  gatehouse healthcheck [--url URL]                  exit 0 when the local server is ready
  gatehouse version

Every command takes --config FILE; every config key can also be set with an
environment variable GATEHOUSE_SECTION_KEY (see the README's config reference).
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

// run executes one command line; main's only job is the process around it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env []string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("name a command")
	}
	cmd, rest := args[0], args[1:]
	c := &cli{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, env: env}
	switch cmd {
	case "serve":
		return c.serve(rest)
	case "migrate":
		return c.migrate(rest)
	case "user":
		return c.user(rest)
	case "group":
		return c.group(rest)
	case "oidc":
		return c.oidcCmd(rest)
	case "key":
		return c.key(rest)
	case "session":
		return c.session(rest)
	case "token":
		return c.token(rest)
	case "backup":
		return c.backup(rest)
	case "restore":
		return c.restore(rest)
	case "config":
		return c.config(rest)
	case "healthcheck":
		return c.healthcheck(rest)
	case "version", "--version":
		fmt.Fprintf(stdout, "gatehouse %s\n", version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usagef("unknown command %q", cmd)
}
