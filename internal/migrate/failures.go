package migrate

import (
	"errors"

	"github.com/mailferry/mailferry/internal/connector"
	"github.com/mailferry/mailferry/internal/connector/layer"
	"github.com/mailferry/mailferry/internal/store"
)

// unreachableHint is what a user should do about an UnreachableError.
const unreachableHint = "Check that the server is up and reachable from here, then run the pass again: what was copied stays copied, and only the rest is sent."

// isUnreachable reports whether err is (or wraps) the end of a run for an
// unreachable side.
func isUnreachable(err error) bool { return layer.IsUnreachable(err) }

// fail records one message that will not be copied.
func (r *run) fail(fs *folderState, m connector.Message, err error) {
	f := Failure{Folder: fs.res.Source, ID: string(m.ID), Size: m.Size, Messages: 1}
	describe(&f, err)
	if r.opts.LogSubjects {
		f.Subject = m.Headers.Subject
	}
	fs.c.failed.Add(1)
	r.opts.Stats.Failed(m.Size)
	if r.rec != nil && m.ID != "" {
		r.rec.add(r.record(fs, m, store.StateFailed, connector.AppendResult{}, f.Reason))
	}
	r.addFailure(f)
}

// failFolder records n messages of a folder that will not be copied and
// that have no IDs to name: the folder could not be listed.
func (r *run) failFolder(fs *folderState, n int64, err error) {
	f := Failure{Folder: fs.res.Source, Messages: n}
	if fs.estimate > 0 {
		f.Size = fs.estimateBytes * n / fs.estimate
	}
	describe(&f, err)
	if !isUnreachable(err) {
		f.Reason = "the folder could not be copied: " + f.Reason
	}
	if !fs.statusOK && n == 0 {
		f.Reason += " (how many messages it holds is not known: the server did not report its status)"
	}
	fs.c.failed.Add(n)
	r.opts.Stats.FailedMany(n, f.Size)
	r.addFailure(f)
}

// failNone records a failure that left no message uncopied (flag changes
// that could not be carried over), so that the user sees it.
func (r *run) failNone(fs *folderState, err error) {
	f := Failure{Folder: fs.res.Source}
	describe(&f, err)
	r.addFailure(f)
}

// note reports a part of the source that could not be listed at all
// (connector.FolderNote): its messages are unknown, so it stands for
// none, but the user sees where and why.
func (r *run) note(n connector.FolderNote) {
	f := Failure{Folder: n.Path.String()}
	describe(&f, n.Err)
	f.Reason = "could not be read, so its folders and messages are not known and were not copied: " + f.Reason
	r.addFailure(f)
}

func describe(f *Failure, err error) {
	f.Reason, f.Hint, f.Kind = reason(err), connector.HintOf(err), connector.KindOf(err).String()
	if isUnreachable(err) {
		var u *UnreachableError
		errors.As(err, &u)
		f.Reason, f.Hint = "not copied: "+u.Error(), unreachableHint
	}
}

func (r *run) addFailure(f Failure) {
	r.mu.Lock()
	r.failures = append(r.failures, f)
	r.mu.Unlock()
	r.emit(Event{Type: "failure", Failure: &f})
}

func reason(err error) string {
	var ce *connector.Error
	if errors.As(err, &ce) && ce.Err != nil {
		if ce.Op != "" && ce.Kind == connector.KindItem {
			// Items name the file, offset or ID they failed at.
			return ce.Error()
		}
		return ce.Err.Error()
	}
	return err.Error()
}

// leave gives up on a message because the run is stopping. It is counted
// as left (the next pass takes it up), or, when the run ended because a
// side stayed unreachable, as failed with that reason.
func (r *run) leave(fs *folderState, m connector.Message) {
	if fs.led != nil {
		fs.led.unclaim(m)
	}
	if u := r.unreachable(); u != nil {
		r.fail(fs, m, u)
		return
	}
	fs.c.left.Add(1)
	r.opts.Stats.Left(1)
}

// leaveUnlisted accounts for the messages of a folder that were never
// listed, because the run stopped (or a side became unreachable) first.
func (r *run) leaveUnlisted(fs *folderState) {
	n := r.unlisted(fs)
	if u := r.unreachable(); u != nil {
		if n > 0 || !fs.statusOK { // nothing to say of a folder known to hold nothing more
			r.failFolder(fs, n, u)
		}
		return
	}
	fs.c.left.Add(n)
	r.opts.Stats.Left(n)
}

// unlisted is how many messages of fs were never listed, by the estimate
// from its status.
func (r *run) unlisted(fs *folderState) int64 {
	if fs.complete {
		return 0
	}
	n := max(0, fs.estimate-fs.res.Listed)
	fs.unlisted = n
	return n
}
