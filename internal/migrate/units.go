package migrate

import "sync"

// unitQueue joins the planners to the fetchers. It is a FIFO bounded
// per folder (so by planners × perFolder), except that a fetcher takes the next unit of the folder it fetched
// last when one is queued: planners list several folders at once, so
// their units interleave, and a fetcher that moved to whichever folder
// came next made the source open a folder again for most batches
// (folder affinity; the connector keeps a session on its folder while it
// is being read, see imap.Conn.acquireIn).
type unitQueue struct {
	mu    sync.Mutex
	cond  *sync.Cond
	units []unit // in arrival order
	// perFolder bounds the units queued for one folder. A bound per
	// folder rather than in all keeps every folder being listed
	// represented, so that a fetcher finds the next unit of its folder
	// rather than the one of whichever planner won the race for space.
	perFolder int
	queued    map[*folderState]int
	closed    bool
	// stopped is set when the run stops: put then refuses at once.
	stopped bool
}

func newUnitQueue(perFolder int) *unitQueue {
	q := &unitQueue{perFolder: perFolder, queued: map[*folderState]int{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// put queues u, waiting while its folder has perFolder units queued; it
// returns false (u not queued) once the run stopped.
func (q *unitQueue) put(u unit) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.queued[u.fs] >= q.perFolder && !q.stopped {
		q.cond.Wait()
	}
	if q.stopped {
		return false
	}
	q.queued[u.fs]++
	q.units = append(q.units, u)
	q.cond.Broadcast()
	return true
}

// get returns the oldest unit of folder prefer, or else the oldest unit;
// it waits while the queue is empty, and returns false once it is closed
// and empty.
func (q *unitQueue) get(prefer *folderState) (unit, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.units) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.units) == 0 {
		return unit{}, false
	}
	i := 0
	if prefer != nil {
		for j, u := range q.units {
			if u.fs == prefer {
				i = j
				break
			}
		}
	}
	u := q.units[i]
	q.units = append(q.units[:i], q.units[i+1:]...)
	if q.queued[u.fs]--; q.queued[u.fs] == 0 {
		delete(q.queued, u.fs)
	}
	q.cond.Broadcast()
	return u, true
}

// stop wakes and refuses every put (the run is stopping); queued units
// are still handed out, so that fetchers account for them.
func (q *unitQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// close ends the queue: get returns false once it is empty.
func (q *unitQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
