package store

import "io/fs"

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		// The directory is embedded at build time; a failure here is a
		// build defect, not a runtime condition.
		panic(err)
	}
	return sub
}
