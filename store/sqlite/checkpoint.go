package sqlite

import (
	"context"
	"database/sql"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Checkpoints run off the commit path. By default SQLite checkpoints the
// write-ahead log inside the commit that makes it exceed 1000 pages: that
// commit copies the pages into the database file and syncs both files
// (synchronous=NORMAL syncs at checkpoints), which took milliseconds on
// our machine, so about one journal write in a hundred, and the caller
// waiting for it, was that much slower. The write connection therefore
// never checkpoints (wal_autocheckpoint=0) and a goroutine of the Store
// runs a PASSIVE checkpoint on a connection of its own every
// checkpointInterval; PASSIVE checkpoints never block the writer. Under
// continuous writes a PASSIVE checkpoint never catches up with the end of
// the log, and SQLite reuses the log from its start only after a
// checkpoint that did, so when the log passes restartFrames the
// checkpointer follows with a RESTART checkpoint, which holds the writer
// while it copies the few frames written since the PASSIVE one. Measured
// with BenchmarkJournal (sequential executions, SQLite file), five runs of
// each in turns on a shared, busy 2-core machine: p99 of one execution's
// journal writes, median 6.2 ms (4.3–11.9) with checkpoints in commits,
// 3.5 ms (2.5–6.1) with this checkpointer.

// writerDriver is the driver of the write connection: SQLite's, with
// automatic checkpoints off on every connection it opens.
const writerDriver = "sqlite3-kgw-writer"

func init() {
	sql.Register(writerDriver, &sqlite3.SQLiteDriver{
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec("PRAGMA wal_autocheckpoint=0", nil)
			return err
		},
	})
}

// checkpointInterval is how often the checkpointer runs. Commits are
// synced to disk by the checkpoint that copies them, so this bounds what
// a power loss (not a process crash) may lose of a busy gateway's last
// commits, as 1000 pages of log did before (docs/durability.md).
const checkpointInterval = 100 * time.Millisecond

// restartFrames is the log size, in pages, above which the checkpointer
// makes SQLite reuse the log from its start (16 MB with 4 KB pages).
const restartFrames = 4096

// checkpointLoop runs checkpoints on s.ckpt until stop is closed.
func (s *Store) checkpointLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// A failure (the database busy or gone) is retried at the next
			// tick; the log only grows meanwhile.
			ctx := context.Background()
			var busy, logFrames, copied int
			err := s.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied)
			if err == nil && logFrames > restartFrames {
				_ = s.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &logFrames, &copied)
			}
		}
	}
}
