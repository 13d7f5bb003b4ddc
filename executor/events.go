package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kailash-gateway/kgw/store"
)

// commitLocked assigns ev the next seq and records it with the state of the
// given nodes (and, if header, the execution header): through the journal
// writer for durable runs, then publishes it. wait, if not nil, is closed
// once ev is journalled and published. r.mu must be held.
func (r *run) commitLocked(ev *store.Event, nodes []int, header bool, wait chan struct{}) {
	r.seq++
	ev.ExecutionID, ev.Seq = r.id, r.seq
	if !r.durable {
		r.publishLocked(ev)
		if wait != nil {
			close(wait)
		}
		return
	}
	it := &journalItem{run: r, event: ev, wait: wait}
	if header {
		h := *r.x
		h.Nodes, h.Request = nil, store.ExecutionRequest{}
		it.header = &h
	}
	if len(nodes) > 0 {
		it.nodes = make([]store.NodeUpdate, len(nodes))
		for k, i := range nodes {
			s := *r.x.Nodes[i]
			it.nodes[k] = store.NodeUpdate{ExecutionID: r.id, State: &s}
		}
	}
	r.e.journal.enqueue(it)
}

// journalled is called by the journal writer, in seq order, once ev is
// written (or failed to be).
func (r *run) journalled(ev *store.Event, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fenced || errors.Is(err, store.ErrFenced) {
		// The store refused the write: another process holds the
		// execution. The event is not published and the run stops.
		r.fenceLocked()
		return
	}
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("journal execution %s: %w", r.id, err)
		r.e.log.Error("journal write failed; execution state is not durable", "execution_id", r.id, "error", err)
	}
	if err == nil {
		r.committed = ev.Seq
	}
	r.publishLocked(ev)
}

// fenceLocked ends a run this process lost (ErrFenced): its attempts are
// cancelled, its subscribers end with ErrFenced, and it publishes, journals
// and reports nothing more.
func (r *run) fenceLocked() {
	if r.fenced {
		return
	}
	r.fenced = true
	r.err = fmt.Errorf("execution %s: %w", r.id, ErrFenced)
	r.e.log.Warn("execution taken over by another gateway process; stopping it here",
		"execution_id", r.id, "epoch", r.x.Epoch)
	if !r.ended {
		r.endedLocked(r.err)
	}
	r.cancel(ErrFenced)
}

// publishLocked appends ev to the history and hands it to the subscribers.
// It never blocks: a subscriber without room is dropped with ErrLagging.
func (r *run) publishLocked(ev *store.Event) {
	r.history = append(r.history, ev)
	for s := range r.subs {
		if !s.push(ev) {
			delete(r.subs, s)
		}
	}
	if ev.Kind.Terminal() {
		r.endedLocked(nil)
	}
}

// endedLocked detaches every subscriber once no event will follow. A
// subscriber ends after its queue with err, or io.EOF when err is nil (the
// terminal event is in its queue).
func (r *run) endedLocked(err error) {
	r.ended = true
	for s := range r.subs {
		s.fail(err)
		delete(r.subs, s)
	}
}

// closeSubsLocked ends the subscribers of a run interrupted by Close.
func (r *run) closeSubsLocked(err error) { r.endedLocked(err) }

// A Subscription follows the events of one execution in seq order, without
// gaps or duplicates: first the history after the requested seq, then live
// events until the terminal one. It is not safe for concurrent use, except
// that Close may be called from any goroutine. Events are shared: do not
// modify them.
type Subscription struct {
	e      *Executor
	id     string
	notify chan struct{} // capacity 1: "something changed"
	wake   chan struct{} // capacity 1: the store announced new events (store reads only)
	// notified: the last wait for events (store reads only) ended with a
	// notification, so the execution cannot have ended unseen: its terminal
	// event commits with its end and will be read like any other.
	notified bool

	mu     sync.Mutex
	r      *run // nil while reading from the store
	queue  []*store.Event
	limit  int   // most unread events before ErrLagging
	after  int64 // seq of the last event handed out (or asked to skip)
	done   bool  // the terminal event was handed out
	ended  bool  // no event will follow those queued (the run ended)
	err    error // how the subscription ends after its queue
	closed bool
}

var errSubscriptionClosed = errors.New("subscription closed")

// Subscribe returns a subscription to the events of execution id with seq
// greater than afterSeq (0 = from the start), live until the terminal event.
// It works for executions running here, recently finished ones and, through
// the store, journalled ones. An unknown id gives an error satisfying
// errors.Is(err, store.ErrNotFound). The caller must Close the subscription.
func (e *Executor) Subscribe(ctx context.Context, id string, afterSeq int64) (*Subscription, error) {
	if afterSeq < 0 {
		return nil, fmt.Errorf("subscribe to execution %s: negative seq %d", id, afterSeq)
	}
	s := &Subscription{e: e, id: id, after: afterSeq, notify: make(chan struct{}, 1)}
	if r := e.lookup(id); r != nil {
		r.attach(s)
		return s, nil
	}
	if e.st == nil {
		return nil, fmt.Errorf("subscribe to execution %s: %w", id, store.ErrNotFound)
	}
	if _, err := e.st.GetExecution(ctx, id); err != nil {
		return nil, fmt.Errorf("subscribe to execution %s: %w", id, err)
	}
	s.limit = e.cfg.SubscriberBuffer
	s.wake = make(chan struct{}, 1)
	e.watchers.add(s)
	return s, nil
}

// remoteWatchers wakes the subscriptions that read executions from the
// store when the store announces new events (store.Listener).
type remoteWatchers struct {
	listening atomic.Bool // notifications are being received
	mu        sync.Mutex
	m         map[string]map[*Subscription]struct{}
}

func (w *remoteWatchers) add(s *Subscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[string]map[*Subscription]struct{})
	}
	if w.m[s.id] == nil {
		w.m[s.id] = make(map[*Subscription]struct{})
	}
	w.m[s.id][s] = struct{}{}
}

func (w *remoteWatchers) remove(s *Subscription) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m[s.id], s)
	if len(w.m[s.id]) == 0 {
		delete(w.m, s.id)
	}
}

// wake tells the subscriptions to execution id that new events were
// committed.
func (w *remoteWatchers) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := range w.m[id] {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// attach makes s follow r: it queues r's history after s.after and, unless r
// has ended, registers s for live events.
func (r *run) attach(s *Subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r = r
	if s.after < int64(len(r.history)) {
		s.queue = append(s.queue, r.history[s.after:]...)
	}
	s.limit = len(s.queue) + r.e.cfg.SubscriberBuffer
	if r.ended {
		s.ended = true
		if s.err == nil {
			s.err = r.err
		}
		return
	}
	if r.subs == nil {
		r.subs = make(map[*Subscription]struct{})
	}
	r.subs[s] = struct{}{}
}

// push queues ev; it reports false when s should no longer receive events.
// Called with the run's mu held.
func (s *Subscription) push(ev *store.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.err != nil {
		return false
	}
	if ev.Seq <= s.after {
		return true
	}
	if len(s.queue) >= s.limit {
		s.err = &LaggingError{ExecutionID: s.id, ResumeAfter: ev.Seq - 1}
		s.signal()
		return false
	}
	s.queue = append(s.queue, ev)
	s.signal()
	return true
}

// fail ends s after its queue with err (nil: at the terminal event).
func (s *Subscription) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	if s.err == nil && err != nil {
		s.err = err
	}
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next returns the next event. After the terminal event it returns io.EOF.
// A subscriber that fell behind gets, after the events it was sent, an error
// satisfying errors.Is(err, ErrLagging) (a *LaggingError naming the seq to
// resume after). Next blocks until an event arrives or ctx ends.
func (s *Subscription) Next(ctx context.Context) (*store.Event, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errSubscriptionClosed
		}
		if len(s.queue) > 0 {
			ev := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.after = ev.Seq
			s.done = ev.Kind.Terminal()
			s.mu.Unlock()
			return ev, nil
		}
		if s.done {
			s.mu.Unlock()
			return nil, io.EOF
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		if s.ended {
			// The run ended and the subscriber asked to start at or after
			// its terminal event: there is nothing more to deliver.
			s.done = true
			s.mu.Unlock()
			return nil, io.EOF
		}
		fromStore := s.r == nil
		s.mu.Unlock()

		if fromStore {
			if err := s.fetch(ctx); err != nil {
				return nil, err
			}
			continue
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// storePoll is how often a subscription to an execution that runs
// elsewhere looks for new events when the store does not announce them;
// listenPoll is the fallback while it does (store.Listener), against a lost
// notification.
const (
	storePoll  = 200 * time.Millisecond
	listenPoll = time.Second
)

// fetch reads the next page of events from the store. When there is none it
// switches to the live run if the execution now runs here, or waits.
func (s *Subscription) fetch(ctx context.Context) error {
	// Take the pending wake-up before reading: a notification of events
	// committed after this read leaves a new one, so none is lost.
	select {
	case <-s.wake:
	default:
	}
	evs, err := s.e.st.ListEvents(ctx, s.id, s.after, 256)
	if err != nil {
		return fmt.Errorf("read events of execution %s: %w", s.id, err)
	}
	if len(evs) > 0 {
		s.mu.Lock()
		s.queue = append(s.queue, evs...)
		s.mu.Unlock()
		return nil
	}
	if r := s.e.lookup(s.id); r != nil {
		r.attach(s)
		return nil
	}
	if !s.notified {
		// Whether it ended (unseen: before this subscription asked to
		// start at or after its end, or with a notification lost) is read
		// only now: at the first read with nothing new, and after a wait
		// that no notification ended. Woken by notifications, reading only
		// the new events keeps one round trip on the path of each event
		// instead of a read of the whole execution.
		if err := s.checkEnded(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		done := s.done || len(s.queue) > 0
		s.mu.Unlock()
		if done {
			return nil
		}
	}
	poll := storePoll
	if s.e.watchers.listening.Load() {
		poll = listenPoll
	}
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-t.C:
		s.notified = false
		return nil
	case <-s.wake:
		s.notified = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkEnded reads the execution and, if it ended, either queues the events
// committed since the caller's read of the events or marks the history
// complete.
func (s *Subscription) checkEnded(ctx context.Context) error {
	x, err := s.e.st.GetExecution(ctx, s.id)
	if err != nil {
		return fmt.Errorf("read execution %s: %w", s.id, err)
	}
	if x.Status.Terminal() {
		// The execution may have ended after the caller's read of the
		// events: its last events commit with its terminal status, so read
		// once more. Only no events after the end was seen means the
		// history is complete.
		evs, err := s.e.st.ListEvents(ctx, s.id, s.after, 256)
		if err != nil {
			return fmt.Errorf("read events of execution %s: %w", s.id, err)
		}
		s.mu.Lock()
		if len(evs) > 0 {
			s.queue = append(s.queue, evs...)
		} else {
			s.done = true
		}
		s.mu.Unlock()
	}
	return nil
}

// Close ends the subscription. It may be called from any goroutine, more
// than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	s.closed = true
	r := s.r
	s.queue = nil
	s.mu.Unlock()
	s.signal()
	if s.wake != nil {
		s.e.watchers.remove(s)
	}
	if r != nil {
		r.mu.Lock()
		delete(r.subs, s)
		r.mu.Unlock()
	}
}
