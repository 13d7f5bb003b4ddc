package executor

import (
	"context"
	"fmt"

	"go.starlark.net/starlark"
)

// The effect barrier of lazily journalled runs (see run.lazy): a node
// attempt acts on the world only through its resources, so before it
// opens one, everything its run has queued for the journal so far (the
// creation, upstream completions, this attempt's start) must be
// committed. Then nothing outside the process ever sees an effect of an
// execution that a crash could make vanish or replace: a crash before the
// first commit loses only an execution that never acted on the world and
// whose caller got an error. Nodes that open no resource never wait.

// barrierResources is the AttemptResources of an attempt of a lazy run:
// every Open passes the barrier first. It is the only way an attempt
// reaches its resources (run.attempt), so no path skips it.
type barrierResources struct {
	AttemptResources
	r *run
}

func (b barrierResources) Open(ctx context.Context, name string) (starlark.Value, error) {
	if err := b.r.waitJournalled(ctx); err != nil {
		return nil, fmt.Errorf("resource '%s': %w", name, err)
	}
	return b.AttemptResources.Open(ctx, name)
}

// waitJournalled returns once every event the run has queued for the
// journal so far is committed, or with an error if one could not be
// (journal failure, the execution lost to another process) or ctx ends
// first. A run that has nothing uncommitted returns at once; otherwise a
// barrier item, which the journal writer treats as a waiting run (it
// commits without waiting out its gather window), is queued after them.
func (r *run) waitJournalled(ctx context.Context) error {
	r.mu.Lock()
	if r.committed >= r.seq || r.err != nil || r.fenced {
		err := r.barrierErrLocked()
		r.mu.Unlock()
		return err
	}
	wait := make(chan struct{})
	r.e.journal.enqueue(&journalItem{run: r, barrier: true, wait: wait})
	r.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.barrierErrLocked()
}

func (r *run) barrierErrLocked() error {
	switch {
	case r.fenced:
		return fmt.Errorf("execution %s: %w", r.id, ErrFenced)
	case r.err != nil:
		return r.err
	}
	return nil
}
