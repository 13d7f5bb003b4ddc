package server

import (
	"context"
	"sync"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// workflowCacheTTL is how long a workflow definition read from the store
// serves executions before it is read again. Registering or deleting a
// workflow through this process forgets it at once. With a store shared by
// replicas (store.WorkflowVersions, PostgreSQL) a change made through
// another replica is forgotten when its notification arrives, and every
// use of a cached entry first checks that the version it names is still
// the stored one, which closes the window before the notification: an
// execution started after RegisterWorkflow returned on any replica gets the
// new version.
const workflowCacheTTL = time.Second

// workflowCacheSize bounds the cached definitions; the cache starts over
// when it is full.
const workflowCacheSize = 1024

// workflowCache keeps the workflow definitions that executions ask for, so
// that ExecuteWorkflow and StartExecution do not read and decode the
// definition from the store on every call. The cached workflows are
// shared: nothing may modify them.
type workflowCache struct {
	store interface {
		GetWorkflow(ctx context.Context, name string, version int32) (*store.Workflow, error)
	}
	now func() time.Time

	mu      sync.Mutex
	entries map[workflowKey]cachedWorkflow
}

// workflowKey names a workflow version; version 0 is the latest.
type workflowKey struct {
	name    string
	version int32
}

type cachedWorkflow struct {
	w       *store.Workflow
	expires time.Time
}

func newWorkflowCache(st interface {
	GetWorkflow(ctx context.Context, name string, version int32) (*store.Workflow, error)
}) *workflowCache {
	return &workflowCache{store: st, now: time.Now, entries: make(map[workflowKey]cachedWorkflow)}
}

// GetWorkflow returns the workflow version (0: the latest), from the cache
// while it is fresh. Errors are not cached.
func (c *workflowCache) GetWorkflow(ctx context.Context, name string, version int32) (*store.Workflow, error) {
	key := workflowKey{name, version}
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		vs, shared := c.store.(store.WorkflowVersions)
		if !shared {
			return e.w, nil
		}
		v, err := vs.WorkflowVersion(ctx, name, version)
		if err != nil {
			c.forget(name)
			return nil, err
		}
		if v == e.w.Version {
			return e.w, nil
		}
	}
	w, err := c.store.GetWorkflow(ctx, name, version)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= workflowCacheSize {
		clear(c.entries)
	}
	c.entries[key] = cachedWorkflow{w: w, expires: now.Add(workflowCacheTTL)}
	return w, nil
}

// forget drops every cached version of the workflow name.
func (c *workflowCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if k.name == name {
			delete(c.entries, k)
		}
	}
}
