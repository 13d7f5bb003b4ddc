package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3" // the gateway's SQLite file, seeded directly
)

// storeScenario measures background work: the gateway's CPU while idle
// (recovery ticks only) and the latency of one caller's no-op calls across
// recovery ticks, first with an empty store, then with o.storeRows finished
// (not yet expired) executions stored. Both should be the same: the ticks
// must cost what the unfinished work costs, not what the store holds.
// Lines are named BenchmarkStore/<label>/…, or BenchmarkStoreBefore for
// the binary of -kgw-before, which may not read KGW_RECOVERY_INTERVAL
// (its ticks every 15 s then need a longer window).
func storeScenario(ctx context.Context, o options, bin, name string, pgPort int) error {
	g, err := startGateway(ctx, bin, pgPort)
	if err != nil {
		return err
	}
	defer g.close()
	noop := scenarios[1]
	report := func(label string) error {
		// Idle: what the ticks cost, after the set-up or the seeding has
		// settled; process CPU counts in 10 ms steps, hence the long window.
		time.Sleep(2 * time.Second)
		c0, err := serverCPU(g.proc.AdminAddr)
		if err != nil {
			return err
		}
		time.Sleep(o.idleWindow)
		c1, err := serverCPU(g.proc.AdminAddr)
		if err != nil {
			return err
		}
		fmt.Printf("%s/%s/idle\t1\t%.0f ns/op\t%.2f cpu-ms/s\n",
			name, label, float64(o.idleWindow.Nanoseconds()), (c1-c0)/o.idleWindow.Seconds()*1e3)
		m := run(ctx, g.call(noop), 1, o.warmup, o.storeWindow, g.proc.AdminAddr)
		fmt.Println(line(fmt.Sprintf("%s/%s/noop/callers=1", name, label), m))
		return nil
	}
	if err := report("empty"); err != nil {
		return err
	}
	t0 := time.Now()
	if err := seed(ctx, filepath.Join(g.proc.DataDir, "kgw.db"), o.storeRows); err != nil {
		return err
	}
	fmt.Printf("# stored %d finished executions in %s\n", o.storeRows, time.Since(t0).Round(time.Millisecond))
	return report(fmt.Sprintf("rows=%d", o.storeRows))
}

// seed inserts n finished executions, ended in the last hours (inside the
// default retention), into the gateway's SQLite file while it runs, then
// checkpoints the write-ahead log so that the gateway does not.
func seed(ctx context.Context, path string, n int) error {
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=30000&_journal_mode=WAL")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	now := time.Now().UnixNano()
	_, err = db.ExecContext(ctx, `WITH RECURSIVE i(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM i WHERE n < ?1)
		INSERT INTO executions (id, workflow, version, status, request, error, create_time, start_time, end_time,
			idempotency_key, caller, owner)
		SELECT printf('seed-%08d', n), 'bench_noop', 1, 3, '{}', NULL, ?2 - n * 10000000, ?2 - n * 10000000,
			?2 - n * 10000000 + 1000000, '', '', 'gone' FROM i`, n, now)
	if err != nil {
		return fmt.Errorf("seed %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return nil
}
