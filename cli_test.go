package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/identityd/identityd/db/dbtest"
)

// TestCLIHelpAndVersion: help and version answer on stdout or stderr and
// exit 0, for the program and for each subcommand.
func TestCLIHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--version"}, {"version"}, {"serve", "--help"}, {"migrate", "down", "--help"}, {"healthcheck", "-h"}} {
		var out, errOut strings.Builder
		if code := run(context.Background(), args, &out, &errOut, envOf(nil)); code != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
		if out.Len()+errOut.Len() == 0 {
			t.Errorf("%v printed nothing", args)
		}
	}
	var out strings.Builder
	run(context.Background(), []string{"--version"}, &out, io.Discard, envOf(nil))
	if !strings.HasPrefix(out.String(), "identityd ") {
		t.Errorf("--version printed %q", out.String())
	}
}

// TestMigrateDownIsSafe: down rolls back one migration by default, refuses
// without --yes when nobody can be asked, and asks on a terminal.
func TestMigrateDownIsSafe(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		env := envOf(map[string]string{"DSN": dsn})
		migrate := func(args ...string) (string, int) {
			var out, errOut strings.Builder
			code := run(context.Background(), append([]string{"migrate"}, args...), &out, &errOut, env)
			return out.String() + errOut.String(), code
		}
		if out, code := migrate("up"); code != 0 {
			t.Fatalf("up: %s", out)
		}
		pending := func() int {
			out, _ := migrate("status")
			return strings.Count(out, "pending")
		}

		old := terminal
		t.Cleanup(func() { terminal = old })
		terminal = func() (io.Reader, bool) { return strings.NewReader(""), false }
		if out, code := migrate("down"); code == 0 || !strings.Contains(out, "--yes") || pending() != 0 {
			t.Fatalf("down without --yes and no terminal: exit %d, %q, %d pending; want a refusal naming --yes and nothing rolled back", code, out, pending())
		}

		terminal = func() (io.Reader, bool) { return strings.NewReader("no\n"), true }
		if out, code := migrate("down"); code == 0 || !strings.Contains(out, "Type yes") || pending() != 0 {
			t.Fatalf("down answered no: exit %d, %q, %d pending", code, out, pending())
		}
		terminal = func() (io.Reader, bool) { return strings.NewReader("yes\n"), true }
		if out, code := migrate("down"); code != 0 || strings.Count(out, "rolled back") != 1 || pending() != 1 {
			t.Fatalf("down answered yes: exit %d, %q, %d pending; want one migration rolled back", code, out, pending())
		}
		if out, code := migrate("up"); code != 0 {
			t.Fatalf("up: %s", out)
		}
		if out, code := migrate("down", "--steps", "2", "--yes"); code != 0 || strings.Count(out, "rolled back") != 2 || pending() != 2 {
			t.Fatalf("down --steps 2 --yes: exit %d, %q, %d pending", code, out, pending())
		}
		if out, code := migrate("up"); code != 0 {
			t.Fatalf("up: %s", out)
		}
		if out, code := migrate("down", "--all", "-c", "", "--yes"); code != 0 || !strings.Contains(out, "rolled back") {
			t.Fatalf("down --all --yes: exit %d, %q", code, out)
		}
		if out, _ := migrate("status"); strings.Contains(out, "applied") {
			t.Fatalf("after down --all: %s", out)
		}
	})
}

// TestSQLiteFolderIsNotCreatedDeep: a SQLite file in a folder whose parent
// does not exist is refused, naming the folder; only a missing last level
// (./data in a fresh clone) is made.
func TestSQLiteFolderIsNotCreatedDeep(t *testing.T) {
	base := t.TempDir()
	deep := filepath.Join(base, "no", "such", "dir", "x.db")
	var out, errOut strings.Builder
	code := run(context.Background(), []string{"migrate", "up"}, &out, &errOut, envOf(map[string]string{"DSN": "sqlite://" + deep}))
	if code == 0 || !strings.Contains(errOut.String(), filepath.Join(base, "no", "such")) {
		t.Fatalf("exit %d, %q: want a refusal naming the missing folder", code, errOut.String())
	}
	if _, err := os.Stat(filepath.Join(base, "no")); err == nil {
		t.Fatalf("a folder was created under %s", base)
	}
	shallow := filepath.Join(base, "data", "x.db")
	if code := run(context.Background(), []string{"migrate", "up"}, &out, &errOut, envOf(map[string]string{"DSN": "sqlite://" + shallow})); code != 0 {
		t.Fatalf("a missing last level: exit %d, %q", code, errOut.String())
	}
}

// TestSQLiteFileIsPrivate: the database holds password hashes, so a new
// SQLite file (and its WAL) is readable by its owner only.
func TestSQLiteFileIsPrivate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data", "x.db")
	var out, errOut strings.Builder
	if code := run(context.Background(), []string{"migrate", "up"}, &out, &errOut, envOf(map[string]string{"DSN": "sqlite://" + file})); code != 0 {
		t.Fatalf("migrate up: %s", errOut.String())
	}
	for _, f := range []string{file, file + "-wal"} {
		st, err := os.Stat(f)
		if err != nil {
			if f != file && os.IsNotExist(err) {
				continue // checkpointed away on close
			}
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want none for group and others", filepath.Base(f), st.Mode().Perm())
		}
	}
}
