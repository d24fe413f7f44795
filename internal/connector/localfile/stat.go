package localfile

import (
	"os"
	"syscall"
	"time"
)

// Settle is how long after a file-system change a cursor can be trusted
// to notice the next one. Directory and file times advance with the
// kernel's coarse clock (a few milliseconds; whole seconds on some file
// systems), so a change made in the same tick as the cursor was taken
// could leave every time stamp equal. A cursor taken less than Settle
// after the newest time stamp it records never vouches for "unchanged".
const Settle = 2 * time.Second

// Stamp is what a cursor remembers of one file or directory to notice
// change: its inode, size, modification and change times. The change
// time (ctime) moves on every rename into or out of a directory and on
// every write and every utime call, and cannot be set back by users.
type Stamp struct {
	Ino, Size, Mtime, Ctime int64
}

// StampOf reads fi's stamp.
func StampOf(fi os.FileInfo) Stamp {
	s := Stamp{Size: fi.Size(), Mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.Ino = int64(st.Ino)
		s.Ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return s
}

// Newest is the later of the stamp's times.
func (s Stamp) Newest() time.Time { return time.Unix(0, max(s.Mtime, s.Ctime)) }

// Put stores the stamp in c under prefix.
func (s Stamp) Put(c Cursor, prefix string) {
	c.SetInt(prefix+"i", s.Ino)
	c.SetInt(prefix+"s", s.Size)
	c.SetInt(prefix+"m", s.Mtime)
	c.SetInt(prefix+"c", s.Ctime)
}

// GetStamp reads a stamp stored by Put.
func GetStamp(c Cursor, prefix string) (Stamp, bool) {
	var s Stamp
	var ok [4]bool
	s.Ino, ok[0] = c.Int(prefix + "i")
	s.Size, ok[1] = c.Int(prefix + "s")
	s.Mtime, ok[2] = c.Int(prefix + "m")
	s.Ctime, ok[3] = c.Int(prefix + "c")
	return s, ok[0] && ok[1] && ok[2] && ok[3]
}

// SyncDir makes a directory's entries (a rename, a new or removed file)
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
