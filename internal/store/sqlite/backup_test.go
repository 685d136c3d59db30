package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Backup refuses to overwrite; Check refuses what is not an intact Gatehouse database;
// Restore keeps the database it replaces.
func TestBackupCheckRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "copy.db")
	if err := Backup(ctx, st.DB(), copyPath); err != nil {
		t.Fatal(err)
	}
	if err := Backup(ctx, st.DB(), copyPath); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("a second backup to the same file: %v", err)
	}
	if v, err := Check(ctx, copyPath); err != nil || v != BinaryVersion() {
		t.Fatalf("checking the backup: %d %v", v, err)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("not a database at all, just some bytes that are long enough"), 0o600)
	if _, err := Check(ctx, junk); err == nil {
		t.Fatal("a file that is not a database passed the check")
	}
	target := filepath.Join(dir, "restored", "gatehouse.db")
	if kept, err := Restore(copyPath, target); err != nil || kept != "" {
		t.Fatalf("restore to a new place: %q %v", kept, err)
	}
	kept, err := Restore(copyPath, target)
	if err != nil || !strings.Contains(kept, ".before-restore-") {
		t.Fatalf("restore over a database: %q %v", kept, err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("the replaced database was not kept: %v", err)
	}
}
