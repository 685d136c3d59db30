package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// createDatabase makes an empty database on the server at adminURL and returns its URL
// and a function that drops it.
func createDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, err
	}
	var b [4]byte
	rand.Read(b[:])
	name := "gatehouse_bench_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u, _ := url.Parse(adminURL)
	u.Path = "/" + name
	drop := func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(dctx)
	}
	return u.String(), drop, nil
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
