package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pgSchemaVersion is the census schema version this binary writes in
// PostgreSQL, kept in census_schema. Each entry of pgMigrations moves the
// schema from version i to i+1. It counts apart from SQLite's
// schemaVersion: the PostgreSQL schema started at SQLite's version 3.
const pgSchemaVersion = 1

// pgMigrationLock is the advisory lock key migrations take, so that proxies
// starting together migrate one after the other.
const pgMigrationLock = 0x7465_6c65_7570_6431 // "teleupd1"

var pgMigrations = []string{
	// 0 → 1: hosts, as SQLite's version 3 keeps them. There is no counts
	// table: Summary groups the hosts by dims instead (see pgDB.summary).
	// Nor is last_seen indexed: every report changes it, and without an
	// index on it (and room left in each page) a host's next report is a
	// heap-only update that touches no index; the stale hosts and Forget
	// scan the table instead, tens of milliseconds for 100,000 hosts.
	`CREATE TABLE census_schema (version integer NOT NULL);
	INSERT INTO census_schema (version) VALUES (0);
	CREATE TABLE hosts (
		host_id                text PRIMARY KEY,
		grp                    text NOT NULL,
		version                text NOT NULL,
		services               text NOT NULL, -- JSON array
		os                     text NOT NULL,
		os_version             text NOT NULL,
		arch                   text NOT NULL,
		glibc                  text NOT NULL,
		install_methods        text NOT NULL, -- JSON array
		container_runtime      text NOT NULL,
		container_orchestrator text NOT NULL,
		cloud                  text NOT NULL,
		updater_status         text NOT NULL,
		last_result            text NOT NULL, -- success | failure | none
		last_update_time       bigint,        -- unix ms, NULL without a result
		last_update_target     text NOT NULL,
		last_update_error      text NOT NULL,
		reported_at            bigint NOT NULL, -- agent clock, unix ms
		first_seen             bigint NOT NULL, -- proxy clock, unix ms
		last_seen              bigint NOT NULL, -- proxy clock, unix ms
		dims                   text NOT NULL,   -- the summary dimensions, one key (see dimsKey)
		history                text NOT NULL,   -- JSON array of historyEntry, newest first
		host_key               bytea,           -- the bound Ed25519 key; NULL: none
		seq                    bigint NOT NULL DEFAULT 0,
		rate_tokens            double precision -- the host's report bucket; NULL: full
	) WITH (fillfactor = 80);
	CREATE INDEX hosts_group_first_seen ON hosts (grp, first_seen);`,
}

// pgVersion reads the census schema version: 0 without census_schema.
func pgVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('census_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT version FROM census_schema`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// migrate brings the schema to pgSchemaVersion in one transaction, under
// the migration lock.
func (p *pgDB) migrate(ctx context.Context) error {
	return migratePostgres(ctx, p, pgSchemaVersion)
}

// migratePostgres brings the schema to version target (tests migrate to
// earlier versions).
func migratePostgres(ctx context.Context, p *pgDB, target int) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgMigrationLock)); err != nil {
		return fmt.Errorf("migrate schema: lock: %w", err)
	}
	v, err := pgVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	if v > pgSchemaVersion {
		return fmt.Errorf("migrate schema: %w: version %d, this binary knows up to %d", ErrNewerSchema, v, pgSchemaVersion)
	}
	if v >= target {
		return nil
	}
	for i := v; i < target; i++ {
		if _, err := tx.Exec(ctx, pgMigrations[i]); err != nil {
			return fmt.Errorf("migrate schema from version %d: %w", i, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE census_schema SET version = $1`, target); err != nil {
		return fmt.Errorf("migrate schema: set version: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate schema: commit: %w", err)
	}
	return nil
}

// checkSchema checks, for a read-only open, that the database has this
// binary's schema.
func (p *pgDB) checkSchema(ctx context.Context) error {
	v, err := pgVersion(ctx, p.pool)
	if err != nil {
		return err
	}
	return checkSchema(v, pgSchemaVersion)
}
