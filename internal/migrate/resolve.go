package migrate

import (
	"fmt"
	"sync"
	"time"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/pacer"
	"github.com/mailferry/mailferry/internal/store"
)

// Lost-answer resolution: an APPEND whose connection dropped after its
// bytes were sent may or may not have stored the message. It is never
// sent again before the destination was looked at. This stays in the
// engine, not in a retry layer, because only the engine's ledger knows
// which copies on the destination this run's acknowledged appends
// account for.

// reconciler resolves appends whose answer was lost. With every other
// append to that folder settled (write lock), it looks among the messages
// that arrived since the folder was opened (a listing Since the cursor it
// was opened with) for a copy with the item's identity and date that no
// acknowledged append accounts for (ledger.landed).
func (r *run) reconciler() {
	for {
		it := r.uncertain.pop()
		if it == nil {
			return
		}
		if r.ctx.Err() != nil {
			r.drop(it)
			continue
		}
		// The server may still be storing what it received before the
		// connection dropped (its process finishes the command, then
		// notices the drop), so look only once that has had time.
		if d := time.Until(it.lostAt.Add(r.opts.SettleDelay)); d > 0 {
			if pacer.Sleep(r.ctx, d) != nil {
				r.drop(it)
				continue
			}
		}
		led := it.fs.led
		led.appends.Lock()
		tail, err := r.arrivals(led)
		landed := err == nil && led.landed(it.msg, tail)
		led.appends.Unlock()
		switch {
		case err != nil && (r.ctx.Err() != nil || isUnreachable(err)):
			r.drop(it)
		case err != nil:
			r.fail(it.fs, it.msg, fmt.Errorf("could not check whether the message was stored after the connection dropped: %w", err))
			r.finish(it)
		case landed:
			if r.rec != nil {
				rec := r.record(it.fs, it.msg, store.StateCopied, connector.AppendResult{}, "")
				rec.Bytes = "" // the append's answer was lost: how it was stored is not known
				r.rec.add(rec)
			}
			it.fs.c.copied.Add(1)
			it.fs.c.copiedBytes.Add(it.msg.Size)
			r.opts.Stats.Copied(it.msg.Size)
			r.finish(it)
		default:
			r.again(it, it.lostErr, func(err error) error {
				return fmt.Errorf("the destination kept dropping the connection while storing this message: %w", err)
			})
		}
	}
}

// errNoArrivals: the destination cannot list what arrived since a
// cursor (its cursors cover whole folders), so a lost answer cannot be
// resolved without a risk of a second copy; the message is reported,
// and the next pass reconciles its folder by identity.
var errNoArrivals = fmt.Errorf("the destination cannot list only what arrived since the folder was opened")

// arrivals lists the messages that arrived in the ledger's folder since
// it was opened.
func (r *run) arrivals(led *ledger) ([]connector.Message, error) {
	if !r.dstF.ExactNew || led.cursor == "" {
		return nil, errNoArrivals
	}
	var tail []connector.Message
	_, err := r.listWhole(r.dst, r.dstTry, led.dest, connector.ListOptions{Since: led.cursor, StrictSince: true, ForAppend: true},
		func() { tail = tail[:0] },
		func(ms []connector.Message) {
			for _, m := range ms {
				if m.Change == connector.ChangeNew {
					tail = append(tail, m)
				}
			}
		})
	return tail, err
}

// queue is an unbounded FIFO of items; pop blocks until an item arrives
// or the queue is closed and empty (then it returns nil).
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []*item
	closed bool
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(it *item) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *queue) pop() *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return nil
	}
	it := q.items[0]
	q.items = q.items[1:]
	return it
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
