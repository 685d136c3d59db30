package config

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"reflect"
	"time"
)

// Watch re-reads the config file every interval and calls apply with each new valid
// version. Polling the content (rather than inotify) also catches the symlink swap a
// Kubernetes ConfigMap update makes. A new version is applied only once it has stayed
// the same for one interval, so a file caught half-written is never applied (an empty,
// truncated file would otherwise read as "no rules"). An invalid or empty edit is logged
// and ignored, so requests keep being decided by the last good rules; keys that only
// take effect at start are reported as needing a restart.
func Watch(ctx context.Context, path string, env []string, interval time.Duration, current Config, log *slog.Logger, apply func(Config)) {
	applied, _ := os.ReadFile(path)
	var pending []byte
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil || bytes.Equal(data, applied) {
			pending = nil
			continue
		}
		if !bytes.Equal(data, pending) {
			pending = data // changed since the last look: wait until it holds still
			continue
		}
		applied, pending = data, nil
		if len(bytes.TrimSpace(data)) == 0 {
			log.Error("config reload refused: the file is empty; keeping the previous config", "file", path)
			continue
		}
		next, err := load(path, data, env)
		if err != nil {
			log.Error("config reload refused: keeping the previous config", "file", path, "error", err.Error())
			continue
		}
		for _, key := range RestartKeys(current, next) {
			log.Warn("config key changed but only takes effect after a restart", "key", key)
		}
		current = next
		log.Info("config reloaded", "file", path, "rules", len(next.Access.Rules))
		apply(next)
	}
}

// RestartKeys names the changed keys that a live reload cannot apply.
func RestartKeys(old, next Config) []string {
	var out []string
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, key)
		}
	}
	check("server", old.Server, next.Server)
	check("database", old.Database, next.Database)
	check("session", old.Session, next.Session)
	check("log.format", old.Log.Format, next.Log.Format)
	check("access.kubernetes", old.Access.Kubernetes, next.Access.Kubernetes)
	return out
}
